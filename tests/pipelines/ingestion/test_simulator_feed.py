"""What the simulator's synthetic feed serves for a window: exactly the market's bars in it,
whether the window is a whole session (a backfill's request), part of one, several, a
day (the stream's), or a closed day."""

from __future__ import annotations

import pandas as pd
import pytest
from ingestion_support import NVDA

from ml_lstm.synthetic_market import SyntheticMarket, profile_from_parameters
from ml_lstm.tws_simulator import instrument_from_parameters

OPEN = pd.Timestamp("2024-01-03 14:30", tz="UTC")
CLOSE = pd.Timestamp("2024-01-03 21:00", tz="UTC")
MINUTE = pd.Timedelta(minutes=1)


def market_bars(sessions: list[str], start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    market = SyntheticMarket(profile_from_parameters(NVDA, 42))
    bars = pd.concat([market.session_bars(session) for session in sessions], ignore_index=True)
    return bars[(bars["timestamp"] >= start) & (bars["timestamp"] < end)]


@pytest.mark.parametrize(
    ("start", "end", "sessions"),
    [
        (OPEN, CLOSE, ["2024-01-03"]),  # a whole session
        (OPEN + MINUTE, CLOSE - MINUTE, ["2024-01-03"]),  # without its first and last minute
        (OPEN + 7 * MINUTE, OPEN + 8 * MINUTE, ["2024-01-03"]),  # one minute
        (CLOSE - MINUTE, OPEN + pd.Timedelta(days=1, minutes=1), ["2024-01-03", "2024-01-04"]),
        (
            pd.Timestamp("2024-01-03", tz="UTC"),
            pd.Timestamp("2024-01-04", tz="UTC"),
            ["2024-01-03"],
        ),
        (
            pd.Timestamp("2024-01-02", tz="UTC"),
            pd.Timestamp("2024-01-06", tz="UTC"),
            ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"],
        ),
        (CLOSE, OPEN + pd.Timedelta(days=1), []),  # between two sessions
        (pd.Timestamp("2024-01-06", tz="UTC"), pd.Timestamp("2024-01-08", tz="UTC"), []),
    ],
)
def test_the_feed_serves_the_market_bars_of_the_window(start, end, sessions):
    feed = instrument_from_parameters(NVDA, 42).feed

    served = feed.bars_between(start, end)

    expected = market_bars(sessions, start, end) if sessions else served.iloc[:0]
    assert len(served) == len(expected)
    pd.testing.assert_frame_equal(
        served.reset_index(drop=True), expected.reset_index(drop=True), check_dtype=bool(sessions)
    )


def test_a_served_session_can_be_changed_without_changing_what_is_served_next():
    feed = instrument_from_parameters(NVDA, 42).feed
    first = feed.bars_between(OPEN, CLOSE)
    before = first.copy()

    first["close"] = 0.0

    pd.testing.assert_frame_equal(feed.bars_between(OPEN, CLOSE), before)
