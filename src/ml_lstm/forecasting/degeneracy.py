"""Degenerate forecasts: a model that (nearly) always says the same thing.

An LSTM trained on a random walk often learns to output one value: the same predicted
return on every bar (so its closes follow the last close by a fixed step), or the same
direction on every bar (on spot silver, early 2025, "down" for all 108 test bars). Its MAE
can still look close to persistence's, so the metrics alone hide it. Two checks, on the
forecasts of a range of bars:

- near constant: the spread (standard deviation) of the predicted moves
  (forecast - last close) is below `min_spread_ratio` times the spread of the actual moves;
- one direction: more than `max_one_direction_share` of the forecasts that move at all
  point the same way (up or down).

Used at training time (`evaluation.evaluate`) and by monitoring on the served model's
test range. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import numpy as np

# Defaults of `monitoring.degenerate`, also used at training time.
MIN_SPREAD_RATIO = 0.05
MAX_ONE_DIRECTION_SHARE = 0.95


def degeneracy(
    predicted: np.ndarray,
    last: np.ndarray,
    actual: np.ndarray,
    min_spread_ratio: float = MIN_SPREAD_RATIO,
    max_one_direction_share: float = MAX_ONE_DIRECTION_SHARE,
) -> dict:
    """The two checks on price forecasts, with the numbers behind them.

    Returns {"near_constant", "one_direction", "degenerate", "spread_ratio", "up_share",
    "moving_rows", "rows"}; rows without a forecast (NaN) are left out.
    """
    predicted, last, actual = (np.asarray(x, dtype="float64") for x in (predicted, last, actual))
    known = ~(np.isnan(predicted) | np.isnan(last) | np.isnan(actual))
    predicted_move, actual_move = (predicted - last)[known], (actual - last)[known]
    rows = int(known.sum())
    if rows < 2:
        return {
            "near_constant": False,
            "one_direction": False,
            "degenerate": False,
            "spread_ratio": None,
            "up_share": None,
            "moving_rows": 0,
            "rows": rows,
        }
    actual_spread = float(np.std(actual_move))
    spread_ratio = float(np.std(predicted_move)) / actual_spread if actual_spread > 0 else None
    moving = predicted_move[predicted_move != 0]
    up_share = float((moving > 0).mean()) if len(moving) else None
    near_constant = spread_ratio is not None and spread_ratio < min_spread_ratio
    one_direction = up_share is not None and (
        max(up_share, 1.0 - up_share) > max_one_direction_share
    )
    return {
        "near_constant": bool(near_constant),
        "one_direction": bool(one_direction),
        "degenerate": bool(near_constant or one_direction),
        "spread_ratio": spread_ratio,
        "up_share": up_share,
        "moving_rows": len(moving),
        "rows": rows,
    }


def describe(check: dict) -> str:
    """One sentence with the numbers, for a WARNING."""
    parts = []
    if check["near_constant"]:
        parts.append(
            f"near-constant: its predicted moves spread {check['spread_ratio']:.3f} times as "
            "much as the actual moves"
        )
    if check["one_direction"]:
        share = check["up_share"]
        way, count = ("up", share) if share >= 0.5 else ("down", 1 - share)
        parts.append(
            f"one direction: {count:.0%} of its {check['moving_rows']} moving forecasts say {way}"
        )
    return "; ".join(parts) if parts else "not degenerate"
