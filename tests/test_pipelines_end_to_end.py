"""All four pipelines together on a small generated dataset, run by Kedro's own runner.

The catalog is the project's own (conf/base) inside a temporary project copy. Tables, JSON
reports and charts are swapped for in-memory datasets; what is a folder or a registry by
nature (raw session partitions, versioned models, the champion, the append-only log) stays
on disk in the copy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from kedro.config import OmegaConfigLoader
from kedro.io import AbstractVersionedDataset, DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from kedro_datasets.json import JSONDataset
from kedro_datasets.matplotlib import MatplotlibDataset
from kedro_datasets.pandas import CSVDataset

from ml_lstm.datasets import AtomicCSVDataset
from ml_lstm.instruments import set_active_instruments
from ml_lstm.pipeline_registry import register_pipelines

pytestmark = pytest.mark.slow

IN_MEMORY_TYPES = (AtomicCSVDataset, CSVDataset, JSONDataset, MatplotlibDataset)
RUN_ID = "2024-03-28T20.05.00.000Z"  # a Kedro save version: names every versioned artefact


class KeptMemoryDataset(MemoryDataset):
    """A MemoryDataset the runner cannot release, so the test can inspect it afterwards."""

    def _release(self) -> None:
        pass


def project_catalog(project: Path, pipeline, parameters: dict) -> DataCatalog:
    loader = OmegaConfigLoader(
        conf_source=str(project / "conf"), base_env="base", default_run_env="base"
    )
    catalog = DataCatalog.from_config(loader["catalog"], save_version=RUN_ID)
    for name in pipeline.datasets():
        if name.startswith("params:") or name == "run_info":
            continue
        dataset = catalog.get(name)
        is_table = isinstance(dataset, IN_MEMORY_TYPES)
        if dataset is None or (is_table and not isinstance(dataset, AbstractVersionedDataset)):
            catalog[name] = KeptMemoryDataset()
    catalog["run_info"] = {
        "run_id": RUN_ID,
        "git_commit": None,
        "started_at": "2024-03-28T20:05:00+00:00",
    }
    for name, value in parameters.items():
        catalog[f"params:{name}"] = value
    for name, value in parameters["instruments"].items():
        catalog[f"params:instruments.{name}"] = value
    return catalog


def test_default_pipeline_runs_in_memory(project_copy, small_parameters, monkeypatch):
    monkeypatch.chdir(project_copy)  # the catalog's relative paths land in the copy
    set_active_instruments(small_parameters["instruments"])
    pipeline = register_pipelines()["__default__"]
    catalog = project_catalog(project_copy, pipeline, small_parameters)

    SequentialRunner().run(pipeline, catalog)

    raw = project_copy / "data/01_raw/nvda/minute_bars"
    sessions = sorted(path.stem for path in raw.glob("*.csv"))
    assert sessions[0] == "2024-01-02" and sessions[-1] == "2024-03-28"
    assert "2024-01-15" not in sessions  # Martin Luther King Jr. Day: NYSE closed
    assert len(sessions) == 61
    hourly = catalog.load("nvda.hourly_bars")
    assert hourly.groupby("session").size().max() == 7  # 09:30..16:00 ET in hourly bars
    metrics = catalog.load("nvda.metrics")
    assert {"lstm", "persistence"} <= set(metrics)
    for name in ("lstm", "persistence"):
        assert metrics[name]["mae"] > 0 and metrics[name]["rmse"] >= metrics[name]["mae"]
    assert json.loads(json.dumps(metrics)) == metrics  # plain JSON, no numpy types
    versions = os.listdir(project_copy / "data/06_models/nvda/lstm_model.keras")
    assert versions == [RUN_ID]
    log = pd.read_csv(project_copy / "data/07_model_output/nvda/predictions.csv")
    assert len(log) == 1
    row = log.iloc[0]
    assert row["model_version"] == RUN_ID
    # Last bar 15:30-16:00 ET on Thu 2024-03-28; Good Friday is an NYSE holiday, so the next
    # bar opens Monday 09:30 ET, which is 13:30 UTC after the DST change.
    assert pd.Timestamp(row["as_of_bar_time"]) == pd.Timestamp("2024-03-28T19:30:00Z")
    assert pd.Timestamp(row["target_bar_time"]) == pd.Timestamp("2024-04-01T13:30:00Z")
