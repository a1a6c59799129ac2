"""The project's own datasets write atomically, and the prediction log only grows."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest
from kedro.io import DatasetError
from writer_processes import KILL_AFTER_BYTES, save_killed_mid_write, was_killed_mid_write

from ml_lstm.datasets import AppendOnlyCSVDataset, AtomicCSVDataset, SessionPartitionsDataset


def bars(minute: str, close: float) -> pd.DataFrame:
    return pd.DataFrame({"timestamp": [minute], "close": [close]})


def test_atomic_csv_round_trip_leaves_no_temporary_file(tmp_path):
    dataset = AtomicCSVDataset(filepath=str(tmp_path / "sub" / "bars.csv"))
    dataset.save(bars("2024-01-02T14:30:00Z", 10.5))

    assert dataset.load().equals(bars("2024-01-02T14:30:00Z", 10.5))
    assert [path.name for path in (tmp_path / "sub").iterdir()] == ["bars.csv"]


@pytest.mark.skipif(os.name != "posix", reason="kills the writer through RLIMIT_FSIZE")
def test_failed_write_keeps_the_previous_file(tmp_path):
    dataset = AtomicCSVDataset(filepath=str(tmp_path / "bars.csv"))
    dataset.save(bars("2024-01-02T14:30:00Z", 10.5))

    writer = save_killed_mid_write(
        """
        from ml_lstm.datasets import AtomicCSVDataset
        dataset = AtomicCSVDataset(filepath=sys.argv[1])
        frame = big_frame()
        """,
        "dataset.save(frame)",
        str(tmp_path / "bars.csv"),
    )

    assert was_killed_mid_write(writer), writer.stderr
    assert dataset.load()["close"].tolist() == [10.5]
    # The killed writer's bytes went to its temporary, never to bars.csv.
    partial = [path for path in tmp_path.iterdir() if path.name != "bars.csv"]
    assert [path.stat().st_size for path in partial] == [KILL_AFTER_BYTES]


def test_session_partitions_start_empty_and_ignore_partial_writes(tmp_path):
    folder = tmp_path / "minute_bars"
    dataset = SessionPartitionsDataset(path=str(folder))
    assert dataset.load() == {}

    dataset.save({"2024-01-02": bars("2024-01-02T14:30:00Z", 1.0)})
    (folder / ".2024-01-03.csv.abc.tmp").write_text("timestamp,close\n2024-01-03T14")
    fresh = SessionPartitionsDataset(path=str(folder))

    partitions = fresh.load()
    assert list(partitions) == ["2024-01-02"]
    assert partitions["2024-01-02"]()["close"].tolist() == [1.0]


# Holds a session file's lock, says so on stdout, then rewrites the file as `kedro live`
# would (a read-modify-write under the lock) and lets go.
LIVE_WRITER = """
import sys, time
from pathlib import Path
from ml_lstm.atomic_files import locked, write_text_atomically
path = Path(sys.argv[1])
with locked(path):
    print("locked", flush=True)
    time.sleep(1.0)
    write_text_atomically(path, "written by live\\n")
