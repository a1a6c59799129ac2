"""Ingestion nodes: decide which sessions to fetch, then fetch and flush them in batches.

The ledger (`ingestion_ledger.json` beside the raw files) records, per session, what the
source answered: `complete` (the source gave all it has for an ended session, even if some
minutes had no trade), `partial` (the session had not ended yet), `no_data` (IB error 162
"HMDS query returned no data"), `before_head` (before the contract's first data), or
`failed` (every retry failed). It is what stops a re-run from refetching forever.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import pandas as pd

from ml_lstm.backfill import SessionResult, SessionStatus, expected_minutes
from ml_lstm.calendars import instrument_sessions, utc

from .sources import fetch_sessions, session_windows, source_label

logger = logging.getLogger(__name__)

RAW_COLUMNS = ["timestamp", "open", "high", "low", "close", "volume"]
# Statuses after which a session is not asked for again.
SETTLED = frozenset({SessionStatus.COMPLETE, SessionStatus.NO_DATA, SessionStatus.BEFORE_HEAD})


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
    """
    end = ingestion.get("end_date") or _today(instrument, utc(run_info["started_at"]))
    schedule = instrument_sessions(instrument, ingestion["start_date"], end)
    entries = ledger.get("sessions", {})
    tolerance = float(ingestion.get("completeness_tolerance", 0.05))
    max_attempts = int(ingestion.get("max_attempts", 3))
    plan, given_up, settled = [], [], 0
    for label, row in schedule.iterrows():
        session = label.strftime("%Y-%m-%d")
        entry = entries.get(session, {})
        status = entry.get("status")
        if entry.get("failures", 0) >= max_attempts and status != SessionStatus.COMPLETE:
            given_up.append(session)
            continue
        if session not in stored:
            if status in (SessionStatus.NO_DATA, SessionStatus.BEFORE_HEAD):
                settled += 1
                continue
            plan.append({"session": session, "stored_bars": 0})
            continue
        if status == SessionStatus.COMPLETE:
            settled += 1
            continue
        count = entry["bars"] if "bars" in entry else len(stored[session]())
        expected = expected_minutes(row["open"], row["close"])
        if count >= expected * (1 - tolerance) and status != SessionStatus.PARTIAL:
            settled += 1
            continue
        plan.append({"session": session, "stored_bars": count})
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
        "%s: %d sessions in %s..%s: %d settled, %d to fetch",
        instrument["symbol"],
        len(schedule),
        ingestion["start_date"],
        end,
        settled,
        len(plan),
    )
    return plan


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
    at most the batch in flight. A stored session is only replaced by one with more bars.
    The run's start time is "now": a session closing after it is `partial`.
    """
    now = utc(run_info["started_at"])
    ledger = {"sessions": dict(ledger.get("sessions", {}))}
    windows = session_windows(instrument, [item["session"] for item in plan])
    stored_bars = {item["session"]: item["stored_bars"] for item in plan}
    expected = {window.session: window.expected_minutes for window in windows}
    source = source_label(ingestion, instrument) if windows else ingestion["source"]
    progress = _Progress(instrument["symbol"], len(windows))
    yielded = False
    for batch in fetch_sessions(windows, instrument, ingestion, now, connection):
        partitions = {}
        for result in batch:
            bars = _keep_if_better(result, stored_bars.get(result.session, 0))
            if bars is not None:
                partitions[result.session] = to_raw_format(bars)
            ledger["sessions"][result.session] = _ledger_entry(
                ledger["sessions"].get(result.session, {}), result, expected, source, now
            )
        progress.advance(batch)
        yielded = True
        yield partitions, ledger
    progress.summary(ledger, [window.session for window in windows])
    if not yielded:
        yield {}, ledger


def to_raw_format(bars: pd.DataFrame) -> pd.DataFrame:
    """Raw storage layout: RAW_COLUMNS with the timestamp as ISO-8601 UTC text."""
    raw = bars.loc[:, RAW_COLUMNS].copy()
    raw["timestamp"] = raw["timestamp"].dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return raw


def _keep_if_better(result: SessionResult, stored: int) -> pd.DataFrame | None:
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


def _today(instrument: dict, now: pd.Timestamp) -> str:
    """`end_date: null` means the run's start date in the instrument's time zone."""
    return now.tz_convert(instrument.get("timezone", "UTC")).strftime("%Y-%m-%d")


class _Progress:
    """One log line per batch: sessions done/total, bars, elapsed time and ETA."""

    def __init__(self, symbol: str, total: int) -> None:
        self.symbol = symbol
        self.total = total
        self.done = 0
        self.bars = 0
        self.start = time.perf_counter()

    def advance(self, batch: list[SessionResult]) -> None:
        self.done += len(batch)
        self.bars += sum(len(r.bars) for r in batch if r.bars is not None)
        elapsed = time.perf_counter() - self.start
        eta = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        logger.info(
            "%s: %d/%d sessions (%.0f%%), %s bars, %.1f s elapsed, ETA %.1f s",
            self.symbol,
            self.done,
            self.total,
            100 * self.done / max(self.total, 1),
            f"{self.bars:,}",
            elapsed,
            eta,
        )

    def summary(self, ledger: dict, sessions: list[str]) -> None:
        statuses: dict[str, int] = {}
        for session in sessions:
            status = ledger["sessions"].get(session, {}).get("status", "not fetched")
            statuses[status] = statuses.get(status, 0) + 1
        if sessions:
            counts = ", ".join(f"{count} {status}" for status, count in sorted(statuses.items()))
            logger.info("%s: fetched %d sessions: %s", self.symbol, len(sessions), counts)
