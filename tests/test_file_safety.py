"""Locks, cleanup after killed writers, and permissions of the project's files (issue #13).

Real processes throughout: writers killed by the kernel mid-write, runs contending for one
file, and a run that starts after a killed one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from writer_processes import (
    KILL_AFTER_BYTES,
    run_python,
    save_killed_mid_write,
    was_killed_mid_write,
)

from ml_lstm.atomic_files import atomic_file
from ml_lstm.datasets import (
    AppendOnlyCSVDataset,
    AtomicCSVDataset,
    AtomicJSONDataset,
    AtomicVersionedJSONDataset,
    SessionPartitionsDataset,
)

posix_only = pytest.mark.skipif(os.name != "posix", reason="kills writers through RLIMIT_FSIZE")

# A run that starts after the others: it only opens the raw folder and lists the sessions.
NEXT_RUN = """
import sys
from ml_lstm.datasets import SessionPartitionsDataset
print(sorted(SessionPartitionsDataset(path=sys.argv[1]).load()))
"""

# One process's share of a read-modify-write race: a counter in a JSON file, incremented
# under `locked` with a pause between the read and the write, so unserialised writers
# would lose increments. argv: counter file, start-signal file, increments, hide fcntl.
INCREMENTS = """
import sys, time
from pathlib import Path
if sys.argv[4] == "1":
    sys.modules["fcntl"] = None  # as on Windows
from ml_lstm.atomic_files import locked
from ml_lstm.datasets import AtomicJSONDataset

counter = AtomicJSONDataset(filepath=sys.argv[1], missing={"count": 0})
print("ready", flush=True)
while not Path(sys.argv[2]).exists():
    time.sleep(0.001)
for _ in range(int(sys.argv[3])):
    with locked(sys.argv[1]):
        state = counter.load()
        time.sleep(0.002)
        counter.save({"count": state["count"] + 1})
"""


def temporaries(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.endswith(".tmp"))


# item 8: every read-modify-write under one cross-platform lock.
@pytest.mark.parametrize("fcntl_missing", [False, True], ids=["native", "without-fcntl"])
def test_locked_serialises_a_read_modify_write_across_processes(tmp_path, fcntl_missing):
    counter, go = tmp_path / "state" / "counter.json", tmp_path / "go"
    processes, increments = 3, 40
    env = {**os.environ, "PYTHONWARNINGS": "ignore::UserWarning"}
    hide_fcntl = "1" if fcntl_missing else "0"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", INCREMENTS, *map(str, (counter, go, increments)), hide_fcntl],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    for writer in writers:  # all imported: then they start at once
        assert writer.stdout is not None and writer.stdout.readline() == "ready\n"
    go.touch()
    for writer in writers:
        assert writer.wait(timeout=120) == 0, writer.stderr.read() if writer.stderr else ""

    count = AtomicJSONDataset(filepath=str(counter)).load()["count"]
    assert count == processes * increments


# item 9: temporaries of killed runs are removed by the next run, those of live ones kept.
@posix_only
def test_a_killed_writers_temporary_is_removed_by_the_next_run(tmp_path):
    folder = tmp_path / "minute_bars"
    SessionPartitionsDataset(path=str(folder)).save({"2020-03-13": pd.DataFrame({"close": [1]})})

    writer = save_killed_mid_write(
        """
        from ml_lstm.datasets import SessionPartitionsDataset
        dataset = SessionPartitionsDataset(path=sys.argv[1])
        frame = big_frame()
        """,
        'dataset.save({"2020-03-16": frame})',
        str(folder),
    )
    assert was_killed_mid_write(writer), writer.stderr
    left = [name for name in temporaries(folder) if name.startswith(".2020-03-16.csv.")]
    assert len(left) == 1 and (folder / left[0]).stat().st_size == KILL_AFTER_BYTES

    # Left by the project's earlier versions (mkstemp names, no writer in them): one of
    # yesterday, and one of a minute ago that may still belong to a run going on.
    old, recent = folder / ".2020-03-12.csv.ax7elrgq.tmp", folder / ".2020-03-11.csv.k3j9x0qq.tmp"
    for path in (old, recent):
        path.write_text("timestamp,close\n2020-03")
    os.utime(old, (time.time() - 86_400, time.time() - 86_400))
    os.utime(recent, (time.time() - 60, time.time() - 60))

    next_run = run_python(NEXT_RUN, str(folder))

    assert next_run.returncode == 0, next_run.stderr
    assert next_run.stdout.split() == ["['2020-03-13']"]
    assert temporaries(folder) == [recent.name]


def test_a_live_writers_temporary_is_kept_by_another_run(tmp_path):
    folder = tmp_path / "minute_bars"
    target = folder / "2020-03-16.csv"

    with atomic_file(target) as handle:  # this test's process is the live writer
        handle.write(b"timestamp,close\n")
        in_progress = temporaries(folder)
        next_run = run_python(NEXT_RUN, str(folder))
        assert next_run.returncode == 0, next_run.stderr
        assert temporaries(folder) == in_progress != []
        handle.write(b"2020-03-16T13:30:00Z,1.5\n")

    assert temporaries(folder) == []
    assert target.read_bytes() == b"timestamp,close\n2020-03-16T13:30:00Z,1.5\n"


# item 12: files as readable as the user's umask allows (not mkstemp's 0600).
@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize(
    ("umask", "file_mode", "folder_mode"), [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)]
)
def test_files_and_folders_follow_the_umask(tmp_path, umask, file_mode, folder_mode):
    frame = pd.DataFrame({"as_of": ["a"], "close": [1.5]})
    previous = os.umask(umask)
    try:
        AtomicCSVDataset(filepath=str(tmp_path / "table.csv")).save(frame)
        SessionPartitionsDataset(path=str(tmp_path / "bars")).save({"2024-01-02": frame})
        AppendOnlyCSVDataset(filepath=str(tmp_path / "log.csv")).save(frame)
        AtomicJSONDataset(filepath=str(tmp_path / "ledger.json")).save({"sessions": {}})
        from kedro.io import Version

        versioned = AtomicVersionedJSONDataset(
            filepath=str(tmp_path / "scaler.json"), version=Version(None, "v1")
        )
        versioned.save({"mean": 1.0})
        AtomicVersionedJSONDataset(filepath=str(tmp_path / "metrics.json")).save({"mae": 1.0})
    finally:
        os.umask(previous)

    files = ["table.csv", "bars/2024-01-02.csv", "log.csv", "ledger.json"]
    files += ["scaler.json/v1/scaler.json", "metrics.json"]
    modes = {name: (tmp_path / name).stat().st_mode & 0o777 for name in files}
    assert modes == dict.fromkeys(files, file_mode)
    assert (tmp_path / "scaler.json" / "v1").stat().st_mode & 0o777 == folder_mode
