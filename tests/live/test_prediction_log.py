"""The prediction log's `source` and `latency_ms` columns, and logs written before them."""

from __future__ import annotations

import pandas as pd
import pytest
from kedro.io import DatasetError

from ml_lstm.datasets import AppendOnlyCSVDataset

OLD_HEADER = "as_of_bar_time,predicted_close,run_id\n"
OLD_ROW = "2024-05-31T19:30:00+00:00,20.19,r1\n"


def new_row(source: str, latency_ms: float | None) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "as_of_bar_time": "2024-06-03T13:30:00+00:00",
                "predicted_close": 20.5,
                "run_id": "r2",
                "source": source,
                "latency_ms": latency_ms,
            }
        ]
    )


def test_a_log_from_before_the_new_columns_gets_them_empty_in_its_earlier_rows(tmp_path):
    path = tmp_path / "predictions.csv"
    path.write_text(OLD_HEADER + OLD_ROW)

    AppendOnlyCSVDataset(filepath=str(path)).save(new_row("live", 12.5))

    assert path.read_text() == (
        "as_of_bar_time,predicted_close,run_id,source,latency_ms\n"
        "2024-05-31T19:30:00+00:00,20.19,r1,,\n"
        "2024-06-03T13:30:00+00:00,20.5,r2,live,12.5\n"
    )


def test_other_column_changes_are_still_refused(tmp_path):
    path = tmp_path / "predictions.csv"
    path.write_text(OLD_HEADER + OLD_ROW)

    with pytest.raises(DatasetError, match="Move the old log aside"):
        AppendOnlyCSVDataset(filepath=str(path)).save(new_row("live", 1.0).drop(columns="run_id"))
    assert path.read_text() == OLD_HEADER + OLD_ROW
