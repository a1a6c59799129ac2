"""One client socket of the simulator: the handshake, then message dispatch.

Session-level messages (start of the API, accounts, positions, order-state end markers,
refused orders, connectivity loss) are answered here; contract details, head timestamps
and historical bars by `MarketDataRequests`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from .market_data import MarketDataRequests
from .protocol import (
    ACCOUNT_UPDATE_MULTI_END,
    ACCT_DOWNLOAD_END,
    ACCT_UPDATE_TIME,
    CANCEL_HEAD_TIMESTAMP,
    CANCEL_HISTORICAL_DATA,
    CANCEL_ORDER,
    COMPLETED_ORDERS_END,
    CURRENT_TIME,
    ERR_MSG,
    EXECUTION_DATA_END,
    MANAGED_ACCTS,
    MIN_CLIENT_VERSION,
    NEXT_VALID_ID,
    OPEN_ORDER_END,
    ORDER_MESSAGES,
    PLACE_ORDER,
    POSITION_END,
    READ_ONLY_TEXT,
    REQ_ACCOUNT_UPDATES,
    REQ_ACCOUNT_UPDATES_MULTI,
    REQ_ALL_OPEN_ORDERS,
    REQ_AUTO_OPEN_ORDERS,
    REQ_COMPLETED_ORDERS,
    REQ_CONTRACT_DETAILS,
    REQ_CURRENT_TIME,
    REQ_EXECUTIONS,
    REQ_HEAD_TIMESTAMP,
    REQ_HISTORICAL_DATA,
    REQ_IDS,
    REQ_MANAGED_ACCTS,
    REQ_MARKET_DATA_TYPE,
    REQ_OPEN_ORDERS,
    REQ_POSITIONS,
    SERVER_VERSION,
    START_API,
    encode,
    frame,
    read_length,
    server_time_text,
    split_fields,
)

if TYPE_CHECKING:
    from .server import TwsSimulator
    from .streaming import BarStream

logger = logging.getLogger(__name__)

Handler = Callable[[list[str]], None]
# Market data farm status lines TWS sends after the API starts.
FARM_STATUS = (
    (2104, "Market data farm connection is OK:usfarm"),
    (2106, "HMDS data farm connection is OK:ushmds"),
)


class Connection:
    """One client socket: handshake, then message dispatch."""

    def __init__(
        self, server: TwsSimulator, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.client_id: int | None = None
        # Historical answers in preparation, by request id (cancelled on close or outage).
        self.tasks: dict[int, asyncio.Task] = {}
        # keepUpToDate subscriptions, by request id (stopped on cancel, close or outage).
        self.streams: dict[int, BarStream] = {}
        self.offline = False
        self.closed = False
        self.market_data = MarketDataRequests(self)
        self._handlers = self._message_handlers()

    # -- sending -------------------------------------------------------------------------

    def send(self, *fields: object) -> None:
        if not self.closed:
            self.writer.write(encode(*fields))

    def send_payload(self, payload: bytes) -> None:
        """A message whose fields are already NUL-terminated bytes (large bar answers)."""
        if not self.closed:
            self.writer.write(frame(payload))

    def error(self, req_id: int, code: int, text: str) -> None:
        self.server.stats.errors_sent[code] = self.server.stats.errors_sent.get(code, 0) + 1
        self.send(ERR_MSG, 2, req_id, code, text, "")

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._cancel_tasks()
        if self.client_id is not None:
            self.server.release_client_id(self.client_id)
        self.writer.close()

    def _cancel_tasks(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        self.tasks.clear()
        for stream in self.streams.values():
            stream.stop()
        self.streams.clear()

    # -- handshake and dispatch ----------------------------------------------------------

    async def run(self) -> None:
        prefix = await self.reader.readexactly(4)
        if prefix != b"API\0":
            logger.warning("TWS simulator: not a TWS API client (prefix %r)", prefix)
            return
        # The version range is the one message that is not NUL-terminated.
        size = read_length(await self.reader.readexactly(4))
        versions = (await self.reader.readexactly(size)).decode(errors="replace")
        low, high = (int(v) for v in versions.split(" ")[0].lstrip("v").split(".."))
        if high < MIN_CLIENT_VERSION or low > SERVER_VERSION:
            logger.warning("TWS simulator: unsupported client versions %s", versions)
            return
        self.send(min(high, SERVER_VERSION), server_time_text(self.server.clock.now()))
        while not self.closed:
            fields = await self._read_message()
            self.dispatch(fields)
            await self.writer.drain()

    async def _read_message(self) -> list[str]:
        size = read_length(await self.reader.readexactly(4))
        return split_fields(await self.reader.readexactly(size))

    def dispatch(self, fields: list[str]) -> None:
        message = int(fields[0])
        received = self.server.stats.messages_received
        received[message] = received.get(message, 0) + 1
        if message in ORDER_MESSAGES:
            self.reject_order(message, fields)
            return
        handler = self._handlers.get(message)
        if handler is None:
            logger.warning("TWS simulator: message %d is not supported, ignored", message)
            return
        handler(fields)

    def _message_handlers(self) -> dict[int, Handler]:
        market_data = self.market_data
        return {
            START_API: lambda fields: self.start_api(int(fields[2])),
            REQ_POSITIONS: lambda _: self.send(POSITION_END, 1),
            REQ_ACCOUNT_UPDATES: self.account_updates,
            REQ_ACCOUNT_UPDATES_MULTI: lambda f: self.send(ACCOUNT_UPDATE_MULTI_END, 1, f[2]),
            REQ_EXECUTIONS: lambda fields: self.send(EXECUTION_DATA_END, 1, fields[2]),
            # Only a connection that is not read-only asks for these (answered, and counted).
            REQ_OPEN_ORDERS: self.no_open_orders,
            REQ_ALL_OPEN_ORDERS: self.no_open_orders,
            REQ_AUTO_OPEN_ORDERS: self.no_open_orders,
            REQ_COMPLETED_ORDERS: lambda _: self.send(COMPLETED_ORDERS_END),
            REQ_IDS: lambda _: self.send(NEXT_VALID_ID, 1, 1),
            REQ_MANAGED_ACCTS: lambda _: self.send(MANAGED_ACCTS, 1, self.server.account),
            REQ_CURRENT_TIME: self.current_time,
            REQ_CONTRACT_DETAILS: market_data.contract_details,
            REQ_HEAD_TIMESTAMP: market_data.head_timestamp,
            REQ_HISTORICAL_DATA: market_data.historical_data,
            CANCEL_HISTORICAL_DATA: market_data.cancel_historical_data,
            CANCEL_HEAD_TIMESTAMP: self.ignore,
            REQ_MARKET_DATA_TYPE: self.ignore,
        }

    # -- session-level answers -----------------------------------------------------------

    def start_api(self, client_id: int) -> None:
        if not self.server.claim_client_id(client_id):
            self.error(-1, 326, f"Unable to connect as the client id {client_id} is in use.")
            self.close()
            return
        self.client_id = client_id
        self.send(MANAGED_ACCTS, 1, self.server.account)
        self.send(NEXT_VALID_ID, 1, 1)
        for code, farm in FARM_STATUS:
            self.error(-1, code, farm)

    def account_updates(self, fields: list[str]) -> None:
        self.send(ACCT_UPDATE_TIME, 1, self.server.clock.now().strftime("%H:%M"))
        self.send(ACCT_DOWNLOAD_END, 1, fields[3] or self.server.account)

    def current_time(self, _fields: list[str]) -> None:
        """The server's time; subscriptions first get what they are owed by then, so a
        client never hears of a time before the bars that ended by it."""
        now = self.server.clock.now()
        for stream in list(self.streams.values()):
            stream.advance(now)
        self.send(CURRENT_TIME, 1, int(now.timestamp()))

    def no_open_orders(self, _fields: list[str]) -> None:
        self.send(OPEN_ORDER_END, 1)

    def ignore(self, _fields: list[str]) -> None:
        """Messages that need no answer."""

    def reject_order(self, message: int, fields: list[str]) -> None:
        self.server.stats.rejected_orders += 1
        order_id = int(fields[2]) if message in (PLACE_ORDER, CANCEL_ORDER) else -1
        logger.error("TWS simulator: refused order message %d (read-only API)", message)
        self.error(order_id, 321, READ_ONLY_TEXT)

    def lose_connectivity(self) -> None:
        """Error 1100 now, requests in flight lost and new ones ignored, 1102 `outage_s` later."""
        logger.info("TWS simulator: connectivity lost for %.2f s", self.server.faults.outage_s)
        self._cancel_tasks()
        self.offline = True
        self.error(-1, 1100, "Connectivity between IB and Trader Workstation has been lost.")
        asyncio.get_running_loop().call_later(self.server.faults.outage_s, self.restore)

    def restore(self) -> None:
        self.offline = False
        self.error(
            -1,
            1102,
            "Connectivity between IB and Trader Workstation has been restored - data maintained.",
        )
