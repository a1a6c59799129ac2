"""Splits, scaling, windows, baselines and metrics: no look-ahead anywhere (no training here)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from modelling_support import synthetic_features, tiny

from ml_lstm.forecasting import scaling
from ml_lstm.forecasting.baselines import (
    drift_forecast,
    fit_linear,
    mean_log_return,
    predict_linear,
    sma_forecast,
)
from ml_lstm.forecasting.evaluation import (
    diebold_mariano,
    price_metrics,
    wilson_interval,
)
from ml_lstm.forecasting.splits import SPLITS
from ml_lstm.forecasting.targets import target_values
from ml_lstm.forecasting.windows import split_windows, window_view
from ml_lstm.pipelines.modelling import nodes


def test_splits_are_in_time_order_with_a_purge_gap_of_lookback_plus_horizon():
    params = tiny(lookback=6, horizon=3)
    table = nodes.split_by_time(synthetic_features(600), params)
    splits = table["split"].to_numpy()
    first = {name: int(np.flatnonzero(splits == name)[0]) for name in SPLITS}
    last = {name: int(np.flatnonzero(splits == name)[-1]) for name in SPLITS}
    assert last["train"] < first["validation"] <= last["validation"] < first["test"]
    assert first["validation"] - last["train"] - 1 == 6 + 3
    assert first["test"] - last["validation"] - 1 == 6 + 3
    assert (splits[last["train"] + 1 : first["validation"]] == "purged").all()
    # The latest close any training label uses comes before the earliest row any
    # validation window reads; likewise validation labels before test windows.
    assert last["train"] + 3 < first["validation"] - 6 + 1
    assert last["validation"] + 3 < first["test"] - 6 + 1


def test_scaler_statistics_are_the_training_splits_and_ignore_later_rows():
    params = tiny()
    features = synthetic_features(600)
    table = nodes.split_by_time(features, params)
    scaler = nodes.fit_scaler(table, params)
    train = table[table["split"] == "train"]
    np.testing.assert_allclose(scaler["mean"], train[params["features"]].mean().to_numpy())
    np.testing.assert_allclose(scaler["std"], train[params["features"]].std(ddof=0).to_numpy())
    assert scaler["features"] == params["features"]
    assert scaler["fitted_on"]["rows"] == len(train)

    changed = features.copy()
    # Training labels read closes up to `horizon` bars into the purge gap, never beyond it.
    later = np.arange(len(table)) >= int(np.flatnonzero(table["split"] == "validation")[0])
    changed.loc[later, "signal"] *= 1000
    changed.loc[later, "close"] *= 3
    rescaled = nodes.fit_scaler(nodes.split_by_time(changed, params), params)
    assert rescaled["mean"] == scaler["mean"] and rescaled["std"] == scaler["std"]
    assert rescaled["target_mean"] == scaler["target_mean"]


def test_changing_future_rows_changes_no_earlier_window_or_label():
    params = tiny(lookback=5, horizon=2)
    features = synthetic_features(400)
    table = nodes.split_by_time(features, params)
    scaler = nodes.fit_scaler(table, params)
    cut = 300
    changed = table.copy()
    changed.loc[cut:, ["signal", "log_return"]] = 99.0
    changed.loc[cut:, "close"] *= 5

    before = window_view(scaling.scale_features(table, scaler), 5)
    after = window_view(scaling.scale_features(changed, scaler), 5)
    # Window i covers rows i..i+4: every window ending before `cut` is unchanged.
    np.testing.assert_array_equal(before[: cut - 4], after[: cut - 4])
    assert not np.array_equal(before[cut - 4], after[cut - 4])
    labels_before = target_values(table, "log_return", 2)
    labels_after = target_values(changed, "log_return", 2)
    np.testing.assert_array_equal(labels_before[: cut - 2], labels_after[: cut - 2])


def test_windows_are_views_that_end_on_their_labelled_row():
    table = nodes.split_by_time(synthetic_features(300), tiny())
    matrix = np.arange(300 * 2, dtype="float32").reshape(300, 2)
    labels = target_values(table, "log_return", 1)
    assert np.shares_memory(window_view(matrix, 4), matrix)
    windows, y, rows = split_windows(table, matrix, labels, "test", 4)
    np.testing.assert_array_equal(windows[:, -1, :], matrix[rows])
    np.testing.assert_array_equal(windows[:, 0, :], matrix[rows - 3])
    np.testing.assert_array_equal(y, labels[rows])
    assert (table["split"].to_numpy()[rows] == "test").all()
    assert rows[-1] == 298  # the last row has no label one bar ahead


def test_each_target_kind_labels_the_move_horizon_bars_ahead():
    table = pd.DataFrame({"close": [10.0, 11.0, 11.0, 9.0]})
    np.testing.assert_allclose(
        target_values(table, "log_return", 1)[:3], np.log([11 / 10, 11 / 11, 9 / 11])
    )
    np.testing.assert_array_equal(target_values(table, "price", 2)[:2], [11.0, 9.0])
    direction = target_values(table, "direction", 1)
    np.testing.assert_array_equal(direction[:3], [1.0, 0.0, 0.0])
    assert np.isnan(direction[3])
    with pytest.raises(ValueError, match="expected one of"):
        target_values(table, "volatility", 1)


def test_missing_feature_or_gap_is_a_clear_error():
    features = synthetic_features(300)
    with pytest.raises(ValueError, match=r"absent from the feature table: \['macd'\]"):
        nodes.split_by_time(features, tiny(features=["signal", "macd"]))
    features.loc[17, "signal"] = np.nan
    with pytest.raises(ValueError, match="'signal' is missing \\(NaN\\) at row 17"):
        nodes.split_by_time(features, tiny())
    with pytest.raises(ValueError, match="fewer than lookback"):
        nodes.split_by_time(synthetic_features(60), tiny(lookback=10))


def test_baselines_use_only_the_past():
    close = np.array([10.0, 11.0, 12.0, 13.0, 14.0, 15.0])
    rows = np.array([1, 3, 5])
    np.testing.assert_allclose(sma_forecast(close, rows, 3), [np.nan, 12.0, 14.0])
    drift = mean_log_return(close[:4])
    assert drift == pytest.approx(np.log(13 / 10) / 3)
    np.testing.assert_allclose(
        drift_forecast(close, rows, 2, drift), close[rows] * np.exp(2 * drift)
    )
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    coefficients = fit_linear(x, 2 * x[:, 0] + 1)
    np.testing.assert_allclose(predict_linear(coefficients, np.array([[10.0]])), [21.0])


def test_wilson_interval_and_price_metrics_follow_their_definitions():
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    assert wilson_interval(0, 0) is None
    actual = np.array([11.0, 9.0, 10.0, 12.0])
    last = np.array([10.0, 10.0, 10.0, 10.0])
    predicted = np.array([10.5, 10.5, 10.0, 11.0])
    scores = price_metrics(actual, predicted, last, scale=2.0, persistence_mae=1.0)
    assert scores["mae"] == pytest.approx((0.5 + 1.5 + 0 + 1) / 4)
    assert scores["rmse"] == pytest.approx(np.sqrt((0.25 + 2.25 + 0 + 1) / 4))
    assert scores["mape"] == pytest.approx(100 * np.mean([0.5 / 11, 1.5 / 9, 0, 1 / 12]))
    assert scores["mase"] == pytest.approx(0.75 / 2.0)
    # Three forecasts move (up, up, up); actual moves up, down, up: two hits of three.
    assert scores["directional_rows"] == 3
    assert scores["directional_accuracy"] == pytest.approx(2 / 3)


def test_diebold_mariano_matches_a_paired_t_statistic_at_horizon_one():
    rng = np.random.default_rng(3)
    actual = rng.standard_normal(400)
    ours = actual + 0.5 * rng.standard_normal(400)
    reference = actual + rng.standard_normal(400)
    result = diebold_mariano(actual, ours, reference, horizon=1)
    gain = np.abs(actual - reference) - np.abs(actual - ours)
    assert result["statistic"] == pytest.approx(gain.mean() / (gain.std() / np.sqrt(400)))
    assert result["statistic"] > 0 and result["p_value"] < 1e-6
    assert diebold_mariano(actual, ours, ours, horizon=3) == {"statistic": 0.0, "p_value": 1.0}
