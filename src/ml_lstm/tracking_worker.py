"""The MLflow logging process of one tracked `kedro run` (`python -m ml_lstm.tracking_worker`).

`ml_lstm.tracking.TrackingHook` starts it when a tracked pipeline starts. Importing MLflow's
SQLAlchemy store, opening (or creating) the SQLite store and creating the run take seconds;
here they happen while the pipeline's nodes train, in a process of their own, instead of
in front of them. Not a thread of the Kedro process: MLflow imports modules lazily while it
logs, and another thread can then see a module half imported (matplotlib once read
`IPython` that way and a chart node failed).

Protocol: JSON lines on stdin, the first `begin` (where to log, the run's name and tags),
then `params` and `dataset` messages (a saved file of the run: metrics, manifest,
promotion, model, chart, tuning trials or summary) in any order, the last `finish`. Only
MLflow's client API is used (no active run in any process), so the Kedro runs of one
process (`kedro run --pipelines update`) are separate MLflow runs. The process answers
with one JSON line on stdout, once the run is complete: `{"run_id", "logged", "errors"}`.
A failed call is reported in `errors` and the rest still logged; the project's own files
are only read here, never written.
"""

from __future__ import annotations

import getpass
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger("ml_lstm.tracking_worker")

CHAMPION_ALIAS = "champion"
SQLITE_PREFIX = "sqlite:///"
BATCH = 100  # MLflow's limit of params (or tags) in one log_batch call
MAX_ERRORS = 20
TRIAL_METRICS = ("relative_mae", "relative_mae_std", "dm_p_value", "seconds")


def registered_model_name(instrument: str) -> str:
    """The MLflow registered model that mirrors an instrument's champion."""
    return f"ml_lstm.{instrument}"


def flat_metrics(metrics: dict, prefix: str) -> dict[str, float]:
    """`{model: {metric: value}}` as `{prefix.model.metric: value}`, finite numbers only."""
    flat = {}
    for model, scores in metrics.items():
        if not isinstance(scores, dict):
            continue
        for name, value in scores.items():
            if isinstance(value, bool) or (isinstance(value, int | float) and math.isfinite(value)):
                flat[f"{prefix}.{model}.{name}"] = float(value)
    return flat


