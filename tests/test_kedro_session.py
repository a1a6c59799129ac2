"""`kedro run` as users run it: a KedroSession over a throw-away copy of the project."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from support import PROJECT_ROOT, SMALL_RUN, merge

pytestmark = pytest.mark.slow


def run_project(project: Path, runtime_params: dict | None = None, **run_args) -> None:
    bootstrap_project(project)
    params = merge(SMALL_RUN, runtime_params or {})
    with KedroSession.create(project_path=project, runtime_params=params) as session:
        session.run(**run_args)


def repository_data_files() -> set[Path]:
    return {path for path in (PROJECT_ROOT / "data").rglob("*") if path.is_file()}


def test_default_run_twice_leaves_model_metrics_and_one_prediction_per_run(project_copy):
    before = repository_data_files()

    run_project(project_copy)
    run_project(project_copy)

    data = project_copy / "data"
    models = sorted((data / "06_models/nvda/lstm_model.keras").iterdir())
    assert len(models) == 2 and all((m / "lstm_model.keras").stat().st_size > 0 for m in models)
    scalers = sorted((data / "06_models/nvda/scaler.json").iterdir())
    assert [s.name for s in scalers] == [m.name for m in models]
    metrics = json.loads((data / "08_reporting/nvda/metrics.json").read_text())
    assert {"lstm", "persistence"} <= set(metrics)
    assert set(metrics["lstm"]) >= {"mae", "rmse", "mase", "directional_accuracy"}
    predictions = pd.read_csv(data / "07_model_output/nvda/predictions.csv")
    assert len(predictions) == 2
    # The seeded second run scores exactly as the first, so it is registered but not
    # promoted: both predictions come from the first version, the champion.
    champion = json.loads((data / "06_models/nvda/champion.json").read_text())
    assert champion["version"] == models[0].name
    assert list(predictions["model_version"]) == [models[0].name] * 2
    assert predictions["run_id"].nunique() == 2
    assert (data / "03_primary/nvda/hourly_bars.csv").is_file()
    assert repository_data_files() == before


def test_one_namespace_runs_alone(project_copy):
    # Two instruments enabled: only the requested one runs.
    both = {"instruments": {"xagusd": {"enabled": True}}}
    run_project(project_copy, both, pipeline_names=["ingestion"], namespaces=["nvda"])

    data = project_copy / "data"
    assert any((data / "01_raw/nvda/minute_bars").glob("*.csv"))
    assert not (data / "01_raw/xagusd").exists() or not any((data / "01_raw/xagusd").iterdir())


def test_an_instrument_enabled_at_run_time_gets_its_own_namespaced_datasets(project_copy):
    bootstrap_project(project_copy)
    runtime_params = {
        "instruments": {"xagusd": {"enabled": True}},
        "ingestion": {"start_date": "2024-01-02", "end_date": "2024-01-31"},
    }
    with KedroSession.create(project_path=project_copy, runtime_params=runtime_params) as session:
        session.run(pipeline_names=["ingestion", "data_processing"])

    for instrument in ("nvda", "xagusd"):
        hourly = pd.read_csv(project_copy / f"data/03_primary/{instrument}/hourly_bars.csv")
        assert len(hourly) > 0
    silver = pd.read_csv(project_copy / "data/03_primary/xagusd/hourly_bars.csv")
    # METALS-NY: 18:00-17:00 New York time, 23 hourly bars a session.
    assert silver.groupby("session").size().max() == 23
