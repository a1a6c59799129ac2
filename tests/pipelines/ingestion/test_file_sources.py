"""CSV presets and SQLite ticks imported into the raw layout, and malformed files refused."""

from __future__ import annotations

import bz2
import gzip
import json
import logging
import lzma
import sqlite3
import zipfile

import pandas as pd
import pytest
from ingestion_support import NVDA, ingestion_parameters, run_ingestion, stored_sessions
from support import SHARED_DATA, requires_shared_data

from ml_lstm.pipelines.ingestion.csv_bars import PRESETS, read_bars_csv
from ml_lstm.pipelines.ingestion.file_sources import split_by_session

# Two NVDA bars at the open of 2024-01-02 (14:30 UTC = 09:30 New York), one on 2024-01-03,
# and one pre-market bar that is outside the regular session.
EXPECTED = pd.DataFrame(
    {
        "timestamp": ["2024-01-02T14:30:00Z", "2024-01-02T14:31:00Z", "2024-01-03T14:30:00Z"],
        "open": [48.1, 48.2, 47.0],
        "high": [48.3, 48.4, 47.5],
        "low": [48.0, 48.1, 46.9],
        "close": [48.2, 48.3, 47.4],
        "volume": [1200, 800, 500],
    }
)

FILES = {
    "plain": (
        "timestamp,open,high,low,close,volume\n"
        "2024-01-02T13:00:00Z,47.9,48.0,47.8,47.9,10\n"
        "2024-01-02T14:30:00Z,48.1,48.3,48.0,48.2,1200\n"
        "2024-01-02T14:31:00Z,48.2,48.4,48.1,48.3,800\n"
        "2024-01-03T14:30:00Z,47.0,47.5,46.9,47.4,500\n",
        {},
    ),
    # MT4 exports are in the broker's server time: here New York time.
    "mt4": (
        "2024.01.02,08:00,47.9,48.0,47.8,47.9,10\n"
        "2024.01.02,09:30,48.1,48.3,48.0,48.2,1200\n"
        "2024.01.02,09:31,48.2,48.4,48.1,48.3,800\n"
        "2024.01.03,09:30,47.0,47.5,46.9,47.4,500\n",
        {"timezone": "America/New_York"},
    ),
    # NinjaTrader stamps the bar's end.
    "ninjatrader": (
        "20240102 080100;47.9;48.0;47.8;47.9;10\n"
        "20240102 093100;48.1;48.3;48.0;48.2;1200\n"
        "20240102 093200;48.2;48.4;48.1;48.3;800\n"
        "20240103 093100;47.0;47.5;46.9;47.4;500\n",
        {"timezone": "America/New_York"},
    ),
    "yfinance": (
        "Datetime,Close,High,Low,Open,Volume\n"
        "2024-01-02 08:00:00-05:00,47.9,48.0,47.8,47.9,10\n"
        "2024-01-02 09:30:00-05:00,48.2,48.3,48.0,48.1,1200\n"
        "2024-01-02 09:31:00-05:00,48.3,48.4,48.1,48.2,800\n"
        "2024-01-03 09:30:00-05:00,47.4,47.5,46.9,47.0,500\n",
        {},
    ),
}


@pytest.mark.parametrize("preset", sorted(FILES))
def test_each_csv_preset_imports_into_the_raw_layout(tmp_path, preset):
    text, overrides = FILES[preset]
    path = tmp_path / f"bars.{preset}.csv"
    path.write_text(text)
    parameters = ingestion_parameters(
        source="csv", csv_path=str(path), csv_format=preset, csv=overrides, end_date="2024-01-05"
    )
    run_ingestion(tmp_path, parameters)
    stored = stored_sessions(tmp_path)
    assert sorted(stored) == ["2024-01-02", "2024-01-03"]
    combined = pd.concat([stored["2024-01-02"], stored["2024-01-03"]], ignore_index=True)
    pd.testing.assert_frame_equal(combined, EXPECTED, check_dtype=False)


def test_yfinance_two_level_header_is_read(tmp_path):
    path = tmp_path / "new_yfinance.csv"
    path.write_text(
        "Price,Close,High,Low,Open,Volume\nTicker,NVDA,NVDA,NVDA,NVDA,NVDA\nDatetime,,,,,\n"
        "2024-01-02 14:30:00+00:00,48.2,48.3,48.0,48.1,1200\n"
    )
    bars = read_bars_csv(path, PRESETS["yfinance"])
    assert bars["timestamp"].tolist() == [pd.Timestamp("2024-01-02 14:30", tz="UTC")]
    assert bars.loc[0, ["open", "close", "volume"]].tolist() == [48.1, 48.2, 1200]


