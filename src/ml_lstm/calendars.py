"""Trading sessions from exchange calendars (holidays and early closes included).

Every time here is a tz-aware UTC timestamp; session labels are dates in the exchange's
own calendar.

Besides exchange_calendars' own calendars, two over-the-counter 24x5 calendars are
registered here, both labelling a session by the New York date on which it closes:

- ``FX-NY``: spot FX, Sunday 17:00 to Friday 17:00 New York time, one session per day from
  17:00 to 17:00 (the usual New York roll), no daily break.
- ``METALS-NY``: spot metals at Interactive Brokers (XAGUSD, XAUUSD), Sunday 18:00 to
  Friday 17:00 New York time with a daily break from 17:00 to 18:00, so each session runs
  18:00 (previous day) to 17:00.

exchange_calendars' ``24/5`` cuts sessions at UTC midnight instead, which puts the daily
17:00-18:00 break of metals inside a session (a false one-hour gap every day) and the
Sunday-evening open outside any session. Both OTC calendars close on 25 December and
1 January, the two days on which the OTC market does not trade; the thin days around
them stay sessions. So do US holidays, on which OTC venues often stop early at times that
no maintained calendar records: pandas_market_calendars' CME Globex metals calendar, for
one, has no early close on 2024-12-24 and closes 2025-01-20 at 14:30 New York time, where
IB spot silver stopped at 13:45 and 12:30. The gap report names the US holiday
(`us_holidays`) of a trailing gap on these calendars instead.

Extended hours (``trading_sessions(..., extended=True)``) are known for XNYS and XNAS:
pre-market from 04:00 and after-hours until 20:00 New York time; on early-close days
(13:00) the after-hours session ends at 17:00.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, time
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import numpy as np
import pandas as pd
from exchange_calendars.exchange_calendar import ExchangeCalendar, HolidayCalendar
from pandas.tseries.holiday import Holiday

NEW_YORK = ZoneInfo("America/New_York")


class _NewYorkOTCCalendar(ExchangeCalendar):
    """24x5 over-the-counter market whose sessions open the evening before their label."""

    tz = NEW_YORK
    close_times = ((None, time(17)),)

    @property
    def open_offset(self) -> int:
        return -1

    @property
    def regular_holidays(self) -> HolidayCalendar:
        return HolidayCalendar(
            [
                Holiday("New Year's Day", month=1, day=1),
                Holiday("Christmas Day", month=12, day=25),
            ]
        )


class SpotFXCalendar(_NewYorkOTCCalendar):
    """Spot FX: 17:00 to 17:00 New York time, Sunday evening to Friday evening."""

    name = "FX-NY"
    open_times = ((None, time(17)),)


class SpotMetalsCalendar(_NewYorkOTCCalendar):
    """IB spot metals: 18:00 to 17:00 New York time, with the daily 17:00-18:00 break."""

    name = "METALS-NY"
    open_times = ((None, time(18)),)


for _calendar in (SpotFXCalendar, SpotMetalsCalendar):
    if _calendar.name not in xcals.get_calendar_names():
        xcals.register_calendar_type(_calendar.name, _calendar)


@dataclass(frozen=True)
class ExtendedHours:
    """Pre-market open and after-hours close (exchange local time) around regular hours."""

    pre_market_open: time
    after_hours_close: time
    after_hours_close_on_early_close: time


EXTENDED_HOURS = {
    "XNYS": ExtendedHours(time(4), time(20), time(17)),
    "XNAS": ExtendedHours(time(4), time(20), time(17)),
}


@lru_cache(maxsize=16)
def get_calendar(name: str) -> xcals.ExchangeCalendar:
    """The exchange_calendars calendar called `name` (e.g. XNYS, "24/5", METALS-NY)."""
    try:
        return xcals.get_calendar(name, start="2000-01-03")
    except xcals.errors.InvalidCalendarName as error:
        raise ValueError(
            f"Unknown calendar {name!r}: expected an exchange_calendars name such as "
            "XNYS, XNAS, CMES or 24/5, or one of ml_lstm's FX-NY, METALS-NY."
        ) from error


def trading_sessions(
    calendar: str,
    start: str | pd.Timestamp,
    end: str | pd.Timestamp,
    *,
    extended: bool = False,
) -> pd.DataFrame:
    """Sessions between two dates (inclusive) with their UTC open and close.

    Returns a frame indexed by session date (naive, the exchange's label) with columns
    `open` and `close`. With `extended`, open and close are those of the pre-market and
    the after-hours session (only for calendars in EXTENDED_HOURS).
    """
    cal = get_calendar(calendar)
    first = max(pd.Timestamp(start).tz_localize(None).normalize(), cal.first_session)
    last = min(pd.Timestamp(end).tz_localize(None).normalize(), cal.last_session)
    # A shallow copy: the caller may add or replace columns without touching the cache.
    return _sessions_between(calendar, first, last, extended).copy(deep=False)


@lru_cache(maxsize=64)
def _sessions_between(
    calendar: str, first: pd.Timestamp, last: pd.Timestamp, extended: bool
) -> pd.DataFrame:
    """`trading_sessions` of normalized dates, cached: the live loop asks for the same few
    sessions at every bar, and slicing the calendar's schedule costs more than the bar."""
    if first > last:
        return pd.DataFrame(
            {
                "open": pd.Series(dtype="datetime64[ns, UTC]"),
                "close": pd.Series(dtype="datetime64[ns, UTC]"),
            },
            index=pd.DatetimeIndex([], name="session"),
        )
    schedule = _schedule(calendar, extended)
    labels = schedule.index
    return schedule.iloc[labels.searchsorted(first, "left") : labels.searchsorted(last, "right")]


@lru_cache(maxsize=16)
def _schedule(calendar: str, extended: bool) -> pd.DataFrame:
    """Every session of the calendar (open and close), built once per calendar."""
    cal = get_calendar(calendar)
    schedule = cal.schedule[["open", "close"]].rename_axis("session")
    if extended:
        schedule = _extended_schedule(cal, schedule)
    return schedule


def _extended_schedule(cal: xcals.ExchangeCalendar, schedule: pd.DataFrame) -> pd.DataFrame:
    hours = EXTENDED_HOURS.get(cal.name)
    if hours is None:
        raise ValueError(
            f"Extended hours are not known for the {cal.name} calendar: set extended_hours: "
            f"false for this instrument (known: {', '.join(sorted(EXTENDED_HOURS))})."
        )
    labels = schedule.index
    early = labels.isin(cal.early_closes)

    def local(at: time) -> pd.Timedelta:
        return pd.Timedelta(hours=at.hour, minutes=at.minute)

    after_close = np.where(
        early, local(hours.after_hours_close_on_early_close), local(hours.after_hours_close)
    )
    opens = (labels + local(hours.pre_market_open)).tz_localize(cal.tz).tz_convert("UTC")
    closes = (labels + pd.TimedeltaIndex(after_close)).tz_localize(cal.tz).tz_convert("UTC")
    return pd.DataFrame(
        {"open": opens.as_unit("ns"), "close": closes.as_unit("ns")},
        index=labels,
    )


def instrument_sessions(
    instrument: dict, start: str | pd.Timestamp, end: str | pd.Timestamp
) -> pd.DataFrame:
    """`trading_sessions` of an instrument's calendar, extended hours if it asks for them."""
    return trading_sessions(
        instrument["calendar"],
        start,
        end,
        extended=bool(instrument.get("extended_hours", False)),
    )


def ignores_us_holidays(calendar: str) -> bool:
    """Whether `calendar` is one of the 24x5 OTC calendars here, which trade through US
    holidays (they close only on 25 December and 1 January)."""
    return isinstance(get_calendar(calendar), _NewYorkOTCCalendar)


def us_holidays(start: str | pd.Timestamp, end: str | pd.Timestamp) -> pd.Series:
    """US market holidays and early closes between two dates (inclusive), as exchange_calendars
    maintains them for the NYSE: the holiday's name by date (naive).

    On these days OTC spot markets (FX-NY, METALS-NY) stay open in the calendar, but
    liquidity thins and many venues stop early (e.g. IB spot silver on 2024-12-24 at 13:45
    and 2025-02-17 at 14:30 New York time) at times no maintained calendar records.
    """
    cal = get_calendar("XNYS")
    first, last = (pd.Timestamp(day).tz_localize(None).normalize() for day in (start, end))

    def named(dates, name: str) -> pd.Series:
        dates = pd.DatetimeIndex(dates)
        return pd.Series(name, index=dates[(dates >= first) & (dates <= last)], dtype=object)

    parts = [cal.regular_holidays.holidays(first, last, return_name=True).astype(object)]
    parts.append(named(cal.adhoc_holidays, "NYSE closed"))
    for close, holidays in cal.special_closes:
        early = holidays.holidays(first, last, return_name=True).astype(object)
        parts.append(early + f" (NYSE closes at {close:%H:%M})")
    for close, dates in cal.special_closes_adhoc:
        parts.append(named(dates, f"NYSE closes at {close:%H:%M}"))
    days = pd.concat(parts)
    return days[~days.index.duplicated()].sort_index()


MINUTE_NS = 60_000_000_000


def utc(value: Any) -> Any:
    """`value` as tz-aware UTC: a Timestamp for a scalar, a Series/Index for a column.

    Naive values are taken to be UTC; text is parsed as ISO 8601 (with or without offset).
    The one place where the project coerces times to UTC.
    """
    if isinstance(value, pd.Series | pd.Index):
        if isinstance(value, pd.Series) and getattr(value.dtype, "tz", None) is UTC:
            return value.copy(deep=False)  # already UTC: what pd.to_datetime would return
        if value.dtype == object or pd.api.types.is_string_dtype(value.dtype):
            return pd.to_datetime(value, utc=True, format="ISO8601")
        return pd.to_datetime(value, utc=True)
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def utc_nanoseconds(values: pd.Series | pd.Index) -> np.ndarray:
    """int64 UTC nanoseconds of tz-aware timestamps (for numpy arithmetic on times)."""
    array = values.array
    if isinstance(array, pd.arrays.DatetimeArray) and array.tz is not None:
        # A tz-aware array holds UTC integers already: no conversion, no copy at ns.
        return array.as_unit("ns").asi8
    if isinstance(values, pd.Index):
        values = values.to_series()
    return values.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ns]").view("int64")


