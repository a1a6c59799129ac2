"""Ingestion nodes: decide which sessions are missing and fetch their minute bars."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pandas as pd

from ml_lstm.calendars import trading_sessions

from .synthetic_market import SyntheticMarket, profile_from_parameters

logger = logging.getLogger(__name__)

RAW_COLUMNS = ["timestamp", "open", "high", "low", "close", "volume"]


def plan_backfill(
    stored: dict[str, Callable[[], pd.DataFrame]], instrument: dict, ingestion: dict
) -> list[str]:
    """Sessions (YYYY-MM-DD) of the backfill window that are not stored yet."""
    sessions = trading_sessions(
        instrument["calendar"], ingestion["start_date"], ingestion["end_date"]
    )
    wanted = [label.strftime("%Y-%m-%d") for label in sessions.index]
    missing = [session for session in wanted if session not in stored]
    logger.info(
        "%s: %d sessions in %s..%s, %d stored, %d to fetch",
        instrument["symbol"],
        len(wanted),
        ingestion["start_date"],
        ingestion["end_date"],
        len(wanted) - len(missing),
        len(missing),
    )
    return missing


def fetch_minute_bars(
    sessions: list[str], instrument: dict, ingestion: dict
) -> dict[str, pd.DataFrame]:
    """Minute bars of each session from the configured source, keyed by session date."""
    source = ingestion["source"]
    if source != "synthetic":
        raise ValueError(f"Unknown ingestion.source {source!r}: expected 'synthetic'.")
    market = SyntheticMarket(profile_from_parameters(instrument, ingestion["seed"]))
    return {session: to_raw_format(market.session_bars(session)) for session in sessions}


def to_raw_format(bars: pd.DataFrame) -> pd.DataFrame:
    """Raw storage layout: RAW_COLUMNS with the timestamp as ISO-8601 UTC text."""
    raw = bars.loc[:, RAW_COLUMNS].copy()
    raw["timestamp"] = raw["timestamp"].dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return raw
