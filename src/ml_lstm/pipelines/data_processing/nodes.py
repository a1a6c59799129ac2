"""Data processing nodes: validate minute bars, place them in sessions, report and fill gaps,
resample within sessions and add features."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml_lstm.bar_checks import Reason, check_rows, rejected_rows, valid_rows
from ml_lstm.calendars import (
    MINUTE_NS,
    bar_step_ns,
    from_utc_nanoseconds,
    session_positions,
    utc,
    utc_nanoseconds,
)

from .calendar_span import bars_in_calendar, sessions_around
from .features import calendar_columns, indicators_by_stretch, joined_features
from .gaps import MinuteGaps, fill_minutes, find_gaps, locate_minutes
from .reports import gap_report, json_ready, validation_report
from .resampling import BAR_COLUMNS, resample_minutes

logger = logging.getLogger(__name__)

# Sessions listed by name in the error about too many rejected rows.
MAX_DATES_NAMED = 10


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
    valid, stamps_ns, keep, unsorted_rows = valid_rows(checked)
    outside = _outside_sessions(stamps_ns, instrument)
    if outside.any():
        valid, stamps_ns = valid.loc[~outside].reset_index(drop=True), stamps_ns[~outside]
    unfinished = _unfinished(stamps_ns, utc(run_info["started_at"]), instrument)
    valid = valid.loc[~unfinished].reset_index(drop=True) if unfinished.any() else valid

    report = validation_report(bars, checked, unsorted_rows, keep[outside], len(valid))
    report["unfinished_at_run_start"] = int(unfinished.sum())
    report["max_rejected_share"] = data_processing["max_rejected_share"]
    logger.info(
        "%s: %d minute bars read, %d valid, %d rejected (%.3f%%), %d duplicates",
        instrument["symbol"],
        report["rows_read"],
        report["rows_valid"],
        report["rows_rejected"],
        100 * report["rejected_share"],
        report["rejected"].get(Reason.DUPLICATE_TIMESTAMP.key, {}).get("rows", 0),
    )
    return valid, rejected_rows(bars, checked), report


def _outside_sessions(stamps_ns: np.ndarray, instrument: dict) -> np.ndarray:
    """Which of the time-sorted valid bars (at `stamps_ns`) lie outside every session of
    the calendar."""
    if len(stamps_ns) == 0:
        return np.zeros(0, dtype=bool)
    sessions = sessions_around(instrument, stamps_ns[0], stamps_ns[-1]).frame
    outside = session_positions(stamps_ns, sessions) < 0
    if outside.any():
        logger.info(
            "%s: left out %d valid minute bars outside the %s sessions%s",
            instrument["symbol"],
            int(outside.sum()),
            instrument["calendar"],
            " (extended hours)" if instrument.get("extended_hours") else " (regular hours)",
        )
    return outside


def _unfinished(stamps_ns: np.ndarray, now: pd.Timestamp, instrument: dict) -> np.ndarray:
    """Which bars (at `stamps_ns`) had not finished at `now`, the run's start (a session in
    progress)."""
    unfinished = stamps_ns > now.value - MINUTE_NS
    if unfinished.any():
        logger.info(
            "%s: left out %d minute bars not finished at the run's start (%s)",
            instrument["symbol"],
            int(unfinished.sum()),
            now,
        )
    return unfinished


def accept_minute_bars(
    valid_minute_bars: pd.DataFrame,
    rejected_minute_bars: pd.DataFrame,
    validation_report: dict,
    data_processing: dict,
) -> pd.DataFrame:
    """The valid bars, unless more than `max_rejected_share` of the rows were rejected.

    The error then names each kind of problem, the sessions whose raw files hold rejected
    rows, and the ingestion command that replaces those files once the source is corrected.
    """
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
            f"more than data_processing.max_rejected_share ({limit:.2%}). {kinds}. "
            f"{_how_to_replace(rejected_minute_bars)} The rejected rows and the validation "
            "report are in data/02_intermediate/."
        )
    if valid_minute_bars.empty:
        raise ValueError("No valid minute bar lies inside a session of the calendar.")
    return valid_minute_bars


def _how_to_replace(rejected_minute_bars: pd.DataFrame) -> str:
    """The sessions holding rejected rows (raw files are named by session date) and the
    command that fetches or imports them again, replacing the stored files."""
    dates = sorted({Path(str(name)).stem for name in rejected_minute_bars["source_file"].unique()})
    if not dates:
        return ""
    shown = ", ".join(dates[:MAX_DATES_NAMED]) + (", ..." if len(dates) > MAX_DATES_NAMED else "")
    return (
        f"Rejected rows lie in {len(dates)} session(s): {shown}. Correct the source, then "
        "replace the stored files of these sessions with: kedro run --pipelines ingestion "
        f"--params ingestion.refetch=true,ingestion.start_date={dates[0]},"
        f"ingestion.end_date={dates[-1]}"
    )


def list_sessions(minute_bars: pd.DataFrame, instrument: dict, run_info: dict) -> pd.DataFrame:
    """The calendar's sessions from the one holding the first bar to the one holding the last.

    A session still in progress when the run started ends, for gaps and bars, at that minute
    (`close`); `scheduled_close` keeps the calendar's close.
    """
    ends_ns = utc_nanoseconds(minute_bars["timestamp"])[[0, -1]]
    around = sessions_around(instrument, ends_ns[0], ends_ns[1])
    position = session_positions(ends_ns, around.frame)
    sessions = around.listed(position[0], position[1] + 1)
    # On nanoseconds: Series.clip costs more than the rest of this node on one session.
    now_ns = utc(run_info["started_at"]).floor("min").value
    scheduled_ns = utc_nanoseconds(sessions["scheduled_close"])
    sessions["close"] = from_utc_nanoseconds(np.minimum(scheduled_ns, now_ns))
    return sessions


def locate_gaps(minute_bars: pd.DataFrame, sessions: pd.DataFrame) -> MinuteGaps:
    """The session and minute of each bar, and every run of missing minutes in a session."""
    located = locate_minutes(minute_bars, sessions)
    return MinuteGaps(located, find_gaps(located, utc_nanoseconds(sessions["open"])))


def analyse_gaps(
    minute_gaps: MinuteGaps,
    sessions: pd.DataFrame,
    ingestion_ledger: dict,
    instrument: dict,
    data_processing: dict,
) -> dict:
    """Expected and present minutes per session, missing sessions (with the status ingestion
    recorded for them) and every intra-session gap."""
    report = gap_report(
        minute_gaps,
        sessions,
        instrument,
        data_processing["max_fill_minutes"],
        ingestion_ledger.get("sessions", {}),
    )
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
    if summary.get("trailing_gaps_on_us_holidays"):
        logger.info(
            "%s: %d trailing gaps fall on US holidays, when %s venues often stop early "
            "(us_holiday in the gap report)",
            instrument["symbol"],
            summary["trailing_gaps_on_us_holidays"],
            instrument["calendar"],
        )
    return report


def plot_gaps(gap_report: dict) -> tuple[Any, Any]:
    """The gap report as a chart: a PNG for people (matplotlib Figure) and a plotly Figure
    for kedro-viz."""
    # Imported here: matplotlib and plotly cost ~0.4 s, which registering the pipelines
    # (every kedro command) and the live loop's use of these nodes need not pay. The
    # return type says Any for the same reason: Kedro resolves each node's type hints
    # when it runs it, and a name imported only for type checkers fails there.
    from .charts import gap_calendar_plot, gap_chart

    return gap_chart(gap_report), gap_calendar_plot(gap_report)


def fill_gaps(
    minute_bars: pd.DataFrame, minute_gaps: MinuteGaps, data_processing: dict
) -> pd.DataFrame:
    """Minute bars with gaps of up to `max_fill_minutes` filled from the last close.

    Filled minutes are flat (O=H=L=C = the close before the gap, volume 0) and flagged in
    `filled`; gaps at the start of a session and longer gaps stay empty.
    """
    filled, added = fill_minutes(minute_bars, minute_gaps.gaps, data_processing["max_fill_minutes"])
    logger.info("Filled %d missing minutes from the last close", added)
    return filled


def resample_to_session_bars(
    minute_bars: pd.DataFrame, sessions: pd.DataFrame, data_processing: dict
) -> pd.DataFrame:
    """OHLCV bars of `frequency` aligned to each session's open, never spanning sessions,
    with the number of minutes and the share of filled minutes in each bar."""
    timestamp_ns = utc_nanoseconds(minute_bars["timestamp"])
    position = session_positions(timestamp_ns, sessions)
    bars = resample_minutes(
        minute_bars, timestamp_ns, position, sessions, data_processing["frequency"]
    )
    if bars is None:
        return pd.DataFrame(columns=BAR_COLUMNS)
    # A bar that a session in progress cuts short is not finished: it is left out until a
    # later run has all of its minutes. Each bar's start lies in its own session: that of
    # its minutes, when every minute lies in one (sessions never overlap).
    bar_session = bars.session if (position >= 0).all() else None
    if bar_session is None:
        bar_session = session_positions(bars.start_ns, sessions)
    scheduled_ns = utc_nanoseconds(sessions["scheduled_close"])[bar_session]
    full_end = np.minimum(bars.start_ns + bar_step_ns(data_processing["frequency"]), scheduled_ns)
    finished = bars.end_ns >= full_end
    if finished.all():
        return bars.frame()
    logger.info("Left out %d bars not finished at the run's start", int((~finished).sum()))
    if not finished.any():
        # No row left: the empty table keeps the columns' types as selecting rows does.
        return bars.frame().loc[finished].reset_index(drop=True)
    return bars.frame(finished)


def add_features(
    hourly_bars: pd.DataFrame, instrument: dict, data_processing: dict
) -> tuple[pd.DataFrame, dict]:
    """The bars with the configured features, and the list of feature columns.

    Features restart after more than `max_missing_sessions` consecutive sessions without
    bars (a return across a months-long hole is not a return); each stretch drops its own
    warm-up rows, where the longest indicator has not enough history yet.
    """
    settings = data_processing["features"]
    bars, span, calendar_position = bars_in_calendar(hourly_bars, instrument)
    skipped = np.diff(calendar_position, prepend=calendar_position[0]) - 1
    stretch = np.cumsum(skipped > settings["max_missing_sessions"])
    rows, indicators, dropped, warm_up = indicators_by_stretch(
        bars["close"].to_numpy(dtype=float), stretch, settings
    )
    session = calendar_position[rows]
    calendar = calendar_columns(
        utc_nanoseconds(bars["timestamp"])[rows],
        span.open_ns[session],
        span.close_ns[session],
        span.weekday[session],
        settings,
    )
    features = joined_features(bars.iloc[rows].reset_index(drop=True), indicators, calendar)
    stretches = int(stretch[-1]) + 1
    logger.info(
        "Dropped %d warm-up rows (%d per stretch, %d stretches); %d feature rows remain",
        dropped,
        warm_up,
        stretches,
        len(features),
    )
    feature_list = {
        "features": [column for column in features.columns if column not in hourly_bars.columns],
        "frequency": data_processing["frequency"],
        "warm_up_rows_per_stretch": warm_up,
        "warm_up_rows_dropped": dropped,
        "stretches": stretches,
        "rows": len(features),
        "settings": settings,
    }
    return features, json_ready(feature_list)
