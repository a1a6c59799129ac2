"""Promotion: does this run's model replace the champion? Same test rows, same metric."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from ml_lstm.forecasting.baselines import BASELINES
from ml_lstm.forecasting.evaluation import naive_scale, promotion_score, score_forecasts
from ml_lstm.forecasting.forecast import predict_target
from ml_lstm.forecasting.targets import to_price

logger = logging.getLogger(__name__)

PROMOTION_MODES = ("auto", "force", "skip")


def score_champion(
    champion: dict, model_input_table: pd.DataFrame, test_forecasts: pd.DataFrame, modelling: dict
) -> tuple[str, float] | str:
    """The champion's promotion score on the challenger's test rows, or why it has none."""
    manifest, scaler = champion["manifest"], champion["scaler"]
    if manifest["horizon"] != modelling["horizon"]:
        return f"champion forecasts {manifest['horizon']} bars ahead, not {modelling['horizon']}"
    missing = [name for name in scaler["features"] if name not in model_input_table.columns]
    if missing:
        return f"the feature table lacks the champion's features {missing}"
    values, rows = predict_target(
        champion["model"],
        model_input_table,
        scaler,
        manifest["lookback"],
        manifest["horizon"],
        "test",
    )
    if len(rows) != len(test_forecasts):
        return "the champion's windows do not cover the same test rows"
    forecasts = test_forecasts[["timestamp", "last_close", "actual_close", *BASELINES]].copy()
    forecasts["lstm"] = to_price(values, scaler["target"], forecasts["last_close"].to_numpy())
    if scaler["target"] == "direction":
        forecasts["lstm_up_probability"] = values
    train_close = model_input_table.loc[model_input_table["split"] == "train", "close"]
    scale = naive_scale(train_close.to_numpy(dtype="float64"), modelling["horizon"])
    metric, score = promotion_score({"lstm": score_forecasts(forecasts, scale)["lstm"]})
    return metric, float(score)


def _against_champion(
    champion: dict,
    decision: dict,
    test_forecasts: pd.DataFrame,
    model_input_table: pd.DataFrame,
    modelling: dict,
) -> tuple[bool, str]:
    """The rule: promoted when the challenger scores lower than the champion on its rows."""
    metric, score = decision["metric"], decision["challenger_score"]
    scored = score_champion(champion, model_input_table, test_forecasts, modelling)
    if isinstance(scored, str):
        promoted, reason = False, f"not comparable: {scored} (use promotion=force)"
    elif scored[0] != metric:
        promoted = False
        reason = f"not comparable: champion scored by {scored[0]}, challenger by {metric}"
    else:
        decision["champion_score"] = scored[1]
        promoted = score < scored[1]
        reason = f"{metric} {score:.5f} {'<' if promoted else '>='} champion's {scored[1]:.5f}"
    seen_until = champion["manifest"]["splits"]["validation"]["last"]
    if pd.Timestamp(seen_until) >= pd.Timestamp(decision["test_rows"]["first"]):
        decision["champion_saw_test_rows"] = True
        logger.warning(
            "Champion %s was fitted on data up to %s, inside this test period: the "
            "comparison favours it.",
            champion["record"]["version"],
            seen_until,
        )
    return promoted, reason


def decide_promotion(
    champion: dict | None,
    test_forecasts: pd.DataFrame,
    model_input_table: pd.DataFrame,
    metrics: dict,
    modelling: dict,
    run_info: dict,
    model_manifest: dict | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Promotes this run's model if it beats the champion on the same test rows.

    `model_manifest` is not read: taking it orders this node after the manifest is saved,
    so a champion record never names a version without its manifest.

    `modelling.promotion`: auto (the rule), force (always promote), skip (never). Returns
    the decision (a report) and the champion record after it ({}: still no champion).
    """
    mode = modelling.get("promotion", "auto")
    if mode not in PROMOTION_MODES:
        raise ValueError(f"modelling.promotion is {mode!r}; expected one of {PROMOTION_MODES}.")
    metric, score = promotion_score(metrics)
    current = champion["record"] if champion else None
    decision: dict[str, Any] = {
        "challenger": run_info["run_id"],
        "champion_before": current["version"] if current else None,
        "mode": mode,
        "metric": metric,
        "challenger_score": score,
        "champion_score": None,
        "test_rows": {key: metrics["evaluation"][key] for key in ("first", "last", "rows")},
    }
    if mode == "skip":
        promoted, reason = False, "promotion skipped by modelling.promotion=skip"
    elif mode == "force":
        promoted, reason = True, "promotion forced by modelling.promotion=force"
    elif champion is None:
        promoted, reason = True, "no champion yet"
    else:
        promoted, reason = _against_champion(
            champion, decision, test_forecasts, model_input_table, modelling
        )
    decision.update(promoted=promoted, reason=reason)
    record = _record_after(promoted, current, decision, run_info)
    decision["champion_after"] = record["version"] if record else None
    logger.info(
        "Promotion (%s): %s %s; champion is now %s.",
        mode,
        run_info["run_id"],
        "PROMOTED" if promoted else "not promoted",
        decision["champion_after"],
    )
    logger.info("Promotion reason: %s", reason)
    return decision, record


def _record_after(
    promoted: bool, current: dict | None, decision: dict, run_info: dict
) -> dict[str, Any]:
    """The champion record after the decision ({} while there is no champion)."""
    if not promoted:
        return current or {}
    return {
        "version": run_info["run_id"],
        "metric": decision["metric"],
        "score": decision["challenger_score"],
        "test_rows": decision["test_rows"],
        "reason": decision["reason"],
        "previous": current["version"] if current else None,
    }
