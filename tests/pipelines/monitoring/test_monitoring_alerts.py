"""Alerts: degenerate models (also at training time), live error beyond the test split's,
input drift on a synthetic regime change."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from ml_lstm.forecasting.evaluation import evaluate, log_verdict
from ml_lstm.forecasting.forecast import forecast_rows
from ml_lstm.forecasting.splits import label_served_splits
from ml_lstm.pipelines.monitoring.nodes import (
    check_alerts,
    degenerate_alert,
    drift_alert,
    live_vs_test_alert,
)

DEGENERATE = {"min_spread_ratio": 0.05, "max_one_direction_share": 0.95}
DRIFT = {"window_bars": 140, "bins": 10, "psi_threshold": 0.25, "features": ["log_return"]}
FEATURES = ["close", "log_return"]
SPLITS = {
    "train": {"first": "2024-01-01T00:00:00+00:00", "last": "2024-01-29T03:00:00+00:00"},
    "validation": {"first": "2024-01-30T00:00:00+00:00", "last": "2024-02-03T00:00:00+00:00"},
    "test": {"first": "2024-02-04T00:00:00+00:00", "last": "2025-01-01T00:00:00+00:00"},
}


def random_walk(rows: int, seed: int, volatility_after: tuple[int, float] | None = None):
    """Hourly bars of a random walk; with `volatility_after` (row, factor) the log returns
    from that row on are `factor` times as volatile (a regime change)."""
    random = np.random.default_rng(seed)
    returns = random.normal(0, 0.004, rows)
    if volatility_after:
        start, factor = volatility_after
        returns[start:] *= factor
    close = 100 * np.exp(np.cumsum(returns))
    times = pd.date_range("2024-01-01", periods=rows, freq="60min", tz="UTC")
    return pd.DataFrame({"timestamp": times, "close": close, "log_return": returns})


def constant_model(lookback: int, output: float):
    """A real Keras model whose output is `output` whatever the window."""
    import keras

    inputs = keras.Input(shape=(lookback, len(FEATURES)))
    dense = keras.layers.Dense(
        1, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(output)
    )
    return keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))


def forecasts_of(model) -> pd.DataFrame:
    table = label_served_splits(random_walk(1000, seed=1), SPLITS)
    scaler = {
        "features": FEATURES,
        "mean": [100.0, 0.0],
        "std": [5.0, 0.004],
        "target": "log_return",
        "target_mean": 0.0,
        "target_std": 0.004,
    }
    forecasts = forecast_rows(model, table, scaler, lookback=4, horizon=1, sma_window=5)
    return forecasts.assign(model_version="v1")


@pytest.fixture(scope="module")
def constant_forecasts() -> pd.DataFrame:
    return forecasts_of(constant_model(4, output=0.3))


def test_a_constant_model_is_flagged_and_a_normal_one_is_not(constant_forecasts):
    alert = degenerate_alert(constant_forecasts, DEGENERATE)

    assert alert["kind"] == "degenerate_model" and alert["model_version"] == "v1"
    assert alert["details"]["near_constant"] and alert["details"]["one_direction"]
    assert alert["details"]["up_share"] == 1.0
    assert "100% of its" in alert["message"] and "say up" in alert["message"]
    # A model that does move with the market: the SMA baseline on the same rows.
    normal = constant_forecasts.assign(lstm=constant_forecasts["sma"])
    assert degenerate_alert(normal, DEGENERATE) is None


def test_a_one_direction_model_is_flagged_even_when_its_moves_vary(constant_forecasts):
    # Moves of varying size, every one down: the silver model of the issue.
    moves = np.abs(constant_forecasts["sma"] - constant_forecasts["last_close"]) + 0.01
    one_way = constant_forecasts.assign(lstm=constant_forecasts["last_close"] - moves)
    alert = degenerate_alert(one_way, DEGENERATE)
    assert alert is not None and not alert["details"]["near_constant"]
    assert "say down" in alert["message"]


def test_training_time_evaluation_flags_it_too(constant_forecasts, caplog):
    train_close = random_walk(1000, seed=1)["close"].to_numpy()[:600]
    metrics = evaluate(constant_forecasts, train_close, "log_return", 1)
    assert metrics["evaluation"]["lstm_degenerate"]["degenerate"]
    with caplog.at_level(logging.WARNING):
        log_verdict(metrics)
    assert "Degenerate LSTM on" in caplog.text

    normal = evaluate(
        constant_forecasts.assign(lstm=constant_forecasts["sma"]), train_close, "log_return", 1
    )
    assert not normal["evaluation"]["lstm_degenerate"]["degenerate"]


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_drift_fires_on_tripled_volatility_and_not_on_a_stationary_market(seed):
    manifest = {"version": "v1", "features": FEATURES, "splits": SPLITS}
    stationary = drift_alert(random_walk(1000, seed), manifest, DRIFT)
    regime = drift_alert(random_walk(1000, seed, volatility_after=(860, 3.0)), manifest, DRIFT)

    assert "alert" not in stationary
    assert stationary["features"]["log_return"]["psi"] < 0.25
    assert regime["alert"]["kind"] == "feature_drift"
    assert regime["features"]["log_return"]["psi"] > 0.25
    assert regime["features"]["log_return"]["ks_p_value"] < 0.01
    # Both report every feature; close is reported but not watched here.
    assert set(regime["features"]) == {"close", "log_return"} and regime["watched"] == [
        "log_return"
    ]
    assert stationary["training_rows"] == 676 and stationary["recent_rows"] == 140


def card(live_relative: float, rows: int, test_relative: float = 1.02) -> dict:
    return {
        "served_model": "v1",
        "served": {
            "live": {"rows": rows, "relative_mae": live_relative},
            "test": {"relative_mae": test_relative},
        },
    }


def test_live_error_worse_than_the_test_splits_by_more_than_the_margin():
    monitoring = {"margin": 0.10, "min_rows": 20}
    alert = live_vs_test_alert(card(1.25, rows=30), monitoring)
    assert alert["kind"] == "live_worse_than_test"
    assert alert["details"]["gap"] == pytest.approx(0.23)
    assert live_vs_test_alert(card(1.10, rows=30), monitoring) is None  # within the margin
    assert live_vs_test_alert(card(1.25, rows=19), monitoring) is None  # too few rows yet


def test_alerts_are_warnings_and_entries(constant_forecasts, caplog):
    features = random_walk(1000, 11, volatility_after=(860, 3.0))
    manifests = {"v1": {"version": "v1", "features": FEATURES, "splits": SPLITS}}
    monitoring = {"margin": 0.1, "min_rows": 20, "degenerate": DEGENERATE, "drift": DRIFT}
    run_info = {"run_id": "r", "started_at": "2024-03-01T00:00:00+00:00"}

    with caplog.at_level(logging.WARNING):
        alerts = check_alerts(
            card(1.3, rows=25), constant_forecasts, features, manifests, {"symbol": "NVDA"},
            monitoring, run_info,
        )  # fmt: skip

    kinds = [alert["kind"] for alert in alerts["alerts"]]
    assert kinds == ["degenerate_model", "live_worse_than_test", "feature_drift"]
    assert caplog.text.count("NVDA ALERT") == 3
    assert alerts["served_model"] == "v1" and alerts["generated_at"] == run_info["started_at"]
