"""Tiny LSTMs really trained: skill only where there is signal, determinism, stateful path,
each target kind, history, walk-forward and the manifest."""

from __future__ import annotations

import json

import numpy as np
import pytest
from modelling_support import synthetic_features, tiny, train_and_evaluate

from ml_lstm.forecasting.baselines import BASELINES
from ml_lstm.pipelines.modelling import charts, nodes

pytestmark = pytest.mark.slow


def test_lstm_learns_real_signal_and_beats_every_baseline(trained):
    metrics = trained["metrics"]
    assert metrics["evaluation"]["lstm_beats_persistence"] is True
    assert metrics["lstm"]["relative_mae"] < 0.5
    assert metrics["lstm"]["directional_accuracy_ci95"][0] > 0.5
    assert metrics["evaluation"]["diebold_mariano_vs_persistence"]["p_value"] < 1e-6
    for baseline in ("persistence", "drift", "sma"):
        assert metrics["lstm"]["mase"] < metrics[baseline]["mase"]
    # The linear baseline sees the same features, and the signal is linear: it learns too.
    assert metrics["linear"]["relative_mae"] < 0.5
    rows = metrics["evaluation"]["rows"]
    assert all(metrics[name]["rows"] == rows for name in ("lstm", *BASELINES))
    assert json.loads(json.dumps(metrics)) == metrics


def test_model_trained_on_shuffled_targets_shows_no_skill(trained_on_shuffled):
    metrics = trained_on_shuffled["metrics"]
    # Near persistence (the model learns to predict almost no move), far from the 0.25 of
    # the same network trained on the signal.
    assert metrics["lstm"]["relative_mae"] > 0.97
    assert metrics["evaluation"]["diebold_mariano_vs_persistence"]["p_value"] > 0.05
    low, high = metrics["lstm"]["directional_accuracy_ci95"]
    assert low < 0.5 < high


def test_same_seed_gives_identical_metrics_and_weights(trained):
    again = train_and_evaluate(synthetic_features(), tiny())
    assert again["metrics"] == trained["metrics"]
    for ours, theirs in zip(
        again["model"].get_weights(), trained["model"].get_weights(), strict=True
    ):
        np.testing.assert_array_equal(ours, theirs)


def test_history_records_each_epoch_and_is_plotted(trained, caplog):
    history = trained["history"]
    assert history["epochs_run"] == len(history["loss"]) == len(history["val_loss"]) == 3
    assert len(history["learning_rate"]) == 3
    assert history["val_loss"][history["best_epoch"] - 1] == min(history["val_loss"])
    assert json.loads(json.dumps(history)) == history
    figure = charts.plot_training_history(history)
    assert len(figure.axes) == 2
    assert len(figure.axes[0].lines[0].get_xdata()) == 3
    comparison = charts.plot_model_comparison(trained["metrics"])
    assert [tick.get_text() for tick in comparison.axes[0].get_xticklabels()] == [
        "lstm",
        *BASELINES,
    ]


def test_one_log_line_per_epoch(caplog):
    caplog.set_level("INFO", logger="ml_lstm")
    train_and_evaluate(synthetic_features(400), tiny(training={"epochs": 2, "patience": 5}))
    epochs = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert len(epochs) == 2 and epochs[0].startswith("epoch 1/2: loss ")
    verdicts = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Verdict")]
    assert len(verdicts) == 1 and "persistence" in verdicts[0]


def test_stateful_training_returns_a_stateless_copy_of_its_weights():
    from ml_lstm.forecasting.lstm_factory import build_model, stateless_copy

    params = tiny(model={"stateful": True}, training={"batch_size": 16})
    result = train_and_evaluate(synthetic_features(500), params)
    assert result["history"]["train_samples"] % 16 == 0
    assert result["history"]["validation_samples"] % 16 == 0
    model = result["model"]
    assert not any(getattr(layer, "stateful", False) for layer in model.layers)
    assert result["metrics"]["lstm"]["rows"] == result["metrics"]["evaluation"]["rows"]

    config = nodes.model_config(params, 2)
    stateful = build_model(config)
    assert stateful.get_layer("lstm_0").stateful
    copy = stateless_copy(stateful, config)
    windows = np.random.default_rng(0).standard_normal((16, 4, 2)).astype("float32")
    np.testing.assert_allclose(
        stateful.predict(windows, verbose=0), copy.predict(windows, verbose=0), rtol=1e-5
    )


