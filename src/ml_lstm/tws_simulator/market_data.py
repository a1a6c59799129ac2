"""The simulator's answers to market-data requests on one connection: contract details,
head timestamps and historical bars, with the request-level faults (drops, pacing errors,
unanswered requests, connectivity loss, sessions without data)."""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ml_lstm.calendars import utc

from .feeds import SimulatedInstrument
from .protocol import (
    CONTRACT_DATA,
    CONTRACT_DATA_END,
    CONTRACT_FIELDS,
    HEAD_TIMESTAMP,
    HISTORICAL_DATA,
    NO_DATA_TEXT,
    NO_SECURITY_TEXT,
    PACING_TEXT,
    QUOTES_ONLY_TEXT,
    encode_fields,
    format_time,
    format_times,
    parse_duration,
    parse_end_time,
)
from .streaming import BarStream, forming_bar

if TYPE_CHECKING:
    from .connection import Connection

logger = logging.getLogger(__name__)

PRICE_NAMES = ("open", "high", "low", "close")


class MarketDataRequests:
    """Contract details, head timestamps and historical bars for one connection."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.server = connection.server

    def _instrument(self, req_id: int, fields: list[str]) -> SimulatedInstrument | None:
        """The instrument of a request's contract fields; error 200 when it is unknown."""
        instrument = self.server.find_instrument(dict(zip(CONTRACT_FIELDS, fields, strict=True)))
        if instrument is None:
            self.connection.error(req_id, 200, NO_SECURITY_TEXT)
        return instrument

    def contract_details(self, fields: list[str]) -> None:
        req_id = int(fields[2])
        i = self._instrument(req_id, fields[3:15])
        if i is None:
            return
        self.connection.send(
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
        self.connection.send(CONTRACT_DATA_END, 1, req_id)

    def head_timestamp(self, fields: list[str]) -> None:
        req_id = int(fields[1])
        instrument = self._instrument(req_id, fields[2:14])
        if instrument is None:
            return
        head = instrument.feed.head_timestamp()
        format_date = int(fields[17] or 1)
        zone = instrument.time_zone
        self.connection.send(HEAD_TIMESTAMP, req_id, format_time(head, format_date, zone, zone))

    def cancel_historical_data(self, fields: list[str]) -> None:
        task = self.connection.tasks.pop(int(fields[2]), None)
        if task is not None:
            task.cancel()
        stream = self.connection.streams.pop(int(fields[2]), None)
        if stream is not None:
            stream.stop()

    def historical_data(self, fields: list[str]) -> None:
        req_id = int(fields[1])
        end_text, bar_size, duration_text, use_rth, what, format_date = fields[15:21]
        keep_up_to_date = len(fields) > 21 and fields[21] == "1"
        number = self.server.next_request_number()
        if not self._arrives(number):
            return
        instrument = self._instrument(req_id, fields[2:14])
        if instrument is None:
            return
        request = (instrument.key, end_text, bar_size, duration_text, use_rth, what)
        refusal = self._refusal(number, request, instrument, bar_size, what)
        if (
            refusal is None
            and not keep_up_to_date
            and self.server.refuses_history(self.server.clock.now())
        ):
            refusal = self._pacing_error("injected at a set time")
        if refusal is not None:
            self.connection.error(req_id, *refusal)
            return
        if keep_up_to_date and end_text.strip():
            self.connection.error(
                req_id, 321, "Error validating request: keepUpToDate needs an empty endDateTime"
            )
            return
        try:
            end = parse_end_time(end_text, self.server.clock.now())
            start = end - parse_duration(duration_text)
        except ValueError as error:
            self.connection.error(req_id, 321, f"Error validating request: {error}")
            return
        self.connection.tasks[req_id] = asyncio.ensure_future(
            self.answer_historical(
                req_id, instrument, start, end, what, int(format_date or 1), keep_up_to_date
            )
        )

    def _arrives(self, number: int) -> bool:
        """Whether request `number` reaches the farm, after the connection-level faults."""
        connection = self.connection
        faults = self.server.faults
        if connection.offline:
            return False
        if number in faults.drop_after_requests:
            logger.info("TWS simulator: dropping the socket after request %d", number)
            connection.close()
            return False
        if number in faults.connectivity_loss_after_requests:
            connection.lose_connectivity()
            return False
        return number not in faults.unanswered_requests

    def _refusal(
        self,
        number: int,
        request: tuple,
        instrument: SimulatedInstrument,
        bar_size: str,
        what: str,
    ) -> tuple[int, str] | None:
        """The error (code, text) a historical request gets instead of bars, if any."""
        if number in self.server.faults.pacing_violation_requests:
            return self._pacing_error("injected")
        rule = self.server.pacing_violation(request, (instrument.key, what))
        if rule:
            return self._pacing_error(rule)
        if bar_size.strip() != "1 min":
            return (
                321,
                f"Error validating request: bar size {bar_size!r} is "
                "not served by the simulator (only '1 min')",
            )
        if instrument.quotes_only and what == "TRADES":
            return 162, QUOTES_ONLY_TEXT.format(what=what, symbol=instrument.symbol)
        return None

    def _pacing_error(self, rule: str) -> tuple[int, str]:
        self.server.stats.pacing_errors_sent += 1
        return 162, PACING_TEXT.format(rule=rule)

    async def answer_historical(
        self,
        req_id: int,
        instrument: SimulatedInstrument,
        start: pd.Timestamp,
        end: pd.Timestamp,
        what: str,
        format_date: int,
        keep_up_to_date: bool = False,
    ) -> None:
        faults = self.server.faults
        if faults.latency_s:
            await asyncio.sleep(faults.latency_s)
        self.connection.tasks.pop(req_id, None)
        clock = self.server.clock
        now = clock.now()
        if clock.replaying or keep_up_to_date:
            # Only minutes that have ended on the server's clock are served whole; a
            # subscription's answer ends with the forming bar.
            end = min(end, now.floor("min"))
        bars = instrument.feed.bars_between(start, end)
        if keep_up_to_date:
            bars = pd.concat([bars, forming_bar(instrument, now)], ignore_index=True)
            bars["timestamp"] = utc(bars["timestamp"])
        if faults.no_data_dates and len(bars):
            dates = bars["timestamp"].dt.strftime("%Y-%m-%d")
            bars = bars[~dates.isin(faults.no_data_dates)]
        if bars.empty:
            text = NO_DATA_TEXT.format(
                symbol=instrument.symbol, exchange=instrument.exchange, what=what.title()
            )
            self.connection.error(req_id, 162, text)
            return
        zone = instrument.time_zone
        label = "" if faults.naive_format1_times else zone
        header = encode_fields(
            HISTORICAL_DATA,
            req_id,
            format_time(start, format_date, zone, label),
            format_time(end, format_date, zone, label),
            len(bars),
        )
        block = _bar_fields(bars, format_date, zone, label, trades=what == "TRADES")
        self.server.stats.bars_served += len(bars)
        self.connection.send_payload((header + block + "\0").encode())
        if keep_up_to_date:
            trades = what == "TRADES"
            stream = BarStream(self.connection, req_id, instrument, format_date, label, trades)
            self.connection.streams[req_id] = stream
            stream.start(now.floor("min"))


def _bar_fields(bars: pd.DataFrame, format_date: int, zone: str, label: str, trades: bool) -> str:
    """The bars' fields (time, OHLC, volume, WAP, count), NUL-separated, built column-wise.

    Quote bars (MIDPOINT, BID, ASK) carry -1 for volume, WAP and count, as at IB. Numbers
    are written as Python writes them (the shortest text that reads back as the same
    float): str() over plain lists is several times faster than pandas' text columns.
    """
    missing = ["-1"] * len(bars)
    prices = {name: bars[name].to_numpy("float64") for name in PRICE_NAMES}
    wap = np.round((prices["high"] + prices["low"] + prices["close"]) / 3, 6)
    columns = [
        format_times(bars["timestamp"], format_date, zone, label),
        *(map(str, prices[name].tolist()) for name in PRICE_NAMES),
        map(str, bars["volume"].astype("int64").tolist()) if trades else missing,
        map(str, wap.tolist()) if trades else missing,
        ["1"] * len(bars) if trades else missing,
    ]
    return "\0".join(itertools.chain.from_iterable(zip(*columns, strict=True)))
