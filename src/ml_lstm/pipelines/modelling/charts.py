"""Modelling's figures (matplotlib, object-oriented API: no GUI backend is involved)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ml_lstm.forecasting.baselines import BASELINES


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
