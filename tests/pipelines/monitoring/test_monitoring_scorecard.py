"""The live scorecard against a direct computation, and the plain verdict."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import pytest

from ml_lstm.pipelines.monitoring.nodes import build_live_scorecard
from ml_lstm.pipelines.monitoring.scoring import score_log

NVDA = {"symbol": "NVDA", "calendar": "XNYS"}
RUN_INFO = {"run_id": "r9", "started_at": "2024-04-01T12:00:00+00:00"}
MONITORING = {"window": 30}


def manifest(version: str, scale: float) -> dict:
    return {
        "version": version,
        "horizon": 1,
        "metrics": {
            "lstm": {
                "rows": 90,
                "mae": 0.9,
                "mase": 0.9 / scale,
                "relative_mae": 1.05,
                "directional_accuracy": 0.48,
                "directional_accuracy_ci95": [0.38, 0.58],
            },
            "persistence": {"mase": 0.857 / scale},
            "evaluation": {
                "mase_scale": scale,
                "first": "2024-02-01T14:30:00+00:00",
                "last": "2024-02-28T19:30:00+00:00",
                "lstm_beats_persistence": False,
                "diebold_mariano_vs_persistence": {"statistic": -0.8, "p_value": 0.42},
            },
        },
    }


def scored_log(seed: int = 3) -> pd.DataFrame:
    """40 predictions of two model versions over consecutive NYSE bars, all scored."""
    random = np.random.default_rng(seed)
    sessions = pd.bdate_range("2024-03-04", "2024-03-15")
    starts = [s + pd.Timedelta(hours=h, minutes=30) for s in sessions for h in range(13, 20)]
    starts = pd.DatetimeIndex(starts).tz_localize("UTC")  # EDT from March 10 is not needed here
    close = 100 + np.cumsum(random.normal(0, 1, len(starts)))
    bars = pd.DataFrame({"timestamp": starts, "close": close})
    rows = np.arange(20, 60)
    predicted = close[rows] + random.normal(0, 0.8, len(rows))
    log = pd.DataFrame(
        {
            "as_of_bar_time": starts[rows],
            "target_bar_time": starts[rows + 1],
            "predicted_close": predicted,
            "last_close": close[rows],
            "direction": "up",
            "model_version": np.where(rows < 45, "v1", "v2"),
            "run_id": "r",
        }
    )
    # The logged targets are the next bar of this table, not the calendar's around the DST
    # change: scoring keeps the logged target (the test checks the arithmetic, not dates).
    return score_log(log, bars, pd.Series(1, index=log.index), NVDA, "60min")


def direct(rows: pd.DataFrame, scales: np.ndarray) -> dict:
    abs_error = np.abs(rows["actual_close"] - rows["predicted_close"]).to_numpy()
    persistence = np.abs(rows["actual_close"] - rows["last_close"]).to_numpy()
    moved = (rows["predicted_close"] - rows["last_close"]).to_numpy()
    actual_move = (rows["actual_close"] - rows["last_close"]).to_numpy()
    hits, n = int((np.sign(moved) == np.sign(actual_move)).sum()), len(rows)
    z, share = 1.959963984540054, hits / n
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    gain = persistence - abs_error
    statistic = gain.mean() / math.sqrt(((gain - gain.mean()) ** 2).mean() / n)
    return {
        "mae": abs_error.mean(),
        "mase": (abs_error / scales).mean(),
        "relative_mae": abs_error.mean() / persistence.mean(),
        "directional_accuracy": share,
        "ci": [centre - half, centre + half],
        "dm_p": math.erfc(abs(statistic) / math.sqrt(2)),
    }


def test_scorecard_matches_a_direct_computation():
    scored = scored_log()
    manifests = {"v1": manifest("v1", 0.8), "v2": manifest("v2", 1.25)}

    card = build_live_scorecard(scored, manifests, NVDA, MONITORING, {"horizon": 1}, RUN_INFO)

    scales = np.where(scored["model_version"] == "v1", 0.8, 1.25)
    for version, scale in (("v1", 0.8), ("v2", 1.25)):
        own = scored[scored["model_version"] == version]
        expected, live = direct(own, np.full(len(own), scale)), card["versions"][version]["live"]
        assert live["rows"] == len(own)
        assert live["mae"] == pytest.approx(expected["mae"])
        assert live["mase"] == pytest.approx(expected["mase"])
        assert live["relative_mae"] == pytest.approx(expected["relative_mae"])
        assert live["directional_accuracy"] == pytest.approx(expected["directional_accuracy"])
        assert live["directional_accuracy_ci95"] == pytest.approx(expected["ci"])
        assert live["diebold_mariano_vs_persistence"]["p_value"] == pytest.approx(expected["dm_p"])
        assert card["versions"][version]["test"]["relative_mae"] == 1.05
        assert card["versions"][version]["test"]["diebold_mariano_p"] == 0.42
    # The last 30 rows mix both versions, each error scaled by its own model's naive MAE.
    window = direct(scored.tail(30), scales[-30:])
    assert card["last_window"]["rows"] == 30
    assert card["last_window"]["mase"] == pytest.approx(window["mase"])
    assert card["last_window"]["mae"] == pytest.approx(window["mae"])
    # The served model is the latest prediction's: v2, with its 15 rows.
    assert card["served_model"] == "v2" and card["served"]["live"]["rows"] == 15
    assert card["counts"] == {
        "logged": 40,
        "scored": 40,
        "pending": 0,
        "missing_bar": 0,
        "duplicates": 0,
        "by_source": {"batch": 40},
    }


def test_repeats_count_once_and_the_verdict_is_logged(caplog):
    scored = scored_log()
    repeated = pd.concat([scored, scored.tail(5)], ignore_index=True)
    repeated["log_row"] = range(len(repeated))
    repeated["duplicate"] = [False] * 40 + [True] * 5
    manifests = {"v1": manifest("v1", 0.8), "v2": manifest("v2", 1.25)}

    with caplog.at_level(logging.INFO):
        once = build_live_scorecard(scored, manifests, NVDA, MONITORING, {"horizon": 1}, RUN_INFO)
        twice = build_live_scorecard(
            repeated, manifests, NVDA, MONITORING, {"horizon": 1}, RUN_INFO
        )

    assert twice["last_window"] == once["last_window"]
    assert twice["counts"]["duplicates"] == 5 and twice["counts"]["scored"] == 40
    window, served = once["last_window"], once["served"]["live"]
    assert window["rows"] == 30 and served["rows"] == 15
    assert (
        f"NVDA live: the last 30 scored predictions "
        f"{'BEAT' if window['beats_persistence'] else 'do NOT beat'} persistence (MAE "
        f"{window['mae']:.4f} vs {window['persistence_mae']:.4f}, relative "
        f"{window['relative_mae']:.3f}; Diebold-Mariano p = "
        f"{window['diebold_mariano_vs_persistence']['p_value']:.3g}" in caplog.text
    )
    beats = "BEAT" if served["beats_persistence"] else "do NOT beat"
    assert f"Served model v2, on its 15 scored: {beats} persistence" in caplog.text


def test_no_scored_prediction_yet_says_so():
    scored = scored_log().assign(
        status="pending", actual_close=np.nan, abs_error=np.nan, persistence_abs_error=np.nan
    )
    card = build_live_scorecard(scored, {}, NVDA, MONITORING, {"horizon": 1}, RUN_INFO)
    assert card["served"]["live"] == {"rows": 0}
    assert "NVDA: no prediction scored yet (40 pending)" in card["verdict"]
