"""The search's rows and folds on the shared silver futures file (skipped without
../shared/data): every fold ends before the test split that modelling would test on."""

from __future__ import annotations

import pytest
from support import PROJECT_ROOT, SHARED_DATA, requires_shared_data
from tuning_support import tuning

from ml_lstm.pipelines.tuning.folds import first_test_row, fold_tables, search_rows

pytestmark = [requires_shared_data, pytest.mark.shared_data]

SILVER = SHARED_DATA / "silver-futures-hourly" / "SI_futures_1h.csv"


def test_silver_folds_end_before_the_test_split(project_parameters):
    import sys

    sys.path.insert(0, str(PROJECT_ROOT))
    from benchmarks.evaluate_real_data import session_bars
    from ml_lstm.pipelines.data_processing.nodes import add_features

    processing, modelling = project_parameters["data_processing"], project_parameters["modelling"]
    instrument = project_parameters["instruments"]["xagusd"]
    features, _ = add_features(
        session_bars(SILVER, instrument, processing["frequency"]), instrument, processing
    )
    first_test = features["timestamp"].iloc[first_test_row(len(features), modelling)]

    searched = search_rows(features, modelling)
    folds = fold_tables(searched, modelling, tuning(folds=3, fold_train_bars=3000))

    assert len(searched) == first_test_row(len(features), modelling) - 25  # lookback 24 + 1
    assert searched["timestamp"].iloc[-1] < first_test
    assert [len(fold) <= len(searched) for fold in folds] == [True] * 3
    for fold in folds:
        assert fold["timestamp"].iloc[-1] < first_test
        assert (fold["split"] == "train").sum() <= 3000
