"""Data processing nodes: clean minute bars, resample within sessions, add features."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd

from ml_lstm.calendars import session_of, trading_sessions

logger = logging.getLogger(__name__)

PRICE_COLUMNS = ["open", "high", "low", "close"]


def combine_minute_bars(partitions: dict[str, Callable[[], pd.DataFrame]]) -> pd.DataFrame:
    """All stored sessions as one frame with a tz-aware UTC `timestamp` column."""
    if not partitions:
        raise ValueError(
            "No raw minute bars are stored for this instrument: run the ingestion pipeline "
            "first (kedro run --pipelines ingestion)."
        )
    frames = [partitions[key]() for key in sorted(partitions)]
    bars = pd.concat(frames, ignore_index=True)
    bars["timestamp"] = pd.to_datetime(bars["timestamp"], utc=True, format="ISO8601")
    return bars


def clean_minute_bars(bars: pd.DataFrame) -> pd.DataFrame:
    """Sorted by time with duplicate timestamps removed (the last one wins)."""
    cleaned = bars.sort_values("timestamp", kind="stable").drop_duplicates("timestamp", keep="last")
    dropped = len(bars) - len(cleaned)
    if dropped:
        logger.info("Dropped %d duplicate minute bars (kept the last of each)", dropped)
    return cleaned.reset_index(drop=True)


def resample_to_session_bars(
    bars: pd.DataFrame, instrument: dict, data_processing: dict
) -> pd.DataFrame:
    """OHLCV bars of `frequency` aligned to each session's open, never spanning sessions."""
    step = pd.Timedelta(data_processing["frequency"])
    first, last = bars["timestamp"].iloc[[0, -1]]
    sessions = trading_sessions(
        instrument["calendar"], first - pd.Timedelta(days=1), last + pd.Timedelta(days=1)
    )
    position = session_of(bars["timestamp"], sessions)
    outside = position < 0
    if outside.any():
        logger.info("Ignored %d minute bars outside the calendar's sessions", int(outside.sum()))
    inside = bars.loc[~outside]
    position = position[~outside]
    step_ns = step.value
    opens = _utc_nanoseconds(sessions["open"])[position]
    closes = _utc_nanoseconds(sessions["close"])[position]
    minute_ns = _utc_nanoseconds(inside["timestamp"])
    bar_start = opens + (minute_ns - opens) // step_ns * step_ns
    grouped = inside.assign(
        bar_start=pd.to_datetime(bar_start, utc=True),
        bar_end=pd.to_datetime(np.minimum(bar_start + step_ns, closes), utc=True),
        session=sessions.index.to_numpy()[position],
    ).groupby("bar_start", sort=True)
    hourly = grouped.agg(
        bar_end=("bar_end", "first"),
        session=("session", "first"),
        open=("open", "first"),
        high=("high", "max"),
        low=("low", "min"),
        close=("close", "last"),
        volume=("volume", "sum"),
        minutes=("close", "size"),
    ).reset_index()
    hourly["session"] = pd.to_datetime(hourly["session"]).dt.strftime("%Y-%m-%d")
    return hourly.rename(columns={"bar_start": "timestamp"})


def _utc_nanoseconds(timestamps: pd.Series) -> np.ndarray:
    return (
        timestamps.dt.tz_convert("UTC")
        .dt.tz_localize(None)
        .to_numpy("datetime64[ns]")
        .view("int64")
    )


def add_features(hourly_bars: pd.DataFrame, data_processing: dict) -> pd.DataFrame:
    """Log return, simple moving averages and Wilder's RSI, each from past rows only.

    The first rows, where the longest window is not yet full, are dropped.
    """
    settings = data_processing["features"]
    features = hourly_bars.copy()
    features["timestamp"] = pd.to_datetime(features["timestamp"], utc=True, format="ISO8601")
    close = features["close"]
    features["log_return"] = np.log(close / close.shift(1))
    for window in settings["sma_windows"]:
        features[f"sma_{window}"] = close.rolling(window).mean()
    rsi_window = settings["rsi_window"]
    features[f"rsi_{rsi_window}"] = wilder_rsi(close, rsi_window)
    warm_up = max([*settings["sma_windows"], rsi_window + 1])
    return features.iloc[warm_up:].reset_index(drop=True)


def wilder_rsi(close: pd.Series, window: int) -> pd.Series:
    """Wilder's RSI: smoothed gains over smoothed losses, on a 0-100 scale."""
    change = close.diff()
    gain = change.clip(lower=0).ewm(alpha=1 / window, adjust=False, min_periods=window).mean()
    loss = (-change.clip(upper=0)).ewm(alpha=1 / window, adjust=False, min_periods=window).mean()
    relative = gain / loss.replace(0.0, np.nan)
    rsi = 100 - 100 / (1 + relative)
    return rsi.where(loss > 0, 100.0).where(gain.notna())
