"""What a search tells its user: the trials table, the summary, the verdict, an adoptable
parameters file."""

from __future__ import annotations

import logging
from typing import Any

import optuna
import pandas as pd
import yaml

from .search_space import modelling_for, modelling_overrides

logger = logging.getLogger(__name__)

SIGNIFICANCE = 0.05


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, objective (complete trials), the last per-epoch
    validation figure, seed, DM p, timing and parameters."""
    rows = []
    for trial in study.trials:
        attributes = trial.user_attrs
        complete = trial.state == optuna.trial.TrialState.COMPLETE
        steps = trial.intermediate_values
        rows.append(
            {
                "number": trial.number,
                "state": trial.state.name,
                # Optuna gives a pruned trial its last per-epoch figure as value: that is an
                # early-stopping block's figure, not the objective, so it is kept apart.
                "relative_mae": trial.value if complete else None,
                "last_epoch_relative_mae": steps[max(steps)] if steps else None,
                "relative_mae_std": attributes.get("relative_mae_std"),
                "dm_p_value": attributes.get("dm_p_value"),
                "seed": attributes.get("seed"),
                "epochs_reported": len(trial.intermediate_values),
                "started": trial.datetime_start.isoformat() if trial.datetime_start else None,
                "seconds": (
                    (trial.datetime_complete - trial.datetime_start).total_seconds()
                    if trial.datetime_complete and trial.datetime_start
                    else None
                ),
                **{f"param.{name}": value for name, value in trial.params.items()},
            }
        )
    return pd.DataFrame(rows)


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """The complete trial with the lowest objective; an error when none completed."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        raise ValueError(
            f"Study {study.study_name!r} has no complete trial (all pruned or failed): run "
            "more trials (tuning.n_trials) or loosen tuning.pruner."
        )
    return min(complete, key=lambda trial: trial.value)


def summarise(
    study: optuna.Study, trials: pd.DataFrame, modelling: dict, tuning: dict, run_info: dict
) -> dict[str, Any]:
    """The best configuration, its validation figure with spread, and persistence's."""
    best = best_trial(study)
    attributes = best.user_attrs
    tuned = modelling_for(best.params, modelling, tuning["space"])
    beats = best.value < 1.0
    significant = beats and attributes["dm_p_value"] < SIGNIFICANCE
    setup = study.user_attrs.get("setup", {})
    return {
        "study_name": study.study_name,
        "run_id": run_info.get("run_id"),
        "git_commit": run_info.get("git_commit"),
        "objective": (
            "mean over walk-forward folds of the LSTM's MAE / persistence's MAE on each "
            "fold's scoring block, inside the rows before the test split's purge gap"
        ),
        "search_rows": {key: setup.get(key) for key in ("first", "last", "rows")},
        "folds": tuning["folds"],
        "trials": trials["state"].value_counts().to_dict() | {"total": len(trials)},
        "best": {
            "trial": best.number,
            "seed": attributes["seed"],
            "params": best.params,
            "modelling": modelling_overrides(tuned),
            "relative_mae": best.value,
            "relative_mae_std": attributes["relative_mae_std"],
            "fold_relative_mae": attributes["fold_relative_mae"],
            "pooled_rows": attributes["rows"],
            "dm_statistic": attributes["dm_statistic"],
            "dm_p_value": attributes["dm_p_value"],
        },
        "persistence": {"relative_mae": 1.0, "note": "persistence's MAE over itself"},
        "beats_persistence_on_validation": beats,
        "significant_at_5_percent": significant,
    }


def validation_verdict(summary: dict, instrument_label: str = "") -> str:
    """One plain sentence: does the best configuration beat persistence on validation?"""
    best, total = summary["best"], summary["trials"]["total"]
    figure = (
        f"walk-forward validation relative MAE {best['relative_mae']:.4f} "
        f"± {best['relative_mae_std']:.4f} over {summary['folds']} folds (persistence = 1)"
    )
    test = f"Diebold-Mariano p = {best['dm_p_value']:.3g} on {best['pooled_rows']} pooled rows"
    prefix = f"Tuning{' ' + instrument_label if instrument_label else ''}: "
    if not summary["beats_persistence_on_validation"]:
        return (
            f"{prefix}NO configuration beats persistence on validation: the best of {total} "
            f"trials (trial {best['trial']}) has {figure}."
        )
    strength = "significantly" if summary["significant_at_5_percent"] else "but NOT significantly"
    return (
        f"{prefix}the best of {total} trials (trial {best['trial']}) beats persistence on "
        f"validation, {strength} at 5% ({test}): {figure}. It was selected as the best on "
        "these rows, so this is optimistic; the test-split figure is the honest one."
    )


def test_verdict(test_split: dict) -> str:
    """One plain sentence on the best configuration's single test-split evaluation, on the
    price scale the search optimised (a direction model by its expected move)."""
    scores = test_split["price_scale"]
    beats = scores["lstm_mase"] < scores["persistence_mase"]
    significant = scores["dm_p_value"] < SIGNIFICANCE
    return (
        f"Tuned configuration on the test split ({scores['rows']} rows, computed once after "
        f"the search): MASE {scores['lstm_mase']:.4f} vs persistence "
        f"{scores['persistence_mase']:.4f} on the same rows, "
        f"{'BEATS' if beats else 'does NOT beat'} persistence (Diebold-Mariano p = "
        f"{scores['dm_p_value']:.3g}, {'significant' if significant else 'NOT significant'} "
        "at 5%)."
    )


def tuned_parameters_text(summary: dict) -> str:
    """A parameters file that sets the best configuration (soft-merged over conf/base)."""
    best = summary["best"]
    header = [
        f"# Generated by `kedro run --pipelines tuning` (study {summary['study_name']!r},",
        f"# trial {best['trial']} of {summary['trials']['total']}, run {summary['run_id']}).",
        f"# Walk-forward validation relative MAE {best['relative_mae']:.4f} "
        f"± {best['relative_mae_std']:.4f} (persistence = 1).",
    ]
    test = summary.get("test_split")
    if test:
        scores = test["price_scale"]
        header.append(
            f"# Test split, once: MASE {scores['lstm_mase']:.4f} vs persistence "
            f"{scores['persistence_mase']:.4f} (Diebold-Mariano p = {scores['dm_p_value']:.3g})."
        )
    header += [
        "# Adopt it by copying this file to conf/local/ (or conf/<env>/): it overrides only",
        "# these keys of conf/base/parameters_modelling.yml, for every instrument.",
    ]
    body = yaml.safe_dump({"modelling": best["modelling"]}, sort_keys=False)
    return "\n".join(header) + "\n" + body
