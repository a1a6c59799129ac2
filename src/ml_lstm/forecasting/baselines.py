"""Naive forecasts the LSTM must beat, each a close `horizon` bars after row t from rows <= t.

- persistence: close[t] ("tomorrow = today").
- drift: close[t] * exp(horizon * mean one-bar log return of the training split).
- sma: the mean of the last `window` closes, close[t-window+1..t].
- linear: ordinary least squares (numpy) on the same scaled features as the LSTM, taken at
  the window's last bar, with an intercept, fitted to the same (scaled) training labels.
"""

from __future__ import annotations

import numpy as np

# Every baseline, in the order reports list them.
BASELINES = ("persistence", "drift", "sma", "linear")


def persistence_forecast(close: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The last known close, for each row."""
    return close[rows]


def mean_log_return(train_close: np.ndarray) -> float:
    """Mean one-bar log return over consecutive training closes."""
    return float(np.diff(np.log(train_close)).mean())


def drift_forecast(
    close: np.ndarray, rows: np.ndarray, horizon: int, drift_per_bar: float
) -> np.ndarray:
    """The last close grown by the training split's mean log return for `horizon` bars."""
    return close[rows] * np.exp(horizon * drift_per_bar)


def sma_forecast(close: np.ndarray, rows: np.ndarray, window: int) -> np.ndarray:
    """The mean of the `window` closes ending at each row (NaN where fewer exist)."""
    sums = np.concatenate([[0.0], np.cumsum(close)])
    ends = rows + 1
    starts = ends - window
    means = (sums[ends] - sums[np.maximum(starts, 0)]) / window
    return np.where(starts >= 0, means, np.nan)


def fit_linear(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Least-squares coefficients (last one the intercept) of labels on features."""
    design = np.column_stack([features, np.ones(len(features))])
    coefficients, *_ = np.linalg.lstsq(design, labels, rcond=None)
    return coefficients


def predict_linear(coefficients: np.ndarray, features: np.ndarray) -> np.ndarray:
    """The fitted linear model's value for each row of `features`."""
    return features @ coefficients[:-1] + coefficients[-1]
