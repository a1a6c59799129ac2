"""The calendar's sessions around a table of minutes (validation, list_sessions) or over a
table of session bars, with where each bar's session lies among them (add_features'
stretches and calendar columns); cached, as the live loop asks for the same at every bar."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from ml_lstm.calendars import instrument_sessions, utc, utc_nanoseconds

# The dtype of text columns (pandas' astype(str)).
TEXT = pd.api.types.pandas_dtype(str)
DAY_NS = 86_400 * 1_000_000_000
# Days of calendar read on either side of a table's first and last minute: a session may
# open the evening before its label (24x5 calendars) or close after midnight UTC.
MARGIN_DAYS = 3
# Session ranges whose list_sessions table is kept per range of days (the live loop's few).
MAX_LISTED = 16


@dataclass
class SessionsAround:
    """The sessions around a table of minutes (`frame`: shared, read it only), and the
    tables list_sessions starts from, built once per range of them."""

    frame: pd.DataFrame
    _listed: dict[tuple[int, int], pd.DataFrame] = field(default_factory=dict)

    def listed(self, start: int, stop: int) -> pd.DataFrame:
        """Sessions `start` to `stop` (positions, as iloc reads them) with `scheduled_close`
        a copy of `close`: the caller's own table, whose columns it may replace."""
        key = (int(start), int(stop))
        # Read once (a runner's threads may share this object): a lookup, then a local.
        listed = self._listed.get(key)
        if listed is None:
            if len(self._listed) >= MAX_LISTED:
                self._listed.clear()
            sessions = self.frame.iloc[start:stop]
            listed = self._listed[key] = sessions.assign(scheduled_close=sessions["close"])
        # A shallow copy: replacing a column (list_sessions' close) costs a fifth of
        # DataFrame.assign, and never reaches the cached table.
        return listed.copy(deep=False)


def sessions_around(instrument: dict, first_ns: int, last_ns: int) -> SessionsAround:
    """The instrument's sessions from MARGIN_DAYS before the UTC day of `first_ns` to as
    many after that of `last_ns` (UTC nanoseconds)."""
    return _sessions_between_days(
        instrument["calendar"],
        bool(instrument.get("extended_hours", False)),
        int(first_ns) // DAY_NS - MARGIN_DAYS,
        int(last_ns) // DAY_NS + MARGIN_DAYS,
    )


@lru_cache(maxsize=64)
def _sessions_between_days(
    calendar: str, extended: bool, first_day: int, last_day: int
) -> SessionsAround:
    """`instrument_sessions` between two UTC days (counted from 1970-01-01), cached: the
    live loop asks for the same days at every bar, and the calendar's own cache costs more
    to ask (timestamps built, normalized, compared) than a short session's checks."""
    sessions = instrument_sessions(
        {"calendar": calendar, "extended_hours": extended},
        pd.Timestamp(first_day * DAY_NS, tz="UTC"),
        pd.Timestamp(last_day * DAY_NS, tz="UTC"),
    )
    return SessionsAround(sessions)


@dataclass(frozen=True)
class CalendarSpan:
    """A calendar's sessions between two session labels, as add_features reads them."""

    sessions: pd.DatetimeIndex
    labels: pd.Index  # each session's label as text (YYYY-MM-DD)
    open_ns: np.ndarray
    close_ns: np.ndarray
    weekday: np.ndarray


@lru_cache(maxsize=64)
def calendar_span(calendar: str, extended: bool, first: Any, last: Any) -> CalendarSpan:
    """The sessions from `first` to `last`, cached: the live loop asks for the same span at
    every bar, and the labels' text and its lookup table cost more than its features."""
    sessions = instrument_sessions({"calendar": calendar, "extended_hours": extended}, first, last)
    span = CalendarSpan(
        sessions=sessions.index,
        labels=pd.Index(sessions.index.strftime("%Y-%m-%d")),
        open_ns=utc_nanoseconds(sessions["open"]).copy(),
        close_ns=utc_nanoseconds(sessions["close"]).copy(),
        weekday=sessions.index.day_of_week.to_numpy().copy(),
    )
    for values in (span.open_ns, span.close_ns, span.weekday):
        values.flags.writeable = False  # shared by every caller of the cache
    return span


def bars_in_calendar(
    hourly_bars: pd.DataFrame, instrument: dict
) -> tuple[pd.DataFrame, CalendarSpan, np.ndarray]:
    """The bars (UTC times, text session labels), the calendar's sessions over their span
    and the position in it of each bar's session; every session must be the calendar's."""
    bars = hourly_bars.reset_index(drop=True)
    # Columns already in these types (as the bars come, live at every bar) are kept as they
    # are: replacing a column costs more than the conversion.
    for name in ("timestamp", "bar_end"):
        if getattr(bars[name].dtype, "tz", None) is not UTC:
            bars[name] = utc(bars[name])
    if bars["session"].dtype != TEXT:
        bars["session"] = bars["session"].astype(str)
    if bars.empty:
        raise ValueError("No session bars to compute features from.")
    labels = bars["session"]
    span = calendar_span(
        instrument["calendar"],
        bool(instrument.get("extended_hours", False)),
        labels.iloc[0],
        labels.iloc[-1],
    )
    # Labels as the calendar writes them match as text; only others need parsing.
    calendar_position = span.labels.get_indexer(labels)
    if (calendar_position < 0).any():
        calendar_position = span.sessions.get_indexer(pd.DatetimeIndex(labels))
    if (calendar_position < 0).any():
        odd = labels.iloc[int(np.flatnonzero(calendar_position < 0)[0])]
        raise ValueError(f"Bar session {odd} is not a {instrument['calendar']} session.")
    return bars, span, calendar_position
