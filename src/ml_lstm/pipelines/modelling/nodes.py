"""Modelling nodes: split by time, scale on training data, train, evaluate, register, promote.

TensorFlow is imported inside the functions that need it, so that pipelines which never
train (ingestion, data processing) do not pay for it.
"""

from __future__ import annotations

import logging
import platform
from typing import Any

import numpy as np
import pandas as pd

from .baselines import (
    drift_forecast,
    fit_linear,
    mean_log_return,
    persistence_forecast,
    predict_linear,
    sma_forecast,
)
from .evaluation import (
    diebold_mariano,
    lstm_beats_persistence,
    naive_scale,
    price_metrics,
    probability_metrics,
    promotion_score,
)
from .windows import TARGETS, split_windows, target_values, window_ends

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
PROMOTION_MODES = ("auto", "force", "skip")
BASELINES = ("persistence", "drift", "sma", "linear")


def purge_gap(modelling: dict) -> int:
    """Bars dropped before each split boundary: lookback + horizon.

    With this gap no training label (close[t+h]) is a price any validation or test window
    sees, and likewise between validation and test.
    """
    return modelling["lookback"] + modelling["horizon"]


def split_labels(
    n_rows: int, train_end: int, validation_end: int, test_end: int, gap: int
) -> np.ndarray:
    """`train`, `purged`, `validation`, `purged`, `test`, then `unused` after `test_end`."""
    labels = np.full(n_rows, "unused", dtype=object)
    labels[:train_end] = "train"
    labels[train_end:validation_end] = "validation"
    labels[validation_end:test_end] = "test"
    for boundary in (train_end, validation_end):
        labels[max(0, boundary - gap) : boundary] = "purged"
    return labels


def check_features(features: pd.DataFrame, modelling: dict) -> None:
    """Raises a clear error when the table lacks, or has gaps in, the configured features."""
    wanted = list(modelling["features"])
    missing = [name for name in [*wanted, "timestamp", "close"] if name not in features.columns]
    if missing:
        raise ValueError(
            f"modelling.features names columns absent from the feature table: {missing}. "
            f"Available columns: {list(features.columns)}."
        )
    empty = features[wanted].isna()
    if empty.any().any():
        column = empty.any().idxmax()
        row = int(empty[column].to_numpy().argmax())
        raise ValueError(
            f"Feature {column!r} is missing (NaN) at row {row} "
            f"({features['timestamp'].iloc[row]}): the feature table must be complete."
        )
    if modelling["target"] not in TARGETS:
        raise ValueError(
            f"Unknown modelling.target {modelling['target']!r}: expected one of {list(TARGETS)}."
        )


def _with_splits(features: pd.DataFrame, labels: np.ndarray, modelling: dict) -> pd.DataFrame:
    table = features.copy()
    table["timestamp"] = pd.to_datetime(table["timestamp"], utc=True, format="ISO8601")
    if not table["timestamp"].is_monotonic_increasing:
        raise ValueError("The feature table's timestamps must be strictly increasing.")
    table["split"] = labels
    minimum = modelling["lookback"] + modelling["horizon"] + 1
    for name in SPLITS:
        count = int((labels == name).sum())
        if count < minimum:
            raise ValueError(
                f"The {name} split has {count} rows, fewer than lookback + horizon + 1 = "
                f"{minimum}: use a longer feature table or change modelling.split."
            )
    return table


def split_by_time(features: pd.DataFrame, modelling: dict) -> pd.DataFrame:
    """The feature table with a `split` column: train, validation, test, in time order.

    The `lookback + horizon` rows before each boundary are marked `purged` (see purge_gap).
    """
    check_features(features, modelling)
    fractions = modelling["split"]
    total = sum(fractions[name] for name in SPLITS)
    if not np.isclose(total, 1.0):
        raise ValueError(f"modelling.split fractions must sum to 1, got {total}.")
    n = len(features)
    train_end = int(n * fractions["train"])
    validation_end = train_end + int(n * fractions["validation"])
    labels = split_labels(n, train_end, validation_end, n, purge_gap(modelling))
    return _with_splits(features, labels, modelling)


