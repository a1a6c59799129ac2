"""A TWS / IB Gateway simulator that speaks enough of the TWS API wire protocol for ib_insync.

It serves 1-minute historical bars from the synthetic market (or from a raw-layout CSV
file) so that the production ingestion path (ib_insync over a real socket) runs without a
broker: on every default `kedro run`, in the tests, and standalone:

    python -m ml_lstm.pipelines.ingestion.tws_simulator --port 7497

Protocol (server version 176): every message is a 4-byte big-endian length followed by
NUL-terminated text fields. The client opens with `API\\0` and its version range; the
server answers its version and connection time; after `startApi` it sends managedAccounts
and nextValidId and answers the requests ib_insync makes while connecting (positions,
account updates, executions, open orders) with their end markers.

Faults can be injected to prove the client copes: latency, socket drops, pacing
violations (error 162), requests never answered, sessions without data (error 162 "HMDS
query returned no data"), connectivity loss (error 1100, then 1102), and the zone-less
formatDate 1 bar times of older TWS versions. Order messages
are refused: the simulator is read-only, like a TWS whose API is set to "Read-Only".
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import re
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import pandas as pd

from ml_lstm.calendars import get_calendar, trading_sessions
from ml_lstm.ib_data import build_contract
from ml_lstm.pacing import PacingBook, PacingRules
from ml_lstm.synthetic_market import SyntheticMarket, profile_from_parameters

logger = logging.getLogger(__name__)

SERVER_VERSION = 176
MIN_CLIENT_VERSION = 157
DEFAULT_ACCOUNT = "DU0000001"

# Incoming message ids (client -> server).
REQ_MKT_DATA, PLACE_ORDER, CANCEL_ORDER, REQ_OPEN_ORDERS = 1, 3, 4, 5
REQ_ACCOUNT_UPDATES, REQ_EXECUTIONS, REQ_IDS, REQ_CONTRACT_DETAILS = 6, 7, 8, 9
REQ_AUTO_OPEN_ORDERS, REQ_ALL_OPEN_ORDERS, REQ_MANAGED_ACCTS = 15, 16, 17
REQ_HISTORICAL_DATA, EXERCISE_OPTIONS, CANCEL_HISTORICAL_DATA = 20, 21, 25
REQ_CURRENT_TIME, REQ_GLOBAL_CANCEL, REQ_MARKET_DATA_TYPE, REQ_POSITIONS = 49, 58, 59, 61
START_API, REQ_ACCOUNT_UPDATES_MULTI, REQ_HEAD_TIMESTAMP, CANCEL_HEAD_TIMESTAMP = 71, 76, 87, 90
REQ_COMPLETED_ORDERS = 99
ORDER_MESSAGES = {PLACE_ORDER, CANCEL_ORDER, EXERCISE_OPTIONS, REQ_GLOBAL_CANCEL}
# Order-state requests that ib_insync sends only on a connection that is not read-only.
ORDER_STATE_REQUESTS = {
    REQ_OPEN_ORDERS,
    REQ_ALL_OPEN_ORDERS,
    REQ_AUTO_OPEN_ORDERS,
    REQ_COMPLETED_ORDERS,
}

# Outgoing message ids (server -> client).
ERR_MSG, ACCT_UPDATE_TIME, NEXT_VALID_ID, CONTRACT_DATA = 4, 8, 9, 10
MANAGED_ACCTS, HISTORICAL_DATA, CURRENT_TIME, CONTRACT_DATA_END = 15, 17, 49, 52
OPEN_ORDER_END, ACCT_DOWNLOAD_END, EXECUTION_DATA_END, POSITION_END = 53, 54, 55, 62
ACCOUNT_UPDATE_MULTI_END, HEAD_TIMESTAMP, COMPLETED_ORDERS_END = 74, 88, 102

HMDS = "Historical Market Data Service error message:"
NO_DATA_TEXT = HMDS + "HMDS query returned no data: {symbol}@{exchange} {what}"
PACING_TEXT = HMDS + "Historical data request pacing violation ({rule})"
QUOTES_ONLY_TEXT = HMDS + "No data of type {what} is available for {symbol} (quotes only)"
PRICE_NAMES = ("open", "high", "low", "close")
CONTRACT_FIELDS = (
    "conId",
    "symbol",
    "secType",
    "lastTradeDateOrContractMonth",
    "strike",
    "right",
    "multiplier",
    "exchange",
    "primaryExchange",
    "currency",
    "localSymbol",
    "tradingClass",
)


def contract_key(sec_type: str, symbol: str, currency: str) -> tuple[str, str, str]:
    """How the simulator recognises a contract: security type, IB symbol, currency."""
    return (sec_type.upper(), symbol.upper(), currency.upper())


class BarFeed(Protocol):
    """Where a simulated instrument's minute bars come from."""

    calendar: str

    def bars_between(self, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """Bars (timestamp UTC bar start, OHLCV) with start <= timestamp < end."""

    def head_timestamp(self) -> pd.Timestamp:
        """The earliest bar the feed can serve (UTC)."""


class SyntheticFeed:
    """Bars of the seeded synthetic market, generated one session at a time."""

    def __init__(self, market: SyntheticMarket) -> None:
        self.market = market
        self.calendar = market.profile.calendar
        self._session_bars = lru_cache(maxsize=512)(market.session_bars)

    def bars_between(self, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        sessions = trading_sessions(
            self.calendar, start - pd.Timedelta(days=1), end + pd.Timedelta(days=1)
        )
        overlapping = sessions[(sessions["close"] > start) & (sessions["open"] < end)]
        frames = [self._session_bars(label) for label in overlapping.index]
        if not frames:
            return pd.DataFrame(columns=["timestamp", "open", "high", "low", "close", "volume"])
        bars = pd.concat(frames, ignore_index=True)
        return bars[(bars["timestamp"] >= start) & (bars["timestamp"] < end)]

    def head_timestamp(self) -> pd.Timestamp:
        first = self.market.sessions("2000-01-01", "2100-01-01")[0]
        return trading_sessions(self.calendar, first, first)["open"].iloc[0]


class FrameFeed:
    """Bars from a raw-layout CSV file (timestamp,open,high,low,close,volume; UTC)."""

    def __init__(self, bars: pd.DataFrame, calendar: str) -> None:
        self.calendar = calendar
        self._bars = bars.sort_values("timestamp").reset_index(drop=True)

    @classmethod
    def from_csv(cls, path: str | Path, calendar: str) -> FrameFeed:
        bars = pd.read_csv(path)
        missing = {"timestamp", "open", "high", "low", "close", "volume"} - set(bars.columns)
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)} for the simulator.")
        bars["timestamp"] = pd.to_datetime(bars["timestamp"], utc=True, format="ISO8601")
        return cls(bars, calendar)

    def bars_between(self, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        stamps = self._bars["timestamp"]
        return self._bars[(stamps >= start) & (stamps < end)]

    def head_timestamp(self) -> pd.Timestamp:
        return self._bars["timestamp"].iloc[0]


@dataclass(frozen=True)
class SimulatedInstrument:
    """One contract the simulator knows, and the feed that serves its bars."""

    sec_type: str
    symbol: str
    currency: str
    feed: BarFeed
    exchange: str = "SMART"
    primary_exchange: str = ""
    last_trade_date: str = ""
    multiplier: str = ""
    quotes_only: bool = False
    min_tick: float = 0.01

    @property
    def key(self) -> tuple[str, str, str]:
        return contract_key(self.sec_type, self.symbol, self.currency)

    @property
    def con_id(self) -> int:
        return zlib.crc32("|".join(self.key).encode()) % 900_000_000 + 1000

    @property
    def time_zone(self) -> str:
        return str(get_calendar(self.feed.calendar).tz)


def instrument_from_parameters(
    instrument: dict, seed: int, csv_path: str | None = None
) -> SimulatedInstrument:
    """A simulated contract for an instrument's parameters (synthetic market or CSV file)."""
    contract = build_contract(instrument)
    feed: BarFeed
    if csv_path:
        feed = FrameFeed.from_csv(csv_path, instrument["calendar"])
    else:
        feed = SyntheticFeed(SyntheticMarket(profile_from_parameters(instrument, seed)))
    quotes_only = instrument.get("what_to_show", "TRADES") != "TRADES"
    return SimulatedInstrument(
        sec_type=contract.secType,
        symbol=contract.symbol,
        currency=contract.currency,
        feed=feed,
        exchange=contract.exchange,
        primary_exchange=contract.primaryExchange,
        last_trade_date=contract.lastTradeDateOrContractMonth,
        multiplier=contract.multiplier,
        quotes_only=quotes_only,
        min_tick=0.001 if quotes_only else 0.01,
    )


@dataclass(frozen=True)
class Faults:
    """What goes wrong, counted in historical-data requests (1 = the first one received)."""

    latency_s: float = 0.0
    # The socket is closed right after these requests arrive (they are never answered).
    drop_after_requests: frozenset[int] = frozenset()
    # These requests get error 162 "pacing violation".
    pacing_violation_requests: frozenset[int] = frozenset()
    # These requests are never answered (the client must time out and retry).
    unanswered_requests: frozenset[int] = frozenset()
    # Error 1100 right after these requests arrive; in-flight requests are lost, and
    # requests are ignored until 1102 is sent `outage_s` later.
    connectivity_loss_after_requests: frozenset[int] = frozenset()
    outage_s: float = 0.5
    # Sessions (YYYY-MM-DD, UTC date of the bars) for which HMDS has no data.
    no_data_dates: frozenset[str] = frozenset()
    # When set, IB's pacing rules are enforced and broken ones answered with error 162.
    pacing: PacingRules | None = None
    # formatDate 1 bar times as older TWS versions send them: "yyyymmdd  hh:mm:ss" in the
    # exchange's zone, without naming it.
    naive_format1_times: bool = False

    @classmethod
    def from_parameters(cls, parameters: dict | None) -> Faults:
        """Faults from a `simulator` parameter block (lists become sets)."""
        parameters = dict(parameters or {})
        pacing = parameters.pop("pacing", None)
        known = set(cls.__dataclass_fields__) - {"pacing"}
        unknown = set(parameters) - known
        if unknown:
            raise ValueError(
                f"Unknown simulator parameter(s) {sorted(unknown)}: expected some of "
                f"{sorted(known | {'pacing'})}."
            )
        values: dict[str, object] = {}
        for name, value in parameters.items():
            if name in {"latency_s", "outage_s"}:
                values[name] = float(value)
            elif name == "naive_format1_times":
                values[name] = bool(value)
            elif name == "no_data_dates":
                values[name] = frozenset(str(v) for v in value or [])
            else:
                values[name] = frozenset(int(v) for v in value or [])
        return cls(**values, pacing=PacingRules.from_parameters(pacing) if pacing else None)


@dataclass
class SimulatorStats:
    connections: int = 0
    historical_requests: int = 0
    bars_served: int = 0
    rejected_orders: int = 0
    errors_sent: dict[int, int] = field(default_factory=dict)
    # Incoming message id -> how many arrived (what the clients asked for).
    messages_received: dict[int, int] = field(default_factory=dict)


def encode_fields(*fields: object) -> str:
    """NUL-terminated text fields of a TWS API message."""
    return "".join(f"{_text(value)}\0" for value in fields)


def encode(*fields: object) -> bytes:
    """One length-prefixed TWS API message."""
    payload = encode_fields(*fields).encode()
    return struct.pack(">I", len(payload)) + payload


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def parse_end_time(text: str) -> pd.Timestamp:
    """A TWS `endDateTime` ("yyyymmdd hh:mm:ss [zone]", "yyyymmdd-hh:mm:ss" UTC, or "")."""
    text = text.strip()
    if not text:
        return pd.Timestamp.now(tz="UTC")
    if "-" in text and " " not in text:
        return pd.Timestamp(datetime.strptime(text, "%Y%m%d-%H:%M:%S").replace(tzinfo=UTC))
    parts = text.split(" ")
    stamp = pd.Timestamp(datetime.strptime(" ".join(parts[:2]), "%Y%m%d %H:%M:%S"))
    zone = parts[2] if len(parts) > 2 else "UTC"
    return stamp.tz_localize(zone).tz_convert("UTC")


def parse_duration(text: str) -> pd.Timedelta:
    """A TWS `durationStr` such as "23400 S", "1 D" or "2 W"."""
    amount, unit = text.split()
    seconds = {"S": 1, "D": 86_400, "W": 7 * 86_400, "M": 31 * 86_400, "Y": 366 * 86_400}
    if unit not in seconds:
        raise ValueError(f"duration unit {unit!r}")
    return pd.Timedelta(seconds=int(amount) * seconds[unit])


class TwsSimulator:
    """An asyncio TCP server answering the TWS API requests of a read-only ib_insync client."""

    def __init__(
        self,
        instruments: list[SimulatedInstrument],
        faults: Faults | None = None,
        account: str = DEFAULT_ACCOUNT,
    ) -> None:
        self.instruments = {instrument.key: instrument for instrument in instruments}
        self.faults = faults or Faults()
        self.account = account
        self.stats = SimulatorStats()
        self._pacing = PacingBook(self.faults.pacing) if self.faults.pacing else None
        self._server: asyncio.base_events.Server | None = None
        self._client_ids: set[int] = set()
        self._connections: set[_Connection] = set()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Starts listening; returns the port (an ephemeral one when `port` is 0)."""
        self._server = await asyncio.start_server(self._serve, host, port)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for connection in list(self._connections):
                connection.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = _Connection(self, reader, writer)
        self._connections.add(connection)
        self.stats.connections += 1
        try:
            await connection.run()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception:
            logger.exception("TWS simulator: connection failed")
        finally:
            connection.close()
            self._connections.discard(connection)

    def next_request_number(self) -> int:
        self.stats.historical_requests += 1
        return self.stats.historical_requests

    def pacing_violation(self, request: tuple, contract: tuple) -> str | None:
        if self._pacing is None:
            return None
        rule = self._pacing.violation(request, contract)
        self._pacing.record(request, contract)
        return rule


class _Connection:
    """One client socket: handshake, then message dispatch."""

    def __init__(
        self, server: TwsSimulator, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.client_id: int | None = None
        self.tasks: dict[int, asyncio.Task] = {}
        self.offline = False
        self.closed = False

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for task in self.tasks.values():
            task.cancel()
        self.tasks.clear()
        if self.client_id is not None:
            self.server._client_ids.discard(self.client_id)
        self.writer.close()

    def send(self, *fields: object) -> None:
        if not self.closed:
            self.writer.write(encode(*fields))

    def error(self, req_id: int, code: int, text: str) -> None:
        self.server.stats.errors_sent[code] = self.server.stats.errors_sent.get(code, 0) + 1
        self.send(ERR_MSG, 2, req_id, code, text, "")

    async def run(self) -> None:
        prefix = await self.reader.readexactly(4)
        if prefix != b"API\0":
            logger.warning("TWS simulator: not a TWS API client (prefix %r)", prefix)
            return
        # The version range is the one message that is not NUL-terminated.
        size = struct.unpack(">I", await self.reader.readexactly(4))[0]
        versions = (await self.reader.readexactly(size)).decode(errors="replace")
        low, high = (int(v) for v in versions.split(" ")[0].lstrip("v").split(".."))
        if high < MIN_CLIENT_VERSION or low > SERVER_VERSION:
            logger.warning("TWS simulator: unsupported client versions %s", versions)
            return
        now = datetime.now(UTC).strftime("%Y%m%d %H:%M:%S UTC")
        self.send(min(high, SERVER_VERSION), now)
        while not self.closed:
            fields = await self._read_message()
            self.dispatch(fields)
            await self.writer.drain()

    async def _read_message(self) -> list[str]:
        size = struct.unpack(">I", await self.reader.readexactly(4))[0]
        payload = (await self.reader.readexactly(size)).decode(errors="replace")
        return payload.split("\0")[:-1]

    def dispatch(self, fields: list[str]) -> None:
        message = int(fields[0])
        received = self.server.stats.messages_received
        received[message] = received.get(message, 0) + 1
        if message in ORDER_MESSAGES:
            self.reject_order(message, fields)
        elif message == START_API:
            self.start_api(int(fields[2]))
        elif message == REQ_POSITIONS:
            self.send(POSITION_END, 1)
        elif message == REQ_ACCOUNT_UPDATES:
            self.send(ACCT_UPDATE_TIME, 1, datetime.now(UTC).strftime("%H:%M"))
            self.send(ACCT_DOWNLOAD_END, 1, fields[3] or self.server.account)
        elif message == REQ_ACCOUNT_UPDATES_MULTI:
            self.send(ACCOUNT_UPDATE_MULTI_END, 1, fields[2])
        elif message == REQ_EXECUTIONS:
            self.send(EXECUTION_DATA_END, 1, fields[2])
        elif message in (REQ_OPEN_ORDERS, REQ_ALL_OPEN_ORDERS, REQ_AUTO_OPEN_ORDERS):
            self.send(OPEN_ORDER_END, 1)
        elif message == REQ_COMPLETED_ORDERS:
            self.send(COMPLETED_ORDERS_END)
        elif message == REQ_IDS:
            self.send(NEXT_VALID_ID, 1, 1)
        elif message == REQ_MANAGED_ACCTS:
            self.send(MANAGED_ACCTS, 1, self.server.account)
        elif message == REQ_CURRENT_TIME:
            self.send(CURRENT_TIME, 1, int(datetime.now(UTC).timestamp()))
        elif message == REQ_CONTRACT_DETAILS:
            self.contract_details(fields)
        elif message == REQ_HEAD_TIMESTAMP:
            self.head_timestamp(fields)
        elif message == REQ_HISTORICAL_DATA:
            self.historical_data(fields)
        elif message == CANCEL_HISTORICAL_DATA:
            task = self.tasks.pop(int(fields[2]), None)
            if task is not None:
                task.cancel()
        elif message in (CANCEL_HEAD_TIMESTAMP, REQ_MARKET_DATA_TYPE):
            pass
        else:
            logger.warning("TWS simulator: message %d is not supported, ignored", message)

    def start_api(self, client_id: int) -> None:
        if client_id in self.server._client_ids:
            self.error(-1, 326, f"Unable to connect as the client id {client_id} is in use.")
            self.close()
            return
        self.client_id = client_id
        self.server._client_ids.add(client_id)
        self.send(MANAGED_ACCTS, 1, self.server.account)
        self.send(NEXT_VALID_ID, 1, 1)
        for code, farm in (
            (2104, "Market data farm connection is OK:usfarm"),
            (2106, "HMDS data farm connection is OK:ushmds"),
        ):
            self.error(-1, code, farm)

    def reject_order(self, message: int, fields: list[str]) -> None:
        self.server.stats.rejected_orders += 1
        order_id = int(fields[2]) if message in (PLACE_ORDER, CANCEL_ORDER) else -1
        logger.error("TWS simulator: refused order message %d (read-only API)", message)
        self.error(
            order_id,
            321,
            "Error validating request:-'bO' : cause - The API interface is currently in "
            "Read-Only mode.",
        )

    def _instrument(self, contract: dict[str, str]) -> SimulatedInstrument | None:
        key = contract_key(contract["secType"], contract["symbol"], contract["currency"] or "USD")
        instrument = self.server.instruments.get(key)
        if instrument is None and contract["conId"] not in ("", "0"):
            by_id = {str(i.con_id): i for i in self.server.instruments.values()}
            instrument = by_id.get(contract["conId"])
        return instrument

    def contract_details(self, fields: list[str]) -> None:
        req_id = int(fields[2])
        instrument = self._instrument(dict(zip(CONTRACT_FIELDS, fields[3:15], strict=True)))
        if instrument is None:
            self.error(req_id, 200, "No security definition has been found for the request")
            return
        i = instrument
        self.send(
            CONTRACT_DATA,
            req_id,
            i.symbol,
            i.sec_type,
            i.last_trade_date,
            0,
            "",
            i.exchange,
            i.currency,
            i.symbol,
            i.symbol,
            i.symbol,
            i.con_id,
            i.min_tick,
            i.multiplier,
            "LMT,MKT",
            f"{i.exchange},{i.primary_exchange}".strip(","),
            1,
            0,
            f"{i.symbol} (simulated)",
            i.primary_exchange,
            i.last_trade_date[:6],
            "",
            "",
            "",
            i.time_zone,
            "",
            "",
            "",
            "",
            0,
            1,
            "",
            "",
            "26",
            i.last_trade_date,
            "COMMON",
            1,
            1,
            1,
        )
        self.send(CONTRACT_DATA_END, 1, req_id)

    def head_timestamp(self, fields: list[str]) -> None:
        req_id = int(fields[1])
        instrument = self._instrument(dict(zip(CONTRACT_FIELDS, fields[2:14], strict=True)))
        if instrument is None:
            self.error(req_id, 200, "No security definition has been found for the request")
            return
        head = instrument.feed.head_timestamp()
        format_date = int(fields[17] or 1)
        zone = instrument.time_zone
        self.send(HEAD_TIMESTAMP, req_id, _format_time(head, format_date, zone, zone))

    def historical_data(self, fields: list[str]) -> None:
        req_id = int(fields[1])
        contract = dict(zip(CONTRACT_FIELDS, fields[2:14], strict=True))
        end_text, bar_size, duration_text, use_rth, what, format_date = fields[15:21]
        number = self.server.next_request_number()
        faults = self.server.faults
        if self.offline:
            return
        if number in faults.drop_after_requests:
            logger.info("TWS simulator: dropping the socket after request %d", number)
            self.close()
            return
        if number in faults.connectivity_loss_after_requests:
            self.lose_connectivity()
            return
        if number in faults.unanswered_requests:
            return
        instrument = self._instrument(contract)
        if instrument is None:
            self.error(req_id, 200, "No security definition has been found for the request")
            return
        if number in faults.pacing_violation_requests:
            self.error(req_id, 162, PACING_TEXT.format(rule="injected"))
            return
        request = (instrument.key, end_text, bar_size, duration_text, use_rth, what)
        rule = self.server.pacing_violation(request, (instrument.key, what))
        if rule:
            self.error(req_id, 162, PACING_TEXT.format(rule=rule))
            return
        if bar_size.strip() != "1 min":
            self.error(
                req_id,
                321,
                f"Error validating request: bar size {bar_size!r} is "
                "not served by the simulator (only '1 min')",
            )
            return
        if instrument.quotes_only and what == "TRADES":
            self.error(req_id, 162, QUOTES_ONLY_TEXT.format(what=what, symbol=instrument.symbol))
            return
        try:
            end = parse_end_time(end_text)
            start = end - parse_duration(duration_text)
        except ValueError as error:
            self.error(req_id, 321, f"Error validating request: {error}")
            return
        self.tasks[req_id] = asyncio.ensure_future(
            self.answer_historical(req_id, instrument, start, end, what, int(format_date or 1))
        )

    async def answer_historical(
        self,
        req_id: int,
        instrument: SimulatedInstrument,
        start: pd.Timestamp,
        end: pd.Timestamp,
        what: str,
        format_date: int,
    ) -> None:
        if self.server.faults.latency_s:
            await asyncio.sleep(self.server.faults.latency_s)
        self.tasks.pop(req_id, None)
        bars = instrument.feed.bars_between(start, end)
        no_data = self.server.faults.no_data_dates
        if no_data and len(bars):
            dates = bars["timestamp"].dt.strftime("%Y-%m-%d")
            bars = bars[~dates.isin(no_data)]
        if bars.empty:
            self.error(
                req_id,
                162,
                NO_DATA_TEXT.format(
                    symbol=instrument.symbol, exchange=instrument.exchange, what=what.title()
                ),
            )
            return
        zone = instrument.time_zone
        label = "" if self.server.faults.naive_format1_times else zone
        trades = what == "TRADES"
        columns = [
            _format_times(bars["timestamp"], format_date, zone, label),
            *(bars[name].astype("float64").astype(str).tolist() for name in PRICE_NAMES),
            bars["volume"].astype("int64").astype(str).tolist() if trades else ["-1"] * len(bars),
            ((bars["high"] + bars["low"] + bars["close"]) / 3).round(6).astype(str).tolist()
            if trades
            else ["-1"] * len(bars),
            ["1" if trades else "-1"] * len(bars),
        ]
        block = "\0".join(itertools.chain.from_iterable(zip(*columns, strict=True)))
        self.server.stats.bars_served += len(bars)
        header = encode_fields(
            HISTORICAL_DATA,
            req_id,
            _format_time(start, format_date, zone, label),
            _format_time(end, format_date, zone, label),
            len(bars),
        )
        payload = (header + block + "\0").encode()
        if not self.closed:
            self.writer.write(struct.pack(">I", len(payload)) + payload)

    def lose_connectivity(self) -> None:
        logger.info("TWS simulator: connectivity lost for %.2f s", self.server.faults.outage_s)
        for task in self.tasks.values():
            task.cancel()
        self.tasks.clear()
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


# formatDate 1: "yyyymmdd hh:mm:ss <zone>" in `zone`, named by `label`; an empty label
# gives the zone-less "yyyymmdd  hh:mm:ss" of older TWS versions.
def _format_times(stamps: pd.Series, format_date: int, zone: str, label: str) -> list[str]:
    if format_date == 2:
        return (stamps.astype("int64") // 10**9).astype(str).tolist()
    pattern = f"%Y%m%d %H:%M:%S {label}" if label else "%Y%m%d  %H:%M:%S"
    return stamps.dt.tz_convert(zone).dt.strftime(pattern).tolist()


def _format_time(stamp: pd.Timestamp, format_date: int, zone: str, label: str) -> str:
    if format_date == 2:
        return str(int(stamp.timestamp()))
    pattern = f"%Y%m%d %H:%M:%S {label}" if label else "%Y%m%d  %H:%M:%S"
    return stamp.tz_convert(zone).strftime(pattern)


class SimulatorThread:
    """Runs a TwsSimulator on its own event loop in a background thread.

    Use as a context manager: `with SimulatorThread(instruments) as sim: connect to sim.port`.
    """

    def __init__(
        self,
        instruments: list[SimulatedInstrument],
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.simulator = TwsSimulator(instruments, faults)
        self.host = host
        self._requested_port = port
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tws-simulator", daemon=True
        )

    def start(self) -> SimulatorThread:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            self.simulator.start(self.host, self._requested_port), self._loop
        )
        self.port = future.result(timeout=10)
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self.simulator.stop(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        if not self._loop.is_running():
            self._loop.close()

    @property
    def stats(self) -> SimulatorStats:
        return self.simulator.stats

    def __enter__(self) -> SimulatorThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class SimulatorProcess:
    """Runs the simulator as its own process (`python -m ...tws_simulator`), as TWS is.

    Use as a context manager; `arguments` are the command-line options (e.g.
    `["--latency", "0.1"]`). The process is started on a free port, read from its log.
    """

    START_TIMEOUT_S = 30.0

    def __init__(self, arguments: list[str] | None = None, cwd: Path | None = None) -> None:
        self._command = [sys.executable, "-m", __name__, "--port", "0", *(arguments or [])]
        self._cwd = cwd
        self.port = 0
        self.returncode: int | None = None
        self.log = ""
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> SimulatorProcess:
        self._process = subprocess.Popen(
            self._command,
            cwd=self._cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + self.START_TIMEOUT_S
        while time.monotonic() < deadline:
            line = self._process.stdout.readline()
            if not line:
                break
            self.log += line
            listening = re.search(r"listening on [\w.:]+:(\d+)", line)
            if listening:
                self.port = int(listening.group(1))
                return self
        self.stop()
        raise RuntimeError(f"The TWS simulator did not start: {self.log.strip()}")

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            rest, _ = self._process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            rest, _ = self._process.communicate()
        self.log += rest or ""
        self.returncode = self._process.returncode

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ml_lstm.pipelines.ingestion.tws_simulator",
        description="A TWS API simulator serving 1-minute bars to ib_insync (read-only).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7497)
    parser.add_argument(
        "--instrument",
        action="append",
        default=None,
        help="instrument key of conf/base/parameters.yml to serve (repeatable; default: all)",
    )
    parser.add_argument(
        "--csv",
        default=None,
        help="serve this raw-layout CSV instead of the synthetic market (with one --instrument)",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument("--drop-after", type=int, action="append", default=[])
    parser.add_argument("--pacing-violation", type=int, action="append", default=[])
    parser.add_argument("--unanswered", type=int, action="append", default=[])
    parser.add_argument("--connectivity-loss-after", type=int, action="append", default=[])
    parser.add_argument("--no-data", action="append", default=[], help="YYYY-MM-DD")
    parser.add_argument("--enforce-pacing", action="store_true", help="IB's pacing rules")
    return parser.parse_args(argv)


def _instrument_parameters() -> dict[str, dict]:
    from omegaconf import OmegaConf

    path = Path.cwd() / "conf" / "base" / "parameters.yml"
    if not path.is_file():
        raise SystemExit(f"{path} not found: run the simulator from the project folder.")
    return OmegaConf.to_container(OmegaConf.load(path))["instruments"]


def main(argv: list[str] | None = None) -> None:
    """Runs the simulator until interrupted."""
    arguments = _parse_arguments(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    parameters = _instrument_parameters()
    names = arguments.instrument or list(parameters)
    if arguments.csv and len(names) != 1:
        raise SystemExit("--csv serves one instrument: name it with --instrument.")
    instruments = [
        instrument_from_parameters(parameters[name], arguments.seed, arguments.csv)
        for name in names
    ]
    faults = Faults(
        latency_s=arguments.latency,
        drop_after_requests=frozenset(arguments.drop_after),
        pacing_violation_requests=frozenset(arguments.pacing_violation),
        unanswered_requests=frozenset(arguments.unanswered),
        connectivity_loss_after_requests=frozenset(arguments.connectivity_loss_after),
        no_data_dates=frozenset(arguments.no_data),
        pacing=PacingRules() if arguments.enforce_pacing else None,
    )

    async def serve() -> None:
        simulator = TwsSimulator(instruments, faults)
        port = await simulator.start(arguments.host, arguments.port)
        served = ", ".join(f"{i.symbol} ({i.sec_type})" for i in instruments)
        logger.info("TWS simulator listening on %s:%d, serving %s", arguments.host, port, served)
        # Ctrl-C and SIGTERM (what process managers and SimulatorProcess send) both end
        # the loop's wait, so shutdown always runs the same, graceful path.
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopping.set)
        try:
            await stopping.wait()
        finally:
            await simulator.stop()
            logger.info("TWS simulator stopped")

    asyncio.run(serve())


if __name__ == "__main__":
    main()
