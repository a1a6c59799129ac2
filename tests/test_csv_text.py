"""AtomicCSVDataset writes exactly the text pandas' to_csv writes, by its fast path or not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml_lstm.csv_text import UTC_SECONDS_FORMAT, csv_text
from ml_lstm.datasets import AtomicCSVDataset

SAVE_ARGS = {"index": False, "date_format": UTC_SECONDS_FORMAT}


def plain_table(rows: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    floats = rng.standard_normal(rows) * 10.0 ** rng.integers(-12, 18, rows)
    floats[:6] = [np.nan, np.inf, -np.inf, -0.0, 1e16, 1e-5]
    return pd.DataFrame(
        {
            "timestamp": pd.date_range("2024-03-05 14:30", periods=rows, freq="min", tz="UTC"),
            "session": pd.Series(["2024-03-05"] * rows, dtype="str"),
            "price": np.round(rng.random(rows) * 100, 2),
            "value": floats,
            "volume": rng.integers(0, 10**9, rows),
            "filled": rng.random(rows) > 0.5,
        }
    )


def test_plain_tables_take_the_fast_path_and_match_to_csv():
    table = plain_table()
    assert csv_text(table, SAVE_ARGS) == table.to_csv(**SAVE_ARGS)
    assert csv_text(table.iloc[:1], SAVE_ARGS) == table.iloc[:1].to_csv(**SAVE_ARGS)


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t.assign(timestamp=t["timestamp"] + pd.Timedelta(milliseconds=500)),
        lambda t: t.assign(timestamp=t["timestamp"].dt.tz_convert("America/New_York")),
        lambda t: t.assign(session=t["session"].where(t.index != 3, "a,b")),
        lambda t: t.assign(session=t["session"].where(t.index != 3, 'say "x"')),
        lambda t: t.assign(session=t["session"].where(t.index != 3, None)),
        lambda t: t.assign(session=t["session"].astype(object)),
        lambda t: t.assign(volume=t["volume"].astype("Int64")),
        lambda t: t.iloc[:0],
    ],
)
def test_tables_it_cannot_vouch_for_are_left_to_pandas(change):
    table = change(plain_table())
    assert csv_text(table, SAVE_ARGS) is None
    assert csv_text(plain_table(), {"index": True}) is None


def test_dataset_writes_what_to_csv_writes_on_both_paths(tmp_path):
    for table in (plain_table(), plain_table().assign(session="a,b")):
        dataset = AtomicCSVDataset(str(tmp_path / "table.csv"), save_args=SAVE_ARGS)
        dataset.save(table)
        assert (tmp_path / "table.csv").read_text() == table.to_csv(**SAVE_ARGS)
