"""Monitoring nodes: score the prediction log, the live scorecard, alerts, retrain policy.

Nodes read no files and no clock: the log, the bars, the registry's manifests and the
previous alerts come from the catalog, "now" and the run id from `run_info`.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from ml_lstm.calendars import utc
from ml_lstm.forecasting.degeneracy import degeneracy, describe

from . import charts, drift, policy, scorecard, scoring

logger = logging.getLogger(__name__)


def _stamp(run_info: dict) -> dict[str, Any]:
    return {"generated_at": run_info.get("started_at"), "run_id": run_info["run_id"]}


def score_predictions(
    predictions: pd.DataFrame,
    hourly_bars: pd.DataFrame,
    registry_manifests: dict[str, dict],
    instrument: dict,
    modelling: dict,
    data_processing: dict,
) -> pd.DataFrame:
    """Every row of the prediction log with its status and, once its target bar is in, the
    realised close, errors, direction hit and persistence's error (see `scoring`)."""
    versions = predictions["model_version"].astype(str) if len(predictions) else pd.Series()
    horizons = versions.map(
        lambda version: (registry_manifests.get(version) or {}).get("horizon", modelling["horizon"])
    )
    scored = scoring.score_log(
        predictions, hourly_bars, horizons, instrument, data_processing["frequency"]
    )
    counts = scored.loc[~scored["duplicate"], "status"].value_counts()
    logger.info(
        "%s: %d logged predictions: %d scored, %d pending, %d without their bar (data gap), "
        "and %d repeats of earlier ones.",
        instrument["symbol"],
        len(scored),
        counts.get(scoring.SCORED, 0),
        counts.get(scoring.PENDING, 0),
        counts.get(scoring.MISSING_BAR, 0),
        int(scored["duplicate"].sum()),
    )
    return scored


def build_live_scorecard(
    scored_predictions: pd.DataFrame,
    registry_manifests: dict[str, dict],
    instrument: dict,
    monitoring: dict,
    modelling: dict,
    run_info: dict,
) -> dict[str, Any]:
    """Per model version, over the last `monitoring.window` scored predictions, and for the
    served model: live figures next to the test split's; logs the plain verdict."""
    table = scored_predictions.assign(
        target_bar_time=utc(scored_predictions["target_bar_time"]),
        model_version=scored_predictions["model_version"].astype(str),
    )
    card = scorecard.build(table, registry_manifests, monitoring["window"], modelling["horizon"])
    card = {"instrument": instrument["symbol"], **_stamp(run_info), **card}
    card["verdict"] = scorecard.verdict(card, instrument["symbol"])
    logger.info(card["verdict"])
    return card


def degenerate_alert(test_range_forecasts: pd.DataFrame, settings: dict) -> dict | None:
    """An alert when the served model's test-range forecasts are (near) constant or one-way."""
    check = degeneracy(
        test_range_forecasts["lstm"],
        test_range_forecasts["last_close"],
        test_range_forecasts["actual_close"],
        settings["min_spread_ratio"],
        settings["max_one_direction_share"],
    )
    if not check["degenerate"]:
        return None
    version = str(test_range_forecasts["model_version"].iloc[0])
    return {
        "kind": "degenerate_model",
        "model_version": version,
        "message": f"model {version} is degenerate on its {check['rows']} test bars: "
        f"{describe(check)}",
        "details": check,
    }


def live_vs_test_alert(card: dict, monitoring: dict) -> dict | None:
    """An alert when the served model's live relative MAE exceeds its test split's by more
    than `monitoring.margin` (after at least `monitoring.min_rows` scored predictions)."""
    live, test = card["served"]["live"], card["served"]["test"] or {}
    if live["rows"] < monitoring["min_rows"] or live.get("relative_mae") is None:
        return None
    if test.get("relative_mae") is None:
        return None
    gap = live["relative_mae"] - test["relative_mae"]
    if gap <= monitoring["margin"]:
        return None
    return {
        "kind": "live_worse_than_test",
        "model_version": card["served_model"],
        "message": f"model {card['served_model']}: live MAE relative to persistence "
        f"{live['relative_mae']:.3f} on {live['rows']} predictions, test split "
        f"{test['relative_mae']:.3f}: worse by {gap:.3f} > margin {monitoring['margin']}",
        "details": {"live": live["relative_mae"], "test": test["relative_mae"], "gap": gap},
    }


