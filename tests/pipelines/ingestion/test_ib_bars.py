"""IB's bars (ib_insync BarData) as the raw frame: the session's minutes only, in time order,
the last of repeated minutes, volume as IB's meaning of it."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from ib_insync import BarData

from ml_lstm.backfill import SessionWindow
from ml_lstm.ib_data import IngestionError, bars_to_frame

WINDOW = SessionWindow(
    "2024-01-02",
    pd.Timestamp("2024-01-02 14:30", tz="UTC"),
    pd.Timestamp("2024-01-02 21:00", tz="UTC"),
)


def bar(minute: int, close: float, volume: float, zone: dt.tzinfo | None = dt.UTC) -> BarData:
    start = dt.datetime(2024, 1, 2, 14, 30, tzinfo=zone) + dt.timedelta(minutes=minute)
    return BarData(date=start, open=close, high=close, low=close, close=close, volume=volume)


def test_bars_become_the_sessions_minutes_in_order_with_the_last_of_repeats():
    bars = [bar(-1, 1.0, 5), bar(0, 2.0, 6), bar(2, 3.0, 7), bar(1, 4.0, 8), bar(2, 5.0, 9)]
    bars.append(bar(390, 6.0, 10))  # the close: the next session's minute

    frame = bars_to_frame(bars, WINDOW, "TRADES", "NVDA")

    assert frame["timestamp"].tolist() == [
        WINDOW.open + pd.Timedelta(minutes=minute) for minute in (0, 1, 2)
    ]
    assert str(frame["timestamp"].dt.tz) == "UTC"
    assert frame["close"].tolist() == [2.0, 4.0, 5.0]
    assert frame["volume"].tolist() == [6, 8, 9] and frame["volume"].dtype == "int64"
    assert frame.index.tolist() == [0, 1, 2]


@pytest.mark.parametrize(
    ("what", "volumes", "expected"),
    [
        ("MIDPOINT", [-1, -1], [0, 0]),  # quote bars: IB's -1 means none
        ("TRADES", [-1, 3], [0, 3]),
        ("TRADES", [1.5, 3], [1.5, 3.0]),  # fractional volume (crypto, FX) stays a float
    ],
)
def test_volume_is_stored_as_ib_means_it(what, volumes, expected):
    bars = [bar(minute, 1.0, volume) for minute, volume in enumerate(volumes)]
    assert bars_to_frame(bars, WINDOW, what, "NVDA")["volume"].tolist() == expected


def test_bar_times_without_a_zone_are_refused():
    with pytest.raises(IngestionError, match=r"NVDA session 2024-01-02: .*without a time zone"):
        bars_to_frame([bar(0, 1.0, 1, zone=None)], WINDOW, "TRADES", "NVDA")
