"""Running the simulator: in a background thread of this process (tests, the default
`kedro run`), or as a process of its own, as TWS is (`python -m ml_lstm.tws_simulator`)."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from .clock import SimulatorClock
from .faults import Faults, SimulatorStats
from .feeds import SimulatedInstrument
from .server import TwsSimulator

MODULE = "ml_lstm.tws_simulator"


class SimulatorThread:
    """Runs a TwsSimulator on its own event loop in a background thread.

    Use as a context manager: `with SimulatorThread(instruments) as sim: connect to sim.port`.
    """

    def __init__(
        self,
        instruments: list[SimulatedInstrument],
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: SimulatorClock | None = None,
        update_interval_s: float = 5.0,
    ) -> None:
        self.simulator = TwsSimulator(
            instruments, faults, clock=clock, update_interval_s=update_interval_s
        )
        self.host = host
        self._requested_port = port
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tws-simulator", daemon=True
        )

    def start(self) -> SimulatorThread:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            self.simulator.start(self.host, self._requested_port), self._loop
        )
        self.port = future.result(timeout=10)
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self.simulator.stop(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        if not self._loop.is_running():
            self._loop.close()

    @property
    def stats(self) -> SimulatorStats:
        return self.simulator.stats

    def __enter__(self) -> SimulatorThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class SimulatorProcess:
    """Runs the simulator as its own process (`python -m ml_lstm.tws_simulator`), as TWS is.

    Use as a context manager; `arguments` are the command-line options (e.g.
    `["--latency", "0.1"]`). The process is started on a free port, read from its log.
    """

    START_TIMEOUT_S = 30.0

    def __init__(self, arguments: list[str] | None = None, cwd: Path | None = None) -> None:
        self._command = [sys.executable, "-m", MODULE, "--port", "0", *(arguments or [])]
        self._cwd = cwd
        self.port = 0
        self.returncode: int | None = None
        self.log = ""
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> SimulatorProcess:
        self._process = subprocess.Popen(
            self._command,
            cwd=self._cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + self.START_TIMEOUT_S
        while time.monotonic() < deadline:
            line = self._process.stdout.readline()
            if not line:
                break
            self.log += line
            listening = re.search(r"listening on [\w.:]+:(\d+)", line)
            if listening:
                self.port = int(listening.group(1))
                return self
        self.stop()
        raise RuntimeError(f"The TWS simulator did not start: {self.log.strip()}")

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            rest, _ = self._process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            rest, _ = self._process.communicate()
        self.log += rest or ""
        self.returncode = self._process.returncode

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
