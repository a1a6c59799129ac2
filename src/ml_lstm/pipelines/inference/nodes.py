"""Inference nodes: predict the close `horizon` bars after the last bar, as one log row."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from ml_lstm.calendars import session_bar_starts, trading_sessions
from ml_lstm.pipelines.modelling.nodes import scale_features

logger = logging.getLogger(__name__)


def predict_next_close(
    model: Any,
    scaler: dict,
    manifest: dict,
    features: pd.DataFrame,
    instrument: dict,
    run_info: dict,
) -> pd.DataFrame:
    """One prediction row from the last `lookback` bars of the feature table."""
    lookback, horizon = manifest["lookback"], manifest["horizon"]
    if len(features) < lookback:
        raise ValueError(
            f"Inference needs the last {lookback} bars, the feature table has {len(features)}."
        )
    recent = features.iloc[-lookback:]
    window = scale_features(recent, scaler)[np.newaxis, :, :]
    raw = float(model.predict(window, verbose=0).reshape(-1)[0])
    value = raw * scaler["target_std"] + scaler["target_mean"]
    last_close = float(recent["close"].iloc[-1])
    predicted = last_close * np.exp(value) if scaler["target"] == "log_return" else value
    as_of = pd.Timestamp(recent["timestamp"].iloc[-1])
    as_of = as_of.tz_localize("UTC") if as_of.tzinfo is None else as_of.tz_convert("UTC")
    target = bar_after(as_of, horizon, instrument["calendar"], manifest["frequency"])
    row = pd.DataFrame(
        [
            {
                "as_of_bar_time": as_of.isoformat(),
                "target_bar_time": target.isoformat(),
                "predicted_close": round(float(predicted), 6),
                "last_close": last_close,
                "direction": "up"
                if predicted > last_close
                else "down"
                if predicted < last_close
                else "flat",
                "model_version": manifest["version"],
                "run_id": run_info["run_id"],
            }
        ]
    )
    logger.info(
        "%s: close of the bar starting %s predicted at %.4f (last close %.4f, model %s)",
        instrument["symbol"],
        target,
        predicted,
        last_close,
        manifest["version"],
    )
    return row


def bar_after(bar_start: pd.Timestamp, steps: int, calendar: str, frequency: str) -> pd.Timestamp:
    """Start (UTC) of the bar `steps` bars after `bar_start`, following the calendar's sessions."""
    sessions = trading_sessions(
        calendar, bar_start - pd.Timedelta(days=1), bar_start + pd.Timedelta(days=30)
    )
    starts = session_bar_starts(sessions, frequency)["bar_start"]
    later = starts[starts > bar_start]
    if len(later) < steps:
        raise ValueError(f"The {calendar} calendar has no session {steps} bars after {bar_start}.")
    return pd.Timestamp(later.iloc[steps - 1])
