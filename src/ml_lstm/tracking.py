"""Run tracking with kedro-mlflow, where `conf/<env>/mlflow.yml` switches it on.

kedro-mlflow's own hook is disabled in settings.py (it would start MLflow on every run);
`TrackingHook` reads `mlflow.yml`, and only when its `enabled` key is true hands the rest
of the file to kedro-mlflow's hook, which starts one MLflow run per `kedro run` and logs
the node parameters. With tracking off nothing of MLflow is imported, set up or written.

On top of kedro-mlflow's parameters, this hook logs from the nodes' outputs (nothing in a
node knows about MLflow):

- `<instrument>.metrics`: the test-split metrics of the LSTM and every baseline, as MLflow
  metrics `<instrument>.<model>.<metric>`;
- `<instrument>.model_manifest`: the manifest (artifact), its git commit and data range
  (tags);
- `<instrument>.lstm_model`: the model, saved as `.keras` under `<instrument>/model/`;
- every chart (matplotlib as PNG, plotly as JSON) under `<instrument>/charts/`;
- a promotion: the promoted model as a version of the registered model
  `ml_lstm.<instrument>`, with the alias `champion` moved to it (the project's own
  registry, champion.json, stays the source of truth);
- `<instrument>.tuning_trials`: each trial this run added as a nested MLflow run (its
  parameters, objective, fold figures and state), and `tuning.json` with the best
  configuration's figures.

Relative paths in `server.mlflow_tracking_uri` (`sqlite:///mlruns/mlflow.db`) and the
experiment's artifact location are taken from the project folder, not the working folder.
"""

from __future__ import annotations

import logging
import math
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from kedro.config import MissingConfigException
from kedro.framework.hooks import hook_impl

logger = logging.getLogger(__name__)

CONFIG_PATTERNS = ["mlflow*", "mlflow*/**", "**/mlflow*"]
CHAMPION_ALIAS = "champion"
SQLITE_PREFIX = "sqlite:///"


def registered_model_name(instrument: str) -> str:
    """The MLflow registered model that mirrors an instrument's champion."""
    return f"ml_lstm.{instrument}"


def tracking_settings(context: Any) -> tuple[bool, dict]:
    """(enabled, kedro-mlflow's configuration) from the environment's mlflow.yml files."""
    loader = context.config_loader
    loader.config_patterns.setdefault("mlflow", CONFIG_PATTERNS)
    try:
        conf = dict(loader["mlflow"])
    except MissingConfigException:
        conf = {}
    return bool(conf.pop("enabled", False)), conf


def absolute_uris(conf: dict, project_path: Path) -> dict:
    """`conf` with a relative SQLite tracking URI anchored at the project folder."""
    server = dict(conf.get("server") or {})
    uri = server.get("mlflow_tracking_uri")
    if isinstance(uri, str) and uri.startswith(SQLITE_PREFIX):
        path = Path(uri.removeprefix(SQLITE_PREFIX))
        if not path.is_absolute():
            path = project_path / path
        server["mlflow_tracking_uri"] = SQLITE_PREFIX + path.as_posix()
    return {**conf, "server": server}


def _flat_metrics(metrics: dict, prefix: str) -> dict[str, float]:
    flat = {}
    for model, scores in metrics.items():
        if not isinstance(scores, dict):
            continue
        for name, value in scores.items():
            if isinstance(value, bool) or (isinstance(value, int | float) and math.isfinite(value)):
                flat[f"{prefix}.{model}.{name}"] = float(value)
    return flat


