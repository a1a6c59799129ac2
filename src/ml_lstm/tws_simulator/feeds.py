"""What the simulator serves: the contracts it knows and the feeds of their minute bars
(the seeded synthetic market, or a raw-layout CSV file)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from ml_lstm.calendars import get_calendar, trading_sessions, utc, utc_nanoseconds
from ml_lstm.ib_data import build_contract
from ml_lstm.synthetic_market import SyntheticMarket, profile_from_parameters

BAR_COLUMNS = ["timestamp", "open", "high", "low", "close", "volume"]


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
        frames = [self._session_bars(label) for label in self._overlapping(start, end)]
        if not frames:
            return pd.DataFrame(columns=BAR_COLUMNS)
        bars = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        stamps = bars["timestamp"]
        if len(bars) and stamps.iloc[0] >= start and stamps.iloc[-1] < end:
            # A whole session (a backfill's request): its cached bars, as a new frame.
            return bars.copy(deep=False)
        return bars[(stamps >= start) & (stamps < end)]

    def _overlapping(self, start: pd.Timestamp, end: pd.Timestamp) -> pd.Index:
        """Labels of the sessions with bars between start and end, looked up in the market's
        schedule (a search, not a calendar query per request)."""
        opens, closes = self._bounds_ns
        if not len(opens) or start.value < opens[0]:
            # Before the market's first session: asked of the calendar, as the market
            # refuses sessions it does not trade.
            sessions = trading_sessions(
                self.calendar, start - pd.Timedelta(days=1), end + pd.Timedelta(days=1)
            )
            return sessions.index[(sessions["close"] > start) & (sessions["open"] < end)]
        first = np.searchsorted(closes, start.value, side="right")
        last = np.searchsorted(opens, end.value, side="left")
        return self.market.schedule.index[first:last]

    @cached_property
    def _bounds_ns(self) -> tuple[np.ndarray, np.ndarray]:
        schedule = self.market.schedule
        return utc_nanoseconds(schedule["open"]), utc_nanoseconds(schedule["close"])

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
        missing = set(BAR_COLUMNS) - set(bars.columns)
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)} for the simulator.")
        bars["timestamp"] = utc(bars["timestamp"])
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
