"""IB's historical-data pacing rules, shared by the client (to obey them) and the simulator
(to enforce them).

IB documents three rules for historical data requests (they are strict for bars of 30 s or
less and "soft" for larger bars, which is why each rule can be switched off):

- no identical request within `identical_interval_s` (15 s),
- at most `same_contract_max` requests for the same contract, exchange and data type within
  `same_contract_window_s` (6 within 2 s),
- at most `window_max` requests within `window_s` (60 within 10 minutes).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PacingRules:
    """Limits on historical data requests; None switches a rule off."""

    identical_interval_s: float | None = 15.0
    same_contract_max: int | None = 6
    same_contract_window_s: float = 2.0
    window_max: int | None = 60
    window_s: float = 600.0

    @classmethod
    def from_parameters(cls, parameters: dict | None) -> PacingRules:
        """Rules from a `pacing` parameter block (missing keys keep IB's values)."""
        parameters = dict(parameters or {})
        unknown = set(parameters) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"Unknown pacing parameter(s) {sorted(unknown)}: expected some of "
                f"{sorted(cls.__dataclass_fields__)}."
            )
        return cls(**parameters)

    @classmethod
    def unlimited(cls) -> PacingRules:
        return cls(identical_interval_s=None, same_contract_max=None, window_max=None)


@dataclass
class PacingBook:
    """Times of past requests and how long a new one must wait to respect the rules."""

    rules: PacingRules
    clock: Callable[[], float] = time.monotonic
    _identical: dict[Hashable, float] = field(default_factory=dict)
    _per_contract: dict[Hashable, deque[float]] = field(default_factory=dict)
    _all: deque[float] = field(default_factory=deque)
    _guard: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def wait_time(self, request: Hashable, contract: Hashable, margin_s: float = 0.0) -> float:
        """Seconds until `request` (on `contract`) may be sent without breaking a rule."""
        now = self.clock()
        waits = [0.0]
        rules = self.rules
        if rules.identical_interval_s is not None and request in self._identical:
            waits.append(self._identical[request] + rules.identical_interval_s + margin_s - now)
        if rules.same_contract_max is not None:
            times = self._trim(self._per_contract.get(contract), rules.same_contract_window_s, now)
            if times is not None and len(times) >= rules.same_contract_max:
                waits.append(
                    times[-rules.same_contract_max] + rules.same_contract_window_s + margin_s - now
                )
        if rules.window_max is not None:
            self._trim(self._all, rules.window_s, now)
            if len(self._all) >= rules.window_max:
                waits.append(self._all[-rules.window_max] + rules.window_s + margin_s - now)
        return max(waits)

    def violation(self, request: Hashable, contract: Hashable) -> str | None:
        """Which rule sending `request` now would break, or None."""
        now = self.clock()
        rules = self.rules
        identical = rules.identical_interval_s
        if identical is not None and now - self._identical.get(request, -math.inf) < identical:
            return f"identical request within {rules.identical_interval_s:g} s"
        if rules.same_contract_max is not None:
            times = self._trim(self._per_contract.get(contract), rules.same_contract_window_s, now)
            if times is not None and len(times) >= rules.same_contract_max:
                return (
                    f"more than {rules.same_contract_max} requests for the same contract "
                    f"within {rules.same_contract_window_s:g} s"
                )
        if rules.window_max is not None:
            self._trim(self._all, rules.window_s, now)
            if len(self._all) >= rules.window_max:
                return f"more than {rules.window_max} requests within {rules.window_s:g} s"
        return None

    def reserve(self, request: Hashable, contract: Hashable, margin_s: float = 0.0) -> float:
        """Records `request` as sent now and returns 0 if the rules allow it, else the seconds
        to wait; atomic across threads (a shared book serves several event loops)."""
        with self._guard:
            delay = self.wait_time(request, contract, margin_s)
            if delay <= 0:
                self.record(request, contract)
                return 0.0
            return delay

    def record(self, request: Hashable, contract: Hashable) -> None:
        """Notes that `request` was sent now."""
        now = self.clock()
        self._identical[request] = now
        self._per_contract.setdefault(contract, deque()).append(now)
        self._all.append(now)

    def requests_sent(self) -> list[Hashable]:
        """Each distinct request recorded (the key of the identical-request rule)."""
        with self._guard:
            return list(self._identical)

    @staticmethod
    def _trim(times: deque[float] | None, window: float, now: float) -> deque[float] | None:
        if times is not None:
            while times and now - times[0] >= window:
                times.popleft()
        return times


class PacingLimiter:
    """Async gate in front of every historical request: waits until the rules allow it."""

    # Requests reach the server a little after we send them; keep some slack so that
    # jitter rarely makes the server count two of our requests closer than we did (a
    # violation it still causes is answered with error 162 and retried).
    MARGIN_S = 0.05

    def __init__(self, rules: PacingRules, book: PacingBook | None = None) -> None:
        self.book = book if book is not None else PacingBook(rules)

    @classmethod
    def for_server(cls, server: Hashable, rules: PacingRules) -> PacingLimiter:
        """A limiter on the book `shared_pacing` holds for `server`, else on a book of its own."""
        return cls(rules, _shared_books.get(server))

    async def acquire(self, request: Hashable, contract: Hashable) -> None:
        """Returns once `request` may be sent, and records it as sent."""
        while True:
            delay = self.book.reserve(request, contract, self.MARGIN_S)
            if delay <= 0:
                return
            await asyncio.sleep(delay)


# Books shared by every client of this process that talks to one server (host, port):
# IB counts a session's historical requests together, whichever client sent them.
_shared_books: dict[Hashable, PacingBook] = {}


@contextlib.contextmanager
def shared_pacing(server: Hashable, rules: PacingRules) -> Iterator[PacingBook]:
    """One pacing book for every limiter made with `PacingLimiter.for_server(server, ...)`
    while the block runs (e.g. `kedro live`'s catch-up backfills and its stream)."""
    book = _shared_books[server] = PacingBook(rules)
    try:
        yield book
    finally:
        if _shared_books.get(server) is book:
            del _shared_books[server]
