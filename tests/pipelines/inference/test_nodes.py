"""Inference nodes: the next bar follows the exchange calendar; predictions are denormalised."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ml_lstm.pipelines.inference.nodes import bar_after, predict_next_close

XNYS = {"symbol": "NVDA", "calendar": "XNYS"}


@pytest.mark.parametrize(
    ("bar_start", "steps", "expected"),
    [
        # Inside a session: the next hour.
        ("2024-03-27T14:30:00Z", 1, "2024-03-27T15:30:00Z"),
        # Friday's last bar -> Monday's first (weekend skipped).
        ("2024-03-22T19:30:00Z", 1, "2024-03-25T13:30:00Z"),
        # Thursday before Good Friday -> Monday.
        ("2024-03-28T19:30:00Z", 1, "2024-04-01T13:30:00Z"),
        # Early close on the day after Thanksgiving (13:00 ET): 12:30 bar is the last one.
        ("2024-11-29T17:30:00Z", 1, "2024-12-02T14:30:00Z"),
        # Three bars ahead across the close.
        ("2024-12-02T19:30:00Z", 3, "2024-12-03T15:30:00Z"),
    ],
)
def test_bar_after_follows_the_calendar(bar_start, steps, expected):
    result = bar_after(pd.Timestamp(bar_start), steps, "XNYS", "60min")
    assert result == pd.Timestamp(expected)


def constant_model(lookback: int, n_features: int, output: float):
    """A real Keras model whose output is `output` whatever the window."""
    import keras

    inputs = keras.Input(shape=(lookback, n_features))
    flat = keras.layers.Flatten()(inputs)
    dense = keras.layers.Dense(
        1, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(output)
    )
    return keras.Model(inputs, dense(flat))


def feature_table(rows: int) -> pd.DataFrame:
    starts = pd.date_range("2024-12-02T14:30:00Z", periods=rows, freq="60min")
    close = np.linspace(100.0, 101.0, rows)
    return pd.DataFrame({"timestamp": starts, "close": close, "log_return": 0.001})


def test_prediction_is_denormalised_and_logged_with_its_model():
    scaler = {
        "features": ["close", "log_return"],
        "mean": [100.0, 0.0],
        "std": [1.0, 0.01],
        "target": "log_return",
        "target_mean": 0.001,
        "target_std": 0.002,
    }
    manifest = {"version": "v1", "lookback": 4, "horizon": 1, "frequency": "60min"}
    features = feature_table(5)
    model = constant_model(4, 2, output=0.5)

    row = predict_next_close(model, scaler, manifest, features, XNYS, {"run_id": "r1"})

    expected = 101.0 * math.exp(0.5 * 0.002 + 0.001)
    assert len(row) == 1
    assert row.loc[0, "predicted_close"] == pytest.approx(expected, rel=1e-6)
    assert row.loc[0, "last_close"] == 101.0
    assert row.loc[0, "direction"] == "up"
    assert row.loc[0, ["model_version", "run_id"]].tolist() == ["v1", "r1"]
    assert row.loc[0, "as_of_bar_time"] == "2024-12-02T18:30:00+00:00"
    assert row.loc[0, "target_bar_time"] == "2024-12-02T19:30:00+00:00"


def test_too_few_bars_is_a_clear_error():
    scaler = {
        "features": ["close"],
        "mean": [0.0],
        "std": [1.0],
        "target": "log_return",
        "target_mean": 0.0,
        "target_std": 1.0,
    }
    manifest = {"version": "v1", "lookback": 10, "horizon": 1, "frequency": "60min"}
    with pytest.raises(ValueError, match="needs the last 10 bars, the feature table has 3"):
        predict_next_close(
            constant_model(10, 1, 0.0), scaler, manifest, feature_table(3), XNYS, {"run_id": "r"}
        )