def from_utc_nanoseconds(values: np.ndarray) -> pd.DatetimeIndex:
    """tz-aware UTC timestamps of int64 UTC nanoseconds (the inverse of `utc_nanoseconds`)."""
    # A view as datetime64[ns] localized to UTC: pd.to_datetime(values, utc=True) gives the
    # same index but goes through a per-element conversion (0.3 s per million times).
    return pd.DatetimeIndex(np.asarray(values, dtype="int64").view("datetime64[ns]")).tz_localize(
        "UTC"
    )


def session_of(timestamps: pd.Series, sessions: pd.DataFrame) -> np.ndarray:
    """Position in `sessions` of the session holding each timestamp, or -1 if none does."""
    return session_positions(utc_nanoseconds(timestamps), sessions)


def session_positions(times_ns: np.ndarray, sessions: pd.DataFrame) -> np.ndarray:
    """`session_of` for int64 UTC nanoseconds."""
    opens = utc_nanoseconds(sessions["open"])
    closes = utc_nanoseconds(sessions["close"])
    position = np.searchsorted(opens, times_ns, side="right")
    position -= 1
    close_of = np.maximum(position, 0)
    np.take(closes, close_of, out=close_of)  # the close of each time's session, in place
    outside = times_ns >= close_of
    outside |= position < 0
    position[outside] = -1
    return position


