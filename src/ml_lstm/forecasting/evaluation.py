"""Forecast errors on the price scale and directional accuracy with a confidence interval.

Definitions (every model is scored on the same test rows t, forecasting close[t+h]):

- MAE = mean |close[t+h] - forecast|; RMSE = sqrt(mean (close[t+h] - forecast)^2).
- MAPE = 100 * mean |close[t+h] - forecast| / |close[t+h]| (percent).
- MASE = MAE / mean |close[s+h] - close[s]| over the training split (Hyndman's scaling: the
  in-sample error of the h-step persistence forecast). MASE < 1: better than persistence
  was in training; compare models with each other on the same rows, where MASE orders them
  exactly as MAE does.
- relative_mae = MAE / persistence MAE on the same test rows (< 1: beats persistence).
- directional_accuracy: share of rows where sign(forecast - close[t]) equals
  sign(close[t+h] - close[t]), over rows where the forecast moves at all (persistence has
  no direction: None). A flat actual move is a miss. The 95% interval is Wilson's score
  interval for a binomial proportion.
- Diebold-Mariano test (absolute-error loss) of the LSTM against persistence: d = |e_p| -
  |e_lstm| per row, t = mean(d) / sqrt(var_HAC(d) / n) with a Bartlett (Newey-West)
  variance over horizon - 1 lags, two-sided p-value from the normal distribution.
  "Beats persistence" is lower MASE; "significantly" needs p < 0.05 as well.
- For the `direction` target the LSTM forecasts P(close[t+h] > close[t]), not a price: its
  price errors are None, it predicts "up" when P > 0.5, and it also gets log_loss and brier.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pandas as pd

from ml_lstm.calendars import utc

from .baselines import BASELINES
from .degeneracy import degeneracy, describe

logger = logging.getLogger(__name__)

Z_95 = 1.959963984540054


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> list[float] | None:
    """Wilson's score interval [low, high] for a binomial proportion (None without trials)."""
    if trials == 0:
        return None
    share = successes / trials
    denominator = 1 + z**2 / trials
    centre = (share + z**2 / (2 * trials)) / denominator
    half = z * math.sqrt(share * (1 - share) / trials + z**2 / (4 * trials**2)) / denominator
    return [max(0.0, centre - half), min(1.0, centre + half)]


def naive_scale(train_close: np.ndarray, horizon: int) -> float:
    """Mean absolute h-step change of the training closes: the MASE denominator."""
    scale = float(np.abs(train_close[horizon:] - train_close[:-horizon]).mean())
    if not scale > 0:
        raise ValueError("The training split's close never moves: MASE is undefined.")
    return scale


def direction_scores(predicted_move: np.ndarray, actual_move: np.ndarray) -> dict:
    """Directional accuracy, its Wilson 95% interval and the rows it was counted on."""
    has_direction = predicted_move != 0
    trials = int(has_direction.sum())
    hits = int((np.sign(predicted_move) == np.sign(actual_move))[has_direction].sum())
    return {
        "directional_accuracy": hits / trials if trials else None,
        "directional_accuracy_ci95": wilson_interval(hits, trials),
        "directional_rows": trials,
    }


def price_metrics(
    actual: np.ndarray,
    predicted: np.ndarray,
    last: np.ndarray,
    scale: float,
    persistence_mae: float | None = None,
) -> dict[str, float | list[float] | int | None]:
    """MAE, RMSE, MAPE, MASE, relative MAE and directional accuracy of price forecasts."""
    actual = np.asarray(actual, dtype="float64")
    predicted = np.asarray(predicted, dtype="float64")
    last = np.asarray(last, dtype="float64")
    error = actual - predicted
    mae = float(np.abs(error).mean())
    return {
        "mae": mae,
        "rmse": float(np.sqrt((error**2).mean())),
        "mape": float(100 * np.mean(np.abs(error) / np.abs(actual))),
        "mase": mae / scale,
        "relative_mae": mae / persistence_mae if persistence_mae else None,
        **direction_scores(predicted - last, actual - last),
        "rows": len(actual),
    }


def probability_metrics(
    actual: np.ndarray, probability_up: np.ndarray, last: np.ndarray
) -> dict[str, float | list[float] | int | None]:
    """Scores of an up/down classifier: no price errors, accuracy, log loss and Brier score."""
    actual = np.asarray(actual, dtype="float64")
    last = np.asarray(last, dtype="float64")
    probability = np.clip(np.asarray(probability_up, dtype="float64"), 1e-7, 1 - 1e-7)
    went_up = (actual > last).astype("float64")
    return {
        "mae": None,
        "rmse": None,
        "mape": None,
        "mase": None,
        "relative_mae": None,
        **direction_scores(np.where(probability > 0.5, 1.0, -1.0), actual - last),
        "log_loss": float(
            -np.mean(went_up * np.log(probability) + (1 - went_up) * np.log(1 - probability))
        ),
        "brier": float(np.mean((probability - went_up) ** 2)),
        "rows": len(actual),
    }


