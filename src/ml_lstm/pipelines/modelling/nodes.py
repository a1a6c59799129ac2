"""Modelling nodes: split by time, scale on training data, train the LSTM, evaluate it.

TensorFlow is imported inside the functions that need it, so that pipelines which never
train (ingestion, data processing) do not pay for it.
"""

from __future__ import annotations

import logging
import platform
from typing import Any

import numpy as np
import pandas as pd

from .windows import split_windows, target_values

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")


def split_by_time(features: pd.DataFrame, modelling: dict) -> pd.DataFrame:
    """The feature table with a `split` column: train, then validation, then test.

    Rows whose label would reach into the next split (the last `horizon` rows of a split)
    are marked `purged` so no training label is computed from validation or test prices.
    """
    fractions = modelling["split"]
    total = sum(fractions[name] for name in SPLITS)
    if not np.isclose(total, 1.0):
        raise ValueError(f"modelling.split fractions must sum to 1, got {total}.")
    n = len(features)
    train_end = int(n * fractions["train"])
    validation_end = train_end + int(n * fractions["validation"])
    labels = np.array(["test"] * n, dtype=object)
    labels[:train_end] = "train"
    labels[train_end:validation_end] = "validation"
    horizon = modelling["horizon"]
    for boundary in (train_end, validation_end):
        labels[max(0, boundary - horizon) : boundary] = "purged"
    table = features.copy()
    table["timestamp"] = pd.to_datetime(table["timestamp"], utc=True, format="ISO8601")
    table["split"] = labels
    minimum = modelling["lookback"] + horizon + 1
    for name in SPLITS:
        count = int((labels == name).sum())
        if count < minimum:
            raise ValueError(
                f"The {name} split has {count} rows, fewer than lookback + horizon + 1 = "
                f"{minimum}: ingest a longer window or change modelling.split."
            )
    return table


def fit_scaler(model_input_table: pd.DataFrame, modelling: dict) -> dict[str, Any]:
    """Mean and standard deviation of each feature and of the target, on training rows only."""
    train = model_input_table[model_input_table["split"] == "train"]
    columns = list(modelling["features"])
    missing = [name for name in columns if name not in train.columns]
    if missing:
        raise ValueError(f"modelling.features names columns absent from the features: {missing}")
    values = train[columns].to_numpy(dtype="float64")
    labels = target_values(model_input_table, modelling["target"], modelling["horizon"])
    train_labels = labels[(model_input_table["split"] == "train").to_numpy()]
    train_labels = train_labels[~np.isnan(train_labels)]
    std = values.std(axis=0)
    return {
        "features": columns,
        "mean": values.mean(axis=0).tolist(),
        "std": np.where(std > 0, std, 1.0).tolist(),
        "target": modelling["target"],
        "target_mean": float(train_labels.mean()),
        "target_std": float(train_labels.std() or 1.0),
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


def train_lstm(model_input_table: pd.DataFrame, scaler: dict, modelling: dict) -> Any:
    """A seeded LSTM trained on training windows, early-stopped on validation windows."""
    import keras

    from .lstm_factory import build_model

    keras.utils.set_random_seed(modelling["seed"])
    lookback, horizon = modelling["lookback"], modelling["horizon"]
    scaled = scale_features(model_input_table, scaler)
    labels = _scaled_labels(model_input_table, scaler, horizon)
    x_train, y_train, _ = split_windows(model_input_table, scaled, labels, "train", lookback)
    x_val, y_val, _ = split_windows(model_input_table, scaled, labels, "validation", lookback)
    model = build_model(modelling["model"], lookback, scaled.shape[1])
    training = modelling["training"]
    history = model.fit(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        epochs=training["epochs"],
        batch_size=training["batch_size"],
        shuffle=True,
        verbose=0,
        callbacks=[
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=training["patience"], restore_best_weights=True
            )
        ],
    )
    losses = history.history
    logger.info(
        "Trained %d epochs on %d windows: best val_loss %.5f",
        len(losses["loss"]),
        len(x_train),
        min(losses["val_loss"]),
    )
    return model


