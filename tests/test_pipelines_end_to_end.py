"""All four pipelines together on a small generated dataset, run by Kedro's own runner."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from kedro_datasets.json import JSONDataset
from kedro_datasets.pandas import CSVDataset

from ml_lstm.datasets import AppendOnlyCSVDataset, SessionPartitionsDataset
from ml_lstm.instruments import set_active_instruments
from ml_lstm.pipeline_registry import register_pipelines

pytestmark = pytest.mark.slow


def make_catalog(tmp_path, parameters) -> DataCatalog:
    """Raw partitions, the prediction log and the datasets the test inspects on disk;
    everything else in memory."""
    raw = tmp_path / "raw"
    datasets = {
        "nvda.raw_minute_bars": SessionPartitionsDataset(path=str(raw)),
        "nvda.stored_minute_bars": SessionPartitionsDataset(path=str(raw)),
        "nvda.predictions": AppendOnlyCSVDataset(filepath=str(tmp_path / "predictions.csv")),
        "nvda.hourly_bars": CSVDataset(filepath=str(tmp_path / "hourly_bars.csv")),
        "nvda.metrics": JSONDataset(filepath=str(tmp_path / "metrics.json")),
        "nvda.model_manifest": JSONDataset(filepath=str(tmp_path / "manifest.json")),
        "run_info": MemoryDataset({"run_id": "test-run", "git_commit": None}),
    }
    catalog = DataCatalog(datasets=datasets)
    for name, value in parameters.items():
        catalog[f"params:{name}"] = value
    for name, value in parameters["instruments"].items():
        catalog[f"params:instruments.{name}"] = value
    return catalog


def test_default_pipeline_runs_in_memory(tmp_path, small_parameters):
    set_active_instruments(small_parameters["instruments"])
    pipeline = register_pipelines()["__default__"]
    catalog = make_catalog(tmp_path, small_parameters)

    SequentialRunner().run(pipeline, catalog)

    sessions = sorted(path.stem for path in (tmp_path / "raw").glob("*.csv"))
    assert sessions[0] == "2024-01-02" and sessions[-1] == "2024-03-28"
    assert "2024-01-15" not in sessions  # Martin Luther King Jr. Day: NYSE closed
    hourly = catalog.load("nvda.hourly_bars")
    assert hourly.groupby("session").size().max() == 7  # 09:30..16:00 ET in hourly bars
    metrics = catalog.load("nvda.metrics")
    assert {"lstm", "persistence"} <= set(metrics)
    for name in ("lstm", "persistence"):
        assert metrics[name]["mae"] > 0 and metrics[name]["rmse"] >= metrics[name]["mae"]
    manifest = catalog.load("nvda.model_manifest")
    assert manifest["version"] == "test-run"
    log = pd.read_csv(tmp_path / "predictions.csv")
    assert len(log) == 1
    row = log.iloc[0]
    assert row["model_version"] == "test-run"
    # Last bar 15:30-16:00 ET on Thu 2024-03-28; Good Friday is an NYSE holiday, so the next
    # bar opens Monday 09:30 ET, which is 13:30 UTC after the DST change.
    assert pd.Timestamp(row["as_of_bar_time"]) == pd.Timestamp("2024-03-28T19:30:00Z")
    assert pd.Timestamp(row["target_bar_time"]) == pd.Timestamp("2024-04-01T13:30:00Z")
    assert json.loads(json.dumps(metrics)) == metrics  # plain JSON, no numpy types
