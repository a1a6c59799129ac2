"""Helpers for the ingestion tests: the real pipeline on a real catalog in a temp folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from support import PROJECT_ROOT

from ml_lstm.pipeline_registry import for_instrument
from ml_lstm.pipelines.ingestion import create_pipeline
from ml_lstm.pipelines.ingestion.nodes import RAW_COLUMNS
from ml_lstm.synthetic_market import SyntheticMarket, profile_from_parameters

NVDA = {
    "symbol": "NVDA",
    "sec_type": "STK",
    "exchange": "SMART",
    "primary_exchange": "NASDAQ",
    "currency": "USD",
    "what_to_show": "TRADES",
    "use_rth": True,
    "calendar": "XNYS",
    "timezone": "America/New_York",
    "synthetic": {"start_price": 48.0, "annual_volatility": 0.45},
}

XAGUSD = {
    "symbol": "XAGUSD",
    "sec_type": "CMDTY",
    "exchange": "SMART",
    "currency": "USD",
    "what_to_show": "MIDPOINT",
    "use_rth": False,
    "calendar": "METALS-NY",
    "timezone": "UTC",
    "synthetic": {"start_price": 23.0, "mean_minute_volume": 0},
}

RUN_STARTED_AT = "2024-06-03T12:00:00+00:00"

# Fast settings: short timeouts and backoffs so every fault resolves in well under a second.
FAST_REQUESTS = {
    "format_date": 2,
    "request_timeout_s": 1.0,
    "connect_timeout_s": 5.0,
    "max_concurrent_requests": 8,
    "max_retries": 4,
    "retry_backoff_s": 0.05,
    "retry_backoff_max_s": 0.2,
    "max_reconnects": 5,
    "outage_timeout_s": 3.0,
    "pacing": {"identical_interval_s": 0.1, "same_contract_max": None, "window_max": None},
}


def ingestion_parameters(**overrides: Any) -> dict[str, Any]:
    parameters = {
        "source": "simulator",
        "start_date": "2024-01-02",
        "end_date": "2024-01-19",
        "use_rth": None,
        "seed": 42,
        "batch_sessions": 4,
        "completeness_tolerance": 0.05,
        "max_attempts": 3,
        "requests": dict(FAST_REQUESTS),
        "simulator": {},
    }
    parameters.update(overrides)
    return parameters


def run_ingestion(
    root: Path,
    ingestion: dict,
    instrument: dict | None = None,
    connection: dict | None = None,
    name: str = "nvda",
    started_at: str = RUN_STARTED_AT,
) -> None:
    """Runs the namespaced ingestion pipeline with Kedro's SequentialRunner; `started_at`
    is the run's "now", as the run-info hook stamps it. The datasets are those of
    conf/base/catalog_ingestion.yml, with data/01_raw/ moved to `root`."""
    catalog = ingestion_catalog(root)
    for dataset, value in {
        f"{name}.ib_connection": connection or {},
        f"params:instruments.{name}": instrument or NVDA,
        "params:ingestion": ingestion,
        "run_info": {"run_id": "test", "started_at": started_at},
    }.items():
        catalog[dataset] = MemoryDataset(value)
    SequentialRunner().run(for_instrument(create_pipeline(), name), catalog)


def ingestion_catalog(root: Path) -> DataCatalog:
    """The project's ingestion catalog (its dataset factories), writing under `root`."""
    config = yaml.safe_load((PROJECT_ROOT / "conf/base/catalog_ingestion.yml").read_text())
    moved = json.dumps(config).replace('"data/01_raw/', json.dumps(f"{root.as_posix()}/")[:-1])
    return DataCatalog.from_config(json.loads(moved))


def stored_sessions(root: Path, name: str = "nvda") -> dict[str, pd.DataFrame]:
    folder = root / name / "minute_bars"
    return {path.stem: pd.read_csv(path) for path in sorted(folder.glob("*.csv"))}


def market_sessions(instrument: dict, sessions: list[str], seed: int = 42) -> dict:
    """The synthetic market's bars of `sessions` in the raw layout, as read back from CSV."""
    market = SyntheticMarket(profile_from_parameters(instrument, seed))
    expected = {}
    for session in sessions:
        bars = market.session_bars(session).loc[:, RAW_COLUMNS].copy()
        bars["timestamp"] = bars["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        expected[session] = bars.reset_index(drop=True)
    return expected


def assert_stored_equal_market(
    root: Path, instrument: dict, sessions: list[str], name: str = "nvda"
) -> None:
    stored = stored_sessions(root, name)
    assert sorted(stored) == sorted(sessions)
    for session, bars in market_sessions(instrument, sessions).items():
        pd.testing.assert_frame_equal(stored[session], bars, check_dtype=False)


def window_sessions(instrument: dict, start: str, end: str) -> list[str]:
    from ml_lstm.calendars import trading_sessions

    schedule = trading_sessions(instrument["calendar"], start, end)
    return [label.strftime("%Y-%m-%d") for label in schedule.index]
