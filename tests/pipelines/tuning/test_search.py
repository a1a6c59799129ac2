"""The Optuna search, really run: tiny LSTMs, one epoch, a few trials."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
import yaml
from tuning_support import FEATURE_LIST, MODELLING, features, storage, tuning

from ml_lstm.pipelines.tuning import nodes
from ml_lstm.pipelines.tuning.folds import first_test_row, fold_tables, search_rows

pytestmark = pytest.mark.slow


def trial_record(study_handle: dict, name: str) -> list[tuple]:
    study = optuna.load_study(study_name=name, storage=study_handle["storage"])
    return [
        (t.number, t.state.name, t.params, t.value, dict(t.intermediate_values))
        for t in study.trials
    ]


def test_a_three_trial_search_runs_end_to_end(tmp_path):
    table, handle, settings = features(), storage(tmp_path), tuning()

    trials = nodes.run_search(handle, table, FEATURE_LIST, MODELLING, settings)
    summary = nodes.summarise_search(handle, trials, MODELLING, settings, {"run_id": "r1"})
    scored = nodes.score_on_test_split(table, summary, MODELLING, settings)
    parameters = yaml.safe_load(nodes.write_tuned_parameters(scored))
    history, importance, parallel, png = nodes.plot_study(handle, trials, settings)

    assert (tmp_path / "tuning.db").stat().st_size > 0
    assert list(trials["number"]) == [0, 1, 2]
    assert set(trials["state"]) == {"COMPLETE"}
    assert list(trials["seed"]) == [3, 4, 5]  # tuning.seed + trial number
    best = scored["best"]
    assert best["relative_mae"] == trials["relative_mae"].min()
    assert len(best["fold_relative_mae"]) == 2
    assert best["relative_mae"] == pytest.approx(np.mean(best["fold_relative_mae"]))
    assert 0 <= best["dm_p_value"] <= 1
    assert scored["persistence"]["relative_mae"] == 1.0
    assert scored["beats_persistence_on_validation"] == (best["relative_mae"] < 1)
    test = scored["test_split"]["metrics"]
    assert {"lstm", "persistence", "drift", "sma", "linear", "evaluation"} <= set(test)
    assert test["evaluation"]["first"] > scored["search_rows"]["last"]
    price_scale = scored["test_split"]["price_scale"]
    assert price_scale["rows"] == test["evaluation"]["rows"]
    assert price_scale["persistence_mase"] == pytest.approx(test["persistence"]["mase"])
    assert parameters["modelling"] == best["modelling"]
    assert parameters["modelling"]["features"][0] == "log_return"
    assert history.data and set(png) == {
        "optimization_history.png",
        "param_importances.png",
        "parallel_coordinate.png",
    }
    assert importance.to_json() and parallel.to_json()


def test_rerunning_resumes_the_study_and_adds_trials(tmp_path):
    table, handle = features(), storage(tmp_path)
    nodes.run_search(handle, table, FEATURE_LIST, MODELLING, tuning(n_trials=1))
    first = trial_record(handle, "test")

    trials = nodes.run_search(handle, table, FEATURE_LIST, MODELLING, tuning(n_trials=1))

    assert list(trials["number"]) == [0, 1]
    assert trial_record(handle, "test")[:1] == first
    # The resumed sampler moves on: the new trial is not the first one again.
    assert trial_record(handle, "test")[1][2] != first[0][2]


def test_a_study_is_not_resumed_on_other_rows(tmp_path):
    handle = storage(tmp_path)
    nodes.run_search(handle, features(), FEATURE_LIST, MODELLING, tuning(n_trials=1))

    with pytest.raises(ValueError, match=r"searched with other \[.*'rows'\]"):
        nodes.run_search(handle, features(n=800), FEATURE_LIST, MODELLING, tuning(n_trials=1))


def test_pruning_stops_a_bad_trial_early(tmp_path):
    table, handle = features(), storage(tmp_path)
    settings = tuning(
        n_trials=2,
        epochs=3,
        patience=3,
        pruner={"type": "median", "n_startup_trials": 1, "n_warmup_steps": 0},
    )
    common = {
        "lookback": 8,
        "lstm_layers": 1,
        "lstm_units": 4,
        "dropout": 0.0,
        "batch_size": 64,
        "feature.signal": True,
        "feature.sma_5": False,
    }
    study = optuna.create_study(study_name="test", storage=handle["storage"])
    # A sound configuration first; then a price model that barely learns: its standardised
    # output stays near 0, so it forecasts the training mean price, far from the last close.
    study.enqueue_trial({**common, "target": "log_return", "learning_rate": 1e-2})
    study.enqueue_trial({**common, "target": "price", "learning_rate": 1e-3})

    trials = nodes.run_search(handle, table, FEATURE_LIST, MODELLING, settings)

    assert list(trials["state"]) == ["COMPLETE", "PRUNED"]
    good, bad = trials.to_dict("records")
    assert bad["relative_mae"] is None or bad["relative_mae"] != bad["relative_mae"]  # None/NaN
    assert good["epochs_reported"] == 2 * 3  # 2 folds x 3 epochs
    assert bad["epochs_reported"] == 1  # stopped after its first epoch


def test_search_rows_end_before_the_test_splits_purge_gap():
    from ml_lstm.pipelines.modelling.nodes import split_by_time

    table = features()
    labels = split_by_time(table, MODELLING)["split"].to_numpy()
    first_test = int(np.flatnonzero(labels == "test")[0])
    # modelling's purge gap before the test split: the purged run just before first_test.
    gap_start = first_test
    while labels[gap_start - 1] == "purged":
        gap_start -= 1

    searched = search_rows(table, MODELLING)

    assert first_test_row(len(table), MODELLING) == first_test
    assert labels[gap_start - 1] == "validation" and first_test - gap_start == 9
    assert len(searched) == gap_start  # every row before the test split's purge gap
    for fold in fold_tables(searched, MODELLING, tuning()):
        assert fold["timestamp"].iloc[-1] < table["timestamp"].iloc[gap_start]


def test_changing_every_test_split_row_leaves_the_trials_identical(tmp_path):
    table = features()
    start = first_test_row(len(table), MODELLING)
    changed = table.copy()
    rng = np.random.default_rng(99)
    for column in ("close", "volume", "log_return", "signal", "sma_5"):
        changed.loc[start:, column] = changed.loc[start:, column] * rng.uniform(
            0.5, 1.5, len(table) - start
        )
    inside = table.copy()
    inside.loc[start - 40 : start - 30, "close"] *= 1.1  # rows the search may see

    records = []
    for name, data in (("original", table), ("test_changed", changed), ("search_changed", inside)):
        handle = storage(tmp_path / name)
        nodes.run_search(handle, data, FEATURE_LIST, MODELLING, tuning(n_trials=1))
        records.append(trial_record(handle, "test"))

    assert records[1] == records[0]
    # The comparison can fail: a change the search sees changes the trials.
    assert [row[3] for row in records[2]] != [row[3] for row in records[0]]


def test_trials_run_in_parallel_processes_sharing_the_storage(tmp_path):
    handle = storage(tmp_path)

    trials = nodes.run_search(
        handle, features(), FEATURE_LIST, MODELLING, tuning(n_trials=2, n_jobs=2)
    )

    assert sorted(trials["number"]) == [0, 1]
    assert set(trials["state"]) == {"COMPLETE"}
    assert sorted(trials["seed"]) == [3, 4]
