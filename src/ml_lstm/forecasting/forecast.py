"""Forecasting with a trained model: a range of rows (with every baseline) or the next bar.

The model arrives loaded; nothing here imports TensorFlow.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .baselines import (
    drift_forecast,
    fit_linear,
    mean_log_return,
    persistence_forecast,
    predict_linear,
    sma_forecast,
)
from .scaling import scale_features, scaled_labels, unscale_target
from .targets import direction_of, target_values, to_price
from .windows import split_windows, window_ends


def predict_target(
    model: Any, table: pd.DataFrame, scaler: dict, lookback: int, horizon: int, split: str
) -> tuple[np.ndarray, np.ndarray]:
    """The model's forecasts in target units (log return, price or P(up)) and their rows."""
    scaled = scale_features(table, scaler)
    labels = target_values(table, scaler["target"], horizon)
    windows, _, rows = split_windows(table, scaled, labels, split, lookback)
    raw = np.asarray(model.predict(windows, verbose=0, batch_size=1024), dtype="float64")
    return unscale_target(raw.reshape(-1), scaler), rows


def linear_forecast(
    table: pd.DataFrame, scaler: dict, lookback: int, horizon: int, rows: np.ndarray
) -> np.ndarray:
    """The linear baseline at `rows`, in target units, fitted on the training windows."""
    scaled = scale_features(table, scaler)
    labels = scaled_labels(table, scaler, horizon)
    train_rows = window_ends(table, labels, "train", lookback)
    coefficients = fit_linear(scaled[train_rows], labels[train_rows])
    linear = predict_linear(coefficients, scaled[rows]) * scaler["target_std"]
    return linear + scaler["target_mean"]


def forecast_rows(
    model: Any,
    table: pd.DataFrame,
    scaler: dict,
    *,
    lookback: int,
    horizon: int,
    sma_window: int,
    split: str = "test",
) -> pd.DataFrame:
    """Per row of `split`: last and actual close, and the close forecast by the model and by
    each baseline (persistence, drift, sma, linear), all on the same rows.

    `table` carries a `split` column; baselines that learn (drift, linear) learn from its
    `train` rows. For the direction target, `lstm_up_probability` and
    `linear_up_probability` hold P(up) and the price columns of those two are NaN.
    """
    target = scaler["target"]
    lstm_values, rows = predict_target(model, table, scaler, lookback, horizon, split)
    close = table["close"].to_numpy(dtype="float64")
    last_close = close[rows]
    is_train = (table["split"] == "train").to_numpy()
    forecasts = pd.DataFrame(
        {
            "timestamp": table["timestamp"].to_numpy()[rows],
            "last_close": last_close,
            "actual_close": close[rows + horizon],
            "lstm": to_price(lstm_values, target, last_close),
            "persistence": persistence_forecast(close, rows),
            "drift": drift_forecast(close, rows, horizon, mean_log_return(close[is_train])),
            "sma": sma_forecast(close, rows, sma_window),
        }
    )
    linear = linear_forecast(table, scaler, lookback, horizon, rows)
    forecasts["linear"] = to_price(linear, target, last_close)
    if target == "direction":
        forecasts["lstm_up_probability"] = lstm_values
        forecasts["linear_up_probability"] = np.clip(linear, 0.0, 1.0)
    return forecasts


def predict_next(model: Any, recent: pd.DataFrame, scaler: dict) -> dict[str, Any]:
    """The forecast from the last `lookback` rows (`recent`): value, close and direction.

    One batch through the compiled predict step: `model.predict` sets up a data pipeline per
    call and an eager `model(window)` runs the LSTM step by step (both ~50x slower).
    """
    window = scale_features(recent, scaler)[np.newaxis, :, :]
    raw = float(np.asarray(model.predict_on_batch(window)).reshape(-1)[0])
    value = float(unscale_target(np.array([raw]), scaler)[0])
    last_close = float(recent["close"].iloc[-1])
    target = scaler["target"]
    predicted = float(to_price(np.array([value]), target, np.array([last_close]))[0])
    return {
        "value": value,
        "predicted_close": predicted,
        "last_close": last_close,
        "direction": direction_of(value, predicted, last_close, target),
    }
