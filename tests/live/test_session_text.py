"""A streamed session's file text, grown minute by minute, is what writing the whole session
at once gives (the bytes a backfill stores), even when a column changes type on the way."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from ib_insync import BarData

from ml_lstm.backfill import SessionWindow
from ml_lstm.calendars import utc
from ml_lstm.ib_data import bars_to_frame
from ml_lstm.live.session import StreamedSession, raw_table, raw_text, read_raw
from ml_lstm.pipelines.ingestion.nodes import to_raw_format

WINDOW = SessionWindow("2024-07-01", utc("2024-07-01T13:30:00Z"), utc("2024-07-01T20:00:00Z"))
OPEN = dt.datetime(2024, 7, 1, 13, 30, tzinfo=dt.UTC)


def feed_bars(count: int) -> list[BarData]:
    """Minute bars with awkward floats; minute 40's volume is fractional (the column turns
    from whole numbers to floats there)."""
    return [
        BarData(
            date=OPEN + dt.timedelta(minutes=i),
            open=round(100 + 0.37 * i, 2),
            high=100.1 + 0.37 * i + 1e-9 * i,
            low=1e-7 * (i + 1),
            close=123.456789012345 + i / 3,
            volume=10.5 if i == 40 else 1000 + i,
        )
        for i in range(count)
    ]


def test_the_text_grown_minute_by_minute_is_the_whole_session_written_at_once():
    bars = feed_bars(60)
    session = StreamedSession(WINDOW, {"symbol": "NVDA"}, "15min")
    seen = 1
    for step in (1, 1, 3, 1, 5, 2, 1, 1, 30, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1):
        seen = min(len(bars), seen + step)
        session.add(session.completed_minutes(bars[:seen], "TRADES"))
        # The whole session as one frame, as a backfill of these minutes writes it.
        whole = to_raw_format(bars_to_frame(bars[: seen - 1], WINDOW, "TRADES", "NVDA"))
        assert session.text == raw_text(whole)
        assert session.text == raw_text(session.raw)
        # The bars are computed from the frames kept in memory: the same table as
        # parsing the file's text gives.
        pd.testing.assert_frame_equal(
            raw_table(session.raw, session.file_name), read_raw(session.text, session.file_name)
        )
        assert session.rows == seen - 1
        assert session.last_minute == pd.Timestamp(bars[seen - 2].date)
    assert "10.5" in session.text and "1000.0" in session.text  # floats from minute 40 on


def test_bars_end_in_order_and_each_is_named_once():
    session = StreamedSession(WINDOW, {"symbol": "NVDA"}, "15min")
    ended = session.bars_ended(utc("2024-07-01T13:30:00Z"), utc("2024-07-01T14:15:00Z"))
    assert ended == [
        (utc("2024-07-01T13:45:00Z"), utc("2024-07-01T14:00:00Z")),
        (utc("2024-07-01T14:00:00Z"), utc("2024-07-01T14:15:00Z")),
    ]
    assert session.bars_ended(utc("2024-07-01T13:29:00Z"), utc("2024-07-01T13:44:59Z")) == []
    everything = session.bars_ended(utc("2024-07-01T00:00:00Z"), WINDOW.close)
    assert len(everything) == 26 and everything[-1][1] == WINDOW.close


def test_a_session_adopted_from_its_file_and_grown_gives_the_table_its_text_parses_to():
    bars = feed_bars(60)
    session = StreamedSession(WINDOW, {"symbol": "NVDA"}, "15min")
    session.add(session.completed_minutes(bars[:20], "TRADES"))
    adopted = StreamedSession(WINDOW, {"symbol": "NVDA"}, "15min")
    adopted.adopt(session.text)
    for seen in (21, 30, 45, 60):
        adopted.add(adopted.completed_minutes(bars[:seen], "TRADES"))
        pd.testing.assert_frame_equal(
            raw_table(adopted.raw, adopted.file_name), read_raw(adopted.text, adopted.file_name)
        )
