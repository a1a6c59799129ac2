"""The retraining policy triggers retraining exactly when it should."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from ml_lstm.pipelines.monitoring.nodes import decide_retraining
from ml_lstm.pipelines.monitoring.policy import decide

RUN_INFO = {"run_id": "r", "started_at": "2024-03-30T00:00:00+00:00"}
QUIET = {"alerts": []}
CHAMPION = {"version": "v1"}
ALERTED = {"alerts": [{"kind": "feature_drift"}]}


def features(sessions: int) -> pd.DataFrame:
    """Seven hourly bars per NYSE-like session, March 2024."""
    days = pd.bdate_range("2024-03-01", periods=sessions)
    rows = [
        (day + pd.Timedelta(hours=hour, minutes=30), day.strftime("%Y-%m-%d"))
        for day in days
        for hour in range(13, 20)
    ]
    times, labels = zip(*rows, strict=True)
    return pd.DataFrame({"timestamp": pd.DatetimeIndex(times, tz="UTC"), "session": labels})


def trained_until(table: pd.DataFrame, sessions_before_end: int) -> dict:
    """Manifests of one version whose data ended `sessions_before_end` sessions ago."""
    last = table["timestamp"].iloc[-1 - 7 * sessions_before_end]
    return {"v1": {"version": "v1", "data_range": {"last": last.isoformat()}}}


@pytest.mark.parametrize(
    ("policy", "new_sessions", "alerts", "action"),
    [
        ("never", 0, QUIET, "none"),
        ("never", 12, ALERTED, "none"),
        ({"every_n_sessions": 3}, 0, QUIET, "none"),
        ({"every_n_sessions": 3}, 2, ALERTED, "none"),
        ({"every_n_sessions": 3}, 3, QUIET, "retrain"),
        ({"every_n_sessions": 3}, 4, QUIET, "retrain"),
        ({"every_n_sessions": 1}, 1, QUIET, "retrain"),
        ("on_alert", 5, QUIET, "none"),
        ("on_alert", 1, ALERTED, "retrain"),
        # A lasting alert with no session since the latest training: not again.
        ("on_alert", 0, ALERTED, "none"),
    ],
)
def test_the_policy_decides(policy, new_sessions, alerts, action):
    table = features(20)
    decision = decide(policy, table, trained_until(table, new_sessions), alerts, champion=CHAMPION)
    assert decision["action"] == action, decision["reason"]
    assert decision["sessions_since_latest_training"] == new_sessions


def test_the_latest_version_counts_promoted_or_not():
    table = features(20)
    manifests = {**trained_until(table, 6), "v2": trained_until(table, 1)["v1"]}
    decision = decide({"every_n_sessions": 3}, table, manifests, QUIET, champion=CHAMPION)
    assert decision["action"] == "none" and decision["sessions_since_latest_training"] == 1


def test_an_empty_registry_trains_whatever_the_policy():
    assert decide("never", features(3), {}, QUIET, champion=None)["action"] == "train"


@pytest.mark.parametrize("policy", ["never", "on_alert", {"every_n_sessions": 1}])
def test_versions_without_a_champion_train_from_scratch(policy):
    # Every version registered with promotion skipped: nothing to warm-start from.
    table = features(20)
    decision = decide(policy, table, trained_until(table, 3), ALERTED, champion=None)
    assert decision["action"] == "train"
    assert "none is champion" in decision["reason"]


@pytest.mark.parametrize("policy", ["sometimes", {"every_n_sessions": 0}, {"every_n": 2}, 3])
def test_a_bad_policy_is_a_clear_error(policy):
    with pytest.raises(ValueError, match=r"modelling\.retraining\.policy is"):
        decide(policy, features(3), trained_until(features(3), 1), QUIET, champion=CHAMPION)


def test_the_node_logs_and_records_the_decision_and_its_reason(caplog):
    table = features(20)
    modelling = {"retraining": {"policy": {"every_n_sessions": 2}}}
    with caplog.at_level(logging.INFO):
        decision = decide_retraining(
            table,
            trained_until(table, 2),
            CHAMPION,
            QUIET,
            modelling,
            {"symbol": "NVDA"},
            RUN_INFO,
        )
    assert decision["action"] == "retrain"
    assert (
        decision["reason"] == "2 session(s) since the latest training's data >= every_n_sessions 2"
    )
    assert decision["run_id"] == "r" and decision["generated_at"] == RUN_INFO["started_at"]
    assert "NVDA retraining decision: retrain (2 session(s)" in caplog.text
