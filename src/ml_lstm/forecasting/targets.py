"""What the network forecasts (the target) and how a forecast becomes a price."""

from __future__ import annotations

import numpy as np
import pandas as pd

TARGETS = ("log_return", "price", "direction")


def check_target(target: str) -> None:
    """Refuses a target the core does not know."""
    if target not in TARGETS:
        raise ValueError(f"Unknown modelling.target {target!r}: expected one of {list(TARGETS)}.")


def target_values(table: pd.DataFrame, target: str, horizon: int) -> np.ndarray:
    """The label of each row: what happens `horizon` bars after it (NaN at the end).

    `log_return` is log(close[t+h] / close[t]), `price` is close[t+h], and `direction` is
    1.0 when close[t+h] > close[t], else 0.0 (a flat move counts as "not up").
    """
    check_target(target)
    close = table["close"].to_numpy(dtype="float64")
    future = np.full_like(close, np.nan)
    future[: len(close) - horizon] = close[horizon:]
    if target == "log_return":
        return np.log(future / close)
    if target == "price":
        return future
    return np.where(np.isnan(future), np.nan, (future > close).astype("float64"))


def to_price(values: np.ndarray, target: str, last_close: np.ndarray) -> np.ndarray:
    """Target-unit forecasts as closes (NaN for the direction target, which has no price)."""
    if target == "log_return":
        return last_close * np.exp(values)
    if target == "price":
        return values
    return np.full_like(last_close, np.nan)


def direction_of(value: float, predicted_close: float, last_close: float, target: str) -> str:
    """ "up", "down" or "flat": P(up) > 0.5 for the direction target, else the price move."""
    if target == "direction":
        return "up" if value > 0.5 else "down"
    if predicted_close > last_close:
        return "up"
    return "down" if predicted_close < last_close else "flat"
