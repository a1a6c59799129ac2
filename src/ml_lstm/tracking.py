"""Run tracking in MLflow, where `conf/<env>/mlflow.yml` switches it on.

`TrackingHook` reads `mlflow.yml` (the format of kedro-mlflow, whose `kedro mlflow ui`
reads it too); with its `enabled` key false nothing of MLflow is set up or written. With it
on, each tracked `kedro run` (pipelines not listed under `disable_tracking.pipelines`) is
one MLflow run, logged by a process of its own (`ml_lstm.tracking_worker`), started when the
pipeline starts: MLflow's store is imported, opened and the run created while the nodes
train, instead of adding seconds in front of them. This process only sends it what to log
and waits for its answer before the run ends, so nothing is lost; a logging failure is a
warning naming what was not logged, never a failed run or a changed output.

What the run holds, the same under every runner (SequentialRunner, ParallelRunner, the
Dask runner: nodes in other processes), because it is collected here from the pipeline and
the catalog, not from hooks in the processes that ran the nodes:

- the parameters every node reads (flattened, `modelling.training.epochs`, ...), at start;
- from the files the run saved (sent as each is saved where the node ran in this process,
  the rest at the end): `<instrument>.metrics` as MLflow metrics
  `<instrument>.<model>.<metric>`; the manifest (artifact) with its git commit and data
  range (tags); the model (`.keras`, under `<instrument>/model/`); every chart dataset
  (matplotlib PNGs, plotly JSON) under `<instrument>/charts/`; a promotion: the model as a
  version of the registered model `ml_lstm.<instrument>` with the alias `champion` (the
  project's own registry, champion.json, stays the source of truth); the tuning trials
  this run added as nested runs, and `tuning.json` with the best configuration's figures.

Relative paths in `server.mlflow_tracking_uri` (`sqlite:///mlruns/mlflow.db`) and the
experiment's artifact location are taken from the project folder, not the working folder.
"""

from __future__ import annotations

import logging
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from kedro.config import MissingConfigException
from kedro.framework.hooks import hook_impl

from ml_lstm.tracking_process import LoggingProcess
from ml_lstm.tracking_worker import registered_model_name

logger = logging.getLogger(__name__)

__all__ = ["CHAMPION_ALIAS", "TrackingHook", "registered_model_name", "tracking_settings"]

CONFIG_PATTERNS = ["mlflow*", "mlflow*/**", "**/mlflow*"]
CHAMPION_ALIAS = "champion"
SQLITE_PREFIX = "sqlite:///"
# How long the end of a run waits for the logging process to confirm (it logs files and
# a few hundred values: seconds; more only if the store is locked by another process).
WAIT_SECONDS = 600.0
# Datasets (the name after the instrument's namespace) logged from the files they saved.
KINDS = {
    "metrics": "metrics",
    "model_manifest": "manifest",
    "promotion": "promotion",
    "lstm_model": "model",
    "tuning_trials": "tuning_trials",
    "tuning_summary": "tuning_summary",
}
CHART_MODULES = ("kedro_datasets.matplotlib", "kedro_datasets.plotly")
# MLflow's rule for parameter names (mlflow/utils/validation.py); ':' is refused on Windows.
INVALID_PARAM_CHARACTERS = re.compile(r"[^/\w.\- ]" if os.name == "nt" else r"[^/\w.\- :]")


def tracking_settings(context: Any) -> tuple[bool, dict]:
    """(enabled, the rest of mlflow.yml) from the environment's mlflow.yml files."""
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