def drift_alert(features: pd.DataFrame, manifest: dict | None, settings: dict) -> dict:
    """PSI and KS of the served model's features, recent window vs its training split; an
    alert entry (under "alert") when a watched feature's PSI exceeds the threshold."""
    if not manifest:
        return {"checked": False, "reason": "the served model has no manifest"}
    times = utc(features["timestamp"])
    train = manifest["splits"]["train"]
    inside = (times >= utc(train["first"])) & (times <= utc(train["last"]))
    training, recent = features.loc[inside.to_numpy()], features.iloc[-settings["window_bars"] :]
    names = [name for name in manifest["features"] if name in features.columns]
    report = drift.feature_drift(training, recent, names, settings["bins"])
    watched = [name for name in settings["features"] if name in report]
    drifting = {
        n: report[n]["psi"] for n in watched if report[n]["psi"] > settings["psi_threshold"]
    }
    result: dict[str, Any] = {
        "checked": True,
        "training_rows": int(inside.sum()),
        "recent_rows": len(recent),
        "recent_first": utc(recent["timestamp"].iloc[0]).isoformat() if len(recent) else None,
        "watched": watched,
        "features": report,
    }
    if drifting:
        listing = ", ".join(f"{name} PSI {value:.3f}" for name, value in drifting.items())
        result["alert"] = {
            "kind": "feature_drift",
            "model_version": manifest["version"],
            "message": f"inputs of model {manifest['version']} drift from its training split "
            f"over the last {len(recent)} bars: {listing} (threshold "
            f"{settings['psi_threshold']})",
            "details": {name: report[name] for name in drifting},
        }
    return result


def check_alerts(
    live_scorecard: dict,
    test_range_forecasts: pd.DataFrame,
    features: pd.DataFrame,
    registry_manifests: dict[str, dict],
    instrument: dict,
    monitoring: dict,
    run_info: dict,
) -> dict[str, Any]:
    """Degenerate served model, live error beyond the test split's, input drift: each a
    WARNING with its numbers and an entry of `alerts.json` (empty list: all quiet)."""
    served = str(test_range_forecasts["model_version"].iloc[0])
    drifted = drift_alert(features, registry_manifests.get(served), monitoring["drift"])
    alerts = [
        alert
        for alert in (
            degenerate_alert(test_range_forecasts, monitoring["degenerate"]),
            live_vs_test_alert(live_scorecard, monitoring),
            drifted.pop("alert", None),
        )
        if alert is not None
    ]
    for alert in alerts:
        logger.warning("%s ALERT (%s): %s", instrument["symbol"], alert["kind"], alert["message"])
    if not alerts:
        logger.info("%s: no alert (model %s).", instrument["symbol"], served)
    return {
        "instrument": instrument["symbol"],
        **_stamp(run_info),
        "served_model": served,
        "alerts": alerts,
        "drift": drifted,
    }


def plot_live_scorecard(
    scored_predictions: pd.DataFrame, live_scorecard: dict, instrument: dict
) -> tuple[Any, Any]:
    """Forecasts against what happened, and the rolling MAE of model and persistence."""
    return charts.scorecard_figures(scored_predictions, live_scorecard, instrument["symbol"])


def decide_retraining(
    features: pd.DataFrame,
    registry_manifests: dict[str, dict],
    champion_record: dict | None,
    previous_alerts: dict,
    modelling: dict,
    instrument: dict,
    run_info: dict,
) -> dict[str, Any]:
    """Whether this update retrains (see `policy`): the decision and its reason, logged and
    recorded; the update command runs retraining (or modelling) only when it says so."""
    decision = policy.decide(
        modelling["retraining"].get("policy", policy.NEVER),
        features,
        registry_manifests,
        previous_alerts,
        champion=champion_record,
    )
    logger.info(
        "%s retraining decision: %s (%s).",
        instrument["symbol"],
        decision["action"],
        decision["reason"],
    )
    return {"instrument": instrument["symbol"], **_stamp(run_info), **decision}
