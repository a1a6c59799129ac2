"""Where minutes are missing inside sessions, and filling the short gaps from the past.

A gap is a run of missing minutes inside one session's [open, close): before the first bar
of the session (`leading`), between two bars (`inside`) or after the last bar up to the
close (`trailing`). Time outside sessions (nights, weekends, holidays, after an early close)
is never a gap. A session without any bar is a missing session, not a gap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml_lstm.calendars import MINUTE_NS, from_utc_nanoseconds, session_positions, utc_nanoseconds

GAP_KINDS = ("leading", "inside", "trailing")
VALUE_COLUMNS = ["open", "high", "low", "close", "volume"]


@dataclass
class SessionMinutes:
    """Minute bars located in their sessions (all arrays aligned with the bars)."""

    timestamp_ns: np.ndarray
    session: np.ndarray  # position in the sessions frame
    minute: np.ndarray  # minutes since the session's open
    session_minutes: np.ndarray  # expected minutes of each session (per session)


@dataclass
class Gaps:
    """One entry per gap; `after_row` is the bar before the gap (-1 for leading gaps)."""

    session: np.ndarray
    start_ns: np.ndarray
    minutes: np.ndarray
    kind: np.ndarray  # index into GAP_KINDS
    after_row: np.ndarray


@dataclass
class MinuteGaps:
    """Minute bars located in their sessions and the gaps between them: found once, then
    read by the gap report and by the filling."""

    located: SessionMinutes
    gaps: Gaps


def locate_minutes(bars: pd.DataFrame, sessions: pd.DataFrame) -> SessionMinutes:
    """Session and minute-of-session of each bar; every bar must lie inside a session."""
    timestamp_ns = utc_nanoseconds(bars["timestamp"])
    position = session_positions(timestamp_ns, sessions)
    if (position < 0).any():
        first = bars["timestamp"].iloc[int(np.flatnonzero(position < 0)[0])]
        raise ValueError(f"Minute bar at {first} lies outside the sessions of the calendar.")
    opens = utc_nanoseconds(sessions["open"])
    closes = utc_nanoseconds(sessions["close"])
    return SessionMinutes(
        timestamp_ns=timestamp_ns,
        session=position,
        minute=(timestamp_ns - opens[position]) // MINUTE_NS,
        session_minutes=(closes - opens) // MINUTE_NS,
    )


def find_gaps(located: SessionMinutes, opens_ns: np.ndarray) -> Gaps:
    """Every run of missing minutes inside the sessions that have at least one bar."""
    session, minute = located.session, located.minute
    n = len(session)
    if n == 0:
        empty = np.array([], dtype=np.int64)
        return Gaps(empty, empty, empty, empty, empty)
    new_session = np.ones(n, dtype=bool)
    new_session[1:] = session[1:] != session[:-1]
    last_of_session = np.ones(n, dtype=bool)
    last_of_session[:-1] = new_session[1:]

    leading = np.flatnonzero(new_session & (minute > 0))
    step = np.diff(minute, prepend=0)
    inside = np.flatnonzero(~new_session & (step > 1))
    expected = located.session_minutes[session]
    trailing = np.flatnonzero(last_of_session & (minute < expected - 1))

    gap_session = np.concatenate([session[leading], session[inside], session[trailing]])
    gap_start_minute = np.concatenate(
        [np.zeros(len(leading), np.int64), minute[inside - 1] + 1, minute[trailing] + 1]
    )
    gap_minutes = np.concatenate(
        [minute[leading], step[inside] - 1, expected[trailing] - 1 - minute[trailing]]
    )
    kind = np.repeat(np.arange(3), [len(leading), len(inside), len(trailing)])
    after_row = np.concatenate([np.full(len(leading), -1), inside - 1, trailing])
    start_ns = opens_ns[gap_session] + gap_start_minute * MINUTE_NS
    order = np.argsort(start_ns, kind="stable")
    return Gaps(
        session=gap_session[order],
        start_ns=start_ns[order],
        minutes=gap_minutes[order],
        kind=kind[order],
        after_row=after_row[order],
    )


def fillable(gaps: Gaps, max_fill_minutes: int) -> np.ndarray:
    """Gaps short enough to fill that follow a bar of the same session (never leading)."""
    return (gaps.kind != 0) & (gaps.minutes <= max_fill_minutes)


def fill_minutes(bars: pd.DataFrame, gaps: Gaps, max_fill_minutes: int) -> tuple[pd.DataFrame, int]:
    """`bars` plus one flat bar per missing minute of each fillable gap, sorted by time.

    A filled minute repeats the close of the bar before the gap (O=H=L=C, volume 0) and has
    `filled` True; nothing is taken from a later bar or another session.
    """
    chosen = fillable(gaps, max_fill_minutes)
    lengths = gaps.minutes[chosen]
    total = int(lengths.sum())
    filled_flags = np.zeros(len(bars), dtype=bool)
    if total == 0:
        return bars.assign(filled=filled_flags), 0
    first_of_run = np.repeat(np.cumsum(lengths) - lengths, lengths)
    offset = np.arange(total) - first_of_run
    stamps = np.repeat(gaps.start_ns[chosen], lengths) + offset * MINUTE_NS
    previous_close = bars["close"].to_numpy()[np.repeat(gaps.after_row[chosen], lengths)]
    bar_ns = utc_nanoseconds(bars["timestamp"])
    bar_rows, fill_rows = _merged_rows(bar_ns, stamps)
    size = len(bars) + total
    timestamp_ns = np.empty(size, dtype=np.int64)
    timestamp_ns[bar_rows], timestamp_ns[fill_rows] = bar_ns, stamps
    # Prices and volume in one 2-D block that becomes the frame's own (no copy): a million
    # rows cost one allocation instead of a column each plus pandas' consolidation.
    block = np.empty((len(VALUE_COLUMNS), size))
    for row, name in enumerate(VALUE_COLUMNS):
        block[row, bar_rows] = bars[name].to_numpy()
        block[row, fill_rows] = 0.0 if name == "volume" else previous_close
    filled = pd.DataFrame(block.T, columns=VALUE_COLUMNS, copy=False)
    filled.insert(0, "timestamp", from_utc_nanoseconds(timestamp_ns))
    flags = np.zeros(size, dtype=bool)
    flags[fill_rows] = True
    filled["filled"] = flags
    return filled, total


def _merged_rows(bar_ns: np.ndarray, fill_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the bars and of the filled minutes in their merged time order (a bar before a
    filled minute of the same time, each group in its own order)."""
    if (np.diff(bar_ns) >= 0).all() and (np.diff(fill_ns) >= 0).all():
        return (
            np.arange(len(bar_ns)) + np.searchsorted(fill_ns, bar_ns, side="left"),
            np.arange(len(fill_ns)) + np.searchsorted(bar_ns, fill_ns, side="right"),
        )
    order = np.argsort(np.concatenate([bar_ns, fill_ns]), kind="stable")
    position = np.empty_like(order)
    position[order] = np.arange(len(order))
    return position[: len(bar_ns)], position[len(bar_ns) :]