def begin_message(conf: dict, project_path: Path, run_params: dict, run_info: dict) -> dict:
    """What the logging process needs to create the run: store, experiment, name, tags."""
    tracking, server = conf.get("tracking") or {}, conf["server"]
    experiment = tracking.get("experiment") or {}
    create = experiment.get("create_experiment_kwargs") or {}
    location = create.get("artifact_location")
    if location and "://" not in str(location):
        location = (project_path / location).resolve().as_uri()
    names = run_params.get("pipeline_names") or ["__default__"]
    tags = {key: value for key, value in run_params.items() if value}
    tags.update(
        git_commit=run_info.get("git_commit"),
        ml_lstm_run_id=run_info.get("run_id"),
        kedro_command=kedro_command(run_params, names),
    )
    return {
        "op": "begin",
        "tracking_uri": server["mlflow_tracking_uri"],
        "registry_uri": server.get("mlflow_registry_uri"),
        "experiment": {
            "name": experiment.get("name") or "ml_lstm",
            "artifact_location": location,
            "tags": create.get("tags"),
            "restore_if_deleted": experiment.get("restore_if_deleted", True),
        },
        "run_name": (tracking.get("run") or {}).get("name") or "+".join(names),
        "tags": tags,
        # Optuna stamps trials in local time: so does this, to pick this run's trials.
        "trials_since": datetime.now().isoformat(),
    }


def kedro_command(run_params: dict, pipeline_names: list[str]) -> str:
    """The `kedro run` command line of the run's selection (as kedro-mlflow tags it)."""
    options = {
        "--pipelines": pipeline_names if pipeline_names != ["__default__"] else None,
        "--tags": run_params.get("tags"),
        "--nodes": run_params.get("node_names"),
        "--from-nodes": run_params.get("from_nodes"),
        "--to-nodes": run_params.get("to_nodes"),
        "--from-inputs": run_params.get("from_inputs"),
    }
    parts = [f"{flag}={','.join(values)}" for flag, values in options.items() if values]
    versions = run_params.get("load_versions") or {}
    parts += [f"--load-versions={name}:{version}" for name, version in versions.items()]
    return " ".join(["kedro run", *parts])


def pipeline_params(pipeline: Any, catalog: Any, conf: dict) -> dict[str, str]:
    """Every parameter the pipeline's nodes read, flattened as mlflow.yml says, as text."""
    settings = ((conf.get("tracking") or {}).get("params") or {}).get("dict_params") or {}
    names = sorted({name for node in pipeline.nodes for name in node.inputs})
    params = {
        name.removeprefix("params:"): catalog.load(name)
        for name in names
        if name.startswith("params:")
    }
    if settings.get("flatten", True):
        params = flatten(params, settings.get("recursive", True), settings.get("sep", "."))
    return {INVALID_PARAM_CHARACTERS.sub("_", name): str(value) for name, value in params.items()}


def flatten(params: dict, recursive: bool = True, sep: str = ".") -> dict:
    """`{"a": {"b": 1}}` as `{"a.b": 1}` (kedro-mlflow's rule: lists stay whole)."""
    flat = {}
    for key, value in params.items():
        if isinstance(value, dict):
            inner = flatten(value, recursive, sep) if recursive else value
            flat.update({f"{key}{sep}{name}": item for name, item in inner.items()})
        else:
            flat[key] = value
    return flat


def dataset_message(name: str, catalog: Any) -> dict | None:
    """A saved dataset the run logs (kind, instrument, file), or None."""
    instrument, _, short = name.rpartition(".")
    try:
        dataset = catalog.get(name)
    except Exception:
        return None
    if dataset is None:
        return None
    kind = KINDS.get(short)
    if kind is None and type(dataset).__module__.startswith(CHART_MODULES):
        kind = "chart"
    path = saved_path(dataset) if kind else None
    if path is None:
        return None
    return {
        "op": "dataset",
        "name": name,
        "kind": kind,
        "instrument": instrument or "project",
        "path": str(path),
    }


def saved_path(dataset: Any) -> Path | None:
    """The file (or folder of PNGs) this run saved for a dataset, if it is on disk: for a
    versioned dataset, the run's own version."""
    filepath = getattr(dataset, "_filepath", None)
    if filepath is None:
        return None
    path = Path(str(filepath))
    if getattr(dataset, "_version", None) is not None:
        try:
            path = Path(str(dataset._get_versioned_path(dataset.resolve_save_version())))
        except Exception:
            return None
    path = path.resolve()
    return path if path.exists() else None


