"""Features: names, warm-up, no look-ahead, restart after missing sessions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from data_processing_support import (
    NVDA,
    PARAMETERS,
    RUN_INFO,
    minute_bars,
    parameters,
    session_minutes,
)

from ml_lstm.calendars import trading_sessions
from ml_lstm.pipelines.data_processing.features import wilder_rsi
from ml_lstm.pipelines.data_processing.nodes import (
    add_features,
    fill_gaps,
    list_sessions,
    locate_gaps,
    resample_to_session_bars,
)


def hourly_from(minutes: pd.DatetimeIndex, seed: int = 1) -> pd.DataFrame:
    return resample(minute_bars(minutes, seed=seed))


def resample(bars: pd.DataFrame) -> pd.DataFrame:
    # A few holes so that filling takes part.
    bars = bars.drop(index=bars.index[50:53]).reset_index(drop=True)
    sessions = list_sessions(bars, NVDA, RUN_INFO)
    filled = fill_gaps(bars, locate_gaps(bars, sessions), PARAMETERS)
    return resample_to_session_bars(filled, sessions, PARAMETERS)


def minutes_of(start: str, end: str) -> pd.DatetimeIndex:
    days = trading_sessions("XNYS", start, end).index.strftime("%Y-%m-%d")
    return pd.DatetimeIndex(np.concatenate([session_minutes("XNYS", d) for d in days]))


def test_features_are_named_listed_and_warmed_up():
    hourly = hourly_from(minutes_of("2024-03-04", "2024-03-08"))
    features, listing = add_features(hourly, NVDA, parameters())
    assert listing["features"] == [
        "return",
        "log_return",
        "sma_3",
        "ema_4",
        "rsi_3",
        "macd",
        "macd_signal",
        "volatility_3",
        "session_position_sin",
        "session_position_cos",
        "day_of_week_sin",
        "day_of_week_cos",
    ]
    # Longest history: MACD signal, slow 4 + signal 2 - 2 = 4 rows.
    assert listing["warm_up_rows_dropped"] == 4
    assert len(features) == len(hourly) - 4
    assert features["timestamp"].iloc[0] == hourly["timestamp"].iloc[4]
    assert not features[listing["features"]].isna().any().any()
    assert features["close"].pct_change().iloc[1:].to_numpy() == pytest.approx(
        features["return"].iloc[1:].to_numpy()
    )
    monday_open = features[(features["session"] == "2024-03-05")].iloc[0]
    assert monday_open["session_position_sin"] == pytest.approx(0.0)
    assert monday_open["day_of_week_sin"] == pytest.approx(np.sin(2 * np.pi / 7))


# StockCharts' RSI example ("ChartSchool: Relative Strength Index", cs-rsi.xls): the closes
# of its table and its first five RSI(14) values, published to two decimals.
STOCKCHARTS_CLOSES = [
    44.3389, 44.0902, 44.1497, 43.6124, 44.3278, 44.8264, 45.0955, 45.4245, 45.8433, 46.0826,
    45.8931, 46.0328, 45.6140, 46.2820, 46.2820, 46.0028, 46.0328, 46.4116, 46.2222,
]  # fmt: skip
STOCKCHARTS_RSI_14 = [70.53, 66.32, 66.55, 69.41, 66.36]
# Tulip Indicators' reference test (tests/untest.txt, "rsi 5"), published to three decimals.
TULIP_CLOSES = [
    81.59, 81.06, 82.87, 83.00, 83.61, 83.15, 82.84, 83.99, 84.55, 84.36, 85.53, 86.54, 86.89,
    87.77, 87.29,
]  # fmt: skip
TULIP_RSI_5 = [72.034, 64.927, 75.936, 79.796, 74.713, 83.033, 87.478, 88.755, 91.483, 78.498]


def test_wilder_rsi_matches_published_reference_values():
    for closes, window, published, decimals in [
        (STOCKCHARTS_CLOSES, 14, STOCKCHARTS_RSI_14, 2),
        (TULIP_CLOSES, 5, TULIP_RSI_5, 3),
    ]:
        # An index that does not start at 0, as in a later stretch of bars.
        rsi = wilder_rsi(pd.Series(closes, index=range(100, 100 + len(closes))), window)
        # The first value needs `window` changes: rows 0 .. window-1 are warm-up (the
        # history indicator_columns reports for the RSI).
        assert rsi.iloc[:window].isna().all()
        assert rsi.iloc[window:].round(decimals).tolist() == published
    # No move is 50, only gains 100, only losses 0; too short a series has no value.
    assert wilder_rsi(pd.Series([5.0] * 6), 2).iloc[2:].tolist() == [50.0] * 4
    assert wilder_rsi(pd.Series([1.0, 2.0, 3.0]), 2).iloc[2] == 100.0
    assert wilder_rsi(pd.Series([3.0, 2.0, 1.0]), 2).iloc[2] == 0.0
    assert wilder_rsi(pd.Series([1.0, 2.0]), 5).isna().all()


def test_appending_later_bars_changes_no_earlier_feature():
    bars = minute_bars(minutes_of("2024-03-04", "2024-03-15"), seed=3)
    early_bars = bars[bars["timestamp"] < pd.Timestamp("2024-03-09", tz="UTC")]
    early, later = (resample(b) for b in (early_bars, bars))
    assert len(later) > len(early)
    pd.testing.assert_frame_equal(later.iloc[: len(early)], early)
    before, _ = add_features(early, NVDA, parameters())
    after, _ = add_features(later, NVDA, parameters())
    pd.testing.assert_frame_equal(after.iloc[: len(before)], before)


def test_features_restart_after_missing_sessions():
    minutes = minutes_of("2024-03-04", "2024-03-06").append(minutes_of("2024-03-12", "2024-03-14"))
    hourly = hourly_from(minutes)
    features, listing = add_features(hourly, NVDA, parameters())
    assert listing["stretches"] == 2
    assert listing["warm_up_rows_dropped"] == 8
    first_after_hole = features[features["session"] == "2024-03-12"].iloc[0]
    assert first_after_hole["timestamp"] == pd.Timestamp("2024-03-12 13:30", tz="UTC") + 4 * (
        pd.Timedelta("60min")
    )
    relaxed = parameters()
    relaxed["features"]["max_missing_sessions"] = 5
    _, listing = add_features(hourly, NVDA, relaxed)
    assert listing["stretches"] == 1


def test_unknown_feature_family_is_named():
    hourly = hourly_from(minutes_of("2024-03-04", "2024-03-05"))
    wrong = parameters()
    wrong["features"]["include"] = ["log_return", "bollinger"]
    with pytest.raises(ValueError, match=r"unknown families \['bollinger'\]"):
        add_features(hourly, NVDA, wrong)
