"""What a fetch tells the user as it goes: progress per batch, a summary of the ledger
statuses, and the stored bars that data processing will reject (with how to replace them).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from ml_lstm.backfill import SessionResult
from ml_lstm.bar_checks import Reason, check_rows

logger = logging.getLogger(__name__)

# Sessions named in the bad-rows warning; the rest are counted.
SESSIONS_SHOWN = 3
REFETCH_COMMAND = (
    "kedro run --pipelines ingestion --params "
    "ingestion.refetch=true,ingestion.start_date={start},ingestion.end_date={end}"
)


class Progress:
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


class BadRows:
    """Stored bars that fail data processing's row checks (`validation.check_rows`), counted
    by reason over a run and reported once, with the command that replaces them."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.counts: dict[Reason, int] = {}
        self.sessions: list[str] = []

    def check(self, partitions: dict[str, pd.DataFrame]) -> None:
        for session, bars in partitions.items():
            reasons = check_rows(bars).reason
            if not reasons.any():
                continue
            self.sessions.append(session)
            codes, counts = np.unique(reasons[reasons > 0], return_counts=True)
            for code, count in zip(codes, counts, strict=True):
                reason = Reason(int(code))
                self.counts[reason] = self.counts.get(reason, 0) + int(count)

    def report(self, source: str) -> None:
        if not self.sessions:
            return
        sessions = sorted(self.sessions)
        shown = ", ".join(sessions[:SESSIONS_SHOWN])
        more = (
            f" and {len(sessions) - SESSIONS_SHOWN} more" if len(sessions) > SESSIONS_SHOWN else ""
        )
        reasons = ", ".join(
            f"{count} {reason.key}" for reason, count in sorted(self.counts.items())
        )
        logger.warning(
            "%s: %d stored bars from %s fail data processing's checks (%s), in session(s) %s%s; "
            "data processing will reject them. Correct the source, then replace the stored "
            "sessions with: %s",
            self.symbol,
            sum(self.counts.values()),
            source,
            reasons,
            shown,
            more,
            REFETCH_COMMAND.format(start=sessions[0], end=sessions[-1]),
        )
