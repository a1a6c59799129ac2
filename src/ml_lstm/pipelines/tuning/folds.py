"""The rows a search may see, and its walk-forward folds inside them.

The test split is the one `modelling`'s `split_by_time` makes: after the train and
validation fractions of the feature table, behind a purge gap of `lookback + horizon` bars.
A search sees only the rows before that gap (`search_rows`), so no label, window, scaler or
early-stopping decision of any trial touches a test-split price.

Inside those rows, `tuning.folds` rolling-origin folds (`splits.walk_forward_bounds` with
`tuning.fold_split`) each have a training block, an early-stopping block (labelled
`validation`) and a scoring block (labelled `test` in the fold's table, as the forecasting
core expects; it always lies before the real test split), with purge gaps between them.
"""

from __future__ import annotations

import pandas as pd

from ml_lstm.forecasting.splits import (
    label_splits,
    purge_gap,
    split_labels,
    split_sizes,
    walk_forward_bounds,
)


def first_test_row(n_rows: int, modelling: dict) -> int:
    """Position of the first test-split row, exactly as `split_by_time` places it."""
    train, validation, _ = split_sizes(n_rows, modelling["split"])
    return train + validation


def search_rows(features: pd.DataFrame, modelling: dict) -> pd.DataFrame:
    """The feature table's rows before the test split's purge gap (a copy)."""
    start = first_test_row(len(features), modelling)
    end = start - purge_gap(modelling["lookback"], modelling["horizon"])
    if end <= 0:
        raise ValueError(
            f"The feature table has {len(features)} rows: nothing is left before the test "
            "split for a search. Ingest a longer history."
        )
    return features.iloc[:end].reset_index(drop=True)


def fold_tables(search: pd.DataFrame, modelling: dict, tuning: dict) -> list[pd.DataFrame]:
    """One labelled table per walk-forward fold, oldest first (see the module docstring).

    With `tuning.fold_train_bars` set, each fold trains on at most that many bars before its
    early-stopping block (a rolling window) instead of everything before it.
    """
    n, folds = len(search), int(tuning["folds"])
    gap = purge_gap(modelling["lookback"], modelling["horizon"])
    min_rows = modelling["lookback"] + modelling["horizon"] + 1
    cap = tuning.get("fold_train_bars")
    tables = []
    for fold, (train_end, validation_end, test_end) in enumerate(
        walk_forward_bounds(n, tuning["fold_split"], folds), start=1
    ):
        if train_end - gap < min_rows:
            raise ValueError(
                f"Walk-forward fold {fold} of {folds} leaves {train_end - gap} training rows "
                f"out of {n} search rows: lower tuning.folds or ingest a longer history."
            )
        first = max(0, train_end - int(cap)) if cap else 0
        labels = split_labels(n, train_end, validation_end, test_end, gap)[first:]
        rows = search.iloc[first:].reset_index(drop=True)
        tables.append(label_splits(rows, labels, min_rows))
    return tables
