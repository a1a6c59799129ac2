"""The validation and gap reports: JSON-ready summaries of what the nodes found."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from ml_lstm.bar_checks import CheckedBars, Reason
from ml_lstm.calendars import MINUTE_NS, from_utc_nanoseconds, ignores_us_holidays, us_holidays

from .gaps import GAP_KINDS, MinuteGaps, fillable

EXAMPLES_PER_KIND = 3


def validation_report(
    bars: pd.DataFrame,
    checked: CheckedBars,
    unsorted_rows: int,
    outside_rows: np.ndarray,
    rows_valid: int,
) -> dict:
    """Counts of each kind of problem in the raw `bars`, with the first rows of each kind."""
    reason = checked.reason
    counts = np.bincount(reason, minlength=len(Reason) + 1)
    rejected = {}
    for kind in Reason:
        if counts[kind]:
            rows = np.flatnonzero(reason == kind)[:EXAMPLES_PER_KIND]
            rejected[kind.key] = {
                "rows": int(counts[kind]),
                "reason": kind.text,
                "examples": _locations(bars, rows),
            }
    rows_read = len(bars)
    rows_rejected = int(counts[1:].sum())
    return {
        "rows_read": rows_read,
        "rows_valid": rows_valid,
        "rows_rejected": rows_rejected,
        "rejected_share": rows_rejected / rows_read if rows_read else 0.0,
        "rejected": rejected,
        "duplicates_dropped": int(counts[Reason.DUPLICATE_TIMESTAMP]),
        "unsorted_rows": unsorted_rows,
        "outside_sessions": {
            "rows": len(outside_rows),
            "examples": _locations(bars, outside_rows[:EXAMPLES_PER_KIND]),
        },
        "volume_not_reported": checked.volume_not_reported,
        "zero_volume": checked.zero_volume,
        "files": _distinct(bars["source_file"]),
    }


def _distinct(values: pd.Series) -> int:
    """Series.nunique() (missing values left out): for a categorical column (as the raw
    table's file names are), the categories used, counted on their codes."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.array.codes
        return int(np.count_nonzero(np.bincount(codes[codes >= 0])))
    return int(values.nunique())


def _locations(bars: pd.DataFrame, rows: np.ndarray) -> list[dict]:
    return [
        {
            "file": str(bars["source_file"].iloc[row]),
            "line": int(bars["source_line"].iloc[row]),
            "timestamp": str(bars["timestamp"].iloc[row]),
        }
        for row in rows
    ]


def gap_report(
    minute_gaps: MinuteGaps,
    sessions: pd.DataFrame,
    instrument: dict,
    max_fill_minutes: int,
    ledger_sessions: dict,
) -> dict:
    """Expected and present minutes per session, missing sessions (with what ingestion
    recorded for them: `ledger_sessions` is the ingestion ledger's `sessions`) and every gap.
    """
    located, gaps = minute_gaps.located, minute_gaps.gaps
    filled = fillable(gaps, max_fill_minutes)
    labels = pd.DatetimeIndex(sessions.index).strftime("%Y-%m-%d")
    per_session = _per_session(minute_gaps, sessions, filled, labels)
    has_bars = per_session["present_minutes"].to_numpy() > 0
    gap_table = _gap_table(minute_gaps, filled, labels)
    on_us_holidays = ignores_us_holidays(instrument["calendar"])
    if on_us_holidays:
        gap_table["us_holiday"] = _us_holidays_of_trailing_gaps(gap_table)
    report = {
        "symbol": instrument["symbol"],
        "calendar": instrument["calendar"],
        "extended_hours": bool(instrument.get("extended_hours", False)),
        "max_fill_minutes": max_fill_minutes,
        "summary": {
            "first_session": labels[0],
            "last_session": labels[-1],
            "sessions_expected": len(sessions),
            "sessions_present": int(has_bars.sum()),
            "sessions_missing": int((~has_bars).sum()),
            "minutes_expected": int(located.session_minutes[has_bars].sum()),
            "minutes_present": len(located.session),
            "gaps": len(gaps.minutes),
            "gap_minutes": int(gaps.minutes.sum()),
            "filled_gaps": int(filled.sum()),
            "filled_minutes": int(gaps.minutes[filled].sum()),
            "longest_gap_minutes": int(gaps.minutes.max()) if len(gaps.minutes) else 0,
        },
        "missing_sessions": [
            {
                "first": labels[a],
                "last": labels[b],
                "sessions": int(b - a + 1),
                "ingestion": _ledger_statuses(ledger_sessions, labels[a : b + 1]),
            }
            for a, b in _runs(np.flatnonzero(~has_bars))
        ],
        "sessions": None,
        "gaps": None,
    }
    if on_us_holidays:
        report["summary"]["trailing_gaps_on_us_holidays"] = int(gap_table["us_holiday"].count())
    report = json_ready(report)
    # The two long lists are built from Python values directly (what to_dict("records")
    # and json_ready would make of them, without walking thousands of rows twice).
    report["sessions"] = records(per_session[has_bars])
    report["gaps"] = records(gap_table)
    return report


def records(table: pd.DataFrame) -> list[dict]:
    """json_ready(table.to_dict("records")), column by column."""
    columns = list(table.columns)
    values = [
        json_ready(table[name].tolist()) if table[name].dtype == object else table[name].tolist()
        for name in table.columns
    ]
    return [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]


def _ledger_statuses(ledger_sessions: dict, labels: pd.Index) -> dict[str, int]:
    """How many of these sessions the ingestion ledger records with each status: e.g.
    no_data (the source had none), failed (fetching failed; run ingestion again) or
    not_in_ledger (never asked for: outside every backfill window so far)."""
    statuses = [ledger_sessions.get(label, {}).get("status", "not_in_ledger") for label in labels]
    return dict(sorted(Counter(statuses).items()))


def _us_holidays_of_trailing_gaps(gap_table: pd.DataFrame) -> pd.Series:
    """The US holiday on the day of each trailing gap, None for other gaps and days.

    The 24x5 calendars trade through US holidays, but on them many OTC venues stop early at
    times no maintained calendar records: a trailing gap on such a day is most likely that
    early stop, not missing data.
    """
    if gap_table.empty:
        return pd.Series([], dtype=object)
    holidays = us_holidays(gap_table["session"].iloc[0], gap_table["session"].iloc[-1])
    names = gap_table["session"].map(holidays.set_axis(holidays.index.strftime("%Y-%m-%d")))
    names = names.where(gap_table["kind"] == "trailing")
    return names.astype(object).where(names.notna(), None)


def _per_session(
    minute_gaps: MinuteGaps, sessions: pd.DataFrame, filled: np.ndarray, labels: pd.Index
) -> pd.DataFrame:
    """One row per session of the calendar, with or without bars."""
    located, gaps = minute_gaps.located, minute_gaps.gaps
    n_sessions = len(sessions)
    filled_minutes = np.bincount(gaps.session[filled], gaps.minutes[filled], n_sessions)
    gap_minutes = np.bincount(gaps.session, gaps.minutes, n_sessions)
    return pd.DataFrame(
        {
            "session": labels,
            "open": _iso(sessions["open"]),
            "close": _iso(sessions["close"]),
            "expected_minutes": located.session_minutes,
            "present_minutes": np.bincount(located.session, minlength=n_sessions),
            "filled_minutes": filled_minutes.astype(np.int64),
            "unfilled_minutes": (gap_minutes - filled_minutes).astype(np.int64),
            "gaps": np.bincount(gaps.session, minlength=n_sessions),
        }
    )


def _gap_table(minute_gaps: MinuteGaps, filled: np.ndarray, labels: pd.Index) -> pd.DataFrame:
    gaps = minute_gaps.gaps
    return pd.DataFrame(
        {
            "session": labels[gaps.session],
            "start": _iso(pd.Series(from_utc_nanoseconds(gaps.start_ns))),
            "end": _iso(pd.Series(from_utc_nanoseconds(gaps.start_ns + gaps.minutes * MINUTE_NS))),
            "minutes": gaps.minutes,
            "kind": np.array(GAP_KINDS)[gaps.kind],
            "filled": filled,
        }
    )


def _iso(timestamps: pd.Series) -> np.ndarray:
    return timestamps.dt.strftime("%Y-%m-%dT%H:%M:%SZ").to_numpy()


def _runs(positions: np.ndarray) -> list[tuple[int, int]]:
    """First and last position of each run of consecutive positions."""
    if len(positions) == 0:
        return []
    breaks = np.flatnonzero(np.diff(positions) > 1)
    starts = np.concatenate([[positions[0]], positions[breaks + 1]])
    ends = np.concatenate([positions[breaks], [positions[-1]]])
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def json_ready(value):
    """JSON-ready copy: numpy scalars as Python numbers."""
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_ready(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