"""


def test_a_session_file_is_written_under_its_lock(tmp_path):
    folder = tmp_path / "minute_bars"
    session = folder / "2024-01-02.csv"
    folder.mkdir()
    live = subprocess.Popen(
        [sys.executable, "-c", LIVE_WRITER, str(session)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert live.stdout.readline().strip() == "locked"
        # The batch write waits for live's read-modify-write instead of being overwritten.
        SessionPartitionsDataset(path=str(folder)).save({"2024-01-02": bars("09:30", 1.0)})
    finally:
        live.wait(timeout=30)
    assert session.read_text().startswith("timestamp,")


def test_prediction_log_only_grows(tmp_path):
    path = tmp_path / "predictions.csv"
    log = AppendOnlyCSVDataset(filepath=str(path))
    log.save(pd.DataFrame({"as_of": ["a"], "predicted_close": [1.25]}))
    first_bytes = path.read_bytes()

    log.save(pd.DataFrame({"as_of": ["b"], "predicted_close": [1.5]}))

    assert path.read_bytes().startswith(first_bytes)
    assert log.load()["as_of"].tolist() == ["a", "b"]


def test_prediction_log_holds_exactly_the_rows_written(tmp_path):
    path = tmp_path / "predictions.csv"
    first = pd.DataFrame({"as_of": ["a", "b"], "predicted_close": [1.25, 1.5]})
    second = pd.DataFrame({"as_of": ["c"], "predicted_close": [1.75]})
    log = AppendOnlyCSVDataset(filepath=str(path))

    log.save(first)
    log.save(second)

    expected = first.to_csv(index=False) + second.to_csv(index=False, header=False)
    assert path.read_bytes() == expected.encode("utf-8")


def test_a_log_edited_without_its_last_newline_gets_rows_on_their_own_line(tmp_path):
    path = tmp_path / "predictions.csv"
    path.write_bytes(b"as_of,predicted_close\na,1.25")

    AppendOnlyCSVDataset(filepath=str(path)).save(
        pd.DataFrame({"as_of": ["b"], "predicted_close": [1.5]})
    )

    assert path.read_bytes() == b"as_of,predicted_close\na,1.25\nb,1.5\n"


def test_prediction_log_appends_in_place_for_a_reader_following_it(tmp_path):
    # `tail -f predictions.csv` keeps reading the file it opened: a log rewritten through a
    # new file would leave it on the old one.
    path = tmp_path / "predictions.csv"
    log = AppendOnlyCSVDataset(filepath=str(path))
    log.save(pd.DataFrame({"as_of": ["a"], "predicted_close": [1.25]}))
    inode = path.stat().st_ino

    with open(path, "rb") as follower:
        assert follower.read() == b"as_of,predicted_close\na,1.25\n"
        log.save(pd.DataFrame({"as_of": ["b"], "predicted_close": [1.5]}))
        assert follower.read() == b"b,1.5\n"
    assert path.stat().st_ino == inode


def _bytes_read_by_this_process() -> int:
    with open("/proc/self/io") as stats:
        return int(next(line for line in stats if line.startswith("rchar:")).split()[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/io")
def test_an_append_does_not_read_the_earlier_rows(tmp_path):
    log = AppendOnlyCSVDataset(filepath=str(tmp_path / "predictions.csv"))
    rows = 200_000
    log.save(pd.DataFrame({"as_of": [f"2024-01-02T14:{i % 60:02d}" for i in range(rows)]}))
    log.save(pd.DataFrame({"as_of": ["warm-up"]}))
    log_size = (tmp_path / "predictions.csv").stat().st_size

    before = _bytes_read_by_this_process()
    log.save(pd.DataFrame({"as_of": ["latest"]}))
    read = _bytes_read_by_this_process() - before

    assert log_size > 3_000_000
    assert read < 64 * 1024, f"one append read {read} bytes of a {log_size}-byte log"


def test_prediction_log_refuses_rows_with_other_columns(tmp_path):
    log = AppendOnlyCSVDataset(filepath=str(tmp_path / "predictions.csv"))
    log.save(pd.DataFrame({"as_of": ["a"], "predicted_close": [1.25]}))

    with pytest.raises(DatasetError, match=r"columns are \['as_of', 'predicted_close'\]"):
        log.save(pd.DataFrame({"predicted_close": [1.5], "as_of": ["b"]}))
    assert len(log.load()) == 1


def _append_rows(path: str, writer: int, rows: int) -> None:
    log = AppendOnlyCSVDataset(filepath=path)
    for row in range(rows):
        log.save(pd.DataFrame({"writer": [writer], "row": [row]}))


def test_concurrent_runs_appending_to_one_log_keep_every_row(tmp_path):
    import multiprocessing

    path = str(tmp_path / "predictions.csv")
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_append_rows, args=(path, w, 25)) for w in range(6)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(timeout=60)
        assert process.exitcode == 0

    log = AppendOnlyCSVDataset(filepath=path).load()
    assert len(log) == 6 * 25
    assert sorted(map(tuple, log[["writer", "row"]].to_numpy())) == [
        (w, r) for w in range(6) for r in range(25)
    ]


def test_a_broken_credentials_file_is_named_without_echoing_its_contents(tmp_path):
    from ml_lstm.ib_connection import IBConnectionDataset

    path = tmp_path / "credentials.yml"
    path.write_text("ib:\n  host: 10.1.2.3\n  port: 7497: s3cret-token\n")

    with pytest.raises(DatasetError) as raised:
        IBConnectionDataset(filepath=str(path)).load()

    message = str(raised.value)
    assert "credentials.yml is not valid YAML at line 3" in message
    assert "s3cret-token" not in message and "10.1.2.3" not in message
