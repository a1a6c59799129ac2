"""A small feature table with real signal, and tiny tuning settings (seconds per trial)."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd

MODELLING: dict[str, Any] = {
    "seed": 7,
    "split": {"train": 0.7, "validation": 0.15, "test": 0.15},
    "features": ["log_return"],
    "target": "log_return",
    "lookback": 8,
    "horizon": 1,
    "model": {
        "lstm_units": [4],
        "dropout": 0.0,
        "dense_units": 0,
        "optimizer": "adam",
        "learning_rate": 0.01,
        "loss": "mse",
        "stateful": False,
    },
    "training": {"epochs": 1, "batch_size": 64, "patience": 1, "reduce_lr_patience": 1},
    "baselines": {"sma_window": 5},
}

TUNING: dict[str, Any] = {
    "study_name": "test",
    "n_trials": 3,
    "n_jobs": 1,
    "timeout_s": None,
    "seed": 3,
    "n_startup_trials": 10,
    "folds": 2,
    "fold_split": {"train": 0.6, "validation": 0.2, "test": 0.2},
    "fold_train_bars": None,
    "epochs": 1,
    "patience": 1,
    "pruner": {"type": "none"},
    "space": {
        "lookback": [4, 8],
        "lstm_layers": [1],
        "lstm_units": [4],
        "dropout": {"low": 0.0, "high": 0.2},
        "learning_rate": {"low": 1.0e-3, "high": 1.0e-2},
        "batch_size": [64],
        "target": ["log_return", "price", "direction"],
        "features": {"always": ["log_return"], "optional": ["signal", "sma_5"]},
    },
}

FEATURE_LIST = {"features": ["log_return", "signal", "sma_5"], "settings": {}}


def tuning(**changes: Any) -> dict[str, Any]:
    """TUNING with top-level keys replaced."""
    return {**copy.deepcopy(TUNING), **changes}


def features(n: int = 700, seed: int = 0) -> pd.DataFrame:
    """Hourly bars whose next log return is 0.003 * `signal` (known at the bar) plus noise."""
    rng = np.random.default_rng(seed)
    signal = rng.standard_normal(n)
    step = 0.003 * signal[:-1] + 0.0005 * rng.standard_normal(n - 1)
    close = 100 * np.exp(np.concatenate([[0.0], np.cumsum(step)]))
    timestamps = pd.date_range("2024-01-02 14:30", periods=n, freq="h", tz="UTC")
    table = pd.DataFrame(
        {
            "timestamp": timestamps,
            "close": close,
            "volume": 1000.0,
            "log_return": np.concatenate([[0.0], np.diff(np.log(close))]),
            "signal": signal,
        }
    )
    table["sma_5"] = table["close"].rolling(5, min_periods=1).mean()
    return table


def storage(tmp_path) -> dict[str, str]:
    """The handle OptunaStudyDataset gives the nodes, for a database under `tmp_path`."""
    from ml_lstm.pipelines.tuning.datasets import OptunaStudyDataset

    return OptunaStudyDataset(str(tmp_path / "tuning.db")).load()