def tuning_metrics(summary: dict, instrument: str) -> dict[str, float]:
    best = summary["best"]
    metrics = {
        f"{instrument}.tuning.best_relative_mae": best["relative_mae"],
        f"{instrument}.tuning.best_relative_mae_std": best["relative_mae_std"],
        f"{instrument}.tuning.best_dm_p_value": best["dm_p_value"],
    }
    test = summary.get("test_split", {}).get("metrics", {})
    metrics.update(flat_metrics(test, f"{instrument}.tuning.test"))
    return {key: float(value) for key, value in metrics.items() if _finite(value)}


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class TrackedRun:
    """One MLflow run, created at `begin`, filled by the messages, ended at `finish`."""

    def __init__(self, begin: dict) -> None:
        from mlflow import MlflowClient

        uri = begin["tracking_uri"]
        if uri.startswith(SQLITE_PREFIX):  # the store's folder (mlruns/), made here
            Path(uri.removeprefix(SQLITE_PREFIX)).parent.mkdir(parents=True, exist_ok=True)
        self._client = MlflowClient(uri, begin.get("registry_uri"))
        self._experiment_id = self._experiment(begin["experiment"])
        tags = {
            "mlflow.user": _user(),
            "mlflow.source.name": "kedro run",
            "mlflow.source.type": "LOCAL",
            **begin.get("tags", {}),
        }
        run = self._client.create_run(
            self._experiment_id, run_name=begin["run_name"], tags=_strings(tags)
        )
        self.run_id = run.info.run_id
        self._artifact_uri = run.info.artifact_uri.rstrip("/")
        self._trials_since = begin.get("trials_since", "")
        self._params: set[str] = set()
        self._max_param_length = _max_param_length()
        self._models: dict[str, str] = {}
        self._promotions: dict[str, str] = {}
        self.logged = {"params": 0, "metrics": 0, "artifacts": 0, "nested_runs": 0}

    def _experiment(self, settings: dict) -> str:
        client, name = self._client, settings["name"]
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            return client.create_experiment(
                name, artifact_location=settings.get("artifact_location"), tags=settings.get("tags")
            )
        if settings.get("restore_if_deleted", True) and experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id

    def params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        fresh = {
            name: str(value)[: self._max_param_length]
            for name, value in params.items()
            if name not in self._params
        }
        items = [Param(name, value) for name, value in fresh.items()]
        for start in range(0, len(items), BATCH):
            self._client.log_batch(self.run_id, params=items[start : start + BATCH])
        self._params.update(fresh)
        self.logged["params"] += len(fresh)

    def metrics(self, metrics: dict[str, float], run_id: str | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(key, value, now, 0) for key, value in metrics.items()]
        for start in range(0, len(items), BATCH * 10):
            self._client.log_batch(run_id or self.run_id, metrics=items[start : start + BATCH * 10])
        if run_id is None:
            self.logged["metrics"] += len(items)

    def tags(self, tags: dict[str, Any], run_id: str | None = None) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(key, value) for key, value in _strings(tags).items()]
        self._client.log_batch(run_id or self.run_id, tags=items)

    def dataset(self, message: dict) -> None:
        """A file the run saved: logged according to its kind."""
        kind, instrument, path = message["kind"], message["instrument"], Path(message["path"])
        if kind == "model":
            self._client.log_artifact(self.run_id, str(path), f"{instrument}/model")
            self._models[instrument] = f"{self._artifact_uri}/{instrument}/model"
        elif kind == "chart":
            folder = f"{instrument}/charts"
            if path.is_dir():
                self._client.log_artifacts(self.run_id, str(path), f"{folder}/{path.name}")
            else:
                self._client.log_artifact(self.run_id, str(path), folder)
        elif kind == "tuning_trials":
            self._trials(instrument, path)
        else:
            self._json(kind, instrument, json.loads(path.read_text(encoding="utf-8")))
            return
        self.logged["artifacts"] += 1

    def _json(self, kind: str, instrument: str, data: Any) -> None:
        if kind == "metrics" and isinstance(data, dict):
            self.metrics(flat_metrics(data, instrument))
        elif kind == "manifest":
            self._client.log_dict(self.run_id, data, f"{instrument}/manifest.json")
            self.logged["artifacts"] += 1
            data_range = data.get("data_range", {})
            self.tags(
                {
                    f"{instrument}.git_commit": data.get("git_commit"),
                    f"{instrument}.data_first": data_range.get("first"),
                    f"{instrument}.data_last": data_range.get("last"),
                    f"{instrument}.data_rows": data_range.get("rows"),
                    f"{instrument}.model_version": data.get("version"),
                }
            )
        elif kind == "promotion" and isinstance(data, dict) and data.get("promoted"):
            # Mirrored at the end, once the model it names is logged whatever the order.
            self._promotions[instrument] = data["challenger"]
        elif kind == "tuning_summary":
            self._client.log_dict(self.run_id, data, f"{instrument}/tuning.json")
            self.logged["artifacts"] += 1
            self.metrics(tuning_metrics(data, instrument))

    def _trials(self, instrument: str, path: Path) -> None:
        """The trials this run added (started since the run began) as nested runs."""
        import pandas as pd

        trials = pd.read_csv(path)
        new = trials[trials["started"].fillna("").astype(str) >= self._trials_since]
        for row in new.to_dict("records"):
            params = {
                key.removeprefix("param."): value
                for key, value in row.items()
                if key.startswith("param.")
            }
            tags = {
                "mlflow.parentRunId": self.run_id,
                "instrument": instrument,
                "state": row["state"],
                "trial": row["number"],
                "seed": row["seed"],
            }
            nested = self._client.create_run(
                self._experiment_id,
                run_name=f"{instrument}.trial_{row['number']}",
                tags=_strings(tags),
            )
            self._client.log_batch(
                nested.info.run_id,
                params=[_param(key, value) for key, value in params.items()],
            )
            values = {key: float(row[key]) for key in TRIAL_METRICS if _finite(row.get(key))}
            self.metrics(values, nested.info.run_id)
            self._client.set_terminated(nested.info.run_id, "FINISHED")
            self.logged["nested_runs"] += 1

    def mirror_champions(self) -> list[str]:
        """Each promotion as a version of `ml_lstm.<instrument>` with the alias `champion`."""
        from mlflow.exceptions import MlflowException

        mirrored = []
        for instrument, version in self._promotions.items():
            source = self._models.get(instrument)
            if source is None:
                raise RuntimeError(f"{instrument} was promoted but no model of it was logged")
            name = registered_model_name(instrument)
            try:
                self._client.get_registered_model(name)
            except MlflowException:
                self._client.create_registered_model(
                    name, description="Mirror of ml_lstm's registry: champion.json is the truth."
                )
            model_version = self._client.create_model_version(
                name, source, run_id=self.run_id, tags={"ml_lstm_version": version}
            )
            self._client.set_registered_model_alias(name, CHAMPION_ALIAS, model_version.version)
            mirrored.append(f"{name} version {model_version.version} is now @{CHAMPION_ALIAS}")
        return mirrored

    def end(self, status: str) -> None:
        self._client.set_terminated(self.run_id, status)