def test_padded_fields_and_a_blank_volume_are_read(tmp_path):
    path = tmp_path / "hand_edited.csv"
    path.write_text(
        "timestamp, open, high, low, close, volume\n"
        " 2024-01-02T14:30:00Z , 48.1 , 48.3 , 48.0 , 48.2 , 1200\n"
        "2024-01-02T14:31:00Z,48.2,48.4,48.1,48.3,\n"
    )
    fmt = PRESETS["plain"]

    bars = read_bars_csv(path, fmt)

    assert bars["timestamp"].tolist() == [
        pd.Timestamp("2024-01-02 14:30", tz="UTC"),
        pd.Timestamp("2024-01-02 14:31", tz="UTC"),
    ]
    assert bars["open"].tolist() == [48.1, 48.2]
    assert bars["volume"].tolist() == [1200, 0]


def test_sqlite_ticks_are_aggregated_to_minute_bars(tmp_path):
    path = tmp_path / "market_data.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE ticks (timestamp TEXT, price REAL, volume INTEGER)")
        connection.executemany(
            "INSERT INTO ticks VALUES (?, ?, ?)",
            [
                ("2024-01-02T14:30:05Z", 48.1, 500),
                ("2024-01-02T14:30:40Z", 48.3, 400),
                ("2024-01-02T14:30:20Z", 48.0, 100),
                ("2024-01-02T14:30:59Z", 48.2, 200),
                ("2024-01-02T14:31:10Z", 48.2, 800),
                ("2024-01-03T14:30:00Z", 47.0, 500),
            ],
        )
    run_ingestion(
        tmp_path,
        ingestion_parameters(source="sqlite", sqlite_path=str(path), end_date="2024-01-05"),
    )
    first = stored_sessions(tmp_path)["2024-01-02"]
    assert first.to_dict("records") == [
        {
            "timestamp": "2024-01-02T14:30:00Z",
            "open": 48.1,
            "high": 48.3,
            "low": 48.0,
            "close": 48.2,
            "volume": 1200,
        },
        {
            "timestamp": "2024-01-02T14:31:00Z",
            "open": 48.2,
            "high": 48.2,
            "low": 48.2,
            "close": 48.2,
            "volume": 800,
        },
    ]