def select_recent_window(features: pd.DataFrame, modelling: dict) -> pd.DataFrame:
    """The last `modelling.retraining.window_bars` rows of the feature table."""
    window = modelling["retraining"]["window_bars"]
    return features.iloc[-window:].reset_index(drop=True)


def fit_scaler(model_input_table: pd.DataFrame, modelling: dict) -> dict[str, Any]:
    """Mean and standard deviation of each feature and of the target, on training rows only.

    The direction target (0/1) is not scaled. A feature constant in training gets std 1.
    """
    check_features(model_input_table, modelling)
    is_train = (model_input_table["split"] == "train").to_numpy()
    train = model_input_table[is_train]
    columns = list(modelling["features"])
    values = train[columns].to_numpy(dtype="float64")
    target = modelling["target"]
    if target == "direction":
        target_mean, target_std = 0.0, 1.0
    else:
        labels = target_values(model_input_table, target, modelling["horizon"])[is_train]
        target_mean, target_std = float(labels.mean()), float(labels.std() or 1.0)
    std = values.std(axis=0)
    return {
        "features": columns,
        "mean": values.mean(axis=0).tolist(),
        "std": np.where(std > 0, std, 1.0).tolist(),
        "target": target,
        "target_mean": target_mean,
        "target_std": target_std,
        "fitted_on": {
            "split": "train",
            "rows": len(train),
            "first": train["timestamp"].iloc[0].isoformat(),
            "last": train["timestamp"].iloc[-1].isoformat(),
        },
    }


def scale_features(table: pd.DataFrame, scaler: dict) -> np.ndarray:
    """The scaler's features of `table`, standardised with the stored statistics."""
    values = table[scaler["features"]].to_numpy(dtype="float32")
    mean = np.asarray(scaler["mean"], dtype="float32")
    std = np.asarray(scaler["std"], dtype="float32")
    return (values - mean) / std


def scaled_labels(table: pd.DataFrame, scaler: dict, horizon: int) -> np.ndarray:
    """Each row's label in the units the network is trained on."""
    labels = target_values(table, scaler["target"], horizon)
    return ((labels - scaler["target_mean"]) / scaler["target_std"]).astype("float32")


def model_config(modelling: dict, n_features: int) -> dict[str, Any]:
    """The `build_model` configuration: `modelling.model` plus the data's shape and target."""
    return {
        **modelling["model"],
        "lookback": modelling["lookback"],
        "n_features": n_features,
        "output": "sigmoid" if modelling["target"] == "direction" else "linear",
        "batch_size": modelling["training"]["batch_size"],
    }


def _fit(model: Any, table: pd.DataFrame, scaler: dict, modelling: dict, training: dict) -> dict:
    from .training import fit_model

    lookback, horizon = modelling["lookback"], modelling["horizon"]
    scaled = scale_features(table, scaler)
    labels = scaled_labels(table, scaler, horizon)
    x_train, y_train, _ = split_windows(table, scaled, labels, "train", lookback)
    x_val, y_val, _ = split_windows(table, scaled, labels, "validation", lookback)
    stateful = bool(modelling["model"].get("stateful", False))
    return fit_model(model, (x_train, y_train), (x_val, y_val), training, stateful=stateful)


def _finish(model: Any, config: dict, history: dict) -> Any:
    from .lstm_factory import stateless_copy

    logger.info(
        "Trained %d epochs on %d windows; best val_loss %.5f at epoch %d",
        history["epochs_run"],
        history["train_samples"],
        min(history["val_loss"]),
        history["best_epoch"],
    )
    return stateless_copy(model, config) if config.get("stateful") else model