def _param(key: str, value: Any) -> Any:
    from mlflow.entities import Param

    return Param(key, str(value))


def _strings(tags: dict[str, Any]) -> dict[str, str]:
    return {str(key): str(value) for key, value in tags.items()}


def _max_param_length() -> int:
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

    return MAX_PARAM_VAL_LENGTH


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def serve(messages: Any) -> dict:
    """Handles the messages (one JSON object per line) until `finish` or their end."""
    run: TrackedRun | None = None
    errors: list[str] = []
    report: dict[str, Any] = {"run_id": None, "logged": {}, "mirrored": [], "errors": errors}
    status = "KILLED"  # the Kedro process went away without a word
    for line in messages:
        message = json.loads(line)
        op = message["op"]
        if op == "finish":
            status = message.get("status", "FINISHED")
            break
        if op != "begin" and run is None:
            continue  # the run could not be created: that error is already reported
        try:
            if op == "begin":
                run = TrackedRun(message)
                report["run_id"] = run.run_id
            elif op == "params":
                run.params(message["params"])
            elif op == "tags":
                run.tags(message["tags"])
            elif op == "dataset":
                run.dataset(message)
        except Exception as error:  # reported to the Kedro process, which logs it
            errors.append(f"{op} {message.get('name', '')}: {type(error).__name__}: {error}")
    if run is not None:
        _close(run, status, report)
    # This process's CPU (from its fork or start): what tracking costs beside the nodes.
    report["cpu_seconds"] = round(time.process_time(), 2)
    if len(errors) > MAX_ERRORS:  # the report stays one short line
        errors[MAX_ERRORS:] = [f"... and {len(errors) - MAX_ERRORS} more"]
    return report


def _close(run: TrackedRun, status: str, report: dict) -> None:
    errors = report["errors"]
    try:
        report["mirrored"] = run.mirror_champions()
    except Exception as error:
        errors.append(f"champion alias: {type(error).__name__}: {error}")
    try:
        run.end(status)
    except Exception as error:
        errors.append(f"end of run: {type(error).__name__}: {error}")
    report["logged"] = run.logged


def main() -> int:
    reply = sys.stdout
    sys.stdout = sys.stderr  # whatever MLflow prints goes to the log, never into the reply
    logging.basicConfig(level=logging.WARNING, format="MLflow tracking process: %(message)s")
    report = serve(sys.stdin)
    reply.write(json.dumps(report) + "\n")
    reply.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
