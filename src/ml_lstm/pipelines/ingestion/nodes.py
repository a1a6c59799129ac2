"""Ingestion nodes: decide which sessions to fetch, then fetch and flush them in batches.

The ledger (`ingestion_ledger.json` beside the raw files) records, per session, what the
source answered: `complete` (the source gave all it has for an ended session, even if some
minutes had no trade), `partial` (the session had not ended yet), `no_data` (IB error 162
"HMDS query returned no data"), `before_head` (before the contract's first data), or
`failed` (every retry failed). It is what stops a re-run from refetching forever.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pandas as pd

from ml_lstm.backfill import SessionResult, SessionStatus, expected_minutes
from ml_lstm.calendars import instrument_sessions, utc

from .run_report import BadRows, Progress
from .sources import fetch_sessions, session_windows, source_label

logger = logging.getLogger(__name__)

RAW_COLUMNS = ["timestamp", "open", "high", "low", "close", "volume"]
COMPLETE = SessionStatus.COMPLETE


def plan_backfill(
    stored: dict[str, Callable[[], pd.DataFrame]],
    ledger: dict,
    instrument: dict,
    ingestion: dict,
    run_info: dict,
) -> list[dict]:
    """Sessions of the backfill window that are missing or incomplete, with stored bar counts.

    A stored session is complete when the ledger says its source gave everything it has, or
    when it holds at least (1 - completeness_tolerance) of the calendar's minutes. Sessions
    without data, and sessions that failed `max_attempts` runs, are not asked for again.
    With `ingestion.refetch: true` every session of the window is fetched again.
    """
    end = ingestion.get("end_date") or _today(instrument, utc(run_info["started_at"]))
    schedule = instrument_sessions(instrument, ingestion["start_date"], end)
    entries = ledger.get("sessions", {})
    window = f"{ingestion['start_date']}..{end}"
    if refetch_requested(ingestion):
        return _refetch_plan(schedule, entries, stored, instrument["symbol"], window)
    tolerance = float(ingestion.get("completeness_tolerance", 0.05))
    max_attempts = int(ingestion.get("max_attempts", 3))
    plan, given_up, settled = [], [], 0
    for label, row in schedule.iterrows():
        session = label.strftime("%Y-%m-%d")
        entry = entries.get(session, {})
        if entry.get("failures", 0) >= max_attempts and entry.get("status") != COMPLETE:
            given_up.append(session)
            continue
        minimum = expected_minutes(row["open"], row["close"]) * (1 - tolerance)
        item = _to_fetch(session, entries, stored, minimum)
        if item is None:
            settled += 1
        else:
            plan.append(item)
    if given_up:
        logger.warning(
            "%s: %d session(s) failed %d runs and are no longer fetched (first %s); delete "
            "their entries in ingestion_ledger.json to try again",
            instrument["symbol"],
            len(given_up),
            max_attempts,
            given_up[0],
        )
    logger.info(
        "%s: %d sessions in %s: %d settled, %d to fetch",
        instrument["symbol"],
        len(schedule),
        window,
        settled,
        len(plan),
    )
    return plan


def _refetch_plan(
    schedule: pd.DataFrame, entries: dict, stored: dict[str, Callable], symbol: str, window: str
) -> list[dict]:
    """Every session of the window, whatever the ledger says (`ingestion.refetch`)."""
    logger.info(
        "%s: refetching all %d sessions in %s (ingestion.refetch): stored sessions are "
        "replaced by what the source gives now",
        symbol,
        len(schedule),
        window,
    )
    return [
        {"session": session, "stored_bars": _stored_count(session, entries, stored)}
        for session in schedule.index.strftime("%Y-%m-%d")
    ]


def _to_fetch(
    session: str, entries: dict, stored: dict[str, Callable], minimum: float
) -> dict | None:
    """The plan item of a session to fetch, or None when it is settled: the source said
    all it will, or it is stored with at least `minimum` bars and had ended when fetched."""
    status = entries.get(session, {}).get("status")
    if session not in stored:
        if status in (SessionStatus.NO_DATA, SessionStatus.BEFORE_HEAD):
            return None
        return {"session": session, "stored_bars": 0}
    if status == COMPLETE:
        return None
    count = _stored_count(session, entries, stored)
    if count >= minimum and status != SessionStatus.PARTIAL:
        return None
    return {"session": session, "stored_bars": count}


def _stored_count(session: str, entries: dict, stored: dict[str, Callable]) -> int:
    """Bars stored for a session: the ledger's count, else the file's rows (0 if none)."""
    if session not in stored:
        return 0
    entry = entries.get(session, {})
    return entry["bars"] if "bars" in entry else len(stored[session]())


def refetch_requested(ingestion: dict) -> bool:
    """`ingestion.refetch` (true on the command line: `--params ingestion.refetch=true`)."""
    refetch = ingestion.get("refetch", False)
    if not isinstance(refetch, bool):
        raise ValueError(f"ingestion.refetch must be true or false, not {refetch!r}.")
    return refetch


def fetch_minute_bars(
    plan: list[dict],
    ledger: dict,
    instrument: dict,
    ingestion: dict,
    connection: dict,
    run_info: dict,
) -> Iterator[tuple[dict[str, pd.DataFrame], dict]]:
    """Fetches the planned sessions; yields (new session files, updated ledger) per batch.

    Kedro saves each yielded batch before the next is fetched, so an interrupted run loses
    at most the batch in flight. A stored session is only replaced by one with more bars,
    or by whatever the source gives under `ingestion.refetch`. The run's start time is
    "now": a session closing after it is `partial`. Bars that data processing will reject
    are counted and reported once, with the command that replaces them.
    """
    now = utc(run_info["started_at"])
    refetch = refetch_requested(ingestion)
    ledger = {"sessions": dict(ledger.get("sessions", {}))}
    windows = session_windows(instrument, [item["session"] for item in plan])
    stored_bars = {item["session"]: item["stored_bars"] for item in plan}
    expected = {window.session: window.expected_minutes for window in windows}
    source = source_label(ingestion, instrument) if windows else ingestion["source"]
    progress, bad_rows = Progress(instrument["symbol"], len(windows)), BadRows(instrument["symbol"])
    replaced: set[str] = set()
    yielded = False
    for batch in fetch_sessions(windows, instrument, ingestion, now, connection):
        partitions = {}
        for result in batch:
            bars = _new_bars(result, 0 if refetch else stored_bars.get(result.session, 0))
            if bars is not None:
                partitions[result.session] = to_raw_format(bars)
            previous = ledger["sessions"].get(result.session, {})
            if refetch:  # a fresh start for the session, attempts aside
                previous = {"attempts": previous.get("attempts", 0)}
            ledger["sessions"][result.session] = _ledger_entry(
                previous, result, expected, source, now
            )
        bad_rows.check(partitions)
        replaced.update(partitions)
        progress.advance(batch)
        yielded = True
        yield partitions, ledger
    progress.summary(ledger, [window.session for window in windows])
    bad_rows.report(source)
    if refetch:
        _warn_kept(instrument["symbol"], sorted(s for s, n in stored_bars.items() if n), replaced)
    if not yielded:
        yield {}, ledger


def to_raw_format(bars: pd.DataFrame) -> pd.DataFrame:
    """Raw storage layout: RAW_COLUMNS with the timestamp as ISO-8601 UTC text."""
    raw = bars.loc[:, RAW_COLUMNS].copy()
    raw["timestamp"] = raw["timestamp"].dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return raw


def _new_bars(result: SessionResult, stored: int) -> pd.DataFrame | None:
    """The result's bars if they are to be stored (more than the `stored` count)."""
    if result.bars is None or result.bars.empty:
        return None
    if len(result.bars) < stored:
        logger.info(
            "%s: kept the stored %d bars (the source now gives %d)",
            result.session,
            stored,
            len(result.bars),
        )
        return None
    return result.bars


