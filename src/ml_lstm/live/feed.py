"""The live feed of one instrument: a read-only ib_insync connection, a
`reqHistoricalData(..., keepUpToDate=True)` subscription to 1-minute bars, and the feed's
clock (bar times and TWS's `currentTime`, never this machine's).

What goes wrong is reported, not hidden: a dropped socket, error 1100 (until 1101/1102
says the connection is back), an error on the subscription, or no update for
`stall_after_s` inside a session each set `fault`; the loop then reconnects with backoff,
backfills and subscribes again. Requests go through the same pacing book as the catch-up
backfills' (`pacing.shared_pacing`); the connection is always `readonly=True` and nothing
here can send an order.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

import pandas as pd
from ib_insync import IB
from ib_insync.objects import BarDataList
from ib_insync.wrapper import RequestError

from ml_lstm.calendars import utc
from ml_lstm.ib_connection import ConnectionSettings, RequestSettings, hide_connection_in_logs
from ml_lstm.ib_data import build_contract, describe
from ml_lstm.pacing import PacingBook, PacingLimiter

logger = logging.getLogger(__name__)

DAY_S = 86_400


class FeedFault(ConnectionError):
    """The stream cannot go on as it is: reconnect, backfill and subscribe again."""


class LiveFeed:
    """One instrument's subscription over one read-only connection."""

    def __init__(
        self,
        instrument: dict,
        connection: ConnectionSettings,
        requests: RequestSettings,
        use_rth: bool | None = None,
    ) -> None:
        self.contract = build_contract(instrument)
        self.symbol = instrument["symbol"]
        self.what_to_show = instrument.get("what_to_show", "TRADES")
        self.use_rth = bool(instrument.get("use_rth", True) if use_rth is None else use_rth)
        self.connection = connection
        hide_connection_in_logs(connection)
        self.requests = requests
        # The same book as the catch-up backfills' (`pacing.shared_pacing`, opened by the runner).
        self._limiter = PacingLimiter.for_server(
            (connection.host, connection.port), requests.pacing
        )
        self._ib = IB()
        self._ib.RaiseRequestErrors = True
        self._ib.errorEvent += self._on_error
        self._ib.disconnectedEvent += self._on_disconnected
        self._qualified = False
        self.bars: BarDataList | None = None
        # Set whenever something arrives (an update, a fault); the loop waits on it.
        self.changed = asyncio.Event()
        self.fault: str | None = None
        self.offline = False
        self._offline_since = 0.0
        self.last_update = time.monotonic()
        # perf_counter of the newest arrival (update or currentTime): when a bar that it
        # completes was known to be complete; and this thread's CPU time then.
        self.arrived_at = time.perf_counter()
        self.arrived_cpu = time.thread_time()
        self.now: pd.Timestamp | None = None
        self._samples: list[tuple[pd.Timestamp, float]] = []

    # -- connection --------------------------------------------------------------------

    @property
    def pacing_book(self) -> PacingBook:
        return self._limiter.book

    @property
    def connected(self) -> bool:
        return self._ib.isConnected()

    async def connect(self) -> None:
        if self._ib.isConnected():
            return
        self.fault = None
        self.offline = False
        try:
            await self._ib.connectAsync(
                self.connection.host,
                self.connection.port,
                clientId=self.connection.client_id,
                timeout=self.requests.connect_timeout_s,
                readonly=True,
            )
        except (OSError, TimeoutError) as error:
            self._ib.disconnect()
            raise FeedFault(f"could not connect to TWS ({type(error).__name__})") from None
        if not self._qualified:
            qualified = await self._ib.qualifyContractsAsync(self.contract)
            if not qualified:
                raise ValueError(f"Unknown contract {describe(self.contract)} at TWS.")
            self._qualified = True

    def disconnect(self) -> None:
        self.cancel()
        self._ib.disconnect()

    def _on_disconnected(self) -> None:
        self._set_fault("the socket to TWS closed")

    def _on_error(self, req_id: int, code: int, message: str, _contract: object) -> None:
        if code == 1100:
            logger.warning("%s: TWS lost its connection to IB (1100)", self.symbol)
            self.offline = True
            self._offline_since = time.monotonic()
        elif code in (1101, 1102):
            logger.info("%s: TWS connection to IB restored (%d)", self.symbol, code)
            self.offline = False
            # Bars may have been missed meanwhile: backfill and subscribe again.
            self._set_fault(f"connectivity lost and restored ({code})")
        elif self.bars is not None and req_id == self.bars.reqId and code not in (2104, 2106):
            self._set_fault(f"subscription error {code}: {message}")

    def _set_fault(self, fault: str) -> None:
        if self.fault is None:
            self.fault = fault
        self.changed.set()

    def _arrived(self) -> None:
        self.arrived_at = time.perf_counter()
        self.arrived_cpu = time.thread_time()

    # -- the feed's clock --------------------------------------------------------------

    async def current_time(self) -> pd.Timestamp:
        """TWS's time (and, before answering, the simulator sends the updates owed)."""
        try:
            answer = await asyncio.wait_for(
                self._ib.reqCurrentTimeAsync(), self.requests.request_timeout_s
            )
        except (TimeoutError, ConnectionError, RequestError) as error:
            raise FeedFault(f"no currentTime from TWS ({type(error).__name__})") from None
        self._arrived()
        now = utc(answer)
        self.advance_clock(now)
        self._samples = [*self._samples[-1:], (now, time.monotonic())]
        return self.now

    def advance_clock(self, moment: pd.Timestamp) -> None:
        if self.now is None or moment > self.now:
            self.now = moment

    @property
    def measured_speed(self) -> bool:
        """Whether two clock readings are known (`speed` is measured, not assumed)."""
        return len(self._samples) == 2

    def speed(self) -> float:
        """Feed seconds per real second between the last two clock readings (at least 1)."""
        if len(self._samples) < 2:
            return 1.0
        (then, real_then), (now, real_now) = self._samples
        elapsed = real_now - real_then
        if elapsed <= 0:
            return 1.0
        return max(1.0, (now - then).total_seconds() / elapsed)

    # -- the subscription --------------------------------------------------------------

    async def subscribe(self, since: pd.Timestamp) -> BarDataList:
        """1-minute bars from `since` (its answer backfills what was missed), kept up to date."""
        now = self.now or await self.current_time()
        seconds = max(60, math.ceil((now - since).total_seconds()))
        duration = f"{seconds} S" if seconds <= DAY_S else f"{math.ceil(seconds / DAY_S)} D"
        request = ("keepUpToDate", duration, self.what_to_show, self.use_rth)
        await self._limiter.acquire(request, (self.contract.conId, self.what_to_show))
        try:
            bars = await self._ib.reqHistoricalDataAsync(
                self.contract,
                "",
                duration,
                "1 min",
                self.what_to_show,
                self.use_rth,
                formatDate=2,
                keepUpToDate=True,
                timeout=self.requests.request_timeout_s,
            )
        except RequestError as error:
            raise FeedFault(f"subscription refused: error {error.code} {error.message}") from None
        except ConnectionError:
            raise FeedFault("the socket to TWS closed") from None
        if self.fault is not None:
            raise FeedFault(self.fault)
        if not bars:
            raise FeedFault("the subscription's first answer held no bar")
        self.bars = bars
        bars.updateEvent += self._on_update
        self.last_update = time.monotonic()
        self._arrived()
        self.advance_clock(utc(bars[-1].date))
        self.changed.set()
        return bars

    async def historical_minutes(self, since: pd.Timestamp, end: pd.Timestamp) -> list:
        """TWS's 1-minute bars from `since` to `end` (a plain historical request over this
        connection, counted in the same pacing book); empty when TWS sent none in time."""
        seconds = max(60, math.ceil((end - since).total_seconds()))
        duration = f"{seconds} S" if seconds <= DAY_S else f"{math.ceil(seconds / DAY_S)} D"
        end_text = utc(end).strftime("%Y%m%d-%H:%M:%S")
        request = (end_text, duration, self.what_to_show, self.use_rth)
        await self._limiter.acquire(request, (self.contract.conId, self.what_to_show))
        try:
            return await self._ib.reqHistoricalDataAsync(
                self.contract,
                end_text,
                duration,
                "1 min",
                self.what_to_show,
                self.use_rth,
                formatDate=2,
                timeout=self.requests.request_timeout_s,
            )
        except RequestError as error:
            raise FeedFault(f"historical request refused: error {error.code}") from None
        except ConnectionError:
            raise FeedFault("the socket to TWS closed") from None

    def _on_update(self, bars: BarDataList, has_new_bar: bool) -> None:
        self.last_update = time.monotonic()
        if has_new_bar:
            self._arrived()
            self.advance_clock(utc(bars[-1].date))
            self.changed.set()

    def cancel(self) -> None:
        if self.bars is not None:
            self.bars.updateEvent -= self._on_update
            if self._ib.isConnected():
                self._ib.cancelHistoricalData(self.bars)
            self.bars = None

    def check_stall(self, in_session: bool, stall_after_s: float) -> None:
        """A fault when no update came for `stall_after_s` inside a session, or when 1102
        has not followed 1100 within the requests' `outage_timeout_s`."""
        waited = time.monotonic() - self.last_update
        if self.offline:
            if time.monotonic() - self._offline_since > self.requests.outage_timeout_s:
                self._set_fault("TWS did not restore its connection to IB (no 1102)")
            return
        if in_session and self.bars is not None and waited > stall_after_s:
            self._set_fault(f"no update for {waited:.1f} s (stalled feed)")