class TrackingHook:
    """Starts a tracked run's logging process and sends it what the run produced."""

    def __init__(self) -> None:
        self._enabled = False
        self._conf: dict = {}
        self._project_path = Path.cwd()
        self._process: LoggingProcess | None = None
        self._owner_pid = 0
        self._sent: set[str] = set()
        self._catalog: Any = None

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._enabled, conf = tracking_settings(context)
        if not self._enabled:
            return
        self._project_path = Path(context.project_path)
        self._conf = absolute_uris(conf, self._project_path)
        _configure_ui(context, self._conf)

    def _tracks(self, run_params: dict) -> bool:
        names = run_params.get("pipeline_names") or ["__default__"]
        tracking = self._conf.get("tracking") or {}
        untracked = (tracking.get("disable_tracking") or {}).get("pipelines") or []
        return not all(name in untracked for name in names)

    def _active(self) -> LoggingProcess | None:
        """The run's logging process, in the process that started it only (a runner's
        worker process may be a fork of this one)."""
        return self._process if os.getpid() == self._owner_pid else None

    @hook_impl
    def before_pipeline_run(self, run_params: dict, pipeline: Any, catalog: Any) -> None:
        # Untracked pipelines (ingestion, data processing) never set MLflow up: no store.
        self._process, self._sent = None, set()
        if not self._enabled or not self._tracks(run_params):
            return
        run_info = catalog.load("run_info") if "run_info" in catalog else {}
        self._owner_pid, self._catalog = os.getpid(), catalog
        try:
            begin = begin_message(self._conf, self._project_path, run_params, run_info)
            self._process = LoggingProcess.start(begin)
        except Exception as error:  # tracking must never fail the run
            logger.warning("MLflow tracking: this run is not tracked: %s", error)
            return
        try:
            params = pipeline_params(pipeline, catalog, self._conf)
            self._process.send({"op": "params", "params": params})
        except Exception as error:
            logger.warning("MLflow tracking: the parameters could not be read: %s", error)

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node: Any) -> None:
        """Sends a file as soon as it is saved here, so it is logged while nodes still run."""
        process = self._active()
        if process is None or dataset_name in self._sent:
            return
        self._send_dataset(process, dataset_name, self._catalog)

    def _send_dataset(self, process: LoggingProcess, name: str, catalog: Any) -> None:
        try:
            message = dataset_message(name, catalog)
        except Exception as error:  # tracking must never fail the run
            logger.warning("MLflow tracking: %s not logged: %s", name, error)
            return
        if message is not None:
            process.send(message)
            self._sent.add(name)

    @hook_impl
    def after_pipeline_run(self, run_params: dict, pipeline: Any, catalog: Any) -> None:
        process = self._active()
        if process is None:
            return
        # What nodes saved in other processes (ParallelRunner, Dask workers).
        for name in sorted(pipeline.all_outputs() - self._sent):
            self._send_dataset(process, name, catalog)
        self._end(process, "FINISHED")

    @hook_impl
    def on_pipeline_error(
        self, error: Exception, run_params: dict, pipeline: Any, catalog: Any
    ) -> None:
        process = self._active()
        if process is not None:
            process.send({"op": "tags", "tags": {"error": f"{type(error).__name__}: {error}"}})
            self._end(process, "FAILED")

    def _end(self, process: LoggingProcess, status: str) -> None:
        self._process, self._catalog = None, None
        process.finish(status, WAIT_SECONDS)


def _configure_ui(context: Any, conf: dict) -> None:
    """`context.mlflow`: what `kedro mlflow ui` reads (store URI, host, port), where
    kedro-mlflow is installed. Tracking itself does not need kedro-mlflow."""
    try:
        from kedro_mlflow.config.kedro_mlflow_config import KedroMlflowConfig
    except ImportError:
        return
    context.__setattr__("mlflow", KedroMlflowConfig.model_validate(conf))