def _scaled_labels(table: pd.DataFrame, scaler: dict, horizon: int) -> np.ndarray:
    labels = target_values(table, scaler["target"], horizon)
    return ((labels - scaler["target_mean"]) / scaler["target_std"]).astype("float32")


def predict_prices(
    model: Any, table: pd.DataFrame, scaler: dict, modelling: dict, split: str
) -> pd.DataFrame:
    """Predicted and actual close `horizon` bars after each window of `split`."""
    lookback, horizon = modelling["lookback"], modelling["horizon"]
    scaled = scale_features(table, scaler)
    labels = _scaled_labels(table, scaler, horizon)
    windows, _, rows = split_windows(table, scaled, labels, split, lookback)
    raw = model.predict(windows, verbose=0, batch_size=1024).reshape(-1)
    prediction = raw * scaler["target_std"] + scaler["target_mean"]
    close = table["close"].to_numpy(dtype="float64")
    last_close = close[rows]
    predicted = last_close * np.exp(prediction) if scaler["target"] == "log_return" else prediction
    return pd.DataFrame(
        {
            "timestamp": table["timestamp"].to_numpy()[rows],
            "last_close": last_close,
            "actual_close": close[rows + horizon],
            "predicted_close": predicted,
        }
    )


def evaluate_model(
    model: Any, model_input_table: pd.DataFrame, scaler: dict, modelling: dict
) -> dict[str, dict[str, float | None]]:
    """Test-split errors on the price scale for the LSTM and the persistence baseline."""
    test = predict_prices(model, model_input_table, scaler, modelling, "test")
    horizon = modelling["horizon"]
    train_close = model_input_table.loc[model_input_table["split"] == "train", "close"].to_numpy()
    naive_scale = float(np.abs(train_close[horizon:] - train_close[:-horizon]).mean())
    metrics = {
        "lstm": price_metrics(
            test["actual_close"], test["predicted_close"], test["last_close"], naive_scale
        ),
        "persistence": price_metrics(
            test["actual_close"], test["last_close"], test["last_close"], naive_scale
        ),
    }
    verdict = (
        "beats" if metrics["lstm"]["mase"] < metrics["persistence"]["mase"] else "does NOT beat"
    )
    logger.info(
        "Test split (%d rows): LSTM MAE %.4f vs persistence MAE %.4f: the LSTM %s persistence",
        len(test),
        metrics["lstm"]["mae"],
        metrics["persistence"]["mae"],
        verdict,
    )
    return metrics


def price_metrics(
    actual: pd.Series, predicted: pd.Series, last: pd.Series, naive_scale: float
) -> dict[str, float | None]:
    """MAE, RMSE, MASE (scaled by the training split's naive error) and directional accuracy.

    Directional accuracy counts rows where the predicted move has the sign of the actual
    move; a forecast of no move (persistence) has no direction, so it is reported as None.
    """
    error = np.asarray(actual, dtype="float64") - np.asarray(predicted, dtype="float64")
    predicted_move = np.sign(np.asarray(predicted) - np.asarray(last))
    actual_move = np.sign(np.asarray(actual) - np.asarray(last))
    mae = float(np.abs(error).mean())
    has_direction = predicted_move != 0
    return {
        "mae": mae,
        "rmse": float(np.sqrt((error**2).mean())),
        "mase": mae / naive_scale,
        "directional_accuracy": (
            float((predicted_move[has_direction] == actual_move[has_direction]).mean())
            if has_direction.any()
            else None
        ),
    }


def build_manifest(
    model_input_table: pd.DataFrame,
    scaler: dict,
    metrics: dict,
    modelling: dict,
    data_processing: dict,
    run_info: dict,
) -> dict[str, Any]:
    """What a saved model needs to be used and trusted later: its inputs, data and scores."""
    import keras
    import tensorflow as tf

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
        "features": scaler["features"],
        "lookback": modelling["lookback"],
        "horizon": modelling["horizon"],
        "target": modelling["target"],
        "frequency": data_processing["frequency"],
        "seed": modelling["seed"],
        "splits": bounds,
        "metrics": metrics,
        "libraries": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
            "pandas": pd.__version__,
        },
    }
