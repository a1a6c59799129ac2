"""Between the project's terms and IB's: the ib_insync contract that an instrument's
parameters describe (the client and the simulator share it), and IB's bars as the raw frame.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from ib_insync import Commodity, Contract, Forex, Future, Stock

from ml_lstm.backfill import SessionWindow


class IngestionError(RuntimeError):
    """A problem no retry can fix (unknown contract, no permission, bad request)."""


def build_contract(instrument: dict) -> Contract:
    """The ib_insync contract described by an instrument's parameters."""
    sec_type = instrument.get("sec_type", "STK").upper()
    symbol = instrument["symbol"]
    exchange = instrument.get("exchange", "SMART")
    currency = instrument.get("currency", "USD")
    if sec_type == "STK":
        return Stock(
            symbol, exchange, currency, primaryExchange=instrument.get("primary_exchange", "")
        )
    if sec_type == "CMDTY":
        return Commodity(symbol, exchange, currency)
    if sec_type == "CASH":
        pair = symbol.replace(".", "").replace("/", "")
        if len(pair) != 6:
            raise ValueError(
                f"Forex instrument {symbol!r}: symbol must be a currency pair such as EURUSD."
            )
        return Forex(pair, exchange if exchange != "SMART" else "IDEALPRO")
    if sec_type == "FUT":
        expiry = str(instrument.get("expiry", ""))
        if not expiry:
            raise ValueError(
                f"Future {symbol!r}: set `expiry` (YYYYMM or YYYYMMDD) in its parameters."
            )
        return Future(
            symbol,
            expiry,
            exchange,
            multiplier=str(instrument.get("multiplier", "")),
            currency=currency,
        )
    raise ValueError(
        f"Instrument {symbol!r}: sec_type {sec_type!r} is not supported; expected STK, "
        "CMDTY, CASH or FUT."
    )


def describe(contract: Contract) -> str:
    """A contract as error messages name it: symbol, type, exchange, currency."""
    return f"{contract.symbol} {contract.secType} {contract.exchange} {contract.currency}"


def bars_to_frame(
    bars: list, window: SessionWindow, what_to_show: str, symbol: str
) -> pd.DataFrame:
    """ib_insync bars as the raw frame: tz-aware UTC bar start, OHLC, volume (0 if none).

    Quote bars (MIDPOINT, BID, ASK) carry volume -1 at IB: they are stored with volume 0.
    Bar times without a zone are refused: their zone would be this host's, a guess.
    """
    count = len(bars)
    naive = next((bar.date for bar in bars if getattr(bar.date, "tzinfo", None) is None), None)
    if naive is not None:
        raise IngestionError(
            f"{symbol} session {window.session}: TWS sent bar times without a time zone "
            f"(e.g. {naive}), as older TWS versions do with format_date 1; set "
            "ingestion.requests.format_date: 2 (epoch seconds, the default)."
        )
    seconds = np.fromiter((bar.date.timestamp() for bar in bars), dtype="float64", count=count)
    values = np.array(
        [(bar.open, bar.high, bar.low, bar.close, bar.volume) for bar in bars], dtype="float64"
    ).reshape(count, 5)
    stamps = pd.to_datetime(np.round(seconds).astype("int64"), unit="s", utc=True).as_unit("ns")
    inside = (stamps >= window.open) & (stamps < window.close)
    volume = (
        np.clip(values[inside, 4], 0, None) if what_to_show == "TRADES" else 0 * values[inside, 4]
    )
    frame = pd.DataFrame(
        {
            "timestamp": stamps[inside],
            "open": values[inside, 0],
            "high": values[inside, 1],
            "low": values[inside, 2],
            "close": values[inside, 3],
            "volume": volume.astype("int64") if (volume == np.round(volume)).all() else volume,
        }
    )
    if not (np.diff(seconds[inside]) > 0).all():
        frame = frame.drop_duplicates("timestamp", keep="last").sort_values("timestamp")
    return frame.reset_index(drop=True)
