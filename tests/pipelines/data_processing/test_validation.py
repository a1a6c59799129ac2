"""Validation of raw minute bars: each kind of bad input is rejected with its reason."""

from __future__ import annotations

import pandas as pd
import pytest
from data_processing_support import (
    NVDA,
    RUN_INFO,
    minute_bars,
    parameters,
    raw_table,
    session_minutes,
)
from kedro.io import DatasetError

from ml_lstm.bar_checks import check_rows
from ml_lstm.pipelines.data_processing.nodes import (
    accept_minute_bars,
    validate_minute_bars,
)


def good_raw() -> pd.DataFrame:
    """Ten valid minutes of 2024-03-05 in the raw text layout."""
    bars = minute_bars(session_minutes("XNYS", "2024-03-05")[:10])
    bars["timestamp"] = bars["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return bars.astype(
        {"open": object, "high": object, "low": object, "close": object, "volume": object}
    )


def validate(raw: pd.DataFrame):
    return validate_minute_bars(raw_table(raw, {"2024-03-05": raw}), NVDA, parameters(), RUN_INFO)


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("timestamp", "yesterday", "timestamp is not an ISO-8601 date-time"),
        ("timestamp", "2024-03-05T14:33:00", "timestamp has no time zone"),
        ("timestamp", "2024-03-05 14:33:00", "timestamp has no time zone"),
        ("timestamp", "2024-03-05T14:33:30Z", "timestamp is not on a whole minute"),
        ("close", None, "missing price"),
        ("open", "12,5O", "price is not a number"),
        # pandas reads NA tokens (n/a, NULL, ...) in a file as missing values.
        ("open", "n/a", "missing price"),
        ("high", float("inf"), "price is not a number"),
        ("low", 0.0, "price is zero or negative"),
        ("close", -1.5, "price is zero or negative"),
        ("high", 1.0, "high below max(open, close)"),
        ("low", "as high", "low above min(open, close)"),
        ("volume", None, "volume is missing"),
        ("volume", -5, "volume is negative"),
    ],
)
def test_each_bad_row_is_rejected_with_its_reason(column, value, reason):
    raw = good_raw()
    raw.loc[3, column] = raw.loc[3, "high"] if value == "as high" else value
    valid, rejected, report = validate(raw)
    assert len(valid) == 9
    assert len(rejected) == 1
    assert rejected.loc[0, "reason"].startswith(reason)
    assert rejected.loc[0, "source_file"] == "2024-03-05.csv"
    assert rejected.loc[0, "source_line"] == 5  # header is line 1, row 3 is line 5
    (kind,) = report["rejected"].values()
    assert kind["rows"] == 1
    assert kind["examples"][0] == {
        "file": "2024-03-05.csv",
        "line": 5,
        "timestamp": str(raw.loc[3, "timestamp"]),
    }
    assert report["rows_rejected"] == 1


def test_offset_timestamps_are_converted_to_utc():
    raw = good_raw()
    raw.loc[0, "timestamp"] = "2024-03-05T09:30:00-05:00"
    valid, rejected, _ = validate(raw)
    assert rejected.empty
    assert valid["timestamp"].iloc[0] == pd.Timestamp("2024-03-05T14:30:00Z")


def test_duplicates_keep_the_last_row_and_are_counted():
    raw = good_raw()
    later = raw.iloc[[2]].assign(close="999", high="999")
    raw = pd.concat([raw, later], ignore_index=True)
    valid, rejected, report = validate(raw)
    assert len(valid) == 10
    kept = valid.loc[valid["timestamp"] == pd.Timestamp(raw.loc[2, "timestamp"]), "close"]
    assert kept.tolist() == [999.0]
    assert report["duplicates_dropped"] == 1
    assert rejected["reason"].tolist() == [
        "duplicate timestamp (a later row with the same time is kept)"
    ]
    assert rejected["source_line"].tolist() == [4]


def test_unsorted_rows_are_sorted_and_counted():
    raw = good_raw().iloc[[0, 1, 5, 2, 3, 4, 6, 7, 8, 9]].reset_index(drop=True)
    valid, rejected, report = validate(raw)
    assert rejected.empty
    assert report["unsorted_rows"] == 1
    assert valid["timestamp"].is_monotonic_increasing


def test_missing_volume_column_and_minus_one_mean_volume_not_reported():
    raw = good_raw()
    raw.loc[[1, 2], "volume"] = -1
    valid, rejected, report = validate(raw)
    assert rejected.empty
    assert valid.loc[[1, 2], "volume"].tolist() == [0.0, 0.0]
    assert report["volume_not_reported"] == 2

    valid, rejected, report = validate(good_raw().drop(columns="volume"))
    assert rejected.empty
    assert (valid["volume"] == 0).all()
    assert report["volume_not_reported"] == 10


def test_a_missing_price_column_names_the_file_and_the_column():
    raw = good_raw().drop(columns="low")
    with pytest.raises(
        DatasetError, match=r"2024-03-05\.csv: expected a header .*\(missing \['low'\]\)"
    ):
        raw_table(raw, {"2024-03-05": raw})


