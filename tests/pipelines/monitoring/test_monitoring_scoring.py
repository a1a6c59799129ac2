"""Scoring the prediction log against the bars, on a hand-checked example."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from ml_lstm.calendars import bar_after
from ml_lstm.pipelines.monitoring.scoring import score_log

NVDA = {"symbol": "NVDA", "calendar": "XNYS"}


def xnys_bars(*drop: str) -> pd.DataFrame:
    """Hourly NYSE bars of 2024-03-20 and 21 (EDT: 13:30..19:30 UTC), closes 100, 101, ..."""
    starts = [
        pd.Timestamp(f"2024-03-{day}T{hour}:30Z") for day in (20, 21) for hour in range(13, 20)
    ]
    bars = pd.DataFrame({"timestamp": starts, "close": 100.0 + np.arange(len(starts))})
    return bars[~bars["timestamp"].isin([pd.Timestamp(when) for when in drop])]


def log_row(as_of: str, target: str, predicted: float, last: float, **extra) -> dict:
    direction = "up" if predicted > last else "down" if predicted < last else "flat"
    return {
        "as_of_bar_time": as_of,
        "target_bar_time": target,
        "predicted_close": predicted,
        "last_close": last,
        "direction": direction,
        "model_version": "v1",
        "run_id": "r1",
        **extra,
    }


def hand_log() -> pd.DataFrame:
    # Bar closes: 2024-03-20 19:30 -> 106, 2024-03-21 13:30 -> 107, 14:30 -> 108,
    # 15:30 -> 109, 16:30 -> 110 (dropped below: a data gap), 19:30 -> 113.
    return pd.DataFrame(
        [
            log_row("2024-03-20T19:30:00+00:00", "2024-03-21T13:30:00+00:00", 106.5, 106.0),
            log_row("2024-03-21T13:30:00+00:00", "2024-03-21T14:30:00+00:00", 106.0, 107.0),
            # The first row again (an update run twice): kept, marked a repeat.
            log_row("2024-03-20T19:30:00+00:00", "2024-03-21T13:30:00+00:00", 106.5, 106.0),
            # A live row predicting no move: scored, but no direction to hit or miss.
            log_row(
                "2024-03-21T14:30:00+00:00",
                "2024-03-21T15:30:00+00:00",
                108.0,
                108.0,
                source="live",
                latency_ms=41.5,
            ),
            log_row("2024-03-21T15:30:00+00:00", "2024-03-21T16:30:00+00:00", 109.5, 109.0),
            # The next session's first bar is not in yet.
            log_row("2024-03-21T19:30:00+00:00", "2024-03-22T13:30:00+00:00", 112.0, 113.0),
        ]
    )


def score(log: pd.DataFrame, bars: pd.DataFrame | None = None) -> pd.DataFrame:
    bars = xnys_bars("2024-03-21T16:30Z") if bars is None else bars
    return score_log(log, bars, pd.Series(1, index=log.index), NVDA, "60min")


def test_each_row_is_scored_against_its_target_bar_by_hand():
    scored = score(hand_log())

    assert scored["status"].tolist() == [
        "scored",
        "scored",
        "scored",
        "scored",
        "missing_bar",
        "pending",
    ]
    assert scored["actual_close"].iloc[:4].tolist() == [107.0, 108.0, 107.0, 109.0]
    assert scored["error"].iloc[:4].tolist() == [0.5, 2.0, 0.5, 1.0]  # actual - forecast
    assert scored["abs_error"].iloc[:4].tolist() == [0.5, 2.0, 0.5, 1.0]
    # Persistence forecasts the last close: its error on the same target bar.
    assert scored["persistence_error"].iloc[:4].tolist() == [1.0, 1.0, 1.0, 1.0]
    assert scored["persistence_abs_error"].iloc[:4].tolist() == [1.0, 1.0, 1.0, 1.0]
    # up and up: hit; down but up: miss; repeat: hit; no predicted move: no direction.
    hits = scored["direction_hit"].tolist()
    assert hits[:3] == [True, False, True] and pd.isna(hits[3])
    assert scored[["actual_close", "error"]].iloc[4:].isna().all().all()
    assert scored["duplicate"].tolist() == [False, False, True, False, False, False]
    # No source column in most rows: batch; the live row stays live.
    assert scored["source"].tolist() == ["batch", "batch", "batch", "live", "batch", "batch"]
    assert scored["log_row"].tolist() == list(range(6))
    # The live loop's latency travels along; batch rows have none.
    assert scored["latency_ms"].iloc[3] == 41.5 and scored["latency_ms"].drop(index=3).isna().all()


def test_a_log_without_a_source_column_is_batch_and_is_not_changed():
    log = hand_log().drop(columns="source")
    before = log.copy()

    scored = score(log)

    assert set(scored["source"]) == {"batch"}
    pd.testing.assert_frame_equal(log, before)


def test_the_target_is_the_calendar_bar_after_as_inference_computes_it(caplog):
    log = hand_log().drop(columns="source")
    for as_of, target in zip(log["as_of_bar_time"], log["target_bar_time"], strict=True):
        assert bar_after(pd.Timestamp(as_of), 1, NVDA, "60min") == pd.Timestamp(target)
    with caplog.at_level(logging.WARNING):
        score(log)
    assert "calendar does not give" not in caplog.text

    # A row whose target is not the calendar's next bar: scored against the logged target
    # (the bar it was about), with a warning naming the row.
    log.loc[1, "target_bar_time"] = "2024-03-21T15:30:00+00:00"
    with caplog.at_level(logging.WARNING):
        scored = score(log)
    assert "first: log row 1" in caplog.text
    assert scored["actual_close"].iloc[1] == 109.0


def test_a_log_without_a_needed_column_is_a_clear_error():
    with pytest.raises(ValueError, match=r"no column \['last_close'\]"):
        score(hand_log().drop(columns="last_close"))
