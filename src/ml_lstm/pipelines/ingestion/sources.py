"""Where minute bars come from: one entry point, `fetch_sessions`, for every source.

- `simulator`: the real ib_insync path against an in-process TWS simulator serving the
  synthetic market (the default; no broker, no network beyond loopback), or against one
  already running (`ingestion.running_simulator`: host and port; `kedro live` sets it).
- `ib`: a real TWS / IB Gateway (`kedro run --env ib`).
- `synthetic`: the synthetic market directly, without a socket.
- `csv`, `sqlite`: a user's file of minute bars or ticks.

Each yields batches of `SessionResult`s for the requested session windows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pandas as pd

from ml_lstm.backfill import SessionResult, SessionStatus, SessionWindow
from ml_lstm.calendars import instrument_sessions

if TYPE_CHECKING:
    # Imported where they are used: a file or synthetic run needs no ib_insync.
    from ml_lstm.ib_client import HistoricalBarsClient
    from ml_lstm.ib_connection import ConnectionSettings

logger = logging.getLogger(__name__)

SOURCES = ("simulator", "ib", "synthetic", "csv", "sqlite")
# The in-process simulator is a fresh server: any client id is free on it.
SIMULATOR_CLIENT_ID = 1


def session_windows(instrument: dict, sessions: list[str]) -> list[SessionWindow]:
    """Each session's UTC open and close from the instrument's calendar."""
    if not sessions:
        return []
    schedule = instrument_sessions(instrument, min(sessions), max(sessions))
    wanted = set(sessions)
    return [
        SessionWindow(label.strftime("%Y-%m-%d"), row.open, row.close)
        for label, row in schedule.iterrows()
        if label.strftime("%Y-%m-%d") in wanted
    ]


def source_label(ingestion: dict, instrument: dict) -> str:
    """How the ledger names the source of a session's bars."""
    source = ingestion["source"]
    if source in ("csv", "sqlite"):
        from .file_sources import file_path

        return f"{source}:{file_path(source, ingestion, instrument).name}"
    return source


def fetch_sessions(
    windows: list[SessionWindow],
    instrument: dict,
    ingestion: dict,
    now: pd.Timestamp,
    connection: dict | None = None,
) -> Iterator[list[SessionResult]]:
    """Batches of `ingestion.batch_sessions` finished sessions from `ingestion.source`.

    `now` (the run's start, UTC) decides whether a fetched session has ended.
    """
    source = ingestion["source"]
    batch_size = int(ingestion.get("batch_sessions", 25))
    if source not in SOURCES:
        raise ValueError(
            f"Unknown ingestion.source {source!r}: expected one of {', '.join(SOURCES)}."
        )
    if not windows:
        return
    if source == "synthetic":
        yield from _synthetic(windows, instrument, ingestion, batch_size)
    elif source in ("csv", "sqlite"):
        from .file_sources import file_sessions

        yield from file_sessions(windows, instrument, ingestion, batch_size)
    elif source == "simulator":
        yield from _simulator(windows, instrument, ingestion, batch_size, now)
    else:
        from ml_lstm.ib_connection import ConnectionSettings

        client = _client(instrument, ingestion, ConnectionSettings.resolve(connection), now)
        yield from client.fetch(windows, batch_size)


def _client(
    instrument: dict, ingestion: dict, connection: ConnectionSettings, now: pd.Timestamp
) -> HistoricalBarsClient:
    from ml_lstm.ib_client import HistoricalBarsClient
    from ml_lstm.ib_connection import RequestSettings

    use_rth = ingestion.get("use_rth")
    return HistoricalBarsClient(
        instrument,
        connection,
        RequestSettings.from_parameters(ingestion.get("requests", {})),
        use_rth=None if use_rth is None else bool(use_rth),
        now=now,
    )


def _simulator(
    windows: list[SessionWindow],
    instrument: dict,
    ingestion: dict,
    batch_size: int,
    now: pd.Timestamp,
) -> Iterator[list[SessionResult]]:
    from ml_lstm.ib_connection import ConnectionSettings

    running = ingestion.get("running_simulator")
    if running:
        # A simulator already serving this process (kedro live's): its market, its clock.
        client_id = int(running.get("client_id", SIMULATOR_CLIENT_ID))
        connection = ConnectionSettings(str(running["host"]), int(running["port"]), client_id)
        yield from _client(instrument, ingestion, connection, now).fetch(windows, batch_size)
        return
    from ml_lstm.tws_simulator import Faults, SimulatorThread, instrument_from_parameters

    simulated = instrument_from_parameters(instrument, int(ingestion["seed"]))
    faults = Faults.from_parameters(ingestion.get("simulator"))
    with SimulatorThread([simulated], faults) as simulator:
        connection = ConnectionSettings("127.0.0.1", simulator.port, SIMULATOR_CLIENT_ID)
        yield from _client(instrument, ingestion, connection, now).fetch(windows, batch_size)


def _synthetic(
    windows: list[SessionWindow], instrument: dict, ingestion: dict, batch_size: int
) -> Iterator[list[SessionResult]]:
    from ml_lstm.synthetic_market import SyntheticMarket, profile_from_parameters

    market = SyntheticMarket(profile_from_parameters(instrument, int(ingestion["seed"])))
    for start in range(0, len(windows), batch_size):
        yield [
            SessionResult(
                window.session, SessionStatus.COMPLETE, market.session_bars(window.session), 1
            )
            for window in windows[start : start + batch_size]
        ]
