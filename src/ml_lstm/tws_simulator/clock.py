"""The simulator's own clock: a replayed day runs at `speed` simulated seconds per real one.

Without a start the clock is the machine's (speed 1), as for a real TWS. Everything the
simulator says about "now" (the handshake's connection time, `reqCurrentTime`, which bars
have completed, when a streamed bar is updated, timed faults) reads this clock, so a
client that takes its time from the feed behaves the same at 1x and at 6000x.
"""

from __future__ import annotations

import time

import pandas as pd

from ml_lstm.calendars import utc


class SimulatorClock:
    """Simulated UTC time: `start` when created, advancing `speed` times faster than real."""

    def __init__(
        self, start: str | pd.Timestamp | None = None, speed: float = 1.0, paused: bool = False
    ) -> None:
        if speed <= 0:
            raise ValueError(f"Simulator speed must be positive, got {speed}.")
        self.speed = float(speed) if start is not None else 1.0
        self._start = utc(start) if start is not None else None
        # A paused replay shows `start` until `run` (e.g. while a client loads its model).
        self._started: float | None = None if paused and start is not None else time.monotonic()

    def run(self) -> None:
        """Starts a paused clock (no effect on a running one)."""
        if self._started is None:
            self._started = time.monotonic()

    @property
    def replaying(self) -> bool:
        """Whether the clock replays a chosen time (rather than being the machine's)."""
        return self._start is not None

    def now(self) -> pd.Timestamp:
        if self._start is None:
            return pd.Timestamp.now(tz="UTC")
        if self._started is None:
            return self._start
        elapsed = (time.monotonic() - self._started) * self.speed
        return self._start + pd.Timedelta(seconds=elapsed)

    def real_seconds(self, simulated_seconds: float) -> float:
        """How long `simulated_seconds` last in real time."""
        return simulated_seconds / self.speed

    def real_seconds_until(self, moment: pd.Timestamp) -> float:
        """Real seconds until the clock shows `moment` (0 when it has passed)."""
        return max(0.0, self.real_seconds((moment - self.now()).total_seconds()))