def bar_step_ns(frequency: str) -> int:
    """A bar length in nanoseconds; refuses lengths that are not whole minutes."""
    step_ns = pd.Timedelta(frequency).value
    if step_ns <= 0 or step_ns % MINUTE_NS:
        raise ValueError(
            f"data_processing.frequency {frequency!r} must be a whole number of minutes, "
            "e.g. 15min, 30min, 60min or 4h."
        )
    return step_ns


def align_to_session_open(times_ns: np.ndarray, opens_ns: np.ndarray, step_ns: int) -> np.ndarray:
    """Start (ns) of the bar holding each time, bars counted from its session's open.

    The one rule of bar alignment: bars start at open, open + step, ... and never span two
    sessions (the caller cuts the last one at the close).
    """
    start = times_ns - opens_ns
    # In place: a million minutes would otherwise make three more 8 MB temporaries.
    start //= step_ns
    start *= step_ns
    start += opens_ns
    return start


def bar_bounds_ns(
    opens_ns: np.ndarray, closes_ns: np.ndarray, step_ns: int
) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (UTC nanoseconds) of every bar of `step_ns`, aligned to each session's
    open (sessions given by their open and close); the last bar of a session ends at the
    close, so it is shorter on early closes."""
    counts = np.maximum(-(-(closes_ns - opens_ns) // step_ns), 0)
    session = np.repeat(np.arange(len(opens_ns)), counts)
    first_of_session = np.repeat(np.cumsum(counts) - counts, counts)
    offsets = (np.arange(len(session)) - first_of_session) * step_ns
    starts = align_to_session_open(opens_ns[session] + offsets, opens_ns[session], step_ns)
    return starts, np.minimum(starts + step_ns, closes_ns[session])


def session_bar_starts(sessions: pd.DataFrame, frequency: str) -> pd.DataFrame:
    """Start and end (UTC) of every bar of `frequency`, aligned to each session's open.

    The last bar of a session ends at the close, so it is shorter on early closes.
    """
    starts, ends = bar_bounds_ns(
        utc_nanoseconds(sessions["open"]),
        utc_nanoseconds(sessions["close"]),
        bar_step_ns(frequency),
    )
    return pd.DataFrame(
        {
            "bar_start": from_utc_nanoseconds(starts),
            "bar_end": from_utc_nanoseconds(ends),
        }
    )


def bar_after(
    bar_start: pd.Timestamp, steps: int, instrument: dict, frequency: str
) -> pd.Timestamp:
    """Start (UTC) of the bar `steps` bars after `bar_start`, following the instrument's
    sessions (its calendar, extended hours included when it trades them).

    Looks a week ahead first and widens the window only when that holds too few bars
    (long closures, many steps): computing a month of bars costs more than the prediction.
    """
    step_ns = bar_step_ns(frequency)
    days = 7
    while True:
        sessions = instrument_sessions(
            instrument, bar_start - pd.Timedelta(days=1), bar_start + pd.Timedelta(days=days)
        )
        # On nanoseconds: inference asks at every live bar, and frames cost more than this.
        starts, _ = bar_bounds_ns(
            utc_nanoseconds(sessions["open"]), utc_nanoseconds(sessions["close"]), step_ns
        )
        later = starts[starts > utc(bar_start).value]
        if len(later) >= steps:
            return pd.Timestamp(int(later[steps - 1]), tz="UTC")
        if days >= 366:
            raise ValueError(
                f"The {instrument['calendar']} calendar has no session {steps} bars after "
                f"{bar_start}."
            )
        days = min(days * 4, 366)


def stale_by(
    last_bar: pd.Timestamp, now: pd.Timestamp, instrument: dict, frequency: str, stale_after: str
) -> pd.Timedelta | None:
    """How long ago the bar after `last_bar` should have been complete, if beyond tolerance.

    Data is stale when the calendar says a newer bar has ended more than `stale_after`
    before `now`; weekends, holidays and overnight hours never make data stale.
    """
    next_start = bar_after(last_bar, 1, instrument, frequency)
    expected_end = next_start + pd.Timedelta(frequency)
    late = now - expected_end
    return late if late > pd.Timedelta(stale_after) else None
