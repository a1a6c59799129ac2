"""The Kedro process's end of a run's MLflow logging process (`ml_lstm.tracking_worker`).

Messages are JSON lines on the process's stdin. They are encoded in the caller's thread
and written to the pipe by a thread that does nothing else (no imports, no MLflow), so a
node never waits on a pipe that is full while the logging process is still starting.
`finish` waits for the logging process's report and logs it: what was logged, and every
call that failed, as a warning. It never raises: tracking must not fail the run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

logger = logging.getLogger("ml_lstm.tracking")

WORKER_MODULE = "ml_lstm.tracking_worker"


class LoggingProcess:
    """One tracked run's logging process: `send` messages, then `finish` once."""

    def __init__(self, process: subprocess.Popen) -> None:
        self._process = process
        self._lines: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write, name="mlflow-pipe", daemon=True)
        self._writer.start()

    @classmethod
    def start(cls, begin: dict) -> LoggingProcess:
        package_root = str(Path(__file__).resolve().parents[1])
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, path]))}
        process = subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        handle = cls(process)
        handle.send(begin)
        return handle

    def send(self, message: dict) -> None:
        self._lines.put(json.dumps(message, default=str).encode("utf-8") + b"\n")

    def _write(self) -> None:
        pipe = self._process.stdin
        try:
            while (line := self._lines.get()) is not None:
                pipe.write(line)
                pipe.flush()
        except OSError:
            pass  # the logging process is gone: finish() reports it
        finally:
            with contextlib.suppress(OSError):
                pipe.close()

    def finish(self, status: str, timeout: float) -> dict | None:
        """Ends the run (`FINISHED` or `FAILED`), waits for the report and logs it."""
        self.send({"op": "finish", "status": status})
        self._lines.put(None)
        self._writer.join(timeout)
        self._process.stdin = None  # closed by the writer
        try:
            out, _ = self._process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.communicate()
            logger.warning(
                "MLflow tracking: the logging process did not finish within %.0f s and was "
                "stopped; this run's MLflow record may be incomplete (the project's own "
                "outputs are not affected).",
                timeout,
            )
            return None
        return _report(out, self._process.returncode)


def _report(out: bytes, returncode: int) -> dict | None:
    try:
        report = json.loads(out.decode("utf-8").strip().splitlines()[-1])
    except (ValueError, IndexError):
        logger.warning(
            "MLflow tracking: the logging process ended (exit code %s) without a report; "
            "its error is in the log above. This run may be missing from MLflow (the "
            "project's own outputs are not affected).",
            returncode,
        )
        return None
    for error in report["errors"]:
        logger.warning("MLflow tracking: not logged: %s", error)
    for line in report["mirrored"]:
        logger.info("MLflow: %s.", line)
    if report["run_id"]:
        logged = ", ".join(f"{count} {what}" for what, count in report["logged"].items())
        logger.info("MLflow run %s logged: %s.", report["run_id"], logged)
    return report
