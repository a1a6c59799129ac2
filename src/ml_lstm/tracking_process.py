"""The Kedro process's end of a run's MLflow logging process (`ml_lstm.tracking_worker`).

On Linux the logging process is a fork of this one, made
when the pipeline starts, before any node runs: it inherits the modules this process has
already imported (MLflow itself, which kedro-mlflow's CLI plugin imports in every `kedro`
process, and pandas), so it only imports MLflow's SQLAlchemy store (a second of CPU rather
than three for a fresh interpreter); it never touches this process's objects. Elsewhere
(Windows; macOS, where a fork of a process that has loaded system frameworks is unsafe) it
is a fresh interpreter, `python -m ml_lstm.tracking_worker`.

Messages are JSON lines on a pipe. They are encoded in the caller's thread and written by
a thread that does nothing else (no imports, no MLflow), so a node never waits on a pipe
that is full while the logging process is still starting. `finish` waits for the logging
process's report and logs it: what was logged, and every call that failed, as a warning.
It never raises: tracking must not fail the run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, BinaryIO

logger = logging.getLogger("ml_lstm.tracking")

WORKER_MODULE = "ml_lstm.tracking_worker"


class LoggingProcess:
    """One tracked run's logging process: `send` messages, then `finish` once."""

    def __init__(self, pipe: BinaryIO, ending: _Forked | _Spawned) -> None:
        self._ending = ending
        self._lines: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._writer = threading.Thread(
            target=_write, args=(pipe, self._lines), name="mlflow-pipe", daemon=True
        )
        self._writer.start()

    @classmethod
    def start(cls, begin: dict) -> LoggingProcess:
        if sys.platform.startswith("linux"):
            handle = cls(*_Forked.start())
        else:
            handle = cls(*_Spawned.start())
        handle.send(begin)
        return handle

    def send(self, message: dict) -> None:
        self._lines.put(json.dumps(message, default=str).encode("utf-8") + b"\n")

    def finish(self, status: str, timeout: float) -> dict | None:
        """Ends the run (`FINISHED` or `FAILED`), waits for the report and logs it."""
        self.send({"op": "finish", "status": status})
        self._lines.put(None)
        self._writer.join(timeout)
        out, exitcode = self._ending.wait(timeout)
        if out is None:
            logger.warning(
                "MLflow tracking: the logging process did not finish within %.0f s and was "
                "stopped; this run's MLflow record may be incomplete (the project's own "
                "outputs are not affected).",
                timeout,
            )
            return None
        return _report(out, exitcode)


def _write(pipe: BinaryIO, lines: queue.SimpleQueue) -> None:
    try:
        while (line := lines.get()) is not None:
            pipe.write(line)
            pipe.flush()
    except OSError:
        pass  # the logging process is gone: finish() reports it
    finally:
        with contextlib.suppress(OSError):
            pipe.close()


class _Forked:
    """A fork of this process serving the messages (ml_lstm.tracking_worker.serve)."""

    def __init__(self, process: Any, replies: BinaryIO) -> None:
        self._process, self._replies = process, replies

    @classmethod
    def start(cls) -> tuple[BinaryIO, _Forked]:
        message_read, message_write = os.pipe()
        reply_read, reply_write = os.pipe()
        process = multiprocessing.get_context("fork").Process(
            target=_serve_forked,
            args=(message_read, message_write, reply_write),
            name="mlflow-tracking",
        )
        process.start()
        os.close(message_read)
        os.close(reply_write)
        return os.fdopen(message_write, "wb"), cls(process, os.fdopen(reply_read, "rb"))

    def wait(self, timeout: float) -> tuple[bytes | None, int | None]:
        # The report is one short line: it fits in the pipe, so the process can end first.
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
            self._replies.close()
            return None, None
        with self._replies:
            return self._replies.read(), self._process.exitcode


def _serve_forked(message_read: int, message_write: int, reply_write: int) -> None:
    os.close(message_write)  # this end is the Kedro process's: EOF when it goes away
    from ml_lstm.tracking_worker import serve

    with os.fdopen(message_read, "rb") as messages:
        report = serve(messages)
    with os.fdopen(reply_write, "wb") as reply:
        reply.write(json.dumps(report).encode("utf-8") + b"\n")


class _Spawned:
    """A fresh interpreter, `python -m ml_lstm.tracking_worker` (no fork on this system)."""

    def __init__(self, process: subprocess.Popen) -> None:
        self._process = process

    @classmethod
    def start(cls) -> tuple[BinaryIO, _Spawned]:
        package_root = str(Path(__file__).resolve().parents[1])
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, path]))}
        process = subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        return process.stdin, cls(process)

    def wait(self, timeout: float) -> tuple[bytes | None, int | None]:
        self._process.stdin = None  # closed by the writer
        try:
            out, _ = self._process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.communicate()
            return None, None
        return out, self._process.returncode


def _report(out: bytes, exitcode: int | None) -> dict | None:
    try:
        report = json.loads(out.decode("utf-8").strip().splitlines()[-1])
    except (ValueError, IndexError):
        logger.warning(
            "MLflow tracking: the logging process ended (exit code %s) without a report; "
            "its error is in the log above. This run may be missing from MLflow (the "
            "project's own outputs are not affected).",
            exitcode,
        )
        return None
    for error in report["errors"]:
        logger.warning("MLflow tracking: not logged: %s", error)
    for line in report["mirrored"]:
        logger.info("MLflow: %s.", line)
    if report["run_id"]:
        logged = ", ".join(f"{count} {what}" for what, count in report["logged"].items())
        logger.info(
            "MLflow run %s logged: %s (logging process: %.2f s of CPU).",
            report["run_id"],
            logged,
            report.get("cpu_seconds", float("nan")),
        )
    return report
