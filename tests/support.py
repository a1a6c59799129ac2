"""Constants and helpers shared by the tests (importable as `support`)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from ml_lstm.instruments import deep_merge as merge  # noqa: F401  (tests import it from here)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"

requires_shared_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason="../shared/data is absent (real market data for development)"
)

# Kedro's data-engineering layers, in the order kedro-viz draws them.
LAYERS = [
    "raw",
    "intermediate",
    "primary",
    "feature",
    "model_input",
    "models",
    "model_output",
    "reporting",
]

# A short backfill and a tiny model: the whole default pipeline in a few seconds.
SMALL_RUN: dict[str, Any] = {
    "ingestion": {"start_date": "2024-01-02", "end_date": "2024-03-28"},
    "modelling": {
        "lookback": 8,
        "model": {"lstm_units": [8], "dense_units": 4},
        "training": {"epochs": 2, "batch_size": 32, "patience": 1},
    },
}


def copy_project(target: Path) -> Path:
    """A throw-away copy of the project at `target` (conf and empty data folders), so runs
    never touch the repository's own data/."""
    target.mkdir(parents=True)
    shutil.copy2(PROJECT_ROOT / "pyproject.toml", target / "pyproject.toml")
    shutil.copytree(PROJECT_ROOT / "conf", target / "conf", ignore=shutil.ignore_patterns("local"))
    (target / "conf" / "local").mkdir()
    # Kedro requires <project>/src to exist; the package itself is the installed one.
    (target / "src").mkdir()
    for layer in sorted((PROJECT_ROOT / "data").iterdir()):
        if layer.is_dir():
            (target / "data" / layer.name).mkdir(parents=True)
    return target
