"""Session-aligned OHLCV bars from minute bars, with numpy segment reductions.

Bars are aligned to each session's open and cut at its close, so no bar spans two sessions
and the last bar of an early-close session is shorter. A bar without any minute (a long
gap) has no row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml_lstm.calendars import align_to_session_open, bar_step_ns, utc_nanoseconds

BAR_COLUMNS = [
    "timestamp",
    "bar_end",
    "session",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "minutes",
    "filled_share",
]


def resample_minutes(
    bars: pd.DataFrame, session: np.ndarray, sessions: pd.DataFrame, frequency: str
) -> pd.DataFrame:
    """Bars of `frequency` from time-sorted minute bars located in `sessions`."""
    step_ns = bar_step_ns(frequency)
    opens = utc_nanoseconds(sessions["open"])[session]
    closes = utc_nanoseconds(sessions["close"])[session]
    bar_start = align_to_session_open(utc_nanoseconds(bars["timestamp"]), opens, step_ns)
    if len(bar_start) == 0:
        return pd.DataFrame(columns=BAR_COLUMNS)
    if (np.diff(bar_start) < 0).any():
        raise ValueError("Minute bars must be sorted by time before resampling.")
    first = np.flatnonzero(np.diff(bar_start, prepend=bar_start[0] - 1))
    last = np.append(first[1:], len(bar_start)) - 1
    minutes = last - first + 1
    filled = bars["filled"].to_numpy() if "filled" in bars.columns else np.zeros(len(bars), bool)
    labels = pd.DatetimeIndex(sessions.index).strftime("%Y-%m-%d").to_numpy()
    volume = np.add.reduceat(bars["volume"].to_numpy(dtype="float64"), first)
    if np.array_equal(volume, np.round(volume)):
        volume = volume.astype("int64")
    bar_end = np.minimum(bar_start[first] + step_ns, closes[first])
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime(bar_start[first], utc=True),
            "bar_end": pd.to_datetime(bar_end, utc=True),
            "session": labels[session[first]],
            "open": bars["open"].to_numpy()[first],
            "high": np.maximum.reduceat(bars["high"].to_numpy(), first),
            "low": np.minimum.reduceat(bars["low"].to_numpy(), first),
            "close": bars["close"].to_numpy()[last],
            "volume": volume,
            "minutes": minutes,
            "filled_share": np.add.reduceat(filled.astype(np.int64), first) / minutes,
        }
    )