def test_price_target_is_scored_on_the_price_scale():
    result = train_and_evaluate(synthetic_features(500), tiny(target="price"))
    forecasts, metrics = result["forecasts"], result["metrics"]
    assert np.isfinite(forecasts["lstm"]).all()
    assert result["scaler"]["target_mean"] == pytest.approx(
        result["table"].loc[result["table"]["split"] == "train", "close"].mean(), rel=0.01
    )
    assert metrics["lstm"]["mase"] > 0 and metrics["evaluation"]["target"] == "price"


def test_direction_target_uses_a_sigmoid_and_binary_cross_entropy():
    result = train_and_evaluate(synthetic_features(), tiny(target="direction"))
    model, metrics = result["model"], result["metrics"]
    assert model.get_layer("prediction").activation.__name__ == "sigmoid"
    assert model.loss == "binary_crossentropy"
    probability = result["forecasts"]["lstm_up_probability"]
    assert ((probability > 0) & (probability < 1)).all()
    assert metrics["lstm"]["mase"] is None and metrics["lstm"]["log_loss"] > 0
    assert metrics["lstm"]["directional_accuracy_ci95"][0] > 0.5  # the signal is learnable
    assert metrics["evaluation"]["lstm_beats_persistence"] is True
    assert metrics["persistence"]["mase"] is not None  # baselines still forecast prices


def test_walk_forward_folds_tile_the_end_and_the_last_fold_is_the_main_split():
    params = tiny(walk_forward={"folds": 2, "epochs": 1})
    features = synthetic_features(700)
    report = nodes.walk_forward_report(features, params)
    assert report["folds"] == 2 and len(report["results"]) == 2
    first, last = report["results"]
    assert first["test"]["last"] < last["test"]["first"]
    assert first["train_rows"] < last["train_rows"]
    table = nodes.split_by_time(features, params)
    test_rows = table[table["split"] == "test"]
    assert last["test"]["first"] == test_rows["timestamp"].iloc[0].isoformat()
    assert set(report["mean_mase"]) == {"lstm", *BASELINES}
    assert nodes.walk_forward_report(features, tiny())["folds"] == 0


def test_manifest_records_what_is_needed_to_reuse_and_trust_the_model(trained):
    manifest = nodes.build_manifest(
        trained["table"],
        trained["scaler"],
        trained["metrics"],
        trained["history"],
        {"settings": {"rsi_window": 14}},
        tiny(),
        {"frequency": "60min"},
        {"run_id": "2024-05-01T10.00.00.000Z", "git_commit": "abc123"},
    )
    assert manifest["version"] == "2024-05-01T10.00.00.000Z"
    assert manifest["git_commit"] == "abc123"
    assert manifest["features"] == ["signal", "log_return"]
    assert (manifest["lookback"], manifest["horizon"], manifest["target"]) == (4, 1, "log_return")
    assert manifest["seed"] == 7 and manifest["frequency"] == "60min"
    assert manifest["feature_settings"] == {"rsi_window": 14}
    assert manifest["training"]["history"]["loss"] == trained["history"]["loss"]
    assert manifest["purge_gap_bars"] == 5
    assert manifest["data_range"]["rows"] == 900
    assert set(manifest["splits"]) == {"train", "validation", "test"}
    assert manifest["splits"]["train"]["last"] < manifest["splits"]["validation"]["first"]
    assert manifest["metrics"]["lstm"]["mase"] == trained["metrics"]["lstm"]["mase"]
    assert manifest["model"]["lstm_units"] == [8] and manifest["model"]["n_features"] == 2
    assert {"tensorflow", "keras", "numpy", "pandas", "python"} <= set(manifest["libraries"])
    assert manifest["trained_by"] == "modelling" and manifest["warm_start_from"] is None
    assert json.loads(json.dumps(manifest)) == manifest
