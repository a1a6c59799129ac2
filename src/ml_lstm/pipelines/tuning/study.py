"""The Optuna study: its SQLite storage, sampler, pruner, and trials run in processes.

A study lives in one SQLite file (`OptunaStudyDataset`) and is resumed by name: each run
adds `tuning.n_trials` trials. With `tuning.n_jobs` > 1 the trials run in that many worker
processes (spawned: TensorFlow and its global seed are per process), all sharing the
storage. Each trial trains with its own seed, `tuning.seed + trial.number`, recorded on the
trial. The study remembers what it searched (the rows, folds and space): resuming it on
other rows or another space is refused, since its trials would not be comparable.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import optuna
import pandas as pd

from ml_lstm.forecasting.trained_graphs import released_training_graphs

from .objective import evaluate_config
from .search_space import check_space, modelling_for, suggest

logger = logging.getLogger(__name__)

SETUP_ATTRIBUTE = "setup"


def make_pruner(settings: dict) -> optuna.pruners.BasePruner:
    """`median` (MedianPruner), `hyperband` (HyperbandPruner) or `none`."""
    kind = settings.get("type", "median")
    if kind == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=int(settings.get("n_startup_trials", 5)),
            n_warmup_steps=int(settings.get("n_warmup_steps", 2)),
        )
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=3)
    if kind == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"tuning.pruner.type is {kind!r}: expected median, hyperband or none.")


def open_study(storage: str, study_name: str, tuning: dict, worker: int = 0) -> optuna.Study:
    """Creates or resumes the study; the sampler's seed moves on with the trials already run
    (and the worker), so a resumed search samples new points, reproducibly."""
    existing = _trial_count(storage, study_name)
    sampler = optuna.samplers.TPESampler(
        seed=int(tuning["seed"]) + existing + 1000 * worker,
        n_startup_trials=int(tuning.get("n_startup_trials", 10)),
    )
    return optuna.create_study(
        storage=storage,
        study_name=study_name,
        direction="minimize",
        sampler=sampler,
        pruner=make_pruner(tuning.get("pruner", {})),
        load_if_exists=True,
    )


def _trial_count(storage: str, study_name: str) -> int:
    try:
        return len(optuna.load_study(study_name=study_name, storage=storage).trials)
    except KeyError:
        return 0


def search_setup(search: pd.DataFrame, modelling: dict, tuning: dict, feature_list: dict) -> dict:
    """What makes two trials comparable: the rows searched, the folds and the space."""
    return json.loads(
        json.dumps(
            {
                "rows": len(search),
                "first": search["timestamp"].iloc[0].isoformat(),
                "last": search["timestamp"].iloc[-1].isoformat(),
                "horizon": modelling["horizon"],
                "folds": tuning["folds"],
                "fold_split": tuning["fold_split"],
                "fold_train_bars": tuning.get("fold_train_bars"),
                "epochs": tuning["epochs"],
                "space": tuning["space"],
                "features": feature_list["features"],
            },
            default=str,
        )
    )


def check_setup(study: optuna.Study, setup: dict) -> None:
    """Records the setup on a new study; refuses to resume one searched on another."""
    stored = study.user_attrs.get(SETUP_ATTRIBUTE)
    if stored is None:
        study.set_user_attr(SETUP_ATTRIBUTE, setup)
        return
    keys = setup.keys() | stored.keys()
    changed = sorted(key for key in keys if setup.get(key) != stored.get(key))
    if changed:
        raise ValueError(
            f"Study {study.study_name!r} was searched with other {changed} "
            f"(stored {[stored.get(key) for key in changed]}, now "
            f"{[setup.get(key) for key in changed]}): its trials are not comparable. Start a "
            "new study with --params tuning.study_name=<new name>, or delete its database."
        )


def objective(search: pd.DataFrame, modelling: dict, tuning: dict, feature_list: dict) -> Any:
    """The function Optuna calls per trial."""

    def run(trial: optuna.Trial) -> float:
        choices = suggest(trial, tuning["space"], feature_list)
        seed = int(tuning["seed"]) + trial.number
        trial.set_user_attr("seed", seed)
        epochs = int(tuning["epochs"])

        def on_epoch(fold: int, epoch: int, value: float) -> None:
            trial.report(value, fold * epochs + epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"fold {fold + 1}, epoch {epoch + 1}: {value:.4f}")

        # Trials run one after another in this process: each trial's models leave no
        # traced graph behind for the rest of the search.
        with released_training_graphs():
            result = evaluate_config(
                search, modelling_for(choices, modelling, tuning["space"]), tuning, seed, on_epoch
            )
        for key, value in result.items():
            if key != "relative_mae":
                trial.set_user_attr(key, value)
        return result["relative_mae"]

    return run


def run_trials(
    storage: str,
    study_name: str,
    search: pd.DataFrame,
    modelling: dict,
    tuning: dict,
    feature_list: dict,
    n_trials: int,
    worker: int = 0,
) -> int:
    """Adds `n_trials` trials to the study in this process; returns how many ran."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(storage, study_name, tuning, worker)
    study.optimize(
        objective(search, modelling, tuning, feature_list),
        n_trials=n_trials,
        timeout=tuning.get("timeout_s"),
        gc_after_trial=True,
        catch=(),
    )
    return n_trials


def search(
    storage: str,
    study_name: str,
    search_table: pd.DataFrame,
    modelling: dict,
    tuning: dict,
    feature_list: dict,
) -> optuna.Study:
    """Adds `tuning.n_trials` trials, over `tuning.n_jobs` processes, and returns the study."""
    check_space(tuning["space"], feature_list)
    study = open_study(storage, study_name, tuning)
    check_setup(study, search_setup(search_table, modelling, tuning, feature_list))
    n_trials, n_jobs = int(tuning["n_trials"]), max(1, int(tuning.get("n_jobs", 1)))
    before = len(study.trials)
    if n_jobs == 1:
        run_trials(storage, study_name, search_table, modelling, tuning, feature_list, n_trials)
    else:
        shares = [n_trials // n_jobs + (worker < n_trials % n_jobs) for worker in range(n_jobs)]
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=n_jobs, mp_context=context) as pool:
            futures = [
                pool.submit(
                    run_trials,
                    storage,
                    study_name,
                    search_table,
                    modelling,
                    tuning,
                    feature_list,
                    share,
                    worker,
                )
                for worker, share in enumerate(shares)
                if share
            ]
            for future in futures:
                future.result()
    study = optuna.load_study(study_name=study_name, storage=storage)
    logger.info(
        "Study %r: %d trials added (%d in all) over %d process(es).",
        study_name,
        len(study.trials) - before,
        len(study.trials),
        n_jobs,
    )
    return study