def train_lstm(
    model_input_table: pd.DataFrame, scaler: dict, modelling: dict
) -> tuple[Any, dict[str, Any]]:
    """A seeded LSTM trained on training windows, early-stopped on validation windows.

    A stateful model is returned as a stateless copy of its weights (any batch size).
    """
    from .lstm_factory import build_model
    from .training import make_reproducible

    make_reproducible(modelling["seed"])
    config = model_config(modelling, len(scaler["features"]))
    model = build_model(config)
    history = _fit(model, model_input_table, scaler, modelling, modelling["training"])
    return _finish(model, config, history), {**history, "model": config}


def retrain_lstm(
    champion: dict | None, model_input_table: pd.DataFrame, scaler: dict, modelling: dict
) -> tuple[Any, dict[str, Any]]:
    """The champion's weights fine-tuned on a recent window (warm start), seeded.

    Refuses when there is no champion, when the champion used other inputs or labels, or
    when the champion was trained or validated on rows this run tests on.
    """
    from .lstm_factory import build_model
    from .training import make_reproducible

    if champion is None:
        raise ValueError(
            "Retraining warm-starts from the champion, and there is none: run "
            "`kedro run --pipelines modelling` first."
        )
    manifest = champion["manifest"]
    for key, ours in (
        ("features", list(scaler["features"])),
        ("lookback", modelling["lookback"]),
        ("horizon", modelling["horizon"]),
        ("target", modelling["target"]),
    ):
        if manifest[key] != ours:
            raise ValueError(
                f"Champion {manifest['version']} has {key}={manifest[key]!r} but "
                f"modelling.{key} is {ours!r}: warm start needs the same inputs and labels."
            )
    test_first = model_input_table.loc[model_input_table["split"] == "test", "timestamp"].iloc[0]
    seen_until = pd.Timestamp(manifest["splits"]["validation"]["last"])
    if test_first <= seen_until:
        raise ValueError(
            f"Champion {manifest['version']} was trained and validated on data up to "
            f"{seen_until}, after this run's first test bar {test_first}: its weights have "
            "seen the test rows. Retrain once newer data has been ingested, or shorten "
            "modelling.retraining.window_bars."
        )
    make_reproducible(modelling["seed"])
    settings = modelling["retraining"]
    config = {
        **manifest["model"],
        "stateful": modelling["model"].get("stateful", False),
        "batch_size": modelling["training"]["batch_size"],
        "learning_rate": settings["learning_rate"],
    }
    model = build_model(config)
    model.set_weights(champion["model"].get_weights())
    training = {**modelling["training"], "epochs": settings["epochs"]}
    history = _fit(model, model_input_table, scaler, modelling, training)
    history = {**history, "model": config, "warm_start_from": manifest["version"]}
    return _finish(model, config, history), history


def plot_training_history(training_history: dict) -> Any:
    """Training and validation loss per epoch, and the learning rate, as a figure."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 6), layout="constrained")
    losses, rates = figure.subplots(2, 1, sharex=True)
    epochs = np.arange(1, training_history["epochs_run"] + 1)
    losses.plot(epochs, training_history["loss"], label="training loss")
    losses.plot(epochs, training_history["val_loss"], label="validation loss")
    losses.axvline(training_history["best_epoch"], color="grey", linestyle="--", label="best")
    losses.set_ylabel("loss (scaled target)")
    losses.legend()
    rates.plot(epochs, training_history["learning_rate"], color="black")
    rates.set_yscale("log")
    rates.set_ylabel("learning rate")
    rates.set_xlabel("epoch")
    return figure


def predict_target(
    model: Any, table: pd.DataFrame, scaler: dict, lookback: int, horizon: int, split: str
) -> tuple[np.ndarray, np.ndarray]:
    """The model's forecasts in target units (log return, price or P(up)) and their rows."""
    scaled = scale_features(table, scaler)
    labels = target_values(table, scaler["target"], horizon)
    windows, _, rows = split_windows(table, scaled, labels, split, lookback)
    raw = np.asarray(model.predict(windows, verbose=0, batch_size=1024), dtype="float64")
    return raw.reshape(-1) * scaler["target_std"] + scaler["target_mean"], rows


