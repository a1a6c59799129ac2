"""Data processing nodes: validate minute bars, place them in sessions, report and fill gaps,
resample within sessions and add features."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from matplotlib.figure import Figure

from ml_lstm.calendars import instrument_sessions, session_of

from .charts import gap_calendar_plot, gap_chart
from .features import calendar_columns, indicator_columns
from .gaps import GAP_KINDS, fill_minutes, fillable, find_gaps, locate_minutes, utc_nanoseconds
from .resampling import resample_minutes
from .validation import DUPLICATE, PRICE_COLUMNS, REASONS, check_rows

logger = logging.getLogger(__name__)

MINUTE_COLUMNS = ["timestamp", *PRICE_COLUMNS, "volume"]
EXAMPLES_PER_KIND = 3


def validate_minute_bars(
    bars: pd.DataFrame, instrument: dict, data_processing: dict, run_info: dict
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Valid bars sorted by time and inside the calendar's sessions, the rejected rows with
    their reason, and a report counting each kind of problem.

    `bars` is the raw table (as `SessionTableDataset` reads it: each row with its
    `source_file` and `source_line`). Duplicate timestamps keep the last row. Valid rows
    outside every session (e.g. pre-market bars of a regular-hours instrument) are left out
    and counted, not rejected.
    """
    if bars.empty:
        raise ValueError(
            "No raw minute bars are stored for this instrument: run the ingestion pipeline "
            "first (kedro run --pipelines ingestion)."
        )
    checked = check_rows(bars)
    reason = checked.reason
    keep = np.flatnonzero(reason == 0)
    timestamps = checked.timestamp_ns[keep]
    unsorted_rows = int((np.diff(timestamps) < 0).sum())
    if unsorted_rows:
        keep = keep[np.argsort(timestamps, kind="stable")]
        timestamps = checked.timestamp_ns[keep]

    everything = len(keep) == len(bars) and not unsorted_rows
    valid = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(timestamps, utc=True),
            **{
                column: values if everything else values[keep]
                for column, values in [*checked.prices.items(), ("volume", checked.volume)]
            },
        },
        copy=False,
    )
    outside = np.zeros(len(valid), dtype=bool)
    if len(valid):
        first, last = valid["timestamp"].iloc[[0, -1]]
        sessions = instrument_sessions(
            instrument, first - pd.Timedelta(days=3), last + pd.Timedelta(days=3)
        )
        outside = session_of(valid["timestamp"], sessions) < 0
    if outside.any():
        logger.info(
            "%s: left out %d valid minute bars outside the %s sessions%s",
            instrument["symbol"],
            int(outside.sum()),
            instrument["calendar"],
            " (extended hours)" if instrument.get("extended_hours") else " (regular hours)",
        )
        outside_rows = keep[outside]
        valid = valid.loc[~outside].reset_index(drop=True)
    else:
        outside_rows = keep[:0]

    rejected_rows = np.flatnonzero(reason > 0)
    rejected = bars.iloc[rejected_rows].astype({"source_file": "str"})
    rejected = rejected.assign(reason=[REASONS[code] for code in reason[rejected_rows]])
    rejected = rejected[
        ["source_file", "source_line", "reason", *MINUTE_COLUMNS]
        if "volume" in bars.columns
        else ["source_file", "source_line", "reason", *MINUTE_COLUMNS[:-1]]
    ]

    now = run_started_at(run_info)
    unfinished = (valid["timestamp"] + pd.Timedelta(minutes=1) > now).to_numpy()
    if unfinished.any():
        logger.info(
            "%s: left out %d minute bars not finished at the run's start (%s)",
            instrument["symbol"],
            int(unfinished.sum()),
            now,
        )
        valid = valid.loc[~unfinished].reset_index(drop=True)

    report = _validation_report(bars, checked, unsorted_rows, outside_rows, len(valid))
    report["unfinished_at_run_start"] = int(unfinished.sum())
    report["max_rejected_share"] = data_processing["max_rejected_share"]
    logger.info(
        "%s: %d minute bars read, %d valid, %d rejected (%.3f%%), %d duplicates",
        instrument["symbol"],
        report["rows_read"],
        report["rows_valid"],
        report["rows_rejected"],
        100 * report["rejected_share"],
        report["rejected"].get("duplicate_timestamp", {}).get("rows", 0),
    )
    return valid, rejected.reset_index(drop=True), report