def diebold_mariano(
    actual: np.ndarray, ours: np.ndarray, reference: np.ndarray, horizon: int
) -> dict[str, float]:
    """Diebold-Mariano test of equal absolute error: positive statistic, ours is better."""
    actual = np.asarray(actual, dtype="float64")
    gain = np.abs(actual - np.asarray(reference)) - np.abs(actual - np.asarray(ours))
    n = len(gain)
    centred = gain - gain.mean()
    variance = float(centred @ centred) / n
    for lag in range(1, min(horizon, n)):
        weight = 1 - lag / horizon
        variance += 2 * weight * float(centred[lag:] @ centred[:-lag]) / n
    if not variance > 0:
        return {"statistic": 0.0, "p_value": 1.0}
    statistic = float(gain.mean() / math.sqrt(variance / n))
    return {"statistic": statistic, "p_value": math.erfc(abs(statistic) / math.sqrt(2))}


def lstm_beats_persistence(metrics: dict) -> bool:
    """Whether the LSTM beats persistence on the test rows.

    Price targets: lower MASE (same rows, so lower MAE). Direction target (persistence has
    no direction): the lower end of the LSTM's 95% accuracy interval is above one half.
    """
    lstm = metrics["lstm"]
    if lstm["mase"] is not None:
        return lstm["mase"] < metrics["persistence"]["mase"]
    interval = lstm["directional_accuracy_ci95"]
    return bool(interval and interval[0] > 0.5)


def promotion_score(metrics: dict) -> tuple[str, float | None]:
    """The metric promotion compares (lower is better): MASE, or log loss for direction."""
    lstm = metrics["lstm"]
    if lstm.get("mase") is not None:
        return "mase", lstm["mase"]
    return "log_loss", lstm.get("log_loss")


def score_forecasts(forecasts: pd.DataFrame, scale: float) -> dict[str, dict[str, Any]]:
    """Metrics of the LSTM and every baseline column of `forecasts`, on the same rows."""
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


def evaluate(
    forecasts: pd.DataFrame, train_close: np.ndarray, target: str, horizon: int
) -> dict[str, dict[str, Any]]:
    """Metrics of every model on `forecasts`' rows, plus an `evaluation` block: the rows,
    the MASE scale (from the training closes), the verdict and Diebold-Mariano against
    persistence (price targets)."""
    scale = naive_scale(train_close, horizon)
    metrics: dict[str, dict[str, Any]] = score_forecasts(forecasts, scale)
    timestamps = utc(forecasts["timestamp"])
    metrics["evaluation"] = {
        "split": "test",
        "rows": len(forecasts),
        "first": timestamps.iloc[0].isoformat(),
        "last": timestamps.iloc[-1].isoformat(),
        "target": target,
        "horizon": horizon,
        "mase_scale": scale,
        "lstm_beats_persistence": lstm_beats_persistence(metrics),
    }
    if metrics["lstm"]["mase"] is not None:
        metrics["evaluation"]["diebold_mariano_vs_persistence"] = diebold_mariano(
            forecasts["actual_close"], forecasts["lstm"], forecasts["persistence"], horizon
        )
        # A model saying the same thing on every bar: flagged here, at training time, too.
        metrics["evaluation"]["lstm_degenerate"] = degeneracy(
            forecasts["lstm"], forecasts["last_close"], forecasts["actual_close"]
        )
    return metrics


def log_verdict(metrics: dict) -> None:
    """One line per model, then whether the LSTM beats persistence, and how surely."""
    for name in ("lstm", *BASELINES):
        row = metrics[name]
        logger.info(
            "test %-11s MAE %s  RMSE %s  MAPE %s  MASE %s  direction %s",
            name,
            *(_fmt(row[key]) for key in ("mae", "rmse", "mape", "mase")),
            _fmt_direction(row),
        )
    evaluation, lstm = metrics["evaluation"], metrics["lstm"]
    beats, rows = evaluation["lstm_beats_persistence"], evaluation["rows"]
    degenerate = evaluation.get("lstm_degenerate")
    if degenerate and degenerate["degenerate"]:
        logger.warning("Degenerate LSTM on %d test rows: %s.", rows, describe(degenerate))
    if lstm["mase"] is not None:
        test = evaluation["diebold_mariano_vs_persistence"]
        logger.info(
            "Verdict on %d test rows: the LSTM %s persistence (MASE %.4f vs %.4f; "
            "Diebold-Mariano p = %.3g, %s at 5%%).",
            rows,
            "BEATS" if beats else "does NOT beat",
            lstm["mase"],
            metrics["persistence"]["mase"],
            test["p_value"],
            "significant" if test["p_value"] < 0.05 else "NOT significant",
        )
    else:
        logger.info(
            "Verdict on %d test rows: the direction LSTM %s (accuracy %s; skill needs the "
            "95%% interval above 0.5).",
            rows,
            "has directional skill" if beats else "shows NO directional skill",
            _fmt_direction(lstm),
        )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _fmt_direction(row: dict) -> str:
    interval = row["directional_accuracy_ci95"]
    if row["directional_accuracy"] is None:
        return "-"
    return f"{row['directional_accuracy']:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"
