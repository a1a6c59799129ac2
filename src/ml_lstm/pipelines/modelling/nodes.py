"""Modelling nodes: split by time, scale on training data, train, evaluate, describe.

The forecasting itself (splits, scaling, windows, baselines, metrics, Keras training) lives
in `ml_lstm.forecasting`; these nodes read the `modelling` parameters and call it.
Promotion is in `promotion.py`, the charts in `charts.py`.

TensorFlow is imported inside the functions that need it, so that pipelines which never
train (ingestion, data processing) do not pay for it.
"""

from __future__ import annotations

import logging
import platform
from typing import Any

import numpy as np
import pandas as pd

from ml_lstm.forecasting.baselines import BASELINES
from ml_lstm.forecasting.evaluation import evaluate, log_verdict
from ml_lstm.forecasting.forecast import forecast_rows
from ml_lstm.forecasting.model_config import model_config
from ml_lstm.forecasting.scaling import fit_standard_scaler
from ml_lstm.forecasting.splits import (
    SPLITS,
    label_splits,
    purge_gap,
    split_labels,
    split_sizes,
    walk_forward_bounds,
)
from ml_lstm.forecasting.targets import check_target

logger = logging.getLogger(__name__)


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
    check_target(modelling["target"])


def _gap(modelling: dict) -> int:
    return purge_gap(modelling["lookback"], modelling["horizon"])


def _labelled(features: pd.DataFrame, labels: np.ndarray, modelling: dict) -> pd.DataFrame:
    return label_splits(features, labels, modelling["lookback"] + modelling["horizon"] + 1)


def split_by_time(features: pd.DataFrame, modelling: dict) -> pd.DataFrame:
    """The feature table with a `split` column: train, validation, test, in time order.

    The `lookback + horizon` rows before each boundary are marked `purged`.
    """
    check_features(features, modelling)
    n = len(features)
    train, validation, _ = split_sizes(n, modelling["split"])
    labels = split_labels(n, train, train + validation, n, _gap(modelling))
    return _labelled(features, labels, modelling)


def select_recent_window(features: pd.DataFrame, modelling: dict) -> pd.DataFrame:
    """The last `modelling.retraining.window_bars` rows of the feature table."""
    window = modelling["retraining"]["window_bars"]
    return features.iloc[-window:].reset_index(drop=True)


def fit_scaler(model_input_table: pd.DataFrame, modelling: dict) -> dict[str, Any]:
    """Mean and standard deviation of each feature and of the target, on training rows only.

    The direction target (0/1) is not scaled. A feature constant in training gets std 1.
    """
    check_features(model_input_table, modelling)
    return fit_standard_scaler(
        model_input_table, modelling["features"], modelling["target"], modelling["horizon"]
    )


def _train(
    table: pd.DataFrame, scaler: dict, config: dict, training: dict, modelling: dict, **kwargs
) -> tuple[Any, dict]:
    from ml_lstm.forecasting.training import train_model

    lookback, horizon = modelling["lookback"], modelling["horizon"]
    return train_model(
        table, scaler, config, training, lookback, horizon, modelling["seed"], **kwargs
    )


def train_lstm(
    model_input_table: pd.DataFrame, scaler: dict, modelling: dict
) -> tuple[Any, dict[str, Any]]:
    """A seeded LSTM trained on training windows, early-stopped on validation windows.

    A stateful model is returned as a stateless copy of its weights (any batch size).
    """
    config = model_config(modelling, len(scaler["features"]))
    model, history = _train(model_input_table, scaler, config, modelling["training"], modelling)
    return model, {**history, "model": config}


