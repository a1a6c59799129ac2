"""Sliding windows over a feature matrix, as zero-copy views (no Python loops)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def target_values(table: pd.DataFrame, target: str, horizon: int) -> np.ndarray:
    """The label of each row: what happens `horizon` bars after it (NaN at the end)."""
    close = table["close"].to_numpy(dtype="float64")
    future = np.full_like(close, np.nan)
    future[: len(close) - horizon] = close[horizon:]
    if target == "log_return":
        return np.log(future / close)
    if target == "price":
        return future
    raise ValueError(f"Unknown modelling.target {target!r}: expected 'log_return' or 'price'.")


def window_view(matrix: np.ndarray, lookback: int) -> np.ndarray:
    """All windows of `lookback` consecutive rows: shape (n - lookback + 1, lookback, k)."""
    windows = np.lib.stride_tricks.sliding_window_view(matrix, lookback, axis=0)
    return windows.transpose(0, 2, 1)


def split_windows(
    table: pd.DataFrame, scaled: np.ndarray, labels: np.ndarray, split: str, lookback: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows whose last row belongs to `split`, their labels and their row positions.

    A window may reach back into an earlier split (past data); its label is the row's own,
    which the split boundaries keep inside the same split.
    """
    windows = window_view(scaled, lookback)
    ends = np.arange(lookback - 1, len(table))
    keep = (table["split"].to_numpy()[ends] == split) & ~np.isnan(labels[ends])
    return windows[keep], labels[ends][keep], ends[keep]