MALFORMED = {
    "empty file": ("", "plain", r"empty"),
    "missing column": (
        "timestamp,open,high,low,volume\n2024-01-02T14:30:00Z,1,2,0.5,10\n",
        "plain",
        r"missing column\(s\) close",
    ),
    "unparseable time": (
        "timestamp,open,high,low,close,volume\n2024-01-02T14:30:00Z,1,2,0.5,1,10\n"
        "yesterday noon,1,2,0.5,1,10\n",
        "plain",
        r"line 3: timestamp 'yesterday noon'",
    ),
    "wrong delimiter": (
        "timestamp;open;high;low;close;volume\n2024-01-02T14:30:00Z;1;2;0.5;1;10\n",
        "plain",
        r"single column with delimiter ','.*';'",
    ),
    "not a number": (
        "2024.01.02,09:30,48.1,48.3,abc,48.2,1200\n",
        "mt4",
        r"line 1: field 'low' is 'abc'",
    ),
    "header only": ("timestamp,open,high,low,close,volume\n", "plain", r"no rows"),
    # Blank lines are counted: the line number is the one an editor shows.
    "bad time after a blank line": (
        "timestamp,open,high,low,close,volume\n2024-01-02T14:30:00Z,1,2,0.5,1,10\n\n"
        "yesterday noon,1,2,0.5,1,10\n",
        "plain",
        r"line 4: timestamp 'yesterday noon'",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_csv_gives_a_clear_error_naming_file_row_and_field(tmp_path, case):
    text, preset, message = MALFORMED[case]
    path = tmp_path / "bad.csv"
    path.write_text(text)
    fmt = PRESETS[preset].with_overrides({"timezone": "America/New_York"})
    with pytest.raises(ValueError, match=message) as raised:
        read_bars_csv(path, fmt)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize("preset", ["plain", "mt4", "ninjatrader"])
def test_naive_times_without_a_configured_zone_are_refused(tmp_path, preset):
    text = {
        "plain": "timestamp,open,high,low,close,volume\n2024-01-02 09:30:00,1,2,0.5,1,10\n",
        "mt4": FILES["mt4"][0],
        "ninjatrader": FILES["ninjatrader"][0],
    }[preset]
    path = tmp_path / "naive.csv"
    path.write_text(text)
    first = {"plain": "2024-01-02 09:30:00", "mt4": "2024.01.02 08:00"}
    first["ninjatrader"] = "20240102 080100"
    with pytest.raises(ValueError, match=r"ingestion\.csv\.timezone") as raised:
        read_bars_csv(path, PRESETS[preset])
    assert str(path) in str(raised.value)
    assert repr(first[preset]) in str(raised.value)


def test_iso_times_with_offsets_need_no_zone(tmp_path):
    path = tmp_path / "offsets.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2024-01-02T09:30:00-05:00,1,2,0.5,1,10\n2024-01-02T14:31:00Z,1,2,0.5,1,10\n"
    )
    bars = read_bars_csv(path, PRESETS["plain"])
    assert bars["timestamp"].tolist() == [
        pd.Timestamp("2024-01-02 14:30", tz="UTC"),
        pd.Timestamp("2024-01-02 14:31", tz="UTC"),
    ]


def test_bars_outside_sessions_are_dropped_with_a_warning(tmp_path, caplog):
    path = tmp_path / "bars.csv"
    path.write_text(FILES["plain"][0])  # its first bar, 13:00 UTC, is pre-market
    bars = read_bars_csv(path, PRESETS["plain"])
    with caplog.at_level(logging.WARNING, logger="ml_lstm.pipelines.ingestion.file_sources"):
        sessions = split_by_session(bars, NVDA, path)
    assert sum(len(frame) for frame in sessions.values()) == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "1 of 4 bars" in warnings[0] and "2024-01-02T13:00:00+00:00" in warnings[0]


def test_file_outside_the_window_says_how_to_import_it(tmp_path):
    path = tmp_path / "bars.csv"
    path.write_text(FILES["plain"][0])
    parameters = ingestion_parameters(
        source="csv", csv_path=str(path), start_date="2024-06-03", end_date="2024-06-07"
    )
    with pytest.raises(ValueError, match=r"none in the backfill window.*start_date"):
        run_ingestion(tmp_path, parameters)


def test_missing_csv_path_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"ingestion\.csv_path"):
        run_ingestion(tmp_path, ingestion_parameters(source="csv"))


@requires_shared_data
@pytest.mark.shared_data
def test_real_yfinance_export_imports_every_regular_session(tmp_path):
    path = SHARED_DATA / "yfinance-1min-2026" / "NVDA_1m_union.csv"
    parameters = ingestion_parameters(
        source="csv",
        csv_path=str(path),
        csv_format="yfinance",
        start_date="2026-03-01",
        end_date="2026-03-31",
    )
    run_ingestion(tmp_path, parameters, instrument=NVDA)
    stored = stored_sessions(tmp_path)
    source = read_bars_csv(path, PRESETS["yfinance"])
    assert sum(len(bars) for bars in stored.values()) == len(source)
    assert "2026-03-12" in stored and len(stored["2026-03-12"]) > 350


PLAIN_TEXT = FILES["plain"][0]


@pytest.mark.parametrize(
    ("name", "compress"),
    [
        ("bars.csv.gz", gzip.compress),
        ("bars.csv", gzip.compress),  # a gzip file passed as a CSV
        ("bars.csv.bz2", bz2.compress),
        ("bars.csv.xz", lzma.compress),
    ],
)
def test_compressed_csv_is_read_as_is(tmp_path, name, compress):
    plain = tmp_path / "plain.csv"
    plain.write_text(PLAIN_TEXT)
    packed = tmp_path / name
    packed.write_bytes(compress(PLAIN_TEXT.encode()))
    expected = read_bars_csv(plain, PRESETS["plain"])
    pd.testing.assert_frame_equal(read_bars_csv(packed, PRESETS["plain"]), expected)


def test_zipped_csv_is_read_as_is(tmp_path):
    path = tmp_path / "bars.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("bars.csv", PLAIN_TEXT)
    assert len(read_bars_csv(path, PRESETS["plain"])) == 4


