"""A seeded synthetic market of 1-minute OHLCV bars over an exchange's real sessions.

Each session is generated from its own seed (seed, symbol, session date), so any range of
sessions can be produced alone, in any order, and always gives the same bars: the default
`kedro run` and the TWS simulator serve the same market. Daily closes follow a geometric
random walk; inside a session the path is a Brownian bridge between the previous close
(plus an overnight gap) and the session's close, with U-shaped intraday volatility and
volume, as on real equity sessions.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import date
from functools import cached_property

import numpy as np
import pandas as pd

from ml_lstm.calendars import get_calendar, trading_sessions

TRADING_DAYS_PER_YEAR = 252
EPOCH = "2015-01-02"


@dataclass(frozen=True)
class MarketProfile:
    symbol: str
    calendar: str
    start_price: float = 100.0
    annual_drift: float = 0.08
    annual_volatility: float = 0.30
    mean_minute_volume: float = 50_000.0
    tick_size: float = 0.01
    # Share of minutes with no trade (absent from the bars, as in IB TRADES data).
    missing_minute_rate: float = 0.001
    seed: int = 42


def profile_from_parameters(instrument: dict, seed: int) -> MarketProfile:
    """Builds the market profile of an instrument from its parameters."""
    synthetic = instrument.get("synthetic", {})
    quotes_only = instrument.get("what_to_show", "TRADES") != "TRADES"
    return MarketProfile(
        symbol=instrument["symbol"],
        calendar=instrument["calendar"],
        start_price=float(synthetic.get("start_price", 100.0)),
        annual_drift=float(synthetic.get("annual_drift", 0.08)),
        annual_volatility=float(synthetic.get("annual_volatility", 0.30)),
        mean_minute_volume=float(synthetic.get("mean_minute_volume", 50_000.0)),
        tick_size=float(synthetic.get("tick_size", 0.001 if quotes_only else 0.01)),
        missing_minute_rate=float(
            synthetic.get("missing_minute_rate", 0.0 if quotes_only else 0.001)
        ),
        seed=seed,
    )


class SyntheticMarket:
    """Deterministic minute bars for every session of a profile's calendar."""

    def __init__(self, profile: MarketProfile) -> None:
        self.profile = profile
        self._symbol_key = zlib.crc32(profile.symbol.encode())

    def _rng(self, session: pd.Timestamp, stream: int) -> np.random.Generator:
        key = [self.profile.seed, self._symbol_key, session.toordinal(), stream]
        return np.random.default_rng(key)

    @cached_property
    def _sessions(self) -> pd.DataFrame:
        cal = get_calendar(self.profile.calendar)
        return trading_sessions(self.profile.calendar, EPOCH, cal.last_session)

    @cached_property
    def _daily_closes(self) -> pd.Series:
        daily_sigma = self.profile.annual_volatility / np.sqrt(TRADING_DAYS_PER_YEAR)
        daily_mu = self.profile.annual_drift / TRADING_DAYS_PER_YEAR - 0.5 * daily_sigma**2
        shocks = np.array([self._rng(s, 0).standard_normal() for s in self._sessions.index])
        log_closes = np.log(self.profile.start_price) + np.cumsum(daily_mu + daily_sigma * shocks)
        return pd.Series(np.exp(log_closes), index=self._sessions.index)

    @property
    def schedule(self) -> pd.DataFrame:
        """Every session the market trades (from EPOCH on): label, UTC open and close."""
        return self._sessions

    def sessions(self, start: str | date, end: str | date) -> list[pd.Timestamp]:
        """Session labels between two dates (inclusive) that this market trades."""
        index = self._sessions.index
        return list(index[(index >= pd.Timestamp(start)) & (index <= pd.Timestamp(end))])

    def session_bars(self, session: str | date | pd.Timestamp) -> pd.DataFrame:
        """Minute bars of one session: timestamp (bar start, UTC) and OHLCV."""
        label = pd.Timestamp(session).tz_localize(None).normalize()
        if label not in self._daily_closes.index:
            raise ValueError(f"{label.date()} is not a {self.profile.calendar} session.")
        position = self._daily_closes.index.get_loc(label)
        open_utc, close_utc = self._sessions.loc[label, ["open", "close"]]
        minutes = pd.date_range(open_utc, close_utc, freq="1min", inclusive="left")
        n = len(minutes)
        rng = self._rng(label, 1)

        daily_sigma = self.profile.annual_volatility / np.sqrt(TRADING_DAYS_PER_YEAR)
        end_log = np.log(self._daily_closes.iloc[position])
        previous_close = (
            self._daily_closes.iloc[position - 1] if position > 0 else self.profile.start_price
        )
        start_log = np.log(previous_close) + 0.2 * daily_sigma * rng.standard_normal()

        # U-shaped intraday activity: busier after the open and before the close.
        phase = np.linspace(0.0, 1.0, n)
        activity = 1.0 + 1.5 * ((2 * phase - 1) ** 2)
        minute_sigma = daily_sigma * np.sqrt(activity / activity.sum())
        walk = np.cumsum(minute_sigma * rng.standard_normal(n))
        bridge = walk - phase * (walk[-1] - (end_log - start_log))
        closes = np.exp(start_log + bridge)
        opens = np.concatenate([[np.exp(start_log)], closes[:-1]])
        wick = np.abs(rng.standard_normal((2, n))) * minute_sigma * 0.6
        highs = np.maximum(opens, closes) * np.exp(wick[0])
        lows = np.minimum(opens, closes) * np.exp(-wick[1])

        tick = self.profile.tick_size
        opens, highs, lows, closes = (
            np.round(x / tick) * tick for x in (opens, highs, lows, closes)
        )
        highs = np.maximum.reduce([highs, opens, closes])
        lows = np.minimum.reduce([lows, opens, closes])
        decimals = max(0, round(-np.log10(tick)))

        volume_noise = rng.lognormal(mean=-0.125, sigma=0.5, size=n)
        volume = np.round(
            self.profile.mean_minute_volume * activity / activity.mean() * volume_noise
        )
        traded = rng.random(n) >= self.profile.missing_minute_rate
        bars = pd.DataFrame(
            {
                "timestamp": minutes,
                "open": opens.round(decimals),
                "high": highs.round(decimals),
                "low": lows.round(decimals),
                "close": closes.round(decimals),
                "volume": volume.astype("int64"),
            }
        )
        return bars[traded].reset_index(drop=True)