def to_price(values: np.ndarray, target: str, last_close: np.ndarray) -> np.ndarray:
    """Target-unit forecasts as closes (NaN for the direction target, which has no price)."""
    if target == "log_return":
        return last_close * np.exp(values)
    if target == "price":
        return values
    return np.full_like(last_close, np.nan)


def forecast_test_split(
    lstm_model: Any, model_input_table: pd.DataFrame, scaler: dict, modelling: dict
) -> pd.DataFrame:
    """Per test row: last and actual close, and the close forecast by the LSTM and each baseline.

    For the direction target, `lstm_up_probability` and `linear_up_probability` hold P(up).
    """
    table, target = model_input_table, modelling["target"]
    lookback, horizon = modelling["lookback"], modelling["horizon"]
    lstm_values, rows = predict_target(lstm_model, table, scaler, lookback, horizon, "test")
    close = table["close"].to_numpy(dtype="float64")
    last_close = close[rows]
    is_train = (table["split"] == "train").to_numpy()
    forecasts = pd.DataFrame(
        {
            "timestamp": table["timestamp"].to_numpy()[rows],
            "last_close": last_close,
            "actual_close": close[rows + horizon],
            "lstm": to_price(lstm_values, target, last_close),
            "persistence": persistence_forecast(close, rows),
            "drift": drift_forecast(close, rows, horizon, mean_log_return(close[is_train])),
            "sma": sma_forecast(close, rows, modelling["baselines"]["sma_window"]),
        }
    )
    scaled = scale_features(table, scaler)
    labels = scaled_labels(table, scaler, horizon)
    train_rows = window_ends(table, labels, "train", lookback)
    coefficients = fit_linear(scaled[train_rows], labels[train_rows])
    linear = predict_linear(coefficients, scaled[rows]) * scaler["target_std"]
    linear = linear + scaler["target_mean"]
    forecasts["linear"] = to_price(linear, target, last_close)
    if target == "direction":
        forecasts["lstm_up_probability"] = lstm_values
        forecasts["linear_up_probability"] = np.clip(linear, 0.0, 1.0)
    return forecasts


def score_forecasts(forecasts: pd.DataFrame, scale: float) -> dict[str, dict[str, Any]]:
    """Metrics of every model column of `forecasts` (see evaluation.py for definitions)."""
    actual, last = forecasts["actual_close"], forecasts["last_close"]
    persistence_mae = float(np.abs(actual - forecasts["persistence"]).mean())
    scores = {}
    for name in ("lstm", *BASELINES):
        probability = f"{name}_up_probability"
        if probability in forecasts:
            scores[name] = probability_metrics(actual, forecasts[probability], last)
        else:
            scores[name] = price_metrics(actual, forecasts[name], last, scale, persistence_mae)
    return scores


