"""`kedro live`: the Kedro session, the TWS simulator (default source) and one live loop
per instrument, until a signal, the kill-switch file or `live.until` stops them."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from ml_lstm.ib_connection import ConnectionSettings, RequestSettings
from ml_lstm.instruments import enabled_instrument_names
from ml_lstm.pacing import shared_pacing

from .feed import LiveFeed
from .loop import InstrumentLoop
from .settings import LiveSettings
from .stopping import Stopper
from .store import LiveStore

logger = logging.getLogger(__name__)

# What the in-process simulator's ingestion client connects as (as in ingestion's sources).
SIMULATOR_CLIENT_ID = 1
STREAMED_SOURCES = ("simulator", "ib")


def run_live(
    project_path: Path,
    env: str | None = None,
    namespaces: list[str] | None = None,
    params: dict[str, Any] | None = None,
) -> list[InstrumentLoop]:
    """Runs until stopped; returns the loops (their `stats`) once all have ended."""
    bootstrap_project(project_path)
    with KedroSession.create(project_path=project_path, env=env, runtime_params=params) as session:
        context = session.load_context()
        catalog = context.catalog
        parameters = context.params
        run_id = f"live-{session.session_id}"
    settings = LiveSettings.from_parameters(parameters.get("live"), project_path)
    names = list(namespaces or enabled_instrument_names(parameters["instruments"]))
    ingestion = parameters["ingestion"]
    if ingestion["source"] not in STREAMED_SOURCES:
        raise ValueError(
            f"kedro live streams from TWS (ingestion.source: ib, `--env ib`) or the TWS "
            f"simulator (ingestion.source: simulator), not {ingestion['source']!r}; to replay "
            "a CSV of minute bars, set live.simulator.csv_path."
        )
    if settings.kill_switch_file.exists():
        logger.warning(
            "The kill-switch file %s exists: delete it to run live.", settings.kill_switch_file
        )
        return []
    simulator = (
        _simulator(parameters, names, settings) if ingestion["source"] == "simulator" else None
    )
    try:
        if simulator is not None:
            connection = ConnectionSettings("127.0.0.1", simulator.port, SIMULATOR_CLIENT_ID)
        else:
            connection = ConnectionSettings.resolve(catalog.load(f"{names[0]}.ib_connection"))
        ready = simulator.simulator.clock.run if simulator is not None else None
        requests = RequestSettings.from_parameters(ingestion.get("requests", {}))
        # The catch-up backfills and the stream count their requests in one book.
        with shared_pacing((connection.host, connection.port), requests.pacing):
            return asyncio.run(
                _run(catalog, parameters, names, connection, settings, run_id, ready)
            )
    finally:
        if simulator is not None:
            simulator.stop()


def _simulator(parameters: dict, names: list[str], settings: LiveSettings) -> Any:
    from ml_lstm.tws_simulator import (
        Faults,
        SimulatorClock,
        SimulatorThread,
        instrument_from_parameters,
    )

    options = settings.simulator
    seed = int(parameters["ingestion"]["seed"])
    instruments = [
        instrument_from_parameters(parameters["instruments"][name], seed, options.csv_path)
        for name in names
    ]
    faults = Faults.from_parameters(
        {**(parameters["ingestion"].get("simulator") or {}), **options.faults}
    )
    clock = SimulatorClock(options.start, options.speed, paused=True)
    simulator = SimulatorThread(
        instruments, faults, clock=clock, update_interval_s=options.update_interval_s
    ).start()
    logger.info("TWS simulator replaying from %s at %gx", options.start or "now", clock.speed)
    return simulator


async def _run(
    catalog: Any,
    parameters: dict,
    names: list[str],
    connection: ConnectionSettings,
    settings: LiveSettings,
    run_id: str,
    ready: Callable[[], None] | None = None,
) -> list[InstrumentLoop]:
    stopper = Stopper(settings.kill_switch_file)
    stopper.install_signal_handlers()
    requests = RequestSettings.from_parameters(parameters["ingestion"].get("requests", {}))
    simulated = parameters["ingestion"]["source"] == "simulator"
    loops = []
    for position, name in enumerate(names):
        instrument = parameters["instruments"][name]
        feed_connection = ConnectionSettings(
            connection.host,
            connection.port,
            connection.client_id + settings.feed_client_id_offset + position,
        )
        use_rth = parameters["ingestion"].get("use_rth")
        feed = LiveFeed(instrument, feed_connection, requests, use_rth)
        store = LiveStore(catalog, name, parameters, connection, settings.dry_run, simulated)
        loops.append(InstrumentLoop(instrument, parameters, feed, store, settings, stopper, run_id))
    for loop in loops:
        loop.prepare()
    # What start-up made (the model and TensorFlow's graph, the history) lives all day: out
    # of the collector's reach, a full collection at some bar need not walk it (tens of ms).
    gc.freeze()
    if ready is not None:
        # A replay's clock starts once the models are loaded.
        ready()
    watcher = asyncio.ensure_future(stopper.watch_kill_switch())
    try:
        await asyncio.gather(*(loop.run() for loop in loops))
    finally:
        stopper.stop(stopper.reason or "every loop ended")
        await watcher
        gc.unfreeze()
    return loops
