"""A Dask cluster of separate processes on this machine: `dask scheduler` and `dask worker`s.

What the tests and `python -m benchmarks scale` run DaskRunner against: the same commands
as on several machines (README, "Many instruments"), bound to 127.0.0.1. Workers are
single-threaded and without a nanny, so a killed worker stays dead as a lost machine would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

START_TIMEOUT_S = 60
DASK = str(Path(sys.executable).parent / "dask")


class LoopbackCluster:
    """A scheduler and `workers` worker processes; `close()` (or `with`) stops them all."""

    def __init__(self, folder: Path, workers: int = 2, env: dict[str, str] | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.scheduler_file = folder / "scheduler.json"
        self.scheduler_file.unlink(missing_ok=True)
        self._env = {**os.environ, **(env or {})}
        self._processes: list[subprocess.Popen] = []
        self._log = open(folder / "cluster.log", "w")  # noqa: SIM115 - closed in close()
        try:
            self._start(
                "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                "--scheduler-file", str(self.scheduler_file),
            )  # fmt: skip
            for _ in range(workers):
                self.add_worker()
            self.wait_for_workers(workers)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> LoopbackCluster:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _start(self, *arguments: str) -> None:
        process = subprocess.Popen(
            [DASK, *arguments], stdout=self._log, stderr=subprocess.STDOUT, env=self._env,
            start_new_session=True,
        )  # fmt: skip
        self._processes.append(process)

    def add_worker(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.scheduler_file.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"dask scheduler wrote no {self.scheduler_file}")
            time.sleep(0.1)
        self._start(
            "worker", "--scheduler-file", str(self.scheduler_file), "--nthreads", "1",
            "--no-nanny", "--no-dashboard", "--host", "127.0.0.1",
        )  # fmt: skip

    @property
    def address(self) -> str:
        return json.loads(self.scheduler_file.read_text())["address"]

    def client(self) -> Any:
        from distributed import Client

        return Client(self.address, timeout=START_TIMEOUT_S)

    def wait_for_workers(self, count: int) -> None:
        with self.client() as client:
            client.wait_for_workers(count, timeout=START_TIMEOUT_S)

    def close(self) -> None:
        """Stops the processes this cluster started (workers first), by their own ids."""
        for process in reversed(self._processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self._processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self._processes.clear()
        self._log.close()
