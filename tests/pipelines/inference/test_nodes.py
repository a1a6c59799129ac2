"""Inference nodes: the calendar, denormalised predictions, manifest checks, staleness."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import pytest

from ml_lstm.calendars import bar_after, stale_by
from ml_lstm.forecasting.splits import label_served_splits
from ml_lstm.pipelines.inference.nodes import (
    ModelMismatchError,
    check_served_model,
    predict_next_close,
)

XNYS = {"symbol": "NVDA", "calendar": "XNYS"}
INFERENCE = {"stale_after": "2h"}
FEATURES = ["close", "log_return"]


@pytest.mark.parametrize(
    ("bar_start", "steps", "expected"),
    [
        # Inside a session: the next hour.
        ("2024-03-27T14:30:00Z", 1, "2024-03-27T15:30:00Z"),
        # Friday's last bar -> Monday's first (weekend skipped).
        ("2024-03-22T19:30:00Z", 1, "2024-03-25T13:30:00Z"),
        # Thursday before Good Friday -> Monday.
        ("2024-03-28T19:30:00Z", 1, "2024-04-01T13:30:00Z"),
        # Early close on the day after Thanksgiving (13:00 ET): 12:30 bar is the last one.
        ("2024-11-29T17:30:00Z", 1, "2024-12-02T14:30:00Z"),
        # Three bars ahead across the close.
        ("2024-12-02T19:30:00Z", 3, "2024-12-03T15:30:00Z"),
    ],
)
def test_bar_after_follows_the_calendar(bar_start, steps, expected):
    result = bar_after(pd.Timestamp(bar_start), steps, XNYS, "60min")
    assert result == pd.Timestamp(expected)


def test_bar_after_follows_extended_hours_when_the_instrument_trades_them():
    extended = {**XNYS, "extended_hours": True}
    # Extended hours run 04:00-20:00 ET (09:00-01:00 UTC in winter): after the 16:00 ET
    # bar comes the after-hours bar, and after the last one the next pre-market bar.
    assert bar_after(pd.Timestamp("2024-01-02T21:00Z"), 1, extended, "60min") == pd.Timestamp(
        "2024-01-02T22:00Z"
    )
    assert bar_after(pd.Timestamp("2024-01-03T00:00Z"), 1, extended, "60min") == pd.Timestamp(
        "2024-01-03T09:00Z"
    )


def constant_model(lookback: int, n_features: int, output: float):
    """A real Keras model whose output is `output` whatever the window."""
    import keras

    inputs = keras.Input(shape=(lookback, n_features))
    flat = keras.layers.Flatten()(inputs)
    dense = keras.layers.Dense(
        1, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(output)
    )
    return keras.Model(inputs, dense(flat))


def feature_table(rows: int) -> pd.DataFrame:
    starts = pd.date_range("2024-12-02T14:30:00Z", periods=rows, freq="60min")
    close = np.linspace(100.0, 101.0, rows)
    return pd.DataFrame({"timestamp": starts, "close": close, "log_return": 0.001, "minutes": 60})


def served(lookback: int = 4, output: float = 0.5, target: str = "log_return", **manifest):
    scaler = {
        "features": FEATURES,
        "mean": [100.0, 0.0],
        "std": [1.0, 0.01],
        "target": target,
        "target_mean": 0.001 if target != "direction" else 0.0,
        "target_std": 0.002 if target != "direction" else 1.0,
    }
    return {
        "version": "v1",
        "source": "champion",
        "model": constant_model(lookback, len(FEATURES), output),
        "scaler": scaler,
        "manifest": {
            "version": "v1",
            "features": FEATURES,
            "lookback": lookback,
            "horizon": 1,
            "target": target,
            "frequency": "60min",
            **manifest,
        },
    }


def test_prediction_is_denormalised_and_logged_with_its_model():
    row = predict_next_close(served(), feature_table(5), XNYS, INFERENCE, {"run_id": "r1"})

    expected = 101.0 * math.exp(0.5 * 0.002 + 0.001)
    assert len(row) == 1
    assert row.loc[0, "predicted_close"] == pytest.approx(expected, rel=1e-6)
    assert row.loc[0, "last_close"] == 101.0
    assert row.loc[0, "direction"] == "up"
    assert row.loc[0, ["model_version", "run_id"]].tolist() == ["v1", "r1"]
    assert row.loc[0, "as_of_bar_time"] == "2024-12-02T18:30:00+00:00"
    assert row.loc[0, "target_bar_time"] == "2024-12-02T19:30:00+00:00"


def test_direction_model_logs_its_direction_without_a_price():
    model = served(target="direction", output=0.3)

    row = predict_next_close(model, feature_table(5), XNYS, INFERENCE, {"run_id": "r1"})

    assert row.loc[0, "direction"] == "down"
    assert math.isnan(row.loc[0, "predicted_close"])


def test_too_few_bars_is_a_clear_error():
    with pytest.raises(ValueError, match="needs the last 10 bars, the feature table has 3"):
        predict_next_close(served(lookback=10), feature_table(3), XNYS, INFERENCE, {"run_id": "r"})


MODELLING = {"features": FEATURES, "lookback": 4}
DATA_PROCESSING = {"frequency": "60min"}
SETTINGS = {"include": ["log_return"], "rsi_window": 14}
FEATURE_LIST = {"features": FEATURES, "settings": SETTINGS}


def test_a_matching_model_is_passed_on():
    table = feature_table(6)
    table["timestamp"] = table["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S%z")

    bundle = served()

    assert (
        check_served_model(bundle, None, table, FEATURE_LIST, MODELLING, DATA_PROCESSING) is bundle
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"modelling": {"features": ["log_return", "close"]}},
            r"feature order: the model takes \['close', 'log_return'\], modelling.features is "
            r"\['log_return', 'close'\]",
        ),
        (
            {"modelling": {"features": ["close", "rsi_14"]}},
            r"feature names: the model takes \['close', 'log_return'\], modelling.features",
        ),
        (
            {"modelling": {"lookback": 6}},
            r"lookback: the model reads 4 bars, modelling.lookback is 6",
        ),
        (
            {"data_processing": {"frequency": "30min"}},
            r"frequency: the model was trained on 60min bars, data_processing.frequency is 30min",
        ),
        (
            {"table": {"minutes": 30}},
            r"frequency: the model was trained on 60min bars, the feature table's longest bar "
            r"lasts 30 minutes",
        ),
        (
            {"table_drop": "log_return"},
            r"the feature table has no column \['log_return'\]",
        ),
    ],
)
def test_manifest_mismatch_fails_naming_the_field(change, message):
    modelling = {**MODELLING, **change.get("modelling", {})}
    data_processing = {**DATA_PROCESSING, **change.get("data_processing", {})}
    table = feature_table(6).assign(**change.get("table", {}))
    if "table_drop" in change:
        table = table.drop(columns=change["table_drop"])

    with pytest.raises(ModelMismatchError, match=message) as error:
        check_served_model(served(), None, table, FEATURE_LIST, modelling, data_processing)
    assert "Model v1 (champion) does not match the current features" in str(error.value)
    assert "kedro run --pipelines modelling" in str(error.value)


def test_features_computed_with_other_settings_are_refused():
    # Same column names (rsi_14), other values: the manifest keeps the settings.
    bundle = served(feature_settings={**SETTINGS, "rsi_window": 10})

    with pytest.raises(ModelMismatchError, match=r"rsi_window was 10 for the model, is 14 now"):
        check_served_model(bundle, None, feature_table(6), FEATURE_LIST, MODELLING, DATA_PROCESSING)
    matching = served(feature_settings=SETTINGS)
    assert (
        check_served_model(
            matching, None, feature_table(6), FEATURE_LIST, MODELLING, DATA_PROCESSING
        )
        is matching
    )


def test_a_model_whose_shape_contradicts_its_manifest_is_refused():
    bundle = served(lookback=4)
    bundle["model"] = constant_model(5, 2, 0.0)

    with pytest.raises(ModelMismatchError, match=r"input shape \(5, 2\) is not"):
        check_served_model(bundle, None, feature_table(6), FEATURE_LIST, MODELLING, DATA_PROCESSING)


def test_serving_a_pinned_non_champion_warns(caplog):
    bundle = {**served(), "source": "pinned"}
    with caplog.at_level(logging.WARNING):
        check_served_model(
            bundle, {"version": "v0"}, feature_table(6), FEATURE_LIST, MODELLING, DATA_PROCESSING
        )
    assert "Serving pinned version v1; the champion is v0." in caplog.text


FRIDAY_LAST_BAR = pd.Timestamp("2024-03-22T19:30:00Z")


@pytest.mark.parametrize(
    ("now", "stale"),
    [
        # Saturday and Monday before the first bar closes (+2 h tolerance): not stale.
        ("2024-03-23T12:00:00Z", False),
        ("2024-03-25T16:00:00Z", False),
        # Monday's first bar ended 14:30 UTC; more than 2 h later it should be in the data.
        ("2024-03-25T16:31:00Z", True),
        ("2024-04-02T12:00:00Z", True),
    ],
)
def test_staleness_counts_only_bars_the_calendar_expects(now, stale):
    late = stale_by(FRIDAY_LAST_BAR, pd.Timestamp(now), XNYS, "60min", "2h")
    assert (late is not None) == stale


def test_stale_data_warns_but_still_predicts(caplog):
    table = feature_table(5)
    run_info = {"run_id": "r", "started_at": "2024-12-09T12:00:00+00:00"}
    with caplog.at_level(logging.WARNING):
        row = predict_next_close(served(), table, XNYS, INFERENCE, run_info)
    assert len(row) == 1
    assert "NVDA: stale data. The last bar starts 2024-12-02 18:30:00+00:00" in caplog.text

    caplog.clear()
    fresh = {"run_id": "r", "started_at": "2024-12-02T19:45:00+00:00"}
    with caplog.at_level(logging.WARNING):
        predict_next_close(served(), table, XNYS, INFERENCE, fresh)
    assert "stale" not in caplog.text


def test_served_splits_test_range_runs_to_the_end_of_the_table():
    table = feature_table(10)
    times = table["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    manifest = {
        "splits": {
            "train": {"first": times[0], "last": times[3]},
            "validation": {"first": times[5], "last": times[5]},
            "test": {"first": times[7], "last": times[8]},
        }
    }

    labels = label_served_splits(table, manifest["splits"])["split"].tolist()

    assert labels == ["train"] * 4 + ["purged"] * 3 + ["test"] * 3
