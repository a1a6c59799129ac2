"""Time-ordered splits with purge gaps: train, validation, test, never shuffled.

The `lookback + horizon` rows before each boundary are `purged`: with this gap no training
label (close[t+h]) is a price any validation or test window sees, and likewise between
validation and test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml_lstm.calendars import utc

SPLITS = ("train", "validation", "test")


def purge_gap(lookback: int, horizon: int) -> int:
    """Bars dropped before each split boundary."""
    return lookback + horizon


def split_labels(
    n_rows: int, train_end: int, validation_end: int, test_end: int, gap: int
) -> np.ndarray:
    """`train`, `purged`, `validation`, `purged`, `test`, then `unused` after `test_end`."""
    labels = np.full(n_rows, "unused", dtype=object)
    labels[:train_end] = "train"
    labels[train_end:validation_end] = "validation"
    labels[validation_end:test_end] = "test"
    for boundary in (train_end, validation_end):
        labels[max(0, boundary - gap) : boundary] = "purged"
    return labels


def split_sizes(n_rows: int, fractions: dict) -> tuple[int, int, int]:
    """Rows of train, validation and test for `fractions` (which must sum to 1)."""
    total = sum(fractions[name] for name in SPLITS)
    if not np.isclose(total, 1.0):
        raise ValueError(f"modelling.split fractions must sum to 1, got {total}.")
    train = int(n_rows * fractions["train"])
    validation = int(n_rows * fractions["validation"])
    return train, validation, n_rows - train - validation


def walk_forward_bounds(n_rows: int, fractions: dict, folds: int) -> list[tuple[int, int, int]]:
    """(train_end, validation_end, test_end) of each rolling-origin fold, oldest first.

    Fold k keeps the main split's validation and test sizes and ends its test block
    (folds-1-k) test blocks before the end (an expanding training window); the last fold is
    the main split.
    """
    _, validation_size, test_size = split_sizes(n_rows, fractions)
    bounds = []
    for fold in range(folds):
        test_end = n_rows - (folds - 1 - fold) * test_size
        validation_end = test_end - test_size
        bounds.append((validation_end - validation_size, validation_end, test_end))
    return bounds


def label_splits(features: pd.DataFrame, labels: np.ndarray, min_rows: int) -> pd.DataFrame:
    """A copy of `features` with UTC timestamps and a `split` column.

    Refuses unordered timestamps and any split with fewer than `min_rows` rows.
    """
    table = features.copy()
    table["timestamp"] = utc(table["timestamp"])
    if not table["timestamp"].is_monotonic_increasing:
        raise ValueError("The feature table's timestamps must be strictly increasing.")
    table["split"] = labels
    for name in SPLITS:
        count = int((labels == name).sum())
        if count < min_rows:
            raise ValueError(
                f"The {name} split has {count} rows, fewer than lookback + horizon + 1 = "
                f"{min_rows}: use a longer feature table or change modelling.split."
            )
    return table


def label_served_splits(features: pd.DataFrame, splits: dict) -> pd.DataFrame:
    """The feature table labelled with a stored model's own splits (its manifest's).

    `train` are the model's training rows (the baselines are fitted on them); `test` runs
    from the model's first test bar to the end of the table, so bars that arrived after
    training are forecast too; everything in between is `purged`.
    """
    times = features["timestamp"]
    train = (times >= utc(splits["train"]["first"])) & (times <= utc(splits["train"]["last"]))
    test = times >= utc(splits["test"]["first"])
    table = features.copy()
    table["split"] = np.select([train, test], ["train", "test"], default="purged")
    return table
