"""One configuration scored on the walk-forward folds: the objective a trial minimises.

Per fold: the scaler is fitted on the fold's training block, a seeded LSTM trains there
(early-stopped on the fold's `validation` block) and forecasts the fold's scoring block;
its MAE there, relative to persistence's MAE on the same rows, is the fold's figure. The
objective is the mean over folds (< 1 beats persistence). The forecasts of every fold,
pooled, also give a Diebold-Mariano test against persistence.

Every target is scored on the price scale. A direction model forecasts P(up), not a price:
its price forecast is the expected move under symmetric move sizes,
close[t] * exp((2 P(up) - 1) * m), with m the mean absolute h-bar log return of the fold's
training block; P(up) = 0.5 gives persistence exactly.

Imports TensorFlow when called (training); nothing here touches the Optuna study.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ml_lstm.forecasting.evaluation import diebold_mariano
from ml_lstm.forecasting.forecast import forecast_rows
from ml_lstm.forecasting.model_config import model_config
from ml_lstm.forecasting.scaling import fit_standard_scaler
from ml_lstm.forecasting.targets import target_values, to_price

from .folds import fold_tables

# Called after every epoch with (fold index, epoch index, validation relative MAE); it may
# raise to stop the trial (Optuna's pruning).
EpochReport = Callable[[int, int, float], None]


def mean_abs_move(table: pd.DataFrame, horizon: int) -> float:
    """Mean |h-bar log return| over the training block: a direction model's move size."""
    returns = target_values(table, "log_return", horizon)[(table["split"] == "train").to_numpy()]
    return float(np.nanmean(np.abs(returns)))


def price_forecast(
    values: np.ndarray, target: str, last_close: np.ndarray, move: float
) -> np.ndarray:
    """Target-unit forecasts as closes; P(up) becomes the expected move (module docstring)."""
    if target == "direction":
        return last_close * np.exp((2 * np.asarray(values) - 1) * move)
    return to_price(values, target, last_close)


def score_fold(
    model: Any, table: pd.DataFrame, scaler: dict, modelling: dict, move: float
) -> pd.DataFrame:
    """Actual, persistence and LSTM closes on the fold's scoring block."""
    forecasts = forecast_rows(
        model,
        table,
        scaler,
        lookback=modelling["lookback"],
        horizon=modelling["horizon"],
        sma_window=modelling["baselines"]["sma_window"],
    )
    if modelling["target"] == "direction":
        forecasts["lstm"] = price_forecast(
            forecasts["lstm_up_probability"].to_numpy(),
            "direction",
            forecasts["last_close"].to_numpy(),
            move,
        )
    return forecasts[["timestamp", "last_close", "actual_close", "lstm", "persistence"]]


def relative_mae(forecasts: pd.DataFrame) -> float:
    """The LSTM's MAE over persistence's on the same rows."""
    actual = forecasts["actual_close"].to_numpy()
    lstm = np.abs(actual - forecasts["lstm"].to_numpy()).mean()
    persistence = np.abs(actual - forecasts["persistence"].to_numpy()).mean()
    return float(lstm / persistence)


def evaluate_config(
    search: pd.DataFrame,
    modelling: dict,
    tuning: dict,
    seed: int,
    on_epoch: EpochReport | None = None,
) -> dict[str, Any]:
    """The configuration's fold figures, their mean and spread, and the pooled DM test."""
    from ml_lstm.forecasting.training import train_model

    from .pruning import EpochScorer

    training = {
        **modelling["training"],
        "epochs": int(tuning["epochs"]),
        "patience": int(tuning["patience"]),
    }
    lookback, horizon, target = modelling["lookback"], modelling["horizon"], modelling["target"]
    scored = []
    for fold, table in enumerate(fold_tables(search, modelling, tuning)):
        scaler = fit_standard_scaler(table, modelling["features"], target, horizon)
        move = mean_abs_move(table, horizon)
        callbacks = ()
        if on_epoch is not None:
            report = lambda epoch, value, fold=fold: on_epoch(fold, epoch, value)  # noqa: E731
            callbacks = (EpochScorer(table, scaler, lookback, horizon, move, report),)
        config = model_config(modelling, len(scaler["features"]))
        model, _ = train_model(
            table, scaler, config, training, lookback, horizon, seed, callbacks=callbacks
        )
        scored.append(score_fold(model, table, scaler, modelling, move))
    figures = [relative_mae(forecasts) for forecasts in scored]
    pooled = pd.concat(scored, ignore_index=True)
    test = diebold_mariano(pooled["actual_close"], pooled["lstm"], pooled["persistence"], horizon)
    return {
        "relative_mae": float(np.mean(figures)),
        "relative_mae_std": float(np.std(figures)),
        "fold_relative_mae": figures,
        "rows": len(pooled),
        "dm_statistic": test["statistic"],
        "dm_p_value": test["p_value"],
    }
