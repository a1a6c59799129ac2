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


def test_wilder_rsi_by_hand():
    close = pd.Series([10.0, 11.0, 10.0, 12.0, 12.0])
    # Changes +1, -1, +2, 0; window 2: gains seeded 0.5 after two changes (1, 0) with alpha
    # 1/2: g = [1, 0.5, 1.25, 0.625], l = [0, 0.5, 0.25, 0.125].
    rsi = wilder_rsi(close, 2)
    assert rsi.iloc[:2].isna().all()
    assert rsi.iloc[2:].tolist() == pytest.approx(
        [100 * 0.5 / 1.0, 100 * 1.25 / 1.5, 100 * 0.625 / 0.75]
    )
    assert wilder_rsi(pd.Series([5.0] * 6), 2).iloc[-1] == 50.0


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
