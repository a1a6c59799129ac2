"""The ingestion ledger file: what each source answered per session, kept whole when runs
overlap.

Two ingestion runs may work on one instrument at once (two windows, or a scheduled run
next to a manual one). Each loads the ledger when it starts and saves it after every
batch, so a plain rewrite would keep only the last writer's sessions and silently drop
the other run's. `IngestionLedgerDataset.save` therefore reads the file again under a
cross-process lock (`atomic_files.locked`, filelock on POSIX and Windows) and merges:
sessions it does not mention are kept, and of two entries for one session the one fetched
later wins (the new one on a tie).
"""

from __future__ import annotations

from typing import Any

from ml_lstm.atomic_files import locked
from ml_lstm.datasets import AtomicJSONDataset


def merge_ledgers(stored: dict, new: dict) -> dict:
    """`new` merged into `stored` session by session; the later `fetched_at` wins."""
    sessions = dict(stored.get("sessions", {}))
    for session, entry in new.get("sessions", {}).items():
        if entry.get("fetched_at", "") >= sessions.get(session, {}).get("fetched_at", ""):
            sessions[session] = entry
    return {**stored, **new, "sessions": sessions}


class IngestionLedgerDataset(AtomicJSONDataset):
    """An atomic JSON ledger whose saves merge, under a lock, with what is on disk."""

    def __init__(
        self,
        filepath: str,
        missing: Any = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        missing = {"sessions": {}} if missing is None else missing
        super().__init__(filepath, missing=missing, metadata=metadata)

    def save(self, data: dict) -> None:
        with locked(self._filepath):
            super().save(merge_ledgers(self.load(), data))