def _validation_report(
    bars: pd.DataFrame,
    checked,
    unsorted_rows: int,
    outside_rows: np.ndarray,
    rows_valid: int,
) -> dict:
    reason = checked.reason
    counts = np.bincount(reason, minlength=len(REASONS) + 1)
    rejected = {}
    for code, text in REASONS.items():
        if counts[code]:
            rows = np.flatnonzero(reason == code)[:EXAMPLES_PER_KIND]
            rejected[_reason_key(code)] = {
                "rows": int(counts[code]),
                "reason": text,
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
        "duplicates_dropped": int(counts[DUPLICATE]),
        "unsorted_rows": unsorted_rows,
        "outside_sessions": {
            "rows": len(outside_rows),
            "examples": _locations(bars, outside_rows[:EXAMPLES_PER_KIND]),
        },
        "volume_not_reported": checked.volume_not_reported,
        "zero_volume": checked.zero_volume,
        "files": int(bars["source_file"].nunique()),
    }


def _reason_key(code: int) -> str:
    keys = {
        1: "bad_timestamp",
        2: "timestamp_without_time_zone",
        3: "timestamp_not_whole_minute",
        4: "missing_price",
        5: "price_not_a_number",
        6: "non_positive_price",
        7: "high_inconsistent",
        8: "low_inconsistent",
        9: "volume_missing",
        10: "negative_volume",
        11: "duplicate_timestamp",
    }
    return keys[code]


def _locations(bars: pd.DataFrame, rows: np.ndarray) -> list[dict]:
    return [
        {
            "file": str(bars["source_file"].iloc[row]),
            "line": int(bars["source_line"].iloc[row]),
            "timestamp": str(bars["timestamp"].iloc[row]),
        }
        for row in rows
    ]


def run_started_at(run_info: dict) -> pd.Timestamp:
    """The run's start (UTC): "now" for this run's data."""
    return pd.Timestamp(run_info["started_at"]).tz_convert("UTC")


def accept_minute_bars(
    valid_minute_bars: pd.DataFrame, validation_report: dict, data_processing: dict
) -> pd.DataFrame:
    """The valid bars, unless more than `max_rejected_share` of the rows were rejected."""
    limit = data_processing["max_rejected_share"]
    share = validation_report["rejected_share"]
    if share > limit:
        kinds = "; ".join(
            f"{kind['reason']}: {kind['rows']} rows (first in {kind['examples'][0]['file']} "
            f"line {kind['examples'][0]['line']})"
            for kind in validation_report["rejected"].values()
        )
        raise ValueError(
            f"{share:.2%} of {validation_report['rows_read']} raw minute bars were rejected, "
            f"more than data_processing.max_rejected_share ({limit:.2%}). {kinds}. The "
            "rejected rows and the validation report are in data/02_intermediate/."
        )
    if valid_minute_bars.empty:
        raise ValueError("No valid minute bar lies inside a session of the calendar.")
    return valid_minute_bars


def list_sessions(minute_bars: pd.DataFrame, instrument: dict, run_info: dict) -> pd.DataFrame:
    """The calendar's sessions from the one holding the first bar to the one holding the last.

    A session still in progress when the run started ends, for gaps and bars, at that minute
    (`close`); `scheduled_close` keeps the calendar's close.
    """
    first, last = minute_bars["timestamp"].iloc[[0, -1]]
    sessions = instrument_sessions(
        instrument, first - pd.Timedelta(days=3), last + pd.Timedelta(days=3)
    )
    position = session_of(minute_bars["timestamp"].iloc[[0, -1]], sessions)
    sessions = sessions.iloc[position[0] : position[1] + 1].copy()
    sessions["scheduled_close"] = sessions["close"]
    sessions["close"] = sessions["close"].clip(upper=run_started_at(run_info).floor("min"))
    return sessions


