"""Run tracking with kedro-mlflow, where `conf/<env>/mlflow.yml` switches it on.

kedro-mlflow's own hook is disabled in settings.py (it would start MLflow on every run);
`TrackingHook` reads `mlflow.yml`, and only when its `enabled` key is true hands the rest
of the file to kedro-mlflow's hook, which sets MLflow up (tracking URI, experiment) and
starts and ends one MLflow run per `kedro run`. With tracking off nothing of MLflow is set up
or written (kedro-mlflow's plugin module is still imported when Kedro loads its entry
points).

This hook logs the nodes' parameters (flattened, each once, in one batch per node) and,
from the nodes' outputs (nothing in a node knows about MLflow):

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
import shutil
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


class _Calls:
    """Runs a run's MLflow calls, in order, in the pipeline's thread.

    Not in a background thread: MLflow imports modules lazily while it logs, and another
    thread can then see a module half imported (matplotlib read `IPython` that way and a
    chart node failed). A failed call is logged as a warning, never a lost run.
    """

    def __init__(self, hook: TrackingHook) -> None:
        self._hook = hook

    def submit(self, call: Any, *args: Any) -> None:
        try:
            self._hook.rejoin_run()
            call(*args)
        except Exception as error:  # tracking must never lose the run's own outputs
            logger.warning("MLflow tracking: %s failed: %s", call.__name__, error)

    def close(self) -> None:
        """Nothing is pending: every call has run."""


class TrackingHook:
    """kedro-mlflow's hook, where tracking is on, plus the project's own logging."""

    def __init__(self) -> None:
        self._mlflow_hook: Any = None
        self._context: Any = None
        self._conf: dict = {}
        self._calls: _Calls | None = None
        self._started: datetime | None = None
        self._models: dict[str, str] = {}
        self._charts: dict[str, Any] = {}
        self._logged_params: set[str] = set()

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._context = None
        enabled, conf = tracking_settings(context)
        if enabled:
            from kedro_mlflow.config.kedro_mlflow_config import KedroMlflowConfig

            self._context, self._conf = context, absolute_uris(conf, Path(context.project_path))
            # What `kedro mlflow ui` reads (store URI, host, port); MLflow itself is set up
            # at the first tracked run.
            context.__setattr__("mlflow", KedroMlflowConfig.model_validate(self._conf))

    def _tracks(self, run_params: dict) -> bool:
        names = run_params.get("pipeline_names") or ["__default__"]
        untracked = self._conf.get("tracking", {}).get("disable_tracking", {}).get("pipelines")
        return not all(name in (untracked or []) for name in names)

    @hook_impl
    def before_pipeline_run(self, run_params: dict, pipeline: Any, catalog: Any) -> None:
        # Untracked pipelines (ingestion, data processing) never set MLflow up: no store.
        if self._context is None or not self._tracks(run_params):
            return
        # Optuna stamps trials in local time: so does this, to pick this run's trials.
        self._started = datetime.now()
        self._models, self._charts, self._logged_params = {}, {}, set()
        self._mlflow_hook = None  # the previous run's, if any: never rejoin it
        run_info = catalog.load("run_info") if "run_info" in catalog else {}
        self._calls = _Calls(self)
        self._calls.submit(self._begin, run_params, pipeline, catalog, run_info)

    def _begin(self, run_params: dict, pipeline: Any, catalog: Any, run_info: dict) -> None:
        import mlflow
        from kedro_mlflow.framework.hooks.mlflow_hook import MlflowHook

        uri = self._conf["server"]["mlflow_tracking_uri"]
        if uri.startswith(SQLITE_PREFIX):
            Path(uri.removeprefix(SQLITE_PREFIX)).parent.mkdir(parents=True, exist_ok=True)
        # kedro-mlflow reads config_loader["mlflow"]: it gets the file without our key.
        self._context.config_loader["mlflow"] = self._conf
        self._mlflow_hook = MlflowHook()
        self._mlflow_hook.after_context_created(self._context)
        self._mlflow_hook.before_pipeline_run(run_params, pipeline, catalog)
        mlflow.set_tags(
            {"git_commit": run_info.get("git_commit"), "ml_lstm_run_id": run_info.get("run_id")}
        )

    @hook_impl
    def before_node_run(self, node: Any, catalog: Any, inputs: dict, is_async: bool) -> None:
        """Logs the node's parameters not logged yet, in one batch. (kedro-mlflow's own
        before_node_run logs every parameter of every node one by one: one SQLite commit
        each, about 4 s on a modelling run.)"""
        if self._calls is None:
            return
        params = {
            name[len("params:") :]: value
            for name, value in inputs.items()
            if name.startswith("params:")
        }
        if params:
            self._calls.submit(self._log_params, params)

    def _log_params(self, params: dict) -> None:
        import mlflow
        from kedro_mlflow.framework.hooks.utils import _flatten_dict
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

        hook = self._mlflow_hook
        if hook.flatten:
            params = _flatten_dict(params, recursive=hook.recursive, sep=hook.sep)
        fresh = {
            hook.sanitize_param_name(name): str(value)[:MAX_PARAM_VAL_LENGTH]
            for name, value in params.items()
            if name not in self._logged_params
        }
        if fresh:
            mlflow.log_params(fresh)
            self._logged_params.update(params)

    @hook_impl
    def after_node_run(self, node: Any, outputs: dict, inputs: dict) -> None:
        if self._calls is None:
            return
        for name, data in outputs.items():
            instrument, _, dataset = name.rpartition(".")
            instrument = instrument or "project"
            if dataset == "lstm_model":
                folder = Path(tempfile.mkdtemp(prefix="ml_lstm_mlflow_"))
                data.save(folder / "lstm_model.keras")
                self._calls.submit(self._log_model, instrument, folder)
            elif _is_chart(data):
                self._charts[name] = data
            else:
                self._calls.submit(self._log_output, instrument, dataset, data)

    @hook_impl
    def after_pipeline_run(self, run_params: dict, pipeline: Any, catalog: Any) -> None:
        if self._calls is not None:
            for name, figure in self._charts.items():
                self._calls.submit(_log_chart, name, figure, _saved_path(catalog, name))
            self._calls.submit(self._finish, "after_pipeline_run", run_params, pipeline, catalog)
            self._close()

    @hook_impl
    def on_pipeline_error(
        self, error: Exception, run_params: dict, pipeline: Any, catalog: Any
    ) -> None:
        if self._calls is not None:
            self._calls.submit(
                self._finish, "on_pipeline_error", error, run_params, pipeline, catalog
            )
            self._close()

    def rejoin_run(self) -> None:
        """Makes this run the active one in the calling thread (a runner's worker thread
        has none of its own), once it has started."""
        run_id = getattr(self._mlflow_hook, "run_id", None)
        if run_id is None:
            return
        import mlflow

        if mlflow.active_run() is None:
            mlflow.start_run(run_id=run_id, nested=True)

    def _finish(self, hook_name: str, *args: Any) -> None:
        """kedro-mlflow's end of run, then the run ended however often it was re-entered
        (with MLflow 3 kedro-mlflow leaves it active, and the next session in the same
        process would log into it)."""
        import mlflow

        getattr(self._mlflow_hook, hook_name)(*args)
        run_id = self._mlflow_hook.run_id
        while (active := mlflow.active_run()) is not None and active.info.run_id == run_id:
            mlflow.end_run()

    def _close(self) -> None:
        calls, self._calls = self._calls, None
        calls.close()
        self._mlflow_hook = None

    def _log_output(self, instrument: str, dataset: str, data: Any) -> None:
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
        elif dataset == "promotion" and isinstance(data, dict):
            if data.get("promoted"):
                self._mirror_champion(instrument, data["challenger"])
        elif dataset == "tuning_trials":
            self._log_trials(instrument, data)
        elif dataset == "tuning_summary":
            mlflow.log_dict(data, f"{instrument}/tuning.json")
            mlflow.log_metrics(_tuning_metrics(data, instrument))

    def _log_model(self, instrument: str, folder: Path) -> None:
        import mlflow

        try:
            mlflow.log_artifact(str(folder / "lstm_model.keras"), f"{instrument}/model")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
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


def _import_store() -> None:
    import mlflow.store.tracking.sqlalchemy_store
    import mlflow.tracking.fluent  # noqa: F401


def _is_chart(data: Any) -> bool:
    """A matplotlib or plotly figure, or a dict of them (one dataset saving several PNGs)."""
    values = list(data.values()) if isinstance(data, dict) and data else [data]
    return all(type(value).__module__.startswith(("matplotlib", "plotly")) for value in values)


def _saved_path(catalog: Any, name: str) -> Path | None:
    """Where the catalog saved a chart dataset (a file, or a folder of PNGs), if on disk."""
    try:
        filepath = getattr(catalog.get(name), "_filepath", None)
    except Exception:
        return None
    path = Path(str(filepath)) if filepath else None
    return path if path is not None and path.exists() else None


def _log_chart(name: str, data: Any, saved: Path | None) -> None:
    """Logs a chart under `<instrument>/charts/`: the file the catalog saved (a copy, no
    rendering), else the figure itself (matplotlib as PNG, plotly as JSON)."""
    import mlflow

    instrument, _, dataset = name.rpartition(".")
    folder = f"{instrument or 'project'}/charts"
    if saved is not None:
        if saved.is_dir():
            mlflow.log_artifacts(str(saved), f"{folder}/{dataset}")
        else:
            mlflow.log_artifact(str(saved), folder)
        return
    figures = data if isinstance(data, dict) else {dataset: data}
    for key, figure in figures.items():
        stem = str(key).removesuffix(".png")
        if type(figure).__module__.startswith("matplotlib"):
            mlflow.log_figure(figure, f"{folder}/{stem}.png")
        else:
            mlflow.log_text(figure.to_json(), f"{folder}/{stem}.json")
