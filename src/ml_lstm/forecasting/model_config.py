"""The LSTM's build configuration from a `modelling` parameter block (no TensorFlow here)."""

from __future__ import annotations

from typing import Any


def model_config(modelling: dict, n_features: int) -> dict[str, Any]:
    """The `build_model` configuration: `modelling.model` plus the data's shape and target.

    Modelling, walk-forward evaluation and every tuning trial build their model from it.
    """
    return {
        **modelling["model"],
        "lookback": modelling["lookback"],
        "n_features": n_features,
        "output": "sigmoid" if modelling["target"] == "direction" else "linear",
        "batch_size": modelling["training"]["batch_size"],
    }
