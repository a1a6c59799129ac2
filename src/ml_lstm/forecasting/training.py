"""Fitting a Keras model reproducibly: seeding, callbacks, one log line per epoch.

Imported only by code that trains (it imports Keras and TensorFlow).
"""

from __future__ import annotations

import logging

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from .lstm_factory import build_model, stateless_copy
from .scaling import scale_features, scaled_labels
from .windows import split_windows

logger = logging.getLogger(__name__)


def make_reproducible(seed: int) -> None:
    """Seeds Python, NumPy and TensorFlow and makes TensorFlow ops deterministic."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


class EpochLogger(keras.callbacks.Callback):
    """One progress line per epoch (losses and learning rate) through `logging`."""

    def __init__(self, epochs: int) -> None:
        super().__init__()
        self._epochs = epochs
        self.learning_rates: list[float] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self.learning_rates.append(rate)
        others = ", ".join(
            f"{name} {value:.5f}" for name, value in logs.items() if name != "learning_rate"
        )
        logger.info("epoch %d/%d: %s, learning rate %.2g", epoch + 1, self._epochs, others, rate)


class ResetStatesEachEpoch(keras.callbacks.Callback):
    """Stateful training: every epoch, and every validation pass, starts from zero state."""

    def _reset(self) -> None:
        for layer in self.model.layers:
            if getattr(layer, "stateful", False):
                layer.reset_states()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._reset()

    def on_test_begin(self, logs: dict | None = None) -> None:
        self._reset()


def batch_divisible(x: np.ndarray, y: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The most recent samples whose count is a multiple of `batch_size` (stateful models)."""
    keep = len(x) - len(x) % batch_size
    if keep == 0:
        raise ValueError(
            f"A stateful model needs at least batch_size={batch_size} windows per split, "
            f"got {len(x)}: lower modelling.training.batch_size."
        )
    return x[len(x) - keep :], y[len(y) - keep :]


def fit_model(
    model: keras.Model,
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    training: dict,
    stateful: bool = False,
    callbacks: tuple[keras.callbacks.Callback, ...] = (),
) -> dict[str, list[float] | int | bool]:
    """Fits with early stopping (best weights restored) and learning-rate reduction.

    Stateful models see their samples in time order (no shuffling), trimmed to a multiple
    of the batch size. Returns the per-epoch history plus where the best epoch was.
    `callbacks` run after the project's own (tuning's pruning callback, for one).
    """
    x_train, y_train = train
    x_val, y_val = validation
    batch_size = training["batch_size"]
    if stateful:
        x_train, y_train = batch_divisible(x_train, y_train, batch_size)
        x_val, y_val = batch_divisible(x_val, y_val, batch_size)
    epochs = training["epochs"]
    progress = EpochLogger(epochs)
    fit_callbacks: list[keras.callbacks.Callback] = [
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=training["patience"], restore_best_weights=True
        ),
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss",
            factor=training.get("reduce_lr_factor", 0.5),
            patience=training.get("reduce_lr_patience", 3),
            min_lr=training.get("min_learning_rate", 1e-5),
        ),
        progress,
    ]
    if stateful:
        fit_callbacks.append(ResetStatesEachEpoch())
    fit_callbacks.extend(callbacks)
    history = model.fit(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        epochs=epochs,
        batch_size=batch_size,
        shuffle=not stateful,
        verbose=0,
        callbacks=fit_callbacks,
    )
    curves = {
        name: [float(value) for value in values]
        for name, values in history.history.items()
        if name != "learning_rate"
    }
    best_epoch = int(np.argmin(curves["val_loss"]))
    return {
        **curves,
        "learning_rate": progress.learning_rates,
        "epochs_run": len(curves["loss"]),
        "best_epoch": best_epoch + 1,
        "stopped_early": len(curves["loss"]) < epochs,
        "train_samples": len(x_train),
        "validation_samples": len(x_val),
    }


def fit_on_splits(
    model: keras.Model,
    table: pd.DataFrame,
    scaler: dict,
    lookback: int,
    horizon: int,
    training: dict,
    callbacks: tuple[keras.callbacks.Callback, ...] = (),
) -> dict:
    """Fits `model` on the `train` windows of `table`, early-stopped on its `validation`
    windows (see fit_model); stateful when the model was built so."""
    scaled = scale_features(table, scaler)
    labels = scaled_labels(table, scaler, horizon)
    x_train, y_train, _ = split_windows(table, scaled, labels, "train", lookback)
    x_val, y_val, _ = split_windows(table, scaled, labels, "validation", lookback)
    stateful = any(getattr(layer, "stateful", False) for layer in model.layers)
    return fit_model(
        model, (x_train, y_train), (x_val, y_val), training, stateful=stateful, callbacks=callbacks
    )


def servable(model: keras.Model, config: dict, history: dict) -> keras.Model:
    """The trained model as it is saved and served: a stateful one as a stateless copy of
    its weights (any batch size). Logs where training stopped."""
    logger.info(
        "Trained %d epochs on %d windows; best val_loss %.5f at epoch %d",
        history["epochs_run"],
        history["train_samples"],
        min(history["val_loss"]),
        history["best_epoch"],
    )
    return stateless_copy(model, config) if config.get("stateful") else model


def train_model(
    table: pd.DataFrame,
    scaler: dict,
    config: dict,
    training: dict,
    lookback: int,
    horizon: int,
    seed: int,
    initial_weights: list[np.ndarray] | None = None,
    callbacks: tuple[keras.callbacks.Callback, ...] = (),
) -> tuple[keras.Model, dict]:
    """A model built from `config` (seeded), fitted on `table`'s train/validation windows.

    With `initial_weights` it starts from them (a warm start) instead of a fresh
    initialisation. Returns the servable model and its training history.
    """
    make_reproducible(seed)
    model = build_model(config)
    if initial_weights is not None:
        model.set_weights(initial_weights)
    history = fit_on_splits(model, table, scaler, lookback, horizon, training, callbacks)
    return servable(model, config, history), history
