"""The search space: what one Optuna trial chooses, and the `modelling` block it makes.

`tuning.space` lists the candidates (conf/base/parameters_tuning.yml):

    lookback: [12, 24, 48]                   categorical
    lstm_layers: [1, 2]                      categorical (stacked layers of equal width)
    lstm_units: [16, 32, 64]                 categorical
    dropout: {low: 0.0, high: 0.3}           uniform
    learning_rate: {low: 1e-4, high: 1e-2}   log-uniform
    batch_size: [32, 64, 128]                categorical
    target: [log_return, price, direction]   categorical
    features: {always: [log_return], optional: [close, volume, ...]}
                                             each optional feature in or out (a boolean
                                             parameter `feature.<name>`); optional features
                                             absent from the feature list are skipped

A trial's choices replace those keys of the project's `modelling` block; everything else
(horizon, split, seed, baselines, the dense layer, loss) stays as configured.
"""

from __future__ import annotations

import copy
from typing import Any

from ml_lstm.forecasting.targets import check_target

FEATURE_PREFIX = "feature."


def optional_features(space: dict, feature_list: dict) -> list[str]:
    """The optional features that the feature table really has, in the space's order."""
    available = set(feature_list["features"]) | {"close", "volume", "open", "high", "low"}
    return [name for name in space["features"].get("optional", []) if name in available]


def check_space(space: dict, feature_list: dict) -> None:
    """Refuses a space naming unknown targets or features the table lacks."""
    for target in space["target"]:
        check_target(target)
    missing = [name for name in space["features"]["always"] if name not in feature_list["features"]]
    if missing:
        raise ValueError(
            f"tuning.space.features.always names {missing}, absent from the feature list "
            f"{feature_list['features']}: pick features the data_processing stage computes."
        )


def suggest(trial: Any, space: dict, feature_list: dict) -> dict[str, Any]:
    """The trial's choices, asked of Optuna under stable parameter names."""
    choices: dict[str, Any] = {
        "lookback": trial.suggest_categorical("lookback", list(space["lookback"])),
        "lstm_layers": trial.suggest_categorical("lstm_layers", list(space["lstm_layers"])),
        "lstm_units": trial.suggest_categorical("lstm_units", list(space["lstm_units"])),
        "dropout": trial.suggest_float(
            "dropout", space["dropout"]["low"], space["dropout"]["high"]
        ),
        "learning_rate": trial.suggest_float(
            "learning_rate", space["learning_rate"]["low"], space["learning_rate"]["high"], log=True
        ),
        "batch_size": trial.suggest_categorical("batch_size", list(space["batch_size"])),
        "target": trial.suggest_categorical("target", list(space["target"])),
    }
    for name in optional_features(space, feature_list):
        key = FEATURE_PREFIX + name
        choices[key] = trial.suggest_categorical(key, [True, False])
    return choices


def chosen_features(choices: dict[str, Any], space: dict) -> list[str]:
    """The always-on features, then the optional ones the trial switched on."""
    optional = [
        key.removeprefix(FEATURE_PREFIX)
        for key, on in choices.items()
        if key.startswith(FEATURE_PREFIX) and on
    ]
    return [*space["features"]["always"], *optional]


def modelling_for(choices: dict[str, Any], modelling: dict, space: dict) -> dict[str, Any]:
    """The project's `modelling` block with the trial's choices in place."""
    tuned = copy.deepcopy(modelling)
    tuned["features"] = chosen_features(choices, space)
    tuned["target"] = choices["target"]
    tuned["lookback"] = int(choices["lookback"])
    tuned["model"]["lstm_units"] = [int(choices["lstm_units"])] * int(choices["lstm_layers"])
    tuned["model"]["dropout"] = float(choices["dropout"])
    tuned["model"]["learning_rate"] = float(choices["learning_rate"])
    tuned["training"]["batch_size"] = int(choices["batch_size"])
    return tuned


def modelling_overrides(tuned: dict[str, Any]) -> dict[str, Any]:
    """The keys of `modelling` a search decides: what an adopted parameters file sets."""
    return {
        "features": list(tuned["features"]),
        "target": tuned["target"],
        "lookback": tuned["lookback"],
        "model": {key: tuned["model"][key] for key in ("lstm_units", "dropout", "learning_rate")},
        "training": {"batch_size": tuned["training"]["batch_size"]},
    }
