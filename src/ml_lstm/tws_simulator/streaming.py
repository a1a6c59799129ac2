"""Streamed bars: what a `reqHistoricalData(..., keepUpToDate=True)` subscription receives
after its initial answer.

TWS sends historical-data update messages (msg 90) for the bar being formed: every few
seconds the forming 1-minute bar with its values so far, and, once the minute is over, the
bar of the next minute. Here the forming bar grows from the minute's open towards its
final values, and the final values of a minute are always sent before the first update of
a later minute (as its last update), so a client that takes the bar before a new one as
complete stores exactly what a historical request returns for that minute.

Timed faults of the stream (socket drop, connectivity loss, stall) fire here, on the
simulator's clock.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING

import pandas as pd

from .feeds import SimulatedInstrument
from .protocol import HISTORICAL_DATA_UPDATE, format_time

if TYPE_CHECKING:
    from .connection import Connection

logger = logging.getLogger(__name__)

MINUTE = pd.Timedelta(minutes=1)


class BarStream:
    """One keepUpToDate subscription on one connection."""

    def __init__(
        self,
        connection: Connection,
        req_id: int,
        instrument: SimulatedInstrument,
        format_date: int,
        label: str,
        trades: bool,
    ) -> None:
        self.connection = connection
        self.server = connection.server
        self.req_id = req_id
        self.instrument = instrument
        self.format_date = format_date
        self.label = label
        self.trades = trades
        # The minute whose bar was sent last (forming or final), None before the first.
        self.minute: pd.Timestamp | None = None
        self._days: dict[pd.Timestamp, dict[pd.Timestamp, tuple]] = {}
        self._task: asyncio.Task | None = None

    def start(self, minute: pd.Timestamp | None) -> None:
        """Starts updating after the initial answer, which ended with `minute`'s bar."""
        self.minute = minute
        self._task = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        clock = self.server.clock
        interval = clock.real_seconds(self.server.update_interval_s)
        while not self.connection.closed:
            self.advance(clock.now())
            await asyncio.sleep(interval)

    def advance(self, now: pd.Timestamp) -> None:
        """Sends what the subscription is owed at `now`: the final bars of minutes that have
        ended since the last update, then the forming bar of the current minute."""
        if self.connection.closed or self.connection.offline:
            return
        if self.server.timed_faults(self.connection, now) or self.server.stalled(now):
            return
        current = now.floor("min")
        if self.minute is not None and self.minute < current:
            for minute, values in self._bars_between(self.minute, current):
                self._send(minute, values)
        self.minute = current
        values = self._bar(current)
        if values is not None:
            fraction = (now - current) / MINUTE
            self._send(current, _forming(values, fraction, self.instrument.min_tick))

    def _bars_between(self, first: pd.Timestamp, end: pd.Timestamp) -> list[tuple]:
        """(minute, final values) of the minutes with a bar from `first` to before `end`."""
        bars = []
        minute = first
        while minute < end:
            values = self._bar(minute)
            if values is not None:
                bars.append((minute, values))
            minute += MINUTE
        return bars

    def _bar(self, minute: pd.Timestamp) -> tuple | None:
        """The feed's (open, high, low, close, volume) for `minute`, or None (no trade)."""
        day = minute.floor("D")
        if day not in self._days:
            bars = self.instrument.feed.bars_between(day, day + pd.Timedelta(days=1))
            self._days = {
                day: {
                    stamp: (o, h, low, c, v)
                    for stamp, o, h, low, c, v in zip(
                        bars["timestamp"],
                        bars["open"],
                        bars["high"],
                        bars["low"],
                        bars["close"],
                        bars["volume"],
                        strict=True,
                    )
                }
            }
        return self._days[day].get(minute)

    def _send(self, minute: pd.Timestamp, values: tuple) -> None:
        open_, high, low, close, volume = values
        zone = self.instrument.time_zone
        wap = round((high + low + close) / 3, 6) if self.trades else -1
        self.server.stats.updates_sent += 1
        self.connection.send(
            HISTORICAL_DATA_UPDATE,
            self.req_id,
            1 if self.trades else -1,
            format_time(minute, self.format_date, zone, self.label),
            float(open_),
            float(close),
            float(high),
            float(low),
            wap,
            int(volume) if self.trades else -1,
        )


# The forming bar's columns, typed the same whether the minute has a trade or not.
FORMING_TYPES = {
    "timestamp": "datetime64[ns, UTC]",
    "open": "float64",
    "high": "float64",
    "low": "float64",
    "close": "float64",
    "volume": "int64",
}


def forming_bar(instrument: SimulatedInstrument, now: pd.Timestamp) -> pd.DataFrame:
    """The bar of `now`'s minute as formed so far (no row when the minute has no trade).

    Typed the same with or without a row (times in nanoseconds UTC): a subscription's answer
    joins this to the feed's bars, and its times must not depend on whether the current
    minute traded. (The feed's own empty rows, returned before for a minute without a
    trade, kept a CSV feed's microseconds, which `protocol.format_times` then read as
    nanoseconds: every time of that answer came out in January 1970.)
    """
    minute = now.floor("min")
    bars = instrument.feed.bars_between(minute, minute + MINUTE)
    columns = ["open", "high", "low", "close", "volume"]
    rows = []
    if not bars.empty:
        fraction = (now - minute) / MINUTE
        rows.append(
            [minute, *_forming(tuple(bars[columns].iloc[0]), fraction, instrument.min_tick)]
        )
    return pd.DataFrame(rows, columns=["timestamp", *columns]).astype(FORMING_TYPES)


def _forming(values: tuple, fraction: float, tick: float) -> tuple:
    """The bar `fraction` of the way through its minute: open, a close on its way from the
    open to the final close, the high and low reached so far, and part of the volume."""
    open_, _high, _low, close, volume = values
    decimals = max(0, round(-math.log10(tick)))
    so_far = round(open_ + (close - open_) * fraction, decimals)
    return (
        open_,
        max(open_, so_far),
        min(open_, so_far),
        so_far,
        int(volume * fraction),
    )
