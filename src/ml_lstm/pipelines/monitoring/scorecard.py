"""The live scorecard: how the logged predictions fared, next to the test split's figures.

Computed with the same functions as the test-split evaluation
(`ml_lstm.forecasting.evaluation`): directional accuracy and its Wilson 95% interval
(`direction_scores`), the Diebold-Mariano test of absolute errors against persistence
(`diebold_mariano`). MASE divides each absolute error by the naive (persistence) MAE of the
training split of the model that made the prediction (`metrics.evaluation.mase_scale` in
its manifest), so rows of several versions can share one window. `relative_mae` is the MAE
over persistence's MAE on the same rows (< 1: beats persistence live).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ml_lstm.forecasting.evaluation import diebold_mariano, direction_scores

from .scoring import SCORED


def countable(scored: pd.DataFrame) -> pd.DataFrame:
    """Scored rows that count: not repeats, in the order their target bars came in."""
    rows = scored[(scored["status"] == SCORED) & ~scored["duplicate"].astype(bool)]
    return rows.sort_values(["target_bar_time", "log_row"], kind="stable")


def test_figures(manifest: dict | None) -> dict[str, Any] | None:
    """The model's test-split figures from its manifest, for comparison."""
    if not manifest or "metrics" not in manifest:
        return None
    metrics = manifest["metrics"]
    lstm, evaluation = metrics.get("lstm", {}), metrics.get("evaluation", {})
    test = evaluation.get("diebold_mariano_vs_persistence") or {}
    return {
        "rows": lstm.get("rows"),
        "first": evaluation.get("first"),
        "last": evaluation.get("last"),
        "mae": lstm.get("mae"),
        "mase": lstm.get("mase"),
        "persistence_mase": metrics.get("persistence", {}).get("mase"),
        "relative_mae": lstm.get("relative_mae"),
        "directional_accuracy": lstm.get("directional_accuracy"),
        "directional_accuracy_ci95": lstm.get("directional_accuracy_ci95"),
        "diebold_mariano_p": test.get("p_value"),
        "beats_persistence": evaluation.get("lstm_beats_persistence"),
    }


def mase_scale(manifest: dict | None) -> float | None:
    """The training split's naive MAE of a model (None for a version without a manifest)."""
    if not manifest:
        return None
    return manifest.get("metrics", {}).get("evaluation", {}).get("mase_scale")


def _mean(values: pd.Series | np.ndarray) -> float | None:
    values = np.asarray(values, dtype="float64")
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else None


def live_figures(rows: pd.DataFrame, manifests: dict[str, dict], horizon: int) -> dict[str, Any]:
    """MAE, MASE, relative MAE, direction (Wilson 95%), Diebold-Mariano on `rows`."""
    rows = rows[rows["predicted_close"].notna()]
    if rows.empty:
        return {"rows": 0}
    scales = rows["model_version"].map(lambda version: mase_scale(manifests.get(version)))
    scales = scales.astype("float64").to_numpy()
    mae, persistence_mae = _mean(rows["abs_error"]), _mean(rows["persistence_abs_error"])
    relative = mae / persistence_mae if persistence_mae else None
    actual, last = rows["actual_close"].to_numpy(), rows["last_close"].to_numpy()
    predicted = rows["predicted_close"].to_numpy()
    test = diebold_mariano(actual, predicted, last, horizon) if len(rows) > 1 else None
    return {
        "rows": len(rows),
        "first_target": rows["target_bar_time"].iloc[0].isoformat(),
        "last_target": rows["target_bar_time"].iloc[-1].isoformat(),
        "mae": mae,
        "mase": _mean(rows["abs_error"].to_numpy() / scales),
        "persistence_mae": persistence_mae,
        "persistence_mase": _mean(rows["persistence_abs_error"].to_numpy() / scales),
        "relative_mae": relative,
        **direction_scores(predicted - last, actual - last),
        "diebold_mariano_vs_persistence": test,
        "beats_persistence": None if relative is None else bool(relative < 1),
        "sources": {str(k): int(v) for k, v in rows["source"].value_counts().items()},
    }


def build(
    scored: pd.DataFrame, manifests: dict[str, dict], window: int, default_horizon: int
) -> dict[str, Any]:
    """Per model version (all its scored rows), over the last `window` scored rows, and for
    the served model (the latest prediction's) over its last `window` scored rows."""
    rows = countable(scored)
    distinct = scored[~scored["duplicate"].astype(bool)]

    def horizon_of(version: str) -> int:
        return int((manifests.get(version) or {}).get("horizon", default_horizon))

    versions = {}
    for version in pd.unique(scored["model_version"]):
        own = rows[rows["model_version"] == version]
        versions[version] = {
            "live": live_figures(own, manifests, horizon_of(version)),
            "test": test_figures(manifests.get(version)),
            "mase_scale": mase_scale(manifests.get(version)),
            "logged": int((scored["model_version"] == version).sum()),
        }
    served = str(scored["model_version"].iloc[-1]) if len(scored) else None
    recent = rows.tail(window)
    horizon = max((horizon_of(v) for v in pd.unique(recent["model_version"])), default=1)
    served_rows = rows[rows["model_version"] == served].tail(window)
    return {
        "window": window,
        # Statuses of distinct predictions; repeats counted apart.
        "counts": {
            "logged": len(scored),
            "scored": int((distinct["status"] == SCORED).sum()),
            "pending": int((distinct["status"] == "pending").sum()),
            "missing_bar": int((distinct["status"] == "missing_bar").sum()),
            "duplicates": int(scored["duplicate"].astype(bool).sum()),
            "by_source": {str(k): int(v) for k, v in scored["source"].value_counts().items()},
        },
        "served_model": served,
        "served": {
            "live": live_figures(served_rows, manifests, horizon_of(served) if served else 1),
            "test": test_figures(manifests.get(served)),
        },
        "last_window": live_figures(recent, manifests, horizon),
        "versions": versions,
    }


def verdict(card: dict[str, Any], symbol: str) -> str:
    """The plain sentences the log gives: do the predictions beat persistence live, over the
    last window (whatever model made them), and the served model on its own rows?"""
    served, window, own = card["served_model"], card["last_window"], card["served"]["live"]
    pending = card["counts"]["pending"]
    if not window["rows"]:
        return (
            f"{symbol}: no prediction scored yet ({pending} pending): nothing to say live "
            "until their target bars are in."
        )
    return (
        f"{symbol} live: the last {window['rows']} scored predictions {_beats(window)}. "
        + (
            f"Served model {served}, on its {own['rows']} scored: {_beats(own)}."
            if own["rows"]
            else f"Served model {served}: none scored yet."
        )
        + f" {pending} pending."
    )


def _beats(live: dict[str, Any]) -> str:
    test = live["diebold_mariano_vs_persistence"]
    p = (
        f"Diebold-Mariano p = {test['p_value']:.3g}, "
        f"{'significant' if test['p_value'] < 0.05 else 'NOT significant'} at 5%"
        if test
        else "too few rows for a test"
    )
    accuracy = live["directional_accuracy"]
    direction = "-" if accuracy is None else f"{accuracy:.3f}"
    return (
        f"{'BEAT' if live['beats_persistence'] else 'do NOT beat'} persistence (MAE "
        f"{live['mae']:.4f} vs {live['persistence_mae']:.4f}, relative "
        f"{live['relative_mae']:.3f}; {p}; direction {direction})"
    )