def evaluate_forecasts(
    test_forecasts: pd.DataFrame, model_input_table: pd.DataFrame, modelling: dict
) -> dict[str, dict[str, Any]]:
    """Test-split metrics of the LSTM and every baseline on the same rows, and the verdict."""
    horizon = modelling["horizon"]
    train_close = model_input_table.loc[model_input_table["split"] == "train", "close"]
    scale = naive_scale(train_close.to_numpy(dtype="float64"), horizon)
    metrics: dict[str, dict[str, Any]] = score_forecasts(test_forecasts, scale)
    beats = lstm_beats_persistence(metrics)
    timestamps = pd.to_datetime(test_forecasts["timestamp"], utc=True)
    metrics["evaluation"] = {
        "split": "test",
        "rows": len(test_forecasts),
        "first": timestamps.iloc[0].isoformat(),
        "last": timestamps.iloc[-1].isoformat(),
        "target": modelling["target"],
        "horizon": horizon,
        "mase_scale": scale,
        "lstm_beats_persistence": beats,
    }
    if metrics["lstm"]["mase"] is not None:
        metrics["evaluation"]["diebold_mariano_vs_persistence"] = diebold_mariano(
            test_forecasts["actual_close"],
            test_forecasts["lstm"],
            test_forecasts["persistence"],
            horizon,
        )
    for name in ("lstm", *BASELINES):
        row = metrics[name]
        logger.info(
            "test %-11s MAE %s  RMSE %s  MAPE %s  MASE %s  direction %s",
            name,
            *(_fmt(row[key]) for key in ("mae", "rmse", "mape", "mase")),
            _fmt_direction(row),
        )
    lstm, persistence = metrics["lstm"], metrics["persistence"]
    if lstm["mase"] is not None:
        test = metrics["evaluation"]["diebold_mariano_vs_persistence"]
        significance = "significant" if test["p_value"] < 0.05 else "NOT significant"
        logger.info(
            "Verdict on %d test rows: the LSTM %s persistence (MASE %.4f vs %.4f; "
            "Diebold-Mariano p = %.3g, %s at 5%%).",
            len(test_forecasts),
            "BEATS" if beats else "does NOT beat",
            lstm["mase"],
            persistence["mase"],
            test["p_value"],
            significance,
        )
    else:
        logger.info(
            "Verdict on %d test rows: the direction LSTM %s (accuracy %s; skill needs the "
            "95%% interval above 0.5).",
            len(test_forecasts),
            "has directional skill" if beats else "shows NO directional skill",
            _fmt_direction(lstm),
        )
    return metrics


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _fmt_direction(row: dict) -> str:
    interval = row["directional_accuracy_ci95"]
    if row["directional_accuracy"] is None:
        return "-"
    return f"{row['directional_accuracy']:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"


def plot_model_comparison(metrics: dict) -> Any:
    """MASE and directional accuracy (95% interval) of the LSTM and each baseline."""
    from matplotlib.figure import Figure

    names = ["lstm", *BASELINES]
    figure = Figure(figsize=(9, 4), layout="constrained")
    errors, directions = figure.subplots(1, 2)
    mase = [metrics[name]["mase"] if metrics[name]["mase"] is not None else 0 for name in names]
    colours = ["tab:red" if name == "lstm" else "tab:grey" for name in names]
    errors.bar(names, mase, color=colours)
    errors.axhline(metrics["persistence"]["mase"], color="black", linestyle="--", linewidth=1)
    errors.set_title("test MASE (lower is better)")
    accuracy = np.array([metrics[name]["directional_accuracy"] or 0.0 for name in names])
    intervals = np.array(
        [metrics[name]["directional_accuracy_ci95"] or [0.0, 0.0] for name in names]
    )
    spans = np.abs(np.vstack([accuracy - intervals[:, 0], intervals[:, 1] - accuracy]))
    directions.bar(names, accuracy, yerr=spans, capsize=4, color=colours)
    directions.axhline(0.5, color="black", linestyle="--", linewidth=1)
    directions.set_ylim(0, 1)
    directions.set_title("directional accuracy, 95% interval")
    evaluation = metrics["evaluation"]
    figure.suptitle(f"{evaluation['rows']} test rows, target {evaluation['target']}")
    return figure


def build_manifest(
    model_input_table: pd.DataFrame,
    scaler: dict,
    metrics: dict,
    training_history: dict,
    modelling: dict,
    data_processing: dict,
    run_info: dict,
) -> dict[str, Any]:
    """What a saved model needs to be used and trusted later: its inputs, data and scores."""
    import keras
    import tensorflow as tf

    timestamps = model_input_table["timestamp"]
    bounds = {
        name: {
            "first": rows["timestamp"].iloc[0].isoformat(),
            "last": rows["timestamp"].iloc[-1].isoformat(),
            "rows": len(rows),
        }
        for name, rows in model_input_table.groupby("split", sort=False)
        if name in SPLITS
    }
    return {
        "version": run_info["run_id"],
        "trained_by": "retraining" if "warm_start_from" in training_history else "modelling",
        "warm_start_from": training_history.get("warm_start_from"),
        "features": scaler["features"],
        "lookback": modelling["lookback"],
        "horizon": modelling["horizon"],
        "target": modelling["target"],
        "frequency": data_processing["frequency"],
        "seed": modelling["seed"],
        "git_commit": run_info.get("git_commit"),
        "data_range": {
            "first": timestamps.iloc[0].isoformat(),
            "last": timestamps.iloc[-1].isoformat(),
            "rows": len(model_input_table),
        },
        "purge_gap_bars": purge_gap(modelling),
        "splits": bounds,
        "model": training_history["model"],
        "training": {
            key: training_history[key]
            for key in ("epochs_run", "best_epoch", "stopped_early", "train_samples")
        },
        "metrics": metrics,
        "libraries": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
            "pandas": pd.__version__,
        },
    }


