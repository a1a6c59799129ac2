"""What a backfill asks each source for, and what it gets back: the same for IB, the
simulator, the synthetic market and files.

A `SessionWindow` is one trading session to fetch; a `SessionResult` is what became of it,
with the `SessionStatus` that the ingestion ledger records.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pandas as pd


class SessionStatus(StrEnum):
    """What a source answered for one session (a `str`, so the ledger JSON holds the text)."""

    # The source gave all it has for an ended session, even if some minutes had no trade.
    COMPLETE = "complete"
    # The session had not ended at the run's start: the next run fetches it again.
    PARTIAL = "partial"
    # IB error 162 "HMDS query returned no data" for an ended session.
    NO_DATA = "no_data"
    # The session ended before the contract's first data (IB's head timestamp).
    BEFORE_HEAD = "before_head"
    # Every retry failed.
    FAILED = "failed"


def expected_minutes(open_: pd.Timestamp, close: pd.Timestamp) -> int:
    """Minutes between a session's open and close (the most 1-minute bars it can have)."""
    return int((close - open_) / pd.Timedelta(minutes=1))


@dataclass(frozen=True)
class SessionWindow:
    """One trading session to fetch: its label and its UTC open and close."""

    session: str
    open: pd.Timestamp
    close: pd.Timestamp

    @property
    def expected_minutes(self) -> int:
        return expected_minutes(self.open, self.close)


@dataclass
class SessionResult:
    """What became of one session: bars (complete or partial) or why there are none."""

    session: str
    status: SessionStatus
    bars: pd.DataFrame | None = None
    attempts: int = 0
    error: str = ""
