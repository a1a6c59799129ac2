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
    dates = [bar.date for bar in bars]
    naive = next((date for date in dates if getattr(date, "tzinfo", None) is None), None)
    if naive is not None:
        raise IngestionError(
            f"{symbol} session {window.session}: TWS sent bar times without a time zone "
            f"(e.g. {naive}), as older TWS versions do with format_date 1; set "
            "ingestion.requests.format_date: 2 (epoch seconds, the default)."
        )
    # One pass over the bars into one array; the frame is then built column-wise.
    values = np.array(
        [
            (date.timestamp(), bar.open, bar.high, bar.low, bar.close, bar.volume)
            for date, bar in zip(dates, bars, strict=True)
        ],
        dtype="float64",
    ).reshape(len(dates), 6)
    stamps_ns = np.round(values[:, 0]).astype("int64") * 1_000_000_000
    inside = (stamps_ns >= window.open.value) & (stamps_ns < window.close.value)
    if not inside.all():
        values, stamps_ns = values[inside], stamps_ns[inside]
    volume = np.clip(values[:, 5], 0, None) if what_to_show == "TRADES" else 0 * values[:, 5]
    frame = pd.DataFrame(
        {
            # Epoch nanoseconds viewed as UTC times (pd.to_datetime converts one by one).
            "timestamp": pd.DatetimeIndex(stamps_ns.view("datetime64[ns]")).tz_localize("UTC"),
            "open": values[:, 1],
            "high": values[:, 2],
            "low": values[:, 3],
            "close": values[:, 4],
            "volume": volume.astype("int64") if (volume == np.round(volume)).all() else volume,
        }
    )
    if not (np.diff(stamps_ns) > 0).all():
        frame = frame.drop_duplicates("timestamp", keep="last").sort_values("timestamp")
        return frame.reset_index(drop=True)
    return frame
