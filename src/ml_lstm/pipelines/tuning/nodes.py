"""Tuning nodes: an Optuna search on walk-forward folds before the test split, its report,
the best configuration scored once on the test split, and an adoptable parameters file.

The search (see `study.py`) sees only the rows before the test split's purge gap
(`folds.search_rows`). Only after it has finished is the best configuration retrained on
the modelling split (train, validation) and scored on the test split, next to persistence
and the other baselines on the same rows.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from ml_lstm.forecasting.evaluation import diebold_mariano, evaluate, naive_scale, price_metrics
from ml_lstm.forecasting.forecast import forecast_rows
from ml_lstm.forecasting.model_config import model_config
from ml_lstm.forecasting.scaling import fit_standard_scaler
from ml_lstm.forecasting.splits import label_splits, purge_gap, split_labels, split_sizes

from .folds import search_rows
from .objective import mean_abs_move, price_forecast
from .search_space import modelling_for

logger = logging.getLogger(__name__)

# Optuna, plotly and matplotlib (~0.9 s) are imported by the nodes that use them, not when
# the pipelines are registered for every `kedro run`.


def _load(study: dict[str, str], tuning: dict) -> Any:
    import optuna

    return optuna.load_study(study_name=tuning["study_name"], storage=study["storage"])


def run_search(
    study: dict[str, str],
    features: pd.DataFrame,
    feature_list: dict,
    modelling: dict,
    tuning: dict,
) -> pd.DataFrame:
    """Adds `tuning.n_trials` trials to the study; returns the table of all its trials."""
    from . import reports
    from . import study as studies

    searched = search_rows(features, modelling)
    logger.info(
        "Tuning on %d of %d feature rows (%s .. %s), before the test split's purge gap.",
        len(searched),
        len(features),
        searched["timestamp"].iloc[0],
        searched["timestamp"].iloc[-1],
    )
    result = studies.search(
        study["storage"], tuning["study_name"], searched, modelling, tuning, feature_list
    )
    return reports.trials_table(result)


def summarise_search(
    study: dict[str, str],
    tuning_trials: pd.DataFrame,
    modelling: dict,
    tuning: dict,
    run_info: dict,
) -> dict[str, Any]:
    """The best trial and its walk-forward figures; logs the validation verdict."""
    from . import reports

    summary = reports.summarise(_load(study, tuning), tuning_trials, modelling, tuning, run_info)
    logger.info(reports.validation_verdict(summary))
    return summary


def _modelling_split(features: pd.DataFrame, tuned: dict) -> pd.DataFrame:
    """The feature table labelled as modelling's `split_by_time` labels it."""
    n = len(features)
    train, validation, _ = split_sizes(n, tuned["split"])
    labels = split_labels(
        n, train, train + validation, n, purge_gap(tuned["lookback"], tuned["horizon"])
    )
    return label_splits(features, labels, tuned["lookback"] + tuned["horizon"] + 1)


def score_on_test_split(
    features: pd.DataFrame, search_summary: dict, modelling: dict, tuning: dict
) -> dict[str, Any]:
    """The summary plus the best configuration's test-split metrics, computed once here.

    It is retrained with modelling's training settings on modelling's train split
    (early-stopped on its validation split) from the best trial's seed, and scored with
    persistence and every baseline on the same test rows.
    """
    from ml_lstm.forecasting.training import train_model

    from . import reports

    best = search_summary["best"]
    tuned = modelling_for(best["params"], modelling, tuning["space"])
    table = _modelling_split(features, tuned)
    lookback, horizon = tuned["lookback"], tuned["horizon"]
    scaler = fit_standard_scaler(table, tuned["features"], tuned["target"], horizon)
    config = model_config(tuned, len(scaler["features"]))
    model, history = train_model(
        table, scaler, config, tuned["training"], lookback, horizon, best["seed"]
    )
    forecasts = forecast_rows(
        model,
        table,
        scaler,
        lookback=lookback,
        horizon=horizon,
        sma_window=tuned["baselines"]["sma_window"],
    )
    train_close = table.loc[table["split"] == "train", "close"].to_numpy(dtype="float64")
    metrics = evaluate(forecasts, train_close, tuned["target"], horizon)
    test_split = {
        "trial": best["trial"],
        "epochs_run": history["epochs_run"],
        "price_scale": price_scale_scores(forecasts, table, tuned, train_close),
        "metrics": metrics,
    }
    logger.info(reports.test_verdict(test_split))
    return {**search_summary, "test_split": test_split}


def price_scale_scores(
    forecasts: pd.DataFrame, table: pd.DataFrame, tuned: dict, train_close: np.ndarray
) -> dict[str, Any]:
    """The LSTM's test figures on the price scale the search optimised (a direction model by
    its expected move, see objective.py) next to persistence's, with Diebold-Mariano."""
    horizon = tuned["horizon"]
    last, actual = forecasts["last_close"].to_numpy(), forecasts["actual_close"].to_numpy()
    lstm = forecasts["lstm"].to_numpy()
    if tuned["target"] == "direction":
        move = mean_abs_move(table, horizon)
        lstm = price_forecast(forecasts["lstm_up_probability"].to_numpy(), "direction", last, move)
    scale = naive_scale(train_close, horizon)
    persistence_mae = float(np.abs(actual - last).mean())
    ours = price_metrics(actual, lstm, last, scale, persistence_mae)
    test = diebold_mariano(actual, lstm, last, horizon)
    return {
        "lstm_mase": ours["mase"],
        "persistence_mase": persistence_mae / scale,
        "relative_mae": ours["relative_mae"],
        "dm_statistic": test["statistic"],
        "dm_p_value": test["p_value"],
        "rows": len(actual),
    }


def write_tuned_parameters(tuning_summary: dict) -> str:
    """The parameters file a user can adopt (copy to conf/local/)."""
    from . import reports

    return reports.tuned_parameters_text(tuning_summary)


def plot_study(
    study: dict[str, str], tuning_trials: pd.DataFrame, tuning: dict
) -> tuple[Any, Any, Any, dict[str, Any]]:
    """Optimisation history, importances and parallel coordinates: plotly, then PNGs."""
    from .charts import study_charts

    plotly_charts, png = study_charts(_load(study, tuning))
    return (
        plotly_charts["optimization_history"],
        plotly_charts["param_importances"],
        plotly_charts["parallel_coordinate"],
        png,
    )