class TrackingHook:
    """kedro-mlflow's hook, where tracking is on, plus the project's own logging."""

    def __init__(self) -> None:
        self._mlflow_hook: Any = None
        self._context: Any = None
        self._conf: dict = {}
        self._started: datetime | None = None
        self._models: dict[str, str] = {}

    @property
    def enabled(self) -> bool:
        return self._mlflow_hook is not None

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._mlflow_hook, self._context = None, None
        enabled, conf = tracking_settings(context)
        if not enabled:
            return
        self._context, self._conf = context, absolute_uris(conf, Path(context.project_path))
        # MLflow is set up here only when its store exists (`kedro mlflow ui` reads it);
        # otherwise at the first tracked run, so that runs of untracked pipelines never
        # create it (creating the SQLite schema takes seconds).
        if Path(self._conf["server"]["mlflow_tracking_uri"].removeprefix(SQLITE_PREFIX)).is_file():
            self._set_up()

    def _set_up(self) -> None:
        from kedro_mlflow.framework.hooks.mlflow_hook import MlflowHook

        uri = self._conf["server"]["mlflow_tracking_uri"]
        if uri.startswith(SQLITE_PREFIX):
            Path(uri.removeprefix(SQLITE_PREFIX)).parent.mkdir(parents=True, exist_ok=True)

        # kedro-mlflow reads config_loader["mlflow"]: it gets the file without our key.
        self._context.config_loader["mlflow"] = self._conf
        self._mlflow_hook = MlflowHook()
        self._mlflow_hook.after_context_created(self._context)

    def _tracks(self, run_params: dict) -> bool:
        names = run_params.get("pipeline_names") or ["__default__"]
        untracked = self._conf.get("tracking", {}).get("disable_tracking", {}).get("pipelines")
        return not all(name in (untracked or []) for name in names)

    @hook_impl
    def before_pipeline_run(self, run_params: dict, pipeline: Any, catalog: Any) -> None:
        if self._context is None or not self._tracks(run_params):
            self._mlflow_hook = None
            return
        if not self.enabled:
            self._set_up()
        # Optuna stamps trials in local time: so does this, to pick this run's trials.
        self._started = datetime.now()
        self._models = {}
        self._mlflow_hook.before_pipeline_run(run_params, pipeline, catalog)
        import mlflow

        if "run_info" in catalog and self._mlflow_hook.run_id is not None:
            run_info = catalog.load("run_info")
            mlflow.set_tags(
                {"git_commit": run_info.get("git_commit"), "ml_lstm_run_id": run_info["run_id"]}
            )

    @hook_impl
    def before_node_run(self, node: Any, catalog: Any, inputs: dict, is_async: bool) -> None:
        if self.enabled:
            self._mlflow_hook.before_node_run(node, catalog, inputs, is_async)

    @hook_impl
    def after_node_run(self, node: Any, outputs: dict, inputs: dict) -> None:
        if not self.enabled or self._mlflow_hook.run_id is None:
            return
        for name, data in outputs.items():
            instrument, _, dataset = name.rpartition(".")
            self._log_output(instrument or "project", dataset, data, inputs)

    @hook_impl
    def after_pipeline_run(self, run_params: dict, pipeline: Any, catalog: Any) -> None:
        if self.enabled:
            self._mlflow_hook.after_pipeline_run(run_params, pipeline, catalog)
            self._end_run()

    def _end_run(self) -> None:
        """Ends this run however often it was re-entered: kedro-mlflow restarts it before
        every node and ends it once, which with MLflow 3 leaves it active in this thread
        (the next session in the same process would then log into it)."""
        import mlflow

        run_id = self._mlflow_hook.run_id
        while (active := mlflow.active_run()) is not None and active.info.run_id == run_id:
            mlflow.end_run()

    @hook_impl
    def on_pipeline_error(
        self, error: Exception, run_params: dict, pipeline: Any, catalog: Any
    ) -> None:
        if self.enabled:
            self._mlflow_hook.on_pipeline_error(error, run_params, pipeline, catalog)
            self._end_run()

    def _log_output(self, instrument: str, dataset: str, data: Any, inputs: dict) -> None:
        import mlflow

        if dataset == "metrics" and isinstance(data, dict):
            mlflow.log_metrics(_flat_metrics(data, instrument))
        elif dataset == "model_manifest":
            mlflow.log_dict(data, f"{instrument}/manifest.json")
            data_range = data.get("data_range", {})
            mlflow.set_tags(
                {
                    f"{instrument}.git_commit": data.get("git_commit"),
                    f"{instrument}.data_first": data_range.get("first"),
                    f"{instrument}.data_last": data_range.get("last"),
                    f"{instrument}.data_rows": data_range.get("rows"),
                    f"{instrument}.model_version": data.get("version"),
                }
            )
        elif dataset == "lstm_model":
            self._log_model(instrument, data)
        elif dataset == "promotion" and isinstance(data, dict):
            if data.get("promoted"):
                self._mirror_champion(instrument, data["challenger"])
        elif dataset == "tuning_trials":
            self._log_trials(instrument, data)
        elif dataset == "tuning_summary":
            mlflow.log_dict(data, f"{instrument}/tuning.json")
            mlflow.log_metrics(_tuning_metrics(data, instrument))
        else:
            _log_chart(instrument, dataset, data)

    def _log_model(self, instrument: str, model: Any) -> None:
        import mlflow

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "lstm_model.keras"
            model.save(path)
            mlflow.log_artifact(str(path), artifact_path=f"{instrument}/model")
        self._models[instrument] = f"{mlflow.get_artifact_uri()}/{instrument}/model"

    def _mirror_champion(self, instrument: str, version: str) -> None:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        source = self._models.get(instrument)
        if source is None:
            return
        client, name = MlflowClient(), registered_model_name(instrument)
        try:
            client.get_registered_model(name)
        except MlflowException:
            client.create_registered_model(
                name, description="Mirror of ml_lstm's registry: champion.json is the truth."
            )
        model_version = client.create_model_version(
            name, source, run_id=self._mlflow_hook.run_id, tags={"ml_lstm_version": version}
        )
        client.set_registered_model_alias(name, CHAMPION_ALIAS, model_version.version)
        logger.info(
            "MLflow: %s version %s is now @%s.", name, model_version.version, CHAMPION_ALIAS
        )

    def _log_trials(self, instrument: str, trials: Any) -> None:
        import mlflow

        started = self._started.isoformat() if self._started else ""
        new = trials[trials["started"].fillna("").astype(str) >= started]
        for row in new.to_dict("records"):
            with mlflow.start_run(run_name=f"{instrument}.trial_{row['number']}", nested=True):
                mlflow.log_params(
                    {
                        key.removeprefix("param."): value
                        for key, value in row.items()
                        if key.startswith("param.")
                    }
                )
                mlflow.set_tags(
                    {
                        "instrument": instrument,
                        "state": row["state"],
                        "trial": row["number"],
                        "seed": row["seed"],
                    }
                )
                values = {
                    key: row[key]
                    for key in ("relative_mae", "relative_mae_std", "dm_p_value", "seconds")
                    if isinstance(row.get(key), int | float) and math.isfinite(row[key])
                }
                mlflow.log_metrics({key: float(value) for key, value in values.items()})


def _tuning_metrics(summary: dict, instrument: str) -> dict[str, float]:
    best = summary["best"]
    metrics = {
        f"{instrument}.tuning.best_relative_mae": best["relative_mae"],
        f"{instrument}.tuning.best_relative_mae_std": best["relative_mae_std"],
        f"{instrument}.tuning.best_dm_p_value": best["dm_p_value"],
    }
    test = summary.get("test_split", {}).get("metrics", {})
    metrics.update(_flat_metrics(test, f"{instrument}.tuning.test"))
    return metrics


def _log_chart(instrument: str, dataset: str, data: Any) -> None:
    """Logs matplotlib figures (PNG) and plotly figures (JSON); ignores anything else.

    A dict of figures (one dataset saving several PNGs) logs each under its own name."""
    import mlflow

    figures = data if isinstance(data, dict) else {dataset: data}
    for name, figure in figures.items():
        module = type(figure).__module__
        stem = str(name).removesuffix(".png")
        if module.startswith("matplotlib"):
            mlflow.log_figure(figure, f"{instrument}/charts/{stem}.png")
        elif module.startswith("plotly"):
            mlflow.log_text(figure.to_json(), f"{instrument}/charts/{stem}.json")
