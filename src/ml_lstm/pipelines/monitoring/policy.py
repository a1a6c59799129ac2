"""The retraining policy (`modelling.retraining.policy`): when an update retrains.

- `never`: an update only ingests, processes, predicts and scores.
- `every_n_sessions: N` (written `{every_n_sessions: N}`): retrain once at least N sessions
  of bars have come in after the end of the data the latest model version (promoted or
  not) was trained on, so a challenger that lost still resets the count.
- `on_alert`: retrain when the previous update raised an alert (degenerate model, live
  error worse than the test split's, input drift) and at least one new session came in
  since the latest training, so a lasting alert retrains at most once a session.

With no model in the registry at all, the update trains one from scratch (`train`),
whatever the policy: inference has nothing to serve otherwise.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ml_lstm.calendars import utc

NEVER, EVERY_N_SESSIONS, ON_ALERT = "never", "every_n_sessions", "on_alert"


def parse_policy(policy: Any) -> tuple[str, int | None]:
    """("never" | "on_alert", None) or ("every_n_sessions", N); a clear error otherwise."""
    if policy in (NEVER, ON_ALERT):
        return policy, None
    if isinstance(policy, dict) and list(policy) == [EVERY_N_SESSIONS]:
        sessions = policy[EVERY_N_SESSIONS]
        if isinstance(sessions, int) and not isinstance(sessions, bool) and sessions >= 1:
            return EVERY_N_SESSIONS, sessions
    raise ValueError(
        f"modelling.retraining.policy is {policy!r}; expected `never`, `on_alert` or "
        "`{every_n_sessions: N}` with N a whole number >= 1 (e.g. "
        "--params 'modelling.retraining.policy={every_n_sessions: 5}')."
    )


def sessions_after(features: pd.DataFrame, moment: pd.Timestamp) -> int:
    """Sessions with at least one bar starting after `moment`."""
    times = utc(features["timestamp"])
    later = features.loc[(times > moment).to_numpy()]
    if "session" in later:
        return int(later["session"].nunique())
    return int(utc(later["timestamp"]).dt.date.nunique())


def decide(
    policy: Any,
    features: pd.DataFrame,
    manifests: dict[str, dict],
    previous_alerts: dict,
    *,
    champion: dict | None,
) -> dict[str, Any]:
    """{"action": "retrain" | "train" | "none", "reason", ...} with the numbers behind it.

    `champion` is the champion record (None when no version was ever promoted): retraining
    warm-starts from it, so without one the update trains from scratch.
    """
    kind, every = parse_policy(policy)
    latest_bar = utc(features["timestamp"]).max() if len(features) else None
    decision: dict[str, Any] = {
        "policy": kind if every is None else {kind: every},
        "latest_bar": latest_bar.isoformat() if latest_bar is not None else None,
    }
    if not manifests:
        return {
            **decision,
            "action": "train",
            "reason": "no model in the registry yet: training one from scratch (modelling)",
        }
    if not champion:
        return {
            **decision,
            "action": "train",
            "reason": (
                f"{len(manifests)} version(s) registered but none is champion (promotion "
                "skipped?): retraining needs one to start from, so training from scratch "
                "(modelling)"
            ),
        }
    trained_until = max(utc(m["data_range"]["last"]) for m in manifests.values())
    new_sessions = sessions_after(features, trained_until)
    alerts = [alert["kind"] for alert in (previous_alerts or {}).get("alerts", [])]
    decision.update(
        latest_training_data_end=trained_until.isoformat(),
        sessions_since_latest_training=new_sessions,
        previous_alerts=alerts,
    )
    action, reason = policy_action(kind, every, new_sessions, alerts)
    return {**decision, "action": action, "reason": reason}


def policy_action(
    kind: str, every: int | None, new_sessions: int, alerts: list[str]
) -> tuple[str, str]:
    """ "retrain" or "none", and why, for a registry with a champion."""
    if kind == NEVER:
        return "none", "policy is never"
    if kind == EVERY_N_SESSIONS:
        due = new_sessions >= every
        return "retrain" if due else "none", (
            f"{new_sessions} session(s) since the latest training's data "
            f"{'>=' if due else '<'} every_n_sessions {every}"
        )
    if not alerts:
        return "none", "on_alert: the previous update raised no alert"
    if new_sessions < 1:
        return "none", f"on_alert: alerts {alerts}, but no new session since the latest training"
    return (
        "retrain",
        f"on_alert: the previous update raised {alerts}; {new_sessions} new session(s)",
    )
