"""Stopping the live loop: SIGINT / SIGTERM, or the kill-switch file appearing.

Every wait of the loop is a wait on `Stopper.event` (with a timeout), so a stop is noticed
within one check of the kill switch (`CHECK_S`) or at once for a signal; the write in
progress always finishes first, since writes are never interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path

logger = logging.getLogger(__name__)


class Stopper:
    CHECK_S = 0.25

    def __init__(self, kill_switch_file: Path) -> None:
        self.kill_switch_file = kill_switch_file
        self.event = asyncio.Event()
        self.reason: str | None = None

    @property
    def stopped(self) -> bool:
        return self.event.is_set()

    def stop(self, reason: str) -> None:
        if not self.event.is_set():
            self.reason = reason
            logger.info("Stopping: %s", reason)
            self.event.set()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            name = signal.Signals(signum).name
            try:
                loop.add_signal_handler(signum, self.stop, name)
            except NotImplementedError:  # Windows: no loop signal handlers
                signal.signal(signum, lambda *_, n=name: loop.call_soon_threadsafe(self.stop, n))

    async def watch_kill_switch(self) -> None:
        while not self.stopped:
            if self.kill_switch_file.exists():
                self.stop(f"kill-switch file {self.kill_switch_file.name} exists")
                return
            await self.wait(self.CHECK_S)

    async def wait(self, seconds: float) -> bool:
        """Sleeps `seconds` unless stopped first; True when stopped."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), max(seconds, 0.0))
        return self.stopped