def test_bars_outside_the_sessions_are_left_out_and_counted_not_rejected():
    raw = good_raw()
    raw.loc[0, "timestamp"] = "2024-03-05T13:00:00Z"  # 08:00 New York: pre-market
    raw.loc[1, "timestamp"] = "2024-03-09T15:00:00Z"  # a Saturday
    valid, rejected, report = validate(raw)
    assert rejected.empty
    assert len(valid) == 8
    assert report["outside_sessions"]["rows"] == 2
    assert report["rejected_share"] == 0


def test_too_many_rejected_rows_fail_the_run_with_the_counts():
    raw = good_raw()
    raw.loc[[1, 2], "low"] = -1.0
    valid, rejected, report = validate(raw)
    assert report["rejected_share"] == pytest.approx(0.2)
    with pytest.raises(
        ValueError,
        match=r"20\.00% of 10 raw minute bars were rejected.*"
        r"max_rejected_share \(1\.00%\).*price is zero or negative: 2 rows "
        r"\(first in 2024-03-05\.csv line 3\)",
    ):
        accept_minute_bars(valid, rejected, report, parameters())
    assert accept_minute_bars(valid, rejected, report, parameters(max_rejected_share=0.25)) is valid


def test_too_many_rejected_rows_name_their_sessions_and_the_command_that_replaces_them():
    days = ["2024-03-04", "2024-03-05", "2024-03-06", "2024-03-07"]
    files = {}
    for day in days:
        bars = minute_bars(session_minutes("XNYS", day)[:10])
        bars["timestamp"] = bars["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        files[day] = bars
    files["2024-03-05"].loc[3, "high"] = 1.0
    files["2024-03-07"].loc[[0, 1], "close"] = -2.0
    valid, rejected, report = validate_minute_bars(
        raw_table(pd.concat(files.values()), files), NVDA, parameters(), RUN_INFO
    )
    with pytest.raises(ValueError) as failure:
        accept_minute_bars(valid, rejected, report, parameters())
    message = str(failure.value)
    assert "Rejected rows lie in 2 session(s): 2024-03-05, 2024-03-07." in message
    assert (
        "kedro run --pipelines ingestion --params ingestion.refetch=true,"
        "ingestion.start_date=2024-03-05,ingestion.end_date=2024-03-07" in message
    )


def test_session_files_are_read_in_session_order_with_their_lines():
    bars = minute_bars(
        session_minutes("XNYS", "2024-03-05")[:3].append(session_minutes("XNYS", "2024-03-04")[:3])
    )
    combined = raw_table(bars)
    assert (
        combined["source_file"].astype(str).tolist()
        == ["2024-03-04.csv"] * 3 + ["2024-03-05.csv"] * 3
    )
    assert combined["source_line"].tolist() == [2, 3, 4, 2, 3, 4]


TIMESTAMP_TEXTS = [
    "2024-03-05T14:30:00Z",
    "2024-02-29T14:30:00Z",
    "2023-02-29T14:30:00Z",
    "2024-04-31T14:30:00Z",
    "2024-13-05T14:30:00Z",
    "2024-00-05T14:30:00Z",
    "2024-03-00T14:30:00Z",
    "2024-03-05T24:00:00Z",
    "2024-03-05T14:60:00Z",
    "2024-03-05T14:30:60Z",
    "2024-03-05T14:30:30Z",
    "2024-03-05 14:30:00Z",
    "2024-03-05T14:30:00z",
    "2024-03-05T14:30:00",
    "2024-03-05T14:30:00+00:00",
    "2024-03-05T09:30:00-05:00",
    "2024-03-05T14:30Z",
    "2024-03-05T14:30:00.000Z",
    "x024-03-05T14:30:00Z",
    "1899-12-31T23:59:00Z",
    "2262-05-01T00:00:00Z",
    "",
    None,
]


def test_timestamps_in_ingestions_form_are_read_as_any_iso_text_is():
    # Text columns (as read from CSV) take a fast path for YYYY-MM-DDTHH:MM:SSZ; the same
    # values as Python objects take the general parser: both must judge every row alike.
    raw = pd.DataFrame({"timestamp": TIMESTAMP_TEXTS * 3})
    for column in ("open", "high", "low", "close", "volume"):
        raw[column] = 1.0
    fast = check_rows(raw.astype({"timestamp": "str"}))
    general = check_rows(raw.astype({"timestamp": object}))
    assert fast.reason.tolist() == general.reason.tolist()
    assert fast.timestamp_ns.tolist() == general.timestamp_ns.tolist()
    # Valid, duplicate (the same minute again), bad, naive and not on a whole minute.
    assert set(fast.reason.tolist()) == {0, 1, 2, 3, 11}


def test_an_empty_rejected_table_is_not_shared_between_calls():
    # Without rejected rows the (empty) table is built once per column types: a caller
    # adding to its copy must not change what the next call returns.
    _, rejected, _ = validate(good_raw())
    rejected["note"] = []
    _, again, _ = validate(good_raw())
    assert "note" not in again.columns
    assert list(again.columns)[:3] == ["source_file", "source_line", "reason"]
