"""The project's own datasets write atomically, and the prediction log only grows."""

from __future__ import annotations

import pandas as pd
import pytest
from kedro.io import DatasetError

from ml_lstm.datasets import AppendOnlyCSVDataset, AtomicCSVDataset, SessionPartitionsDataset


def bars(minute: str, close: float) -> pd.DataFrame:
    return pd.DataFrame({"timestamp": [minute], "close": [close]})


def test_atomic_csv_round_trip_leaves_no_temporary_file(tmp_path):
    dataset = AtomicCSVDataset(filepath=str(tmp_path / "sub" / "bars.csv"))
    dataset.save(bars("2024-01-02T14:30:00Z", 10.5))

    assert dataset.load().equals(bars("2024-01-02T14:30:00Z", 10.5))
    assert [path.name for path in (tmp_path / "sub").iterdir()] == ["bars.csv"]


def test_failed_write_keeps_the_previous_file(tmp_path):
    dataset = AtomicCSVDataset(filepath=str(tmp_path / "bars.csv"))
    dataset.save(bars("2024-01-02T14:30:00Z", 10.5))

    class Unwritable(pd.DataFrame):
        def to_csv(self, *args, **kwargs):
            raise OSError("disk full")

    with pytest.raises(DatasetError):
        dataset.save(Unwritable(bars("2024-01-02T14:31:00Z", 11.0)))
    assert dataset.load()["close"].tolist() == [10.5]
    assert [path.name for path in tmp_path.iterdir()] == ["bars.csv"]


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


def test_prediction_log_only_grows(tmp_path):
    path = tmp_path / "predictions.csv"
    log = AppendOnlyCSVDataset(filepath=str(path))
    log.save(pd.DataFrame({"as_of": ["a"], "predicted_close": [1.25]}))
    first_bytes = path.read_bytes()

    log.save(pd.DataFrame({"as_of": ["b"], "predicted_close": [1.5]}))

    assert path.read_bytes().startswith(first_bytes)
    assert log.load()["as_of"].tolist() == ["a", "b"]


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
    from ml_lstm.datasets import IBConnectionDataset

    path = tmp_path / "credentials.yml"
    path.write_text("ib:\n  host: 10.1.2.3\n  port: 7497: s3cret-token\n")

    with pytest.raises(DatasetError) as raised:
        IBConnectionDataset(filepath=str(path)).load()

    message = str(raised.value)
    assert "credentials.yml is not valid YAML at line 3" in message
    assert "s3cret-token" not in message and "10.1.2.3" not in message