def check_warm_start(
    champion: dict | None, model_input_table: pd.DataFrame, modelling: dict
) -> None:
    """Refuses a warm start without a champion, from one with other inputs or labels, or
    from one that was trained or validated on rows this run tests on."""
    if champion is None:
        raise ValueError(
            "Retraining warm-starts from the champion, and there is none: run "
            "`kedro run --pipelines modelling` first."
        )
    manifest = champion["manifest"]
    for key, ours in (
        ("features", list(modelling["features"])),
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


def retrain_lstm(
    champion: dict | None, model_input_table: pd.DataFrame, scaler: dict, modelling: dict
) -> tuple[Any, dict[str, Any]]:
    """The champion's weights fine-tuned on a recent window (warm start), seeded."""
    check_warm_start(champion, model_input_table, modelling)
    manifest, settings = champion["manifest"], modelling["retraining"]
    config = {
        **manifest["model"],
        "stateful": modelling["model"].get("stateful", False),
        "batch_size": modelling["training"]["batch_size"],
        "learning_rate": settings["learning_rate"],
    }
    training = {**modelling["training"], "epochs": settings["epochs"]}
    weights = champion["model"].get_weights()
    model, history = _train(
        model_input_table, scaler, config, training, modelling, initial_weights=weights
    )
    return model, {**history, "model": config, "warm_start_from": manifest["version"]}


def forecast_test_split(
    lstm_model: Any, model_input_table: pd.DataFrame, scaler: dict, modelling: dict
) -> pd.DataFrame:
    """Per test row: last and actual close, and the close forecast by the LSTM and each baseline.

    For the direction target, `lstm_up_probability` and `linear_up_probability` hold P(up).
    """
    return forecast_rows(
        lstm_model,
        model_input_table,
        scaler,
        lookback=modelling["lookback"],
        horizon=modelling["horizon"],
        sma_window=modelling["baselines"]["sma_window"],
    )


def _train_close(table: pd.DataFrame) -> np.ndarray:
    return table.loc[table["split"] == "train", "close"].to_numpy(dtype="float64")


def evaluate_forecasts(
    test_forecasts: pd.DataFrame, model_input_table: pd.DataFrame, modelling: dict
) -> dict[str, dict[str, Any]]:
    """Test-split metrics of the LSTM and every baseline on the same rows, and the verdict."""
    metrics = evaluate(
        test_forecasts, _train_close(model_input_table), modelling["target"], modelling["horizon"]
    )
    log_verdict(metrics)
    return metrics


def build_manifest(
    model_input_table: pd.DataFrame,
    scaler: dict,
    metrics: dict,
    training_history: dict,
    feature_list: dict,
    modelling: dict,
    data_processing: dict,
    run_info: dict,
) -> dict[str, Any]:
    """What a saved model needs to be used and trusted later: its inputs (and how they were
    computed: data_processing's feature settings, from `feature_list`), data and scores."""
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
        "feature_settings": feature_list["settings"],
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
        "purge_gap_bars": _gap(modelling),
        "splits": bounds,
        "model": training_history["model"],
        "training": {
            **{
                key: training_history[key]
                for key in ("epochs_run", "best_epoch", "stopped_early", "train_samples")
            },
            # The loss curves travel with the model: inference charts the served version's.
            "history": {
                key: training_history[key] for key in ("loss", "val_loss", "learning_rate")
            },
        },
        "metrics": metrics,
        "libraries": library_versions(),
    }


def library_versions() -> dict[str, str]:
    """The versions a saved model was made with."""
    import keras
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
    }


def _fold_result(fold: int, labels: np.ndarray, metrics: dict) -> dict[str, Any]:
    names = ["lstm", *BASELINES]
    return {
        "fold": fold,
        "train_rows": int((labels == "train").sum()),
        "test": {key: metrics["evaluation"][key] for key in ("first", "last", "rows")},
        "mase": {name: metrics[name]["mase"] for name in names},
        "directional_accuracy": {name: metrics[name]["directional_accuracy"] for name in names},
        "lstm_beats_persistence": metrics["evaluation"]["lstm_beats_persistence"],
    }


def _mean_mase(rows: list[dict]) -> dict[str, float | None]:
    return {
        name: (
            float(np.mean([row["mase"][name] for row in rows]))
            if all(row["mase"][name] is not None for row in rows)
            else None
        )
        for name in ["lstm", *BASELINES]
    }


def walk_forward_report(features: pd.DataFrame, modelling: dict) -> dict[str, Any]:
    """Rolling-origin evaluation: N folds whose test blocks tile the end of the table.

    Each fold keeps the main split's validation and test sizes and trains on everything
    before them (expanding window); the last fold is the main split. Each fold refits the
    scaler and retrains from the same seed. `modelling.walk_forward.folds: 0` turns it off.
    """
    settings = modelling["walk_forward"]
    folds = int(settings.get("folds", 0))
    if folds <= 0:
        return {"folds": 0, "note": "off; enable with --params modelling.walk_forward.folds=4"}
    check_features(features, modelling)
    n, gap = len(features), _gap(modelling)
    training = {**modelling["training"], "epochs": settings.get("epochs", 10)}
    rows = []
    for fold, (train_end, validation_end, test_end) in enumerate(
        walk_forward_bounds(n, modelling["split"], folds), start=1
    ):
        if train_end - gap < modelling["lookback"] + modelling["horizon"] + 1:
            raise ValueError(
                f"Walk-forward fold {fold} of {folds} leaves {train_end - gap} training "
                "rows: use fewer folds or a longer feature table."
            )
        labels = split_labels(n, train_end, validation_end, test_end, gap)
        table = _labelled(features, labels, modelling)
        scaler = fit_scaler(table, modelling)
        config = model_config(modelling, len(scaler["features"]))
        model, _ = _train(table, scaler, config, training, modelling)
        forecasts = forecast_test_split(model, table, scaler, modelling)
        metrics = evaluate_forecasts(forecasts, table, modelling)
        rows.append(_fold_result(fold, labels, metrics))
    wins = sum(row["lstm_beats_persistence"] for row in rows)
    logger.info("Walk-forward: the LSTM beats persistence in %d of %d folds.", wins, folds)
    return {
        "folds": folds,
        "epochs_per_fold": training["epochs"],
        "results": rows,
        "mean_mase": _mean_mase(rows),
        "lstm_beats_persistence_folds": wins,
    }
