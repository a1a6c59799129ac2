"""Standardisation fitted on training rows only, and its inverse for the target."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .targets import target_values


def fit_standard_scaler(
    table: pd.DataFrame, features: list[str], target: str, horizon: int
) -> dict[str, Any]:
    """Mean and standard deviation of each feature and of the target, on `train` rows only.

    `table` carries a `split` column. The direction target (0/1) is not scaled. A feature
    constant in training gets std 1.
    """
    is_train = (table["split"] == "train").to_numpy()
    train = table[is_train]
    columns = list(features)
    values = train[columns].to_numpy(dtype="float64")
    if target == "direction":
        target_mean, target_std = 0.0, 1.0
    else:
        labels = target_values(table, target, horizon)[is_train]
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


def unscale_target(raw: np.ndarray, scaler: dict) -> np.ndarray:
    """Network outputs back in target units (log return, price or P(up))."""
    return raw * scaler["target_std"] + scaler["target_mean"]