def analyse_gaps(
    minute_bars: pd.DataFrame, sessions: pd.DataFrame, instrument: dict, data_processing: dict
) -> dict:
    """Expected and present minutes per session, missing sessions and every intra-session gap."""
    located = locate_minutes(minute_bars, sessions)
    opens_ns = utc_nanoseconds(sessions["open"])
    gaps = find_gaps(located, opens_ns)
    max_fill = data_processing["max_fill_minutes"]
    filled = fillable(gaps, max_fill)
    n_sessions = len(sessions)
    present = np.bincount(located.session, minlength=n_sessions)
    filled_minutes = np.bincount(gaps.session[filled], gaps.minutes[filled], n_sessions)
    gap_minutes = np.bincount(gaps.session, gaps.minutes, n_sessions)
    gap_count = np.bincount(gaps.session, minlength=n_sessions)
    labels = pd.DatetimeIndex(sessions.index).strftime("%Y-%m-%d")
    has_bars = present > 0
    per_session = pd.DataFrame(
        {
            "session": labels,
            "open": _iso(sessions["open"]),
            "close": _iso(sessions["close"]),
            "expected_minutes": located.session_minutes,
            "present_minutes": present,
            "filled_minutes": filled_minutes.astype(np.int64),
            "unfilled_minutes": (gap_minutes - filled_minutes).astype(np.int64),
            "gaps": gap_count,
        }
    )[has_bars]
    gap_table = pd.DataFrame(
        {
            "session": labels[gaps.session],
            "start": _iso(pd.Series(pd.to_datetime(gaps.start_ns, utc=True))),
            "end": _iso(
                pd.Series(pd.to_datetime(gaps.start_ns + gaps.minutes * 60_000_000_000, utc=True))
            ),
            "minutes": gaps.minutes,
            "kind": np.array(GAP_KINDS)[gaps.kind],
            "filled": filled,
        }
    )
    missing = _runs(np.flatnonzero(~has_bars))
    report = {
        "symbol": instrument["symbol"],
        "calendar": instrument["calendar"],
        "extended_hours": bool(instrument.get("extended_hours", False)),
        "max_fill_minutes": max_fill,
        "summary": {
            "first_session": labels[0],
            "last_session": labels[-1],
            "sessions_expected": n_sessions,
            "sessions_present": int(has_bars.sum()),
            "sessions_missing": int((~has_bars).sum()),
            "minutes_expected": int(located.session_minutes[has_bars].sum()),
            "minutes_present": len(minute_bars),
            "gaps": len(gaps.minutes),
            "gap_minutes": int(gaps.minutes.sum()),
            "filled_gaps": int(filled.sum()),
            "filled_minutes": int(gaps.minutes[filled].sum()),
            "longest_gap_minutes": int(gaps.minutes.max()) if len(gaps.minutes) else 0,
        },
        "missing_sessions": [
            {"first": labels[a], "last": labels[b], "sessions": int(b - a + 1)} for a, b in missing
        ],
        "sessions": per_session.to_dict("records"),
        "gaps": gap_table.to_dict("records"),
    }
    summary = report["summary"]
    logger.info(
        "%s: %d of %d sessions have bars; %d gaps (%d minutes), %d of them filled",
        instrument["symbol"],
        summary["sessions_present"],
        summary["sessions_expected"],
        summary["gaps"],
        summary["gap_minutes"],
        summary["filled_gaps"],
    )
    return _plain(report)


def _iso(timestamps: pd.Series) -> np.ndarray:
    return timestamps.dt.strftime("%Y-%m-%dT%H:%M:%SZ").to_numpy()