NOT_TEXT = {
    "binary": (bytes(range(256)) * 4, r"looks binary \(it holds NUL bytes"),
    "utf-16": (PLAIN_TEXT.encode("utf-16"), r"UTF-16"),
    "latin-1": (
        ("timestamp,open,high,low,close,volume\n# prix en \u00e9t\u00e9\n" + PLAIN_TEXT).encode(
            "latin-1"
        ),
        r"not UTF-8 \(byte 0xe9 at offset \d+\); if it is Latin-1",
    ),
    "broken gzip": (b"\x1f\x8b\x08\x00garbage", r"looks gzip-compressed but cannot be"),
}


@pytest.mark.parametrize("case", sorted(NOT_TEXT))
def test_a_file_that_is_not_csv_text_is_named_and_described(tmp_path, case):
    content, message = NOT_TEXT[case]
    path = tmp_path / "export.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as raised:
        read_bars_csv(path, PRESETS["plain"])
    assert str(path) in str(raised.value)


def test_duplicate_time_stamps_are_named_by_line(tmp_path, caplog):
    path = tmp_path / "bars.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2024-01-02T14:30:00Z,1,2,0.5,1,10\n"  # line 2
        "2024-01-02T14:31:00Z,1,2,0.5,1,10\n"  # line 3
        "\n"
        "2024-01-02T14:30:00Z,1,2,0.5,1.5,10\n"  # line 5: same time as line 2
        "2024-01-02T14:31:00Z,1,2,0.5,1.5,10\n"  # line 6: same time as line 3
        "2024-01-02T14:30:00Z,1,2,0.5,1.2,10\n"  # line 7: the last one at 14:30, kept
    )
    with caplog.at_level(logging.WARNING, logger="ml_lstm.pipelines.ingestion"):
        bars = read_bars_csv(path, PRESETS["plain"])
    assert bars["close"].tolist() == [1.2, 1.5]
    message = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert str(path) in message
    assert "3 duplicate time stamps" in message
    assert "2024-01-02T14:30:00Z on lines 2, 5, 7" in message
    assert "2024-01-02T14:31:00Z on lines 3, 6" in message


BAD_ROWS = (
    "timestamp,open,high,low,close,volume\n"
    "2024-01-02T14:30:00Z,48.1,48.3,48.0,48.2,1200\n"
    "2024-01-02T14:31:00Z,-48.2,48.4,48.1,48.3,800\n"  # a negative price
    "2024-01-03T14:30:00Z,47.0,46.5,46.9,47.4,500\n"  # high below low
)
CORRECTED = (
    "timestamp,open,high,low,close,volume\n"
    "2024-01-02T14:30:00Z,48.1,48.3,48.0,48.2,1200\n"  # the bad minute left out
    "2024-01-03T14:30:00Z,47.0,47.5,46.9,47.4,500\n"
)


def test_bad_rows_are_reported_at_import_and_refetch_replaces_them(tmp_path, caplog):
    path = tmp_path / "bars.csv"
    path.write_text(BAD_ROWS)
    parameters = ingestion_parameters(source="csv", csv_path=str(path), end_date="2024-01-05")
    with caplog.at_level(logging.WARNING, logger="ml_lstm.pipelines.ingestion"):
        run_ingestion(tmp_path, parameters)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "2 stored bars" in warnings[0]
    assert "1 non_positive_price, 1 high_inconsistent" in warnings[0]
    assert "2024-01-02, 2024-01-03" in warnings[0]
    assert (
        "kedro run --pipelines ingestion --params ingestion.refetch=true,"
        "ingestion.start_date=2024-01-02,ingestion.end_date=2024-01-03" in warnings[0]
    )

    # The corrected file changes nothing until the window is refetched ...
    path.write_text(CORRECTED)
    before = {name: bars.to_csv() for name, bars in stored_sessions(tmp_path).items()}
    run_ingestion(tmp_path, parameters, started_at="2024-06-04T12:00:00+00:00")
    assert {name: bars.to_csv() for name, bars in stored_sessions(tmp_path).items()} == before

    # ... which replaces the stored sessions with the file's, even with fewer bars.
    caplog.clear()
    refetch = {**parameters, "refetch": True}
    with caplog.at_level(logging.WARNING, logger="ml_lstm.pipelines.ingestion"):
        run_ingestion(tmp_path, refetch, started_at="2024-06-05T12:00:00+00:00")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    stored = stored_sessions(tmp_path)
    combined = pd.concat([stored["2024-01-02"], stored["2024-01-03"]], ignore_index=True)
    pd.testing.assert_frame_equal(combined, pd.read_csv(path), check_dtype=False)
    ledger = json.loads((tmp_path / "nvda" / "ingestion_ledger.json").read_text())["sessions"]
    assert ledger["2024-01-02"]["bars"] == 1
    assert {entry["fetched_at"] for entry in ledger.values()} == {"2024-06-05T12:00:00Z"}


