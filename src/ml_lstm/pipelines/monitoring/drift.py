"""Input drift: the model's features over a recent window against its training split.

Per feature, two numbers:
- PSI, the population stability index: the training values cut into `bins` quantile bins,
  PSI = sum over bins of (recent share - training share) * ln(recent share / training
  share), shares floored at 1e-4. Common reading: < 0.1 stable, 0.1-0.25 moderate, > 0.25
  a shift.
- KS, the two-sample Kolmogorov-Smirnov statistic (largest gap between the two empirical
  distribution functions) with its asymptotic p-value.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

SHARE_FLOOR = 1e-4


def psi(training: np.ndarray, recent: np.ndarray, bins: int = 10) -> float:
    """Population stability index of `recent` against `training` (quantile bins)."""
    edges = np.unique(np.quantile(training, np.linspace(0, 1, bins + 1)[1:-1]))
    expected = np.bincount(np.searchsorted(edges, training, side="right"), minlength=len(edges) + 1)
    actual = np.bincount(np.searchsorted(edges, recent, side="right"), minlength=len(edges) + 1)
    expected = np.maximum(expected / len(training), SHARE_FLOOR)
    actual = np.maximum(actual / len(recent), SHARE_FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def ks(training: np.ndarray, recent: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and asymptotic two-sided p-value."""
    values = np.sort(np.concatenate([training, recent]))
    gap = np.abs(
        np.searchsorted(np.sort(training), values, side="right") / len(training)
        - np.searchsorted(np.sort(recent), values, side="right") / len(recent)
    )
    statistic = float(gap.max())
    n = len(training) * len(recent) / (len(training) + len(recent))
    lam = (math.sqrt(n) + 0.12 + 0.11 / math.sqrt(n)) * statistic
    # Kolmogorov's series, Q_KS(lambda) = 2 sum (-1)^(k-1) exp(-2 k^2 lambda^2).
    p_value = 2 * sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))
    return statistic, float(min(1.0, max(0.0, p_value)))


def feature_drift(
    training: pd.DataFrame, recent: pd.DataFrame, features: list[str], bins: int
) -> dict[str, dict[str, float]]:
    """PSI and KS of each feature (NaNs left out)."""
    report = {}
    for name in features:
        old = training[name].to_numpy(dtype="float64")
        new = recent[name].to_numpy(dtype="float64")
        old, new = old[~np.isnan(old)], new[~np.isnan(new)]
        if len(old) < bins or len(new) < 2:
            continue
        statistic, p_value = ks(old, new)
        report[name] = {"psi": psi(old, new, bins), "ks": statistic, "ks_p_value": p_value}
    return report
