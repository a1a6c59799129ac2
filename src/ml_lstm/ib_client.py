"""Historical 1-minute bars from TWS / IB Gateway through ib_insync, read-only.

`HistoricalBarsClient.fetch` backfills a list of sessions, one request per session, with up
to `max_concurrent_requests` outstanding requests, IB's pacing rules, retries with backoff
on pacing errors and timeouts, and reconnection after a dropped socket or a connectivity
loss (error 1100). It is a plain generator: it drives its own asyncio event loop between
yields, so the caller (a Kedro generator node) can save each batch of finished sessions
while the remaining requests wait.

The connection is always read-only (`readonly=True`); nothing here places, modifies or
cancels an order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import pandas as pd
from ib_insync import IB
from ib_insync.objects import BarDataList
from ib_insync.wrapper import RequestError

from ml_lstm.backfill import SessionResult, SessionStatus, SessionWindow
from ml_lstm.calendars import utc
from ml_lstm.ib_connection import ConnectionSettings, RequestSettings, hide_connection_in_logs
from ml_lstm.ib_data import IngestionError, bars_to_frame, build_contract, describe
from ml_lstm.pacing import PacingLimiter

logger = logging.getLogger(__name__)


class ConnectivityLost(ConnectionError):
    """TWS reported 1100: requests in flight will not be answered."""


class HistoricalBarsClient:
    """Fetches minute bars of whole sessions for one contract over one read-only connection.

    `now` (tz-aware) is the caller's "now", normally the run's start: a session that closes
    after it is `partial`, and "no data" for it means "not yet" rather than `no_data`.
    """

    def __init__(
        self,
        instrument: dict,
        connection: ConnectionSettings,
        settings: RequestSettings,
        what_to_show: str | None = None,
        use_rth: bool | None = None,
        *,
        now: pd.Timestamp,
    ) -> None:
        if now.tzinfo is None:
            raise ValueError("HistoricalBarsClient: `now` must be tz-aware (UTC).")
        self.now = now.tz_convert("UTC")
        self.contract = build_contract(instrument)
        self.connection = connection
        hide_connection_in_logs(connection)
        self.settings = settings
        self.what_to_show = what_to_show or instrument.get("what_to_show", "TRADES")
        self.use_rth = bool(instrument.get("use_rth", True) if use_rth is None else use_rth)
        self._ib = IB()
        self._ib.RaiseRequestErrors = True
        self._ib.errorEvent += self._on_error
        self._online = asyncio.Event()
        self._reconnect_lock = asyncio.Lock()
        self._reconnects = 0
        self._in_flight: dict[int, asyncio.Future] = {}
        # The book `kedro live` shares between its catch-ups and its stream, if one is open.
        self._limiter = PacingLimiter.for_server(
            (connection.host, connection.port), settings.pacing
        )
        self.head_timestamp: pd.Timestamp | None = None

    # -- public, synchronous -------------------------------------------------------------

    def fetch(self, windows: list[SessionWindow], batch_size: int) -> Iterator[list[SessionResult]]:
        """Yields lists of at most `batch_size` finished sessions until all are done."""
        loop = asyncio.new_event_loop()
        previous = _current_loop()
        asyncio.set_event_loop(loop)
        tasks: list[asyncio.Task] = []
        try:
            loop.run_until_complete(self._start())
            finished: asyncio.Queue[SessionResult] = asyncio.Queue()
            semaphore = asyncio.Semaphore(self.settings.max_concurrent_requests)
            tasks = [
                loop.create_task(self._fetch_into(window, semaphore, finished))
                for window in windows
            ]
            remaining = len(windows)
            while remaining:
                batch = loop.run_until_complete(_take(finished, min(batch_size, remaining)))
                remaining -= len(batch)
                yield batch
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self._ib.disconnect()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()
            asyncio.set_event_loop(previous)

    # -- connection ----------------------------------------------------------------------

    async def _start(self) -> None:
        await self._connect()
        await self._qualify()
        self.head_timestamp = await self._head_timestamp()

    async def _connect(self) -> None:
        try:
            await self._ib.connectAsync(
                self.connection.host,
                self.connection.port,
                clientId=self.connection.client_id,
                timeout=self.settings.connect_timeout_s,
                readonly=True,
            )
        except (OSError, TimeoutError) as error:
            raise ConnectionError(
                "Could not connect to TWS / IB Gateway at the configured host and port "
                "(conf/local/credentials.yml `ib`, or IB_HOST / IB_PORT / IB_CLIENT_ID): is it "
                "running, with 'Enable ActiveX and Socket Clients' on and this client id free? "
                f"({type(error).__name__})"
            ) from None
        self._online.set()

    async def _reconnect(self) -> None:
        async with self._reconnect_lock:
            if self._ib.isConnected() and self._online.is_set():
                return
            while True:
                self._reconnects += 1
                if self._reconnects > self.settings.max_reconnects:
                    raise ConnectionError(
                        f"Gave up after {self.settings.max_reconnects} reconnections to TWS."
                    )
                delay = self._backoff(self._reconnects)
                logger.warning(
                    "%s: connection to TWS lost; reconnecting in %.1f s (%d/%d)",
                    self.contract.symbol,
                    delay,
                    self._reconnects,
                    self.settings.max_reconnects,
                )
                self._ib.disconnect()
                await asyncio.sleep(delay)
                try:
                    await self._connect()
                    return
                except ConnectionError:
                    continue

    async def _qualify(self) -> None:
        try:
            qualified = await asyncio.wait_for(
                self._ib.qualifyContractsAsync(self.contract), self.settings.request_timeout_s
            )
        except RequestError as error:
            qualified = []
            if error.code != 200:
                raise IngestionError(
                    f"Contract {describe(self.contract)}: {error.message} (error {error.code})"
                ) from None
        if not qualified:
            raise IngestionError(
                f"Unknown contract: IB has no security definition for symbol "
                f"{self.contract.symbol!r} ({describe(self.contract)}). Check `symbol`, "
                "`sec_type`, `exchange` and `currency` in the instrument's parameters."
            )
        logger.info("Qualified %s as conId %d", describe(self.contract), self.contract.conId)

    async def _head_timestamp(self) -> pd.Timestamp | None:
        try:
            head = await asyncio.wait_for(
                self._ib.reqHeadTimeStampAsync(self.contract, self.what_to_show, self.use_rth, 2),
                self.settings.request_timeout_s,
            )
        except (RequestError, TimeoutError, ValueError) as error:
            logger.warning(
                "%s: no head timestamp (%s); fetching every session", self.contract.symbol, error
            )
            return None
        stamp = utc(head)
        logger.info("%s: data available from %s", self.contract.symbol, stamp)
        return stamp

    def _on_error(self, req_id: int, code: int, message: str, _contract: object) -> None:
        if code == 1100:
            logger.warning("TWS lost its connection to IB (1100); waiting for it to return")
            self._online.clear()
            for future in self._in_flight.values():
                if not future.done():
                    future.set_exception(ConnectivityLost(message))
        elif code in (1101, 1102):
            logger.info("TWS connection to IB restored (%d)", code)
            self._online.set()

    # -- requests ------------------------------------------------------------------------

    async def _fetch_into(
        self, window: SessionWindow, semaphore: asyncio.Semaphore, finished: asyncio.Queue
    ) -> None:
        if self.head_timestamp is not None and window.close <= self.head_timestamp:
            await finished.put(SessionResult(window.session, SessionStatus.BEFORE_HEAD))
            return
        try:
            async with semaphore:
                result = await self._fetch_session(window)
        except Exception as error:  # handed to the consumer, which re-raises it
            await finished.put(error)
            return
        await finished.put(result)

    async def _fetch_session(self, window: SessionWindow) -> SessionResult:
        attempts = 0
        failures = 0
        last_error = ""
        while failures <= self.settings.max_retries:
            await self._wait_until_online()
            attempts += 1
            try:
                bars = await self._request(window)
            except RequestError as error:
                if self._no_data(error):
                    # Before a session has ended "no data" may only mean "not yet".
                    status = self._finished_status(window, SessionStatus.NO_DATA)
                    return SessionResult(window.session, status, attempts=attempts)
                self._raise_if_fatal(error, window)
                last_error = f"error {error.code}: {error.message}"
                failures += 1
            except TimeoutError:
                last_error = f"no answer within {self.settings.request_timeout_s:g} s"
                failures += 1
            except ConnectivityLost:
                last_error = "connectivity lost (1100)"
                continue
            except ConnectionError:
                last_error = "socket closed"
                await self._reconnect()
                continue
            else:
                status = self._finished_status(window)
                return SessionResult(window.session, status, bars, attempts=attempts)
            if failures <= self.settings.max_retries:
                await self._wait_before_retry(window, last_error, failures)
        return SessionResult(
            window.session, SessionStatus.FAILED, attempts=attempts, error=last_error
        )

    @staticmethod
    def _no_data(error: RequestError) -> bool:
        return error.code == 162 and "returned no data" in error.message.lower()

    def _raise_if_fatal(self, error: RequestError, window: SessionWindow) -> None:
        """Errors that no retry can fix end the run with what to change."""
        text = error.message.lower()
        if error.code == 162 and "no data of type" in text:
            raise IngestionError(
                f"{describe(self.contract)}: IB has no {self.what_to_show} data for it "
                f"({error.message}); set what_to_show in the instrument's parameters "
                "(MIDPOINT for spot metals and FX)."
            ) from None
        if error.code in (200, 321, 354) or "permission" in text:
            raise IngestionError(
                f"{describe(self.contract)} session {window.session}: {error.message} "
                f"(error {error.code})"
            ) from None

    async def _wait_before_retry(self, window: SessionWindow, error: str, failures: int) -> None:
        delay = self._backoff(failures)
        logger.warning(
            "%s %s: %s; retry %d/%d in %.1f s",
            self.contract.symbol,
            window.session,
            error,
            failures,
            self.settings.max_retries,
            delay,
        )
        await asyncio.sleep(delay)

    async def _wait_until_online(self) -> None:
        if not self._ib.isConnected():
            await self._reconnect()
        if self._online.is_set():
            return
        try:
            await asyncio.wait_for(self._online.wait(), self.settings.outage_timeout_s)
        except TimeoutError:
            # TWS never said the connection came back: start again from a fresh socket.
            self._ib.disconnect()
            self._online.clear()
            await self._reconnect()

    async def _request(self, window: SessionWindow) -> pd.DataFrame:
        ib = self._ib
        # A session in progress is asked up to now's minute, not its close: the request then
        # differs from an earlier one of the same session (IB's identical-request rule would
        # hold a catch-up, e.g. kedro live's after a drop, for 15 s) and holds ended minutes.
        until = self.now.floor("min")
        until = until if window.open < until < window.close else window.close
        seconds = int((until - window.open).total_seconds())
        end = until.strftime("%Y%m%d %H:%M:%S UTC")
        duration = f"{seconds} S"
        request = (end, duration, self.what_to_show, self.use_rth)
        await self._limiter.acquire(request, (self.contract.conId, self.what_to_show))
        if not ib.isConnected():
            raise ConnectionError("not connected")
        req_id = ib.client.getReqId()
        bars = BarDataList()
        future = ib.wrapper.startReq(req_id, self.contract, container=bars)
        self._in_flight[req_id] = future
        ib.client.reqHistoricalData(
            req_id,
            self.contract,
            end,
            duration,
            "1 min",
            self.what_to_show,
            self.use_rth,
            self.settings.format_date,
            False,
            [],
        )
        try:
            await asyncio.wait_for(asyncio.shield(future), self.settings.request_timeout_s)
        except TimeoutError:
            if ib.isConnected():
                ib.client.cancelHistoricalData(req_id)
            # Forget the request so that a late answer is dropped, not mistaken for another.
            ib.wrapper._endReq(req_id)
            raise
        finally:
            self._in_flight.pop(req_id, None)
        return bars_to_frame(bars, window, self.what_to_show, self.contract.symbol)

    def _finished_status(
        self, window: SessionWindow, ended: SessionStatus = SessionStatus.COMPLETE
    ) -> SessionStatus:
        """`ended` for a session that closed by the run's start, else `partial`."""
        return ended if window.close <= self.now else SessionStatus.PARTIAL

    def _backoff(self, failures: int) -> float:
        delay = self.settings.retry_backoff_s * 2 ** (failures - 1)
        return min(delay, self.settings.retry_backoff_max_s)


async def _take(queue: asyncio.Queue, count: int) -> list[SessionResult]:
    """The next `count` finished sessions; re-raises a session's fatal error."""
    batch: list[SessionResult] = []
    while len(batch) < count:
        item = await queue.get()
        if isinstance(item, BaseException):
            raise item
        batch.append(item)
    return batch


def _current_loop() -> asyncio.AbstractEventLoop | None:
    with contextlib.suppress(RuntimeError):
        return asyncio.get_event_loop_policy().get_event_loop()
    return None