def score_champion(
    champion: dict, model_input_table: pd.DataFrame, test_forecasts: pd.DataFrame, modelling: dict
) -> tuple[str, float] | str:
    """The champion's promotion score on the challenger's test rows, or why it has none."""
    manifest, scaler = champion["manifest"], champion["scaler"]
    if manifest["horizon"] != modelling["horizon"]:
        return f"champion forecasts {manifest['horizon']} bars ahead, not {modelling['horizon']}"
    missing = [name for name in scaler["features"] if name not in model_input_table.columns]
    if missing:
        return f"the feature table lacks the champion's features {missing}"
    values, rows = predict_target(
        champion["model"],
        model_input_table,
        scaler,
        manifest["lookback"],
        manifest["horizon"],
        "test",
    )
    if len(rows) != len(test_forecasts):
        return "the champion's windows do not cover the same test rows"
    forecasts = test_forecasts[["timestamp", "last_close", "actual_close", *BASELINES]].copy()
    forecasts["lstm"] = to_price(values, scaler["target"], forecasts["last_close"].to_numpy())
    if scaler["target"] == "direction":
        forecasts["lstm_up_probability"] = values
    train_close = model_input_table.loc[model_input_table["split"] == "train", "close"]
    scale = naive_scale(train_close.to_numpy(dtype="float64"), modelling["horizon"])
    metric, score = promotion_score({"lstm": score_forecasts(forecasts, scale)["lstm"]})
    return metric, float(score)


