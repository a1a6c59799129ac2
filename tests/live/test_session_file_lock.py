"""Live's read-modify-write of a session's raw file holds the file's cross-process lock
(`atomic_files.locked`), so a writer in another process holding it (a batch ingestion of
the same session) is never interleaved, and neither writer's rows are lost."""

from __future__ import annotations

import subprocess
import sys
import time

from ml_lstm.live.store import merge_rows, save_session_file

HEADER = "timestamp,open,high,low,close,volume\n"

# Another process: takes the lock, says so, and stores its backfill a second later.
WRITER = """
import sys, time
from pathlib import Path
from ml_lstm.atomic_files import locked, write_text_atomically
path, ready, text = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
with locked(path):
    ready.write_text("locked")
    time.sleep(1.0)
    write_text_atomically(path, text)
"""


def row(minute: int, price: float) -> str:
    return f"2024-06-03T13:{minute:02d}:00Z,{price},{price},{price},{price},100\n"


def test_a_concurrent_writer_holding_the_lock_is_waited_for_and_its_rows_kept(tmp_path):
    path = tmp_path / "2024-06-03.csv"
    path.write_text(HEADER + row(30, 1.0))
    backfill = HEADER + row(30, 1.0) + row(31, 2.0) + row(32, 2.0)
    ready = tmp_path / "ready"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(ready), backfill])
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert writer.poll() is None and time.monotonic() < deadline, "the writer did not start"
        time.sleep(0.01)
    live = HEADER + row(30, 1.0) + row(31, 1.5) + row(32, 1.5) + row(33, 1.5)
    stored = save_session_file(path, live)
    assert writer.wait(timeout=30) == 0
    # Live waited for the other writer, then kept its rows and added only its newer minute.
    assert stored == backfill + row(33, 1.5)
    assert path.read_text() == stored


def test_live_extending_its_own_file_writes_its_text():
    assert merge_rows(HEADER + row(30, 1.0), HEADER + row(30, 1.0) + row(31, 1.0)) == (
        HEADER + row(30, 1.0) + row(31, 1.0)
    )


def test_an_unlocked_file_that_live_extends_is_simply_replaced(tmp_path):
    path = tmp_path / "2024-06-03.csv"
    path.write_text(HEADER + row(30, 1.0))
    text = HEADER + row(30, 1.0) + row(31, 1.0)
    assert save_session_file(path, text) == text
    assert path.read_text() == text
