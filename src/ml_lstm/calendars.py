"""Trading sessions from exchange calendars (holidays and early closes included).

Every time here is a tz-aware UTC timestamp; session labels are dates in the exchange's
own calendar.
"""

from __future__ import annotations

from functools import lru_cache

import exchange_calendars as xcals
import numpy as np
import pandas as pd


@lru_cache(maxsize=16)
def get_calendar(name: str) -> xcals.ExchangeCalendar:
    """The exchange_calendars calendar called `name` (e.g. XNYS, "24/5")."""
    try:
        return xcals.get_calendar(name, start="2000-01-03")
    except xcals.errors.InvalidCalendarName as error:
        raise ValueError(
            f"Unknown calendar {name!r}: expected an exchange_calendars name such as "
            "XNYS, XNAS, CMES or 24/5."
        ) from error


def trading_sessions(
    calendar: str, start: str | pd.Timestamp, end: str | pd.Timestamp
) -> pd.DataFrame:
    """Sessions between two dates (inclusive) with their UTC open and close.

    Returns a frame indexed by session date (naive, the exchange's label) with columns
    `open` and `close`.
    """
    cal = get_calendar(calendar)
    first = max(pd.Timestamp(start).tz_localize(None).normalize(), cal.first_session)
    last = min(pd.Timestamp(end).tz_localize(None).normalize(), cal.last_session)
    if first > last:
        return pd.DataFrame(
            {
                "open": pd.Series(dtype="datetime64[ns, UTC]"),
                "close": pd.Series(dtype="datetime64[ns, UTC]"),
            },
            index=pd.DatetimeIndex([], name="session"),
        )
    schedule = cal.schedule.loc[first:last, ["open", "close"]]
    schedule.index.name = "session"
    return schedule


def session_of(timestamps: pd.Series, sessions: pd.DataFrame) -> np.ndarray:
    """Position in `sessions` of the session holding each timestamp, or -1 if none does."""
    opens = sessions["open"].to_numpy(dtype="datetime64[ns]")
    closes = sessions["close"].to_numpy(dtype="datetime64[ns]")
    values = timestamps.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    position = np.searchsorted(opens, values, side="right") - 1
    inside = (position >= 0) & (values < closes[np.clip(position, 0, None)])
    return np.where(inside, position, -1)


def session_bar_starts(sessions: pd.DataFrame, frequency: str) -> pd.DataFrame:
    """Start and end (UTC) of every bar of `frequency`, aligned to each session's open.

    The last bar of a session ends at the close, so it is shorter on early closes.
    """
    step = pd.Timedelta(frequency)
    rows = []
    for open_, close in zip(sessions["open"], sessions["close"], strict=True):
        starts = pd.date_range(open_, close, freq=step, inclusive="left")
        ends = np.minimum(starts + step, close)
        rows.append(pd.DataFrame({"bar_start": starts, "bar_end": ends}))
    if not rows:
        return pd.DataFrame(
            {
                "bar_start": pd.Series(dtype="datetime64[ns, UTC]"),
                "bar_end": pd.Series(dtype="datetime64[ns, UTC]"),
            }
        )
    return pd.concat(rows, ignore_index=True)
