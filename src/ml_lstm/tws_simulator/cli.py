"""The simulator's command line: `python -m ml_lstm.tws_simulator --port 7497 [...]`.

It serves the instruments of conf/base/parameters.yml (run it from the project folder)
until interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from ml_lstm.calendars import utc
from ml_lstm.pacing import PacingRules

from .clock import SimulatorClock
from .faults import Faults
from .feeds import SimulatedInstrument, instrument_from_parameters
from .runners import MODULE
from .server import TwsSimulator

logger = logging.getLogger(MODULE)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=f"python -m {MODULE}",
        description="A TWS API simulator serving 1-minute bars to ib_insync (read-only).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7497)
    parser.add_argument(
        "--instrument",
        action="append",
        default=None,
        help="instrument key of conf/base/parameters.yml to serve (repeatable; default: all)",
    )
    parser.add_argument(
        "--csv",
        default=None,
        help="serve this raw-layout CSV instead of the synthetic market (with one --instrument)",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument("--drop-after", type=int, action="append", default=[])
    parser.add_argument("--pacing-violation", type=int, action="append", default=[])
    parser.add_argument("--unanswered", type=int, action="append", default=[])
    parser.add_argument("--connectivity-loss-after", type=int, action="append", default=[])
    parser.add_argument("--no-data", action="append", default=[], help="YYYY-MM-DD")
    parser.add_argument("--enforce-pacing", action="store_true", help="IB's pacing rules")
    parser.add_argument(
        "--start", default=None, help="replay from this time (ISO) on the simulator's own clock"
    )
    parser.add_argument(
        "--speed", type=float, default=1.0, help="simulated seconds per real second (with --start)"
    )
    parser.add_argument(
        "--restart-at", action="append", default=[], help="daily-restart fault at (ISO, simulated)"
    )
    parser.add_argument("--restart-minutes", type=float, default=5.0)
    parser.add_argument(
        "--history-refused-at",
        action="append",
        default=[],
        help="refuse the first historical request at or after this time (ISO, simulated)",
    )
    return parser.parse_args(argv)


def instrument_parameters() -> dict[str, dict]:
    """The `instruments` of conf/base/parameters.yml in the current folder."""
    from omegaconf import OmegaConf

    path = Path.cwd() / "conf" / "base" / "parameters.yml"
    if not path.is_file():
        raise SystemExit(f"{path} not found: run the simulator from the project folder.")
    return OmegaConf.to_container(OmegaConf.load(path))["instruments"]


def faults_from_arguments(arguments: argparse.Namespace) -> Faults:
    return Faults(
        latency_s=arguments.latency,
        drop_after_requests=frozenset(arguments.drop_after),
        pacing_violation_requests=frozenset(arguments.pacing_violation),
        unanswered_requests=frozenset(arguments.unanswered),
        connectivity_loss_after_requests=frozenset(arguments.connectivity_loss_after),
        no_data_dates=frozenset(arguments.no_data),
        pacing=PacingRules() if arguments.enforce_pacing else None,
        restart_at=tuple(sorted(utc(text) for text in arguments.restart_at)),
        restart_minutes=arguments.restart_minutes,
        history_refused_at=tuple(sorted(utc(text) for text in arguments.history_refused_at)),
    )


def main(argv: list[str] | None = None) -> None:
    """Runs the simulator until interrupted."""
    arguments = parse_arguments(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    parameters = instrument_parameters()
    names = arguments.instrument or list(parameters)
    if arguments.csv and len(names) != 1:
        raise SystemExit("--csv serves one instrument: name it with --instrument.")
    instruments = [
        instrument_from_parameters(parameters[name], arguments.seed, arguments.csv)
        for name in names
    ]
    asyncio.run(serve(instruments, faults_from_arguments(arguments), arguments))


async def serve(
    instruments: list[SimulatedInstrument], faults: Faults, arguments: argparse.Namespace
) -> None:
    clock = SimulatorClock(arguments.start, arguments.speed) if arguments.start else None
    simulator = TwsSimulator(instruments, faults, clock=clock)
    port = await simulator.start(arguments.host, arguments.port)
    served = ", ".join(f"{i.symbol} ({i.sec_type})" for i in instruments)
    logger.info("TWS simulator listening on %s:%d, serving %s", arguments.host, port, served)
    # Ctrl-C and SIGTERM (what process managers and SimulatorProcess send) both end the
    # loop's wait, so shutdown always runs the same, graceful path.
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    try:
        await stopping.wait()
    finally:
        await simulator.stop()
        logger.info("TWS simulator stopped")
