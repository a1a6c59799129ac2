"""Run tracking (ml_lstm.tracking) through `kedro run` (KedroSession) in throw-away project
copies, queried through MLflow's own API. The feature table is written straight into the
copy, so the runs start at modelling. Under every runner the MLflow run is logged by a
process of its own; these runs are in this process, one after another, as the steps of
`kedro run --pipelines update` are."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from support import copy_project
from tuning_support import features

pytestmark = pytest.mark.slow

KEDRO = str(Path(sys.executable).with_name("kedro"))

FEATURES = ["log_return", "close", "volume", "sma_5"]
RUN = {
    "modelling": {
        "features": FEATURES,
        "lookback": 8,
        "model": {"lstm_units": [4], "dense_units": 0},
        "training": {"epochs": 1, "batch_size": 64, "patience": 1},
    },
    "tuning": {
        "n_trials": 2,
        "epochs": 1,
        "folds": 2,
        "space": {
            "lookback": [8],
            "lstm_layers": [1],
            "lstm_units": [4],
            "batch_size": [64],
            "target": ["log_return"],
            "features": {"always": ["log_return"], "optional": ["sma_5"]},
        },
    },
}


def write_features(project: Path) -> None:
    folder = project / "data/04_feature/nvda"
    folder.mkdir(parents=True, exist_ok=True)
    table = features()
    table.insert(1, "bar_end", table["timestamp"] + pd.Timedelta(hours=1))
    table.to_csv(folder / "features.csv", index=False, date_format="%Y-%m-%dT%H:%M:%S%z")
    listing = {"features": ["log_return", "sma_5", "signal"], "settings": {}, "frequency": "60min"}
    (folder / "feature_list.json").write_text(json.dumps(listing))


def run(project: Path, pipeline: str, env: str | None = None, runner=None, **params) -> None:
    bootstrap_project(project)
    runtime = {**RUN, "modelling": {**RUN["modelling"], **params}}
    with KedroSession.create(project_path=project, runtime_params=runtime, env=env) as session:
        session.run(pipeline_names=[pipeline], runner=runner)


def client_of(project: Path):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{project / 'mlruns/mlflow.db'}")


def all_runs(client) -> list:
    experiment = client.get_experiment_by_name("ml_lstm")
    return client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


def artifact_tree(client, run_id: str, path: str | None = None) -> set[str]:
    tree = set()
    for item in client.list_artifacts(run_id, path):
        tree |= artifact_tree(client, run_id, item.path) if item.is_dir else {item.path}
    return tree


def contents(run, client) -> dict:
    """What a run holds, less what differs between any two runs (ids, times, runner)."""
    varying = {"runner", "run_id", "ml_lstm_run_id", "project_path", "nvda.model_version"}
    varying |= {"runtime_params", "extra_params"}  # --params given one way or another
    return {
        "params": set(run.data.params),
        "metrics": set(run.data.metrics),
        "tags": set(run.data.tags) - varying,
        "artifacts": artifact_tree(client, run.info.run_id),
        "status": run.info.status,
    }


def mlflow_files(project: Path) -> list[Path]:
    """Anything MLflow writes (its store, artifacts, a database), outside conf/."""
    return [
        path
        for path in project.rglob("*")
        if not path.is_relative_to(project / "conf")
        and ("mlruns" in path.parts or "mlflow" in path.name or path.suffix == ".db")
    ]


@pytest.fixture(scope="module")
def tracked(tmp_path_factory) -> dict:
    """A project copy after modelling, modelling again (promotion forced) and tuning."""
    project = copy_project(tmp_path_factory.mktemp("tracked") / "project")
    write_features(project)
    champions = []
    for promotion in ("auto", "force"):
        run(project, "modelling", promotion=promotion)
        champions.append(json.loads((project / "data/06_models/nvda/champion.json").read_text()))
    run(project, "tuning")
    client = client_of(project)
    return {"project": project, "client": client, "runs": all_runs(client), "champions": champions}


def test_a_modelling_run_holds_its_params_metrics_and_artifacts(tracked):
    client, project = tracked["client"], tracked["project"]
    modelling = [run for run in tracked["runs"] if run.data.tags["mlflow.runName"] == "modelling"]
    assert len(modelling) == 2
    first = modelling[0]
    assert first.data.params["modelling.lookback"] == "8"
    assert first.data.params["modelling.features"] == str(FEATURES)
    version = tracked["champions"][0]["version"]
    metrics = json.loads(
        (project / f"data/06_models/nvda/manifest.json/{version}/manifest.json").read_text()
    )["metrics"]
    for model in ("lstm", "persistence", "drift", "sma", "linear"):
        assert first.data.metrics[f"nvda.{model}.mase"] == pytest.approx(metrics[model]["mase"])
    tags = first.data.tags
    assert tags["nvda.model_version"] == version
    assert tags["nvda.data_first"].startswith("2024-01-02")
    assert "git_commit" in tags and "nvda.git_commit" in tags
    artifacts = {item.path for item in client.list_artifacts(first.info.run_id, "nvda")}
    assert {"nvda/manifest.json", "nvda/model", "nvda/charts"} <= artifacts
    model = client.list_artifacts(first.info.run_id, "nvda/model")
    assert [item.path for item in model] == ["nvda/model/lstm_model.keras"]
    charts = {item.path for item in client.list_artifacts(first.info.run_id, "nvda/charts")}
    assert "nvda/charts/training_history.png" in charts  # the file the catalog saved
    # Artifacts stay inside the project's git-ignored mlruns/.
    assert first.info.artifact_uri.startswith((project / "mlruns").as_uri())


def test_the_champion_alias_follows_a_promotion(tracked):
    client = tracked["client"]
    champion = client.get_model_version_by_alias("ml_lstm.nvda", "champion")
    assert int(champion.version) == 2
    assert champion.tags["ml_lstm_version"] == tracked["champions"][1]["version"]
    first = client.get_model_version("ml_lstm.nvda", "1")
    assert first.tags["ml_lstm_version"] == tracked["champions"][0]["version"]
    assert tracked["champions"][0]["version"] != tracked["champions"][1]["version"]


def test_tuning_trials_are_nested_runs(tracked):
    runs = tracked["runs"]
    tuning = next(run for run in runs if run.data.tags["mlflow.runName"] == "tuning")
    children = [
        run for run in runs if run.data.tags.get("mlflow.parentRunId") == tuning.info.run_id
    ]
    assert sorted(run.data.tags["trial"] for run in children) == ["0", "1"]
    assert all("relative_mae" in run.data.metrics for run in children)
    assert all(run.data.params["lookback"] == "8" for run in children)
    assert "nvda.tuning.best_relative_mae" in tuning.data.metrics


def test_tracking_off_leaves_no_mlflow_files(tracked, tmp_path):
    project = copy_project(tmp_path / "project")
    write_features(project)
    assert (project / "conf/no_tracking/mlflow.yml").is_file()

    run(project, "modelling", env="no_tracking")

    assert (project / "data/06_models/nvda/champion.json").is_file()
    assert mlflow_files(project) == []


def test_untracked_pipelines_create_no_store(tmp_path):
    project = copy_project(tmp_path / "project")
    shutil.rmtree(project / "data/04_feature")
    bootstrap_project(project)
    window = {"ingestion": {"start_date": "2024-01-02", "end_date": "2024-01-05"}}
    with KedroSession.create(project_path=project, runtime_params=window) as session:
        session.run(pipeline_names=["ingestion"])

    assert any((project / "data/01_raw/nvda/minute_bars").glob("*.csv"))
    assert mlflow_files(project) == []


def test_each_kedro_run_of_a_process_is_its_own_finished_mlflow_run(tracked):
    import mlflow

    runs = [run for run in tracked["runs"] if "mlflow.parentRunId" not in run.data.tags]
    assert [run.data.tags["mlflow.runName"] for run in runs] == ["modelling", "modelling", "tuning"]
    assert all(run.info.status == "FINISHED" for run in runs)
    assert len({run.data.tags["ml_lstm_run_id"] for run in runs}) == 3
    # Nothing of a run is left active in the Kedro process for the next run to log into.
    assert mlflow.active_run() is None
    # The tuning run logged no modelling metric, the modelling runs no tuning metric.
    assert not [name for name in runs[2].data.metrics if name.startswith("nvda.lstm.")]
    assert not [name for run in runs[:2] for name in run.data.metrics if ".tuning." in name]


def test_a_parallel_run_holds_what_the_sequential_run_holds(tracked, tmp_path):
    sequential = next(
        run for run in tracked["runs"] if run.data.tags["mlflow.runName"] == "modelling"
    )
    project = copy_project(tmp_path / "project")
    write_features(project)
    (project / "conf/local/parameters.yml").write_text(yaml.safe_dump(RUN))

    # A whole `kedro run` process (ParallelRunner forks it, which a process that has run
    # TensorFlow cannot do safely); its nodes run in other processes, whose hooks see no
    # MLflow run of their own.
    result = subprocess.run(
        [KEDRO, "run", "--runner", "ParallelRunner", "--pipelines", "modelling"],
        cwd=project,
        env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    client = client_of(project)
    (parallel,) = all_runs(client)
    assert contents(parallel, client) == contents(sequential, tracked["client"])
    assert parallel.data.params == sequential.data.params
    assert "ParallelRunner" in parallel.data.tags["runner"]
    champion = client.get_model_version_by_alias("ml_lstm.nvda", "champion")
    record = json.loads((project / "data/06_models/nvda/champion.json").read_text())
    assert champion.tags["ml_lstm_version"] == record["version"]


def test_a_dask_run_holds_what_the_sequential_run_holds(tracked, tmp_path):
    from ml_lstm.runners import DaskRunner
    from ml_lstm.runners.loopback import LoopbackCluster

    sequential = next(
        run for run in tracked["runs"] if run.data.tags["mlflow.runName"] == "modelling"
    )
    project = copy_project(tmp_path / "project")
    write_features(project)

    # Each instrument's nodes run as one task on a worker process of the loopback cluster.
    with LoopbackCluster(tmp_path / "cluster", env={"TF_CPP_MIN_LOG_LEVEL": "2"}) as cluster:
        run(project, "modelling", runner=DaskRunner(address=cluster.address))

    client = client_of(project)
    (dask,) = all_runs(client)
    assert contents(dask, client) == contents(sequential, tracked["client"])
    assert dask.data.params == sequential.data.params
    assert int(client.get_model_version_by_alias("ml_lstm.nvda", "champion").version) == 1


def test_a_store_that_cannot_be_opened_is_a_warning_not_a_failed_run(tmp_path):
    project = copy_project(tmp_path / "project")
    write_features(project)
    (project / "mlruns").write_text("a file where the store's folder should be\n")
    warnings = RecordingHandler()
    logging.getLogger("ml_lstm.tracking").addHandler(warnings)
    try:
        run(project, "modelling")
    finally:
        logging.getLogger("ml_lstm.tracking").removeHandler(warnings)

    assert (project / "data/06_models/nvda/champion.json").is_file()
    assert (project / "data/08_reporting/nvda/metrics.json").is_file()
    messages = [record.getMessage() for record in warnings.records]
    assert [text for text in messages if "not logged: begin" in text and "FileExists" in text]


class RecordingHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