def test_refetch_must_be_true_or_false(tmp_path):
    path = tmp_path / "bars.csv"
    path.write_text(CORRECTED)
    parameters = ingestion_parameters(source="csv", csv_path=str(path), refetch="yes")
    with pytest.raises(ValueError, match=r"ingestion\.refetch must be true or false"):
        run_ingestion(tmp_path, parameters)


# Well-formed in every way the fast reader needs, but not trivially: offsets other than Z,
# rows out of time order, quoted fields, an extra column, a blank line, bar-end stamps.
WELL_FORMED = (
    "timestamp,open,high,low,close,volume,note\n"
    "2024-01-02T09:31:00-05:00,48.1,48.3,48.0,48.2,1200,a\n"
    '"2024-01-02T14:33:00Z",48.2,48.4,48.1,"48.3",800.5,b\n'
    "\n"
    "2024-01-02T14:32:00.000Z,48.3,48.5,48.2,48.4,0,c\n"
    "2024-01-03T14:31:00+00:00,47.0,47.5,46.9,47.4,500,d\n"
)


def test_the_fast_reader_reads_a_well_formed_file_as_the_checking_reader_does(tmp_path):
    from ml_lstm.pipelines.ingestion.csv_arrow import read_well_formed

    fmt = PRESETS["plain"].with_overrides({"stamps": "end"})
    plain = tmp_path / "bars.csv"
    plain.write_text(WELL_FORMED)
    # A compressed copy is read by the checking reader (the fast one reads plain text).
    packed = tmp_path / "bars.csv.gz"
    packed.write_bytes(gzip.compress(WELL_FORMED.encode()))

    assert read_well_formed(plain, fmt) is not None
    fast, checked = read_bars_csv(plain, fmt), read_bars_csv(packed, fmt)

    pd.testing.assert_frame_equal(fast, checked, check_exact=True)
    assert str(fast["timestamp"].dt.tz) == "UTC"
    assert fast["timestamp"].iloc[0] == pd.Timestamp("2024-01-02 14:30", tz="UTC")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("2024-01-02T14:31:00Z,1,2,0.5,NaN,10", r"line 4: field 'close' is 'NaN'"),
        ("2024-01-02T14:31:00Z,1,2,0.5,,10", r"line 4: field 'close' is ''"),
        ("2024-01-02T14:31:00Z,1,2,0.5,1,1x0", r"line 4: field 'volume' is '1x0'"),
    ],
)
def test_what_pyarrow_would_read_or_refuse_is_named_by_line(tmp_path, row, message):
    path = tmp_path / "bars.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n2024-01-02T14:30:00Z,1,2,0.5,1,10\n\n" + row + "\n"
    )
    with pytest.raises(ValueError, match=message) as raised:
        read_bars_csv(path, PRESETS["plain"])
    assert str(path) in str(raised.value)


def test_session_frames_are_independent_of_each_other_and_of_the_bars(tmp_path):
    path = tmp_path / "bars.csv"
    path.write_text(FILES["plain"][0])
    bars = read_bars_csv(path, PRESETS["plain"])
    before = bars.copy()

    sessions = split_by_session(bars, NVDA, path)
    first = sessions["2024-01-02"]
    first.loc[0, "close"] = -1.0
    first["volume"] = 0.0

    pd.testing.assert_frame_equal(bars, before)
    assert sessions["2024-01-03"]["close"].tolist() == [47.4]
    assert sessions["2024-01-03"].index.tolist() == [0]
    assert first.index.tolist() == [0, 1]


def test_bars_out_of_time_order_are_all_split_into_their_sessions(tmp_path):
    path = tmp_path / "bars.csv"
    path.write_text(FILES["plain"][0])
    bars = read_bars_csv(path, PRESETS["plain"])

    # Jan 2 14:30, Jan 3, Jan 2 13:00 (pre-market), Jan 2 14:31: Jan 2 in two runs of rows.
    shuffled = split_by_session(bars.iloc[[1, 3, 0, 2]].reset_index(drop=True), NVDA, path)

    assert shuffled["2024-01-03"]["close"].tolist() == [47.4]
    assert shuffled["2024-01-02"]["close"].tolist() == [48.2, 48.3]
    assert shuffled["2024-01-02"].index.tolist() == [0, 1]
