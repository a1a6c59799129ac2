"""Sliding windows over a feature matrix, as zero-copy views (no Python loops)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def window_view(matrix: np.ndarray, lookback: int) -> np.ndarray:
    """All windows of `lookback` consecutive rows: shape (n - lookback + 1, lookback, k).

    A read-only view on `matrix`: no row is copied until a caller indexes it.
    """
    windows = np.lib.stride_tricks.sliding_window_view(matrix, lookback, axis=0)
    return windows.transpose(0, 2, 1)


def window_ends(table: pd.DataFrame, labels: np.ndarray, split: str, lookback: int) -> np.ndarray:
    """Row positions of the last bar of every complete, labelled window ending in `split`."""
    ends = np.arange(lookback - 1, len(table))
    keep = (table["split"].to_numpy()[ends] == split) & ~np.isnan(labels[ends])
    return ends[keep]


def split_windows(
    table: pd.DataFrame, scaled: np.ndarray, labels: np.ndarray, split: str, lookback: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows whose last row belongs to `split`, their labels and their row positions.

    A window may reach back into the purge gap before its split (past data only); its
    label is the row's own, and the purge gap keeps every label inside its split.
    """
    ends = window_ends(table, labels, split, lookback)
    windows = window_view(scaled, lookback)[ends - (lookback - 1)]
    return windows, labels[ends], ends
