"""Builders of minute bars and small data_processing parameters for these tests."""

from __future__ import annotations

import tempfile

import numpy as np
import pandas as pd

from ml_lstm.bar_checks import REQUIRED_COLUMNS
from ml_lstm.calendars import trading_sessions
from ml_lstm.datasets import SessionPartitionsDataset, SessionTableDataset

NVDA = {"symbol": "NVDA", "calendar": "XNYS", "extended_hours": False}
# A run that starts after every bar of these tests: every session is finished.
RUN_INFO = {"run_id": "test", "started_at": "2030-01-02T00:00:00+00:00"}

PARAMETERS = {
    "frequency": "60min",
    "max_rejected_share": 0.01,
    "max_fill_minutes": 5,
    "features": {
        "include": [
            "return",
            "log_return",
            "sma",
            "ema",
            "rsi",
            "macd",
            "volatility",
            "session_position",
            "day_of_week",
        ],
        "sma_windows": [3],
        "ema_windows": [4],
        "rsi_window": 3,
        "macd": {"fast": 2, "slow": 4, "signal": 2},
        "volatility_windows": [3],
        "max_missing_sessions": 0,
    },
}


def session_minutes(calendar: str, session: str, extended: bool = False) -> pd.DatetimeIndex:
    """Every minute (bar start, UTC) of one session."""
    row = trading_sessions(calendar, session, session, extended=extended).iloc[0]
    return pd.date_range(row["open"], row["close"], freq="1min", inclusive="left")


def minute_bars(timestamps, start_price: float = 100.0, seed: int = 0) -> pd.DataFrame:
    """Consistent OHLCV minute bars (tz-aware timestamps) on a seeded random walk."""
    rng = np.random.default_rng(seed)
    n = len(timestamps)
    close = start_price * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    open_ = np.concatenate([[start_price], close[:-1]])
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.001, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.001, n))
    return pd.DataFrame(
        {
            "timestamp": pd.DatetimeIndex(timestamps).tz_convert("UTC"),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": rng.integers(0, 1000, n).astype(float),
        }
    )


def raw_table(bars: pd.DataFrame, sessions: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """`bars` written as raw session files (one per UTC date, or the given `sessions`) and
    read back as data_processing reads them: through the project's raw datasets."""
    if sessions is None:
        text = bars.copy()
        if isinstance(text["timestamp"].dtype, pd.DatetimeTZDtype):
            text["timestamp"] = text["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        day = pd.to_datetime(text["timestamp"].str[:10]).dt.strftime("%Y-%m-%d")
        sessions = {key: part for key, part in text.groupby(day)}
    with tempfile.TemporaryDirectory() as folder:
        SessionPartitionsDataset(path=folder).save(sessions)
        return SessionTableDataset(path=folder, required_columns=REQUIRED_COLUMNS).load()


def parameters(**changes) -> dict:
    """A copy of PARAMETERS with top-level `changes`."""
    return {**PARAMETERS, "features": dict(PARAMETERS["features"]), **changes}
