"""Small synthetic feature tables and tiny modelling parameters for the modelling tests."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd

# Tiny model, few epochs: each training takes about a second on a CPU.
TINY: dict[str, Any] = {
    "seed": 7,
    "split": {"train": 0.7, "validation": 0.15, "test": 0.15},
    "features": ["signal", "log_return"],
    "target": "log_return",
    "lookback": 4,
    "horizon": 1,
    "model": {
        "lstm_units": [8],
        "dropout": 0.0,
        "dense_units": 0,
        "optimizer": "adam",
        "learning_rate": 0.01,
        "loss": "mse",
        "stateful": False,
    },
    "training": {"epochs": 3, "batch_size": 32, "patience": 3, "reduce_lr_patience": 2},
    "baselines": {"sma_window": 5},
    "promotion": "auto",
    "walk_forward": {"folds": 0, "epochs": 1},
    "retraining": {"window_bars": 500, "epochs": 1, "learning_rate": 1e-3},
}


def tiny(**changes: Any) -> dict[str, Any]:
    """TINY with top-level keys replaced (nested dicts merged one level deep)."""
    params = copy.deepcopy(TINY)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(params.get(key), dict):
            params[key] = {**params[key], **value}
        else:
            params[key] = value
    return params


def synthetic_features(n: int = 900, seed: int = 0, shuffle_returns: bool = False) -> pd.DataFrame:
    """Hourly bars whose next log return is 0.003 * `signal` (known at the bar) plus noise.

    With `shuffle_returns` the returns are permuted in time, so `signal` says nothing
    about the next return: a model trained on it must show no skill.
    """
    rng = np.random.default_rng(seed)
    signal = rng.standard_normal(n)
    step = 0.003 * signal[:-1] + 0.0005 * rng.standard_normal(n - 1)
    if shuffle_returns:
        step = rng.permutation(step)
    close = 100 * np.exp(np.concatenate([[0.0], np.cumsum(step)]))
    timestamps = pd.date_range("2024-01-02 14:30", periods=n, freq="h", tz="UTC")
    log_return = np.concatenate([[0.0], np.diff(np.log(close))])
    return pd.DataFrame(
        {
            "timestamp": timestamps,
            "bar_end": timestamps + pd.Timedelta(hours=1),
            "session": timestamps.strftime("%Y-%m-%d"),
            "open": close,
            "high": close,
            "low": close,
            "close": close,
            "volume": 1000.0,
            "minutes": 60,
            "log_return": log_return,
            "signal": signal,
        }
    )


def train_and_evaluate(features: pd.DataFrame, modelling: dict) -> dict[str, Any]:
    """The modelling nodes in pipeline order, as Kedro would run them."""
    from ml_lstm.pipelines.modelling import nodes

    table = nodes.split_by_time(features, modelling)
    scaler = nodes.fit_scaler(table, modelling)
    model, history = nodes.train_lstm(table, scaler, modelling)
    forecasts = nodes.forecast_test_split(model, table, scaler, modelling)
    metrics = nodes.evaluate_forecasts(forecasts, table, modelling)
    return {
        "table": table,
        "scaler": scaler,
        "model": model,
        "history": history,
        "forecasts": forecasts,
        "metrics": metrics,
    }