def _ledger_entry(
    previous: dict, result: SessionResult, expected: dict, source: str, now: pd.Timestamp
) -> dict:
    entry = {
        "status": result.status,
        "expected": expected.get(result.session, 0),
        "attempts": previous.get("attempts", 0) + result.attempts,
        "failures": previous.get("failures", 0) + (result.status == SessionStatus.FAILED),
        "source": source,
        "fetched_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if result.bars is not None and not result.bars.empty:
        entry["bars"] = max(len(result.bars), previous.get("bars", 0))
    elif result.status == SessionStatus.FAILED and "bars" in previous:
        entry["bars"] = previous["bars"]
    if result.status == SessionStatus.FAILED and "bars" in previous:
        entry["status"] = previous.get("status", SessionStatus.FAILED)
    if result.error:
        entry["error"] = result.error
    return entry


def _warn_kept(symbol: str, stored: list[str], replaced: set[str]) -> None:
    kept = [session for session in stored if session not in replaced]
    if kept:
        logger.warning(
            "%s: refetch: %d stored session(s) got no new bars from the source and were kept "
            "(first %s)",
            symbol,
            len(kept),
            kept[0],
        )


def _today(instrument: dict, now: pd.Timestamp) -> str:
    """`end_date: null` means the run's start date in the instrument's time zone."""
    return now.tz_convert(instrument.get("timezone", "UTC")).strftime("%Y-%m-%d")
