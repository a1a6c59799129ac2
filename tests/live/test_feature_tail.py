"""Live computes add_features on a bounded tail of the history (ml_lstm.live.tail): its
newest rows must equal the whole history's far below 1e-9, with the tail length derived
from the feature settings, and a tail of only warm-up + lookback bars must not do."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from live_support import project_parameters

from ml_lstm.calendars import instrument_sessions
from ml_lstm.live.bar_path import FAR
from ml_lstm.live.session import read_raw, session_bars
from ml_lstm.live.tail import feature_difference, history_tail, slowest_decay, tail_rows
from ml_lstm.pipelines.data_processing.nodes import add_features
from ml_lstm.pipelines.ingestion.nodes import to_raw_format
from ml_lstm.synthetic_market import SyntheticMarket, profile_from_parameters

LOOKBACK = 8


@pytest.fixture(scope="module")
def history() -> tuple[pd.DataFrame, dict, dict]:
    """Four months of the synthetic market's 15-minute bars (~2,200), through the nodes."""
    parameters = project_parameters()
    instrument = parameters["instruments"]["nvda"]
    data_processing = {**parameters["data_processing"], "frequency": "15min"}
    market = SyntheticMarket(profile_from_parameters(instrument, 7))
    sessions = instrument_sessions(instrument, "2024-01-02", "2024-04-30")
    raw = pd.concat(
        [to_raw_format(market.session_bars(label)) for label in sessions.index], ignore_index=True
    )
    table = read_raw(raw.to_csv(index=False), "history.csv")
    return session_bars(table, instrument, data_processing, FAR), instrument, data_processing


def _difference(bars: pd.DataFrame, rows: int, instrument: dict, dp: dict) -> float:
    full, _ = add_features(bars, instrument, dp)
    part, _ = add_features(bars.iloc[-rows:].reset_index(drop=True), instrument, dp)
    return feature_difference(part, full, LOOKBACK)


def test_features_on_the_derived_tail_equal_the_whole_history_far_below_1e_9(history):
    bars, instrument, dp = history
    _, feature_list = add_features(bars, instrument, dp)
    rows = tail_rows(dp["features"], feature_list["warm_up_rows_per_stretch"], LOOKBACK)
    # The default settings: Wilder's RSI over 14 bars forgets slowest (13/14 a bar).
    assert slowest_decay(dp["features"]) == pytest.approx(13 / 14)
    assert rows < len(bars) / 3
    # At several points of the history (a bar each, as live meets them).
    for end in np.linspace(rows + 50, len(bars), 6).astype(int):
        assert _difference(bars.iloc[:end], rows, instrument, dp) < 1e-12


def test_a_tail_of_only_warm_up_and_lookback_bars_is_not_enough(history):
    bars, instrument, dp = history
    _, feature_list = add_features(bars, instrument, dp)
    short = feature_list["warm_up_rows_per_stretch"] + LOOKBACK
    assert _difference(bars, short, instrument, dp) > 1e-9


def test_slower_indicators_get_a_longer_tail_that_still_agrees(history):
    bars, instrument, dp = history
    slow = {**dp, "features": {**dp["features"], "rsi_window": 28, "ema_windows": [12, 60]}}
    _, feature_list = add_features(bars, instrument, slow)
    warm_up = feature_list["warm_up_rows_per_stretch"]
    rows = tail_rows(slow["features"], warm_up, LOOKBACK)
    assert rows > tail_rows(dp["features"], warm_up, LOOKBACK)
    assert _difference(bars, rows, instrument, slow) < 1e-12


def test_history_tail_is_the_derived_tail_and_the_whole_history_when_short(history):
    bars, instrument, dp = history
    tail = history_tail(bars, instrument, dp, LOOKBACK)
    _, feature_list = add_features(bars, instrument, dp)
    assert len(tail) == tail_rows(dp["features"], feature_list["warm_up_rows_per_stretch"], 8)
    assert tail["timestamp"].iloc[-1] == bars["timestamp"].iloc[-1]
    short = bars.iloc[: len(tail) - 1]
    assert len(history_tail(short, instrument, dp, LOOKBACK)) == len(short)
