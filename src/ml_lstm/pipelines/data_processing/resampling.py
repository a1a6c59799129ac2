"""Session-aligned OHLCV bars from minute bars, with numpy segment reductions.

Bars are aligned to each session's open and cut at its close, so no bar spans two sessions
and the last bar of an early-close session is shorter. A bar without any minute (a long
gap) has no row.

Prices and volume come from real prints only: a minute filled from the last close (see
gaps.py) counts in `minutes` and `filled_share` but never sets a bar's open, high, low or
close, since that price did not trade in the bar. A bar holding filled minutes only
(`filled_share` 1.0, e.g. a five-minute gap in 5min bars) has no real print at all: it is
flat at the last close before it, with volume 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ml_lstm.calendars import (
    align_to_session_open,
    bar_step_ns,
    from_utc_nanoseconds,
    utc_nanoseconds,
)

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
BAR_INDEX = pd.Index(BAR_COLUMNS)


@dataclass
class SessionBars:
    """The bars' columns (BAR_COLUMNS, before any is left out), with their starts and ends
    in UTC nanoseconds and the position of their minutes' session."""

    columns: dict[str, Any]
    start_ns: np.ndarray
    end_ns: np.ndarray
    session: np.ndarray

    def frame(self, rows: np.ndarray | None = None) -> pd.DataFrame:
        """The bars as a table; only `rows` (a mask) when given."""
        if rows is None:
            bars = pd.DataFrame(self.columns)
        else:
            bars = pd.DataFrame({name: values[rows] for name, values in self.columns.items()})
        # The same labels as one shared index (immutable but for its name, which nothing
        # sets), whose lookup table is built once, not at each new frame's first lookup.
        bars.columns = BAR_INDEX
        return bars


def resample_minutes(
    bars: pd.DataFrame,
    timestamp_ns: np.ndarray,
    session: np.ndarray,
    sessions: pd.DataFrame,
    frequency: str,
) -> SessionBars | None:
    """Bars of `frequency` from time-sorted minute bars (at `timestamp_ns`) located in
    `sessions`; None when there is no minute."""
    step_ns = bar_step_ns(frequency)
    # Whole-column temporaries are kept few: on ten years of minutes each one is 8 MB.
    bar_start = align_to_session_open(
        timestamp_ns, utc_nanoseconds(sessions["open"])[session], step_ns
    )
    if len(bar_start) == 0:
        return None
    if (bar_start[1:] < bar_start[:-1]).any():
        raise ValueError("Minute bars must be sorted by time before resampling.")
    first = np.concatenate([[0], np.flatnonzero(bar_start[1:] != bar_start[:-1]) + 1])
    closes = utc_nanoseconds(sessions["close"])[session[first]]
    last = np.append(first[1:], len(bar_start)) - 1
    minutes = last - first + 1
    filled = bars["filled"].to_numpy() if "filled" in bars.columns else np.zeros(len(bars), bool)
    prices = real_print_prices(bars, filled, first, last)
    volume = np.add.reduceat(bars["volume"].to_numpy(dtype="float64"), first)
    if np.array_equal(volume, np.round(volume)):
        volume = volume.astype("int64")
    start_ns = bar_start[first]
    end_ns = np.minimum(start_ns + step_ns, closes)
    # DatetimeArrays, not indexes: the frame takes them as they are.
    columns = {
        "timestamp": from_utc_nanoseconds(start_ns).array,
        "bar_end": from_utc_nanoseconds(end_ns).array,
        "session": session_labels(sessions.index, session[first]),
        **prices,
        "volume": volume,
        "minutes": minutes,
        "filled_share": np.add.reduceat(filled.astype(np.int64), first) / minutes,
    }
    return SessionBars(columns, start_ns, end_ns, session[first])


def session_labels(index: pd.Index, positions: np.ndarray) -> np.ndarray:
    """The labels (YYYY-MM-DD text) of the sessions at `positions` of a sessions index."""
    index = pd.DatetimeIndex(index)
    if index.tz is None:
        # The date of a naive label as numpy writes it (the same text as strftime's, which
        # costs more than a short session's resampling).
        days = index.to_numpy().astype("datetime64[D]")
        return days.astype(str).astype(object)[positions]
    return index.strftime("%Y-%m-%d").to_numpy()[positions]


def real_print_prices(
    bars: pd.DataFrame, filled: np.ndarray, first: np.ndarray, last: np.ndarray
) -> dict[str, np.ndarray]:
    """Open, high, low and close of each bar (rows `first` .. `last` of `bars`) from its
    real minutes; a bar with filled minutes only keeps their flat price, the last close."""
    real = ~filled
    high, low = bars["high"].to_numpy(), bars["low"].to_numpy()
    if real.all():
        # No filled minute: every bar opens at its first row and closes at its last.
        return {
            "open": bars["open"].to_numpy()[first],
            "high": np.maximum.reduceat(high, first),
            "low": np.minimum.reduceat(low, first),
            "close": bars["close"].to_numpy()[last],
        }
    # The first real minute at or after each bar's first row, the last one at or before its
    # last row (positions of real minutes, searched per bar rather than per row).
    real_rows = np.flatnonzero(real)
    padded = np.concatenate([[-1], real_rows, [len(bars)]])
    next_real = padded[np.searchsorted(real_rows, first, side="left") + 1]
    previous_real = padded[np.searchsorted(real_rows, last, side="right")]
    has_real = next_real <= last
    open_row = np.where(has_real, next_real, first)
    close_row = np.where(has_real, previous_real, last)
    real_high = np.maximum.reduceat(np.where(real, high, -np.inf), first)
    real_low = np.minimum.reduceat(np.where(real, low, np.inf), first)
    return {
        "open": bars["open"].to_numpy()[open_row],
        "high": np.where(has_real, real_high, high[first]),
        "low": np.where(has_real, real_low, low[first]),
        "close": bars["close"].to_numpy()[close_row],
    }