def _runs(positions: np.ndarray) -> list[tuple[int, int]]:
    if len(positions) == 0:
        return []
    breaks = np.flatnonzero(np.diff(positions) > 1)
    starts = np.concatenate([[positions[0]], positions[breaks + 1]])
    ends = np.concatenate([positions[breaks], [positions[-1]]])
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def _plain(value):
    """JSON-ready copy: numpy scalars as Python numbers."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def plot_gaps(gap_report: dict) -> tuple[Figure, go.Figure]:
    """The gap report as a chart: a PNG for people and a plotly figure for kedro-viz."""
    return gap_chart(gap_report), gap_calendar_plot(gap_report)


def fill_gaps(
    minute_bars: pd.DataFrame, sessions: pd.DataFrame, data_processing: dict
) -> pd.DataFrame:
    """Minute bars with gaps of up to `max_fill_minutes` filled from the last close.

    Filled minutes are flat (O=H=L=C = the close before the gap, volume 0) and flagged in
    `filled`; gaps at the start of a session and longer gaps stay empty.
    """
    located = locate_minutes(minute_bars, sessions)
    gaps = find_gaps(located, utc_nanoseconds(sessions["open"]))
    filled, added = fill_minutes(minute_bars, gaps, data_processing["max_fill_minutes"])
    logger.info("Filled %d missing minutes from the last close", added)
    return filled


def resample_to_session_bars(
    minute_bars: pd.DataFrame, sessions: pd.DataFrame, data_processing: dict
) -> pd.DataFrame:
    """OHLCV bars of `frequency` aligned to each session's open, never spanning sessions,
    with the number of minutes and the share of filled minutes in each bar."""
    position = session_of(minute_bars["timestamp"], sessions)
    bars = resample_minutes(minute_bars, position, sessions, data_processing["frequency"])
    # A bar that a session in progress cuts short is not finished: it is left out until a
    # later run has all of its minutes.
    scheduled = sessions["scheduled_close"].to_numpy()[
        pd.Index(pd.DatetimeIndex(sessions.index).strftime("%Y-%m-%d")).get_indexer(bars["session"])
    ]
    full_end = np.minimum(bars["timestamp"] + pd.Timedelta(data_processing["frequency"]), scheduled)
    finished = (bars["bar_end"] >= full_end).to_numpy()
    if not finished.all():
        logger.info("Left out %d bars not finished at the run's start", int((~finished).sum()))
    return bars.loc[finished].reset_index(drop=True)


def add_features(
    hourly_bars: pd.DataFrame, instrument: dict, data_processing: dict
) -> tuple[pd.DataFrame, dict]:
    """The bars with the configured features, and the list of feature columns.

    Features restart after more than `max_missing_sessions` consecutive sessions without
    bars (a return across a months-long hole is not a return); each stretch drops its own
    warm-up rows, where the longest indicator has not enough history yet.
    """
    settings = data_processing["features"]
    bars = hourly_bars.reset_index(drop=True)
    bars["timestamp"] = pd.to_datetime(bars["timestamp"], utc=True, format="ISO8601")
    bars["bar_end"] = pd.to_datetime(bars["bar_end"], utc=True, format="ISO8601")
    bars["session"] = bars["session"].astype(str)
    if bars.empty:
        raise ValueError("No session bars to compute features from.")
    sessions = instrument_sessions(instrument, bars["session"].iloc[0], bars["session"].iloc[-1])
    calendar_position = sessions.index.get_indexer(pd.DatetimeIndex(bars["session"]))
    if (calendar_position < 0).any():
        odd = bars["session"].iloc[int(np.flatnonzero(calendar_position < 0)[0])]
        raise ValueError(f"Bar session {odd} is not a {instrument['calendar']} session.")
    skipped = np.diff(calendar_position, prepend=calendar_position[0]) - 1
    stretch = np.cumsum(skipped > settings["max_missing_sessions"])

    calendar = calendar_columns(
        bars["timestamp"],
        sessions["open"].iloc[calendar_position].set_axis(bars.index),
        sessions["close"].iloc[calendar_position].set_axis(bars.index),
        bars["session"],
        settings,
    )
    tables, dropped, warm_up = [], 0, 0
    for _, part in bars.groupby(stretch, sort=True):
        indicators, warm_up = indicator_columns(part["close"], settings)
        table = pd.concat([part, pd.DataFrame(indicators, index=part.index)], axis=1)
        tables.append(table.iloc[warm_up:])
        dropped += min(warm_up, len(part))
    features = pd.concat(tables)
    if features.empty:
        raise ValueError(
            f"All {len(bars)} session bars are warm-up rows (each stretch needs more than "
            f"{warm_up} bars): process a longer span of minute bars."
        )
    for name, values in calendar.items():
        features[name] = np.asarray(values)[features.index.to_numpy()]
    features = features.reset_index(drop=True)
    names = [column for column in features.columns if column not in hourly_bars.columns]
    logger.info(
        "Dropped %d warm-up rows (%d per stretch, %d stretches); %d feature rows remain",
        dropped,
        warm_up,
        int(stretch[-1]) + 1,
        len(features),
    )
    feature_list = {
        "features": names,
        "frequency": data_processing["frequency"],
        "warm_up_rows_per_stretch": warm_up,
        "warm_up_rows_dropped": dropped,
        "stretches": int(stretch[-1]) + 1,
        "rows": len(features),
        "settings": settings,
    }
    return features, _plain(feature_list)