def decide_promotion(
    champion: dict | None,
    test_forecasts: pd.DataFrame,
    model_input_table: pd.DataFrame,
    metrics: dict,
    modelling: dict,
    run_info: dict,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Promotes this run's model if it beats the champion on the same test rows.

    `modelling.promotion`: auto (the rule), force (always promote), skip (never). Returns
    the decision (a report) and the champion record after it ({}: still no champion).
    """
    mode = modelling.get("promotion", "auto")
    if mode not in PROMOTION_MODES:
        raise ValueError(f"modelling.promotion is {mode!r}; expected one of {PROMOTION_MODES}.")
    metric, score = promotion_score(metrics)
    current = champion["record"] if champion else None
    decision: dict[str, Any] = {
        "challenger": run_info["run_id"],
        "champion_before": current["version"] if current else None,
        "mode": mode,
        "metric": metric,
        "challenger_score": score,
        "champion_score": None,
        "test_rows": {key: metrics["evaluation"][key] for key in ("first", "last", "rows")},
    }
    if mode == "skip":
        promoted, reason = False, "promotion skipped by modelling.promotion=skip"
    elif mode == "force":
        promoted, reason = True, "promotion forced by modelling.promotion=force"
    elif champion is None:
        promoted, reason = True, "no champion yet"
    else:
        scored = score_champion(champion, model_input_table, test_forecasts, modelling)
        if isinstance(scored, str):
            promoted, reason = False, f"not comparable: {scored} (use promotion=force)"
        elif scored[0] != metric:
            promoted = False
            reason = f"not comparable: champion scored by {scored[0]}, challenger by {metric}"
        else:
            decision["champion_score"] = scored[1]
            promoted = score < scored[1]
            reason = f"{metric} {score:.5f} {'<' if promoted else '>='} champion's {scored[1]:.5f}"
        seen_until = champion["manifest"]["splits"]["validation"]["last"]
        if pd.Timestamp(seen_until) >= pd.Timestamp(decision["test_rows"]["first"]):
            decision["champion_saw_test_rows"] = True
            logger.warning(
                "Champion %s was fitted on data up to %s, inside this test period: the "
                "comparison favours it.",
                current["version"],
                seen_until,
            )
    decision.update(promoted=promoted, reason=reason)
    record = current
    if promoted:
        record = {
            "version": run_info["run_id"],
            "metric": metric,
            "score": score,
            "test_rows": decision["test_rows"],
            "reason": reason,
            "previous": current["version"] if current else None,
        }
    decision["champion_after"] = record["version"] if record else None
    record = record or {}
    logger.info(
        "Promotion (%s): %s %s; champion is now %s.",
        mode,
        run_info["run_id"],
        "PROMOTED" if promoted else "not promoted",
        decision["champion_after"],
    )
    logger.info("Promotion reason: %s", reason)
    return decision, record


def walk_forward_report(features: pd.DataFrame, modelling: dict) -> dict[str, Any]:
    """Rolling-origin evaluation: N folds whose test blocks tile the end of the table.

    Fold k keeps the main split's validation and test sizes, ends its test block
    (N-1-k) test blocks before the end, and trains on everything before (expanding
    window); the last fold is the main split. Each fold refits the scaler and retrains
    from the same seed. `modelling.walk_forward.folds: 0` turns it off.
    """
    settings = modelling["walk_forward"]
    folds = int(settings.get("folds", 0))
    if folds <= 0:
        return {"folds": 0, "note": "off; enable with --params modelling.walk_forward.folds=4"}
    check_features(features, modelling)
    n = len(features)
    fractions = modelling["split"]
    train_size = int(n * fractions["train"])
    validation_size = int(n * fractions["validation"])
    test_size = n - train_size - validation_size
    gap = purge_gap(modelling)
    training = {**modelling["training"], "epochs": settings.get("epochs", 10)}
    rows, names = [], ["lstm", *BASELINES]
    for fold in range(folds):
        test_end = n - (folds - 1 - fold) * test_size
        validation_end = test_end - test_size
        train_end = validation_end - validation_size
        if train_end - gap < modelling["lookback"] + modelling["horizon"] + 1:
            raise ValueError(
                f"Walk-forward fold {fold + 1} of {folds} leaves {train_end - gap} training "
                "rows: use fewer folds or a longer feature table."
            )
        labels = split_labels(n, train_end, validation_end, test_end, gap)
        table = _with_splits(features, labels, modelling)
        scaler = fit_scaler(table, modelling)
        from .lstm_factory import build_model
        from .training import make_reproducible

        make_reproducible(modelling["seed"])
        config = model_config(modelling, len(scaler["features"]))
        model = build_model(config)
        history = _fit(model, table, scaler, modelling, training)
        model = _finish(model, config, history)
        metrics = evaluate_forecasts(
            forecast_test_split(model, table, scaler, modelling), table, modelling
        )
        rows.append(
            {
                "fold": fold + 1,
                "train_rows": int((labels == "train").sum()),
                "test": {key: metrics["evaluation"][key] for key in ("first", "last", "rows")},
                "mase": {name: metrics[name]["mase"] for name in names},
                "directional_accuracy": {
                    name: metrics[name]["directional_accuracy"] for name in names
                },
                "lstm_beats_persistence": metrics["evaluation"]["lstm_beats_persistence"],
            }
        )
    wins = sum(row["lstm_beats_persistence"] for row in rows)
    logger.info("Walk-forward: the LSTM beats persistence in %d of %d folds.", wins, folds)
    return {
        "folds": folds,
        "epochs_per_fold": training["epochs"],
        "results": rows,
        "mean_mase": {
            name: (
                float(np.mean([row["mase"][name] for row in rows]))
                if all(row["mase"][name] is not None for row in rows)
                else None
            )
            for name in names
        },
        "lstm_beats_persistence_folds": wins,
    }
