"""The study's charts: optimisation history, parameter importances and parallel coordinates,
as plotly figures (kedro-viz previews them) and matplotlib PNGs (for people)."""

from __future__ import annotations

import warnings
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import optuna
import plotly.graph_objects as go

CHARTS = ("optimization_history", "param_importances", "parallel_coordinate")


def _placeholder_plotly(title: str, reason: str) -> go.Figure:
    figure = go.Figure()
    figure.update_layout(title=f"{title}: {reason}")
    return figure


def _placeholder_png(title: str, reason: str) -> Any:
    figure, axes = plt.subplots(figsize=(6, 2))
    axes.axis("off")
    axes.text(0.5, 0.5, f"{title}\n{reason}", ha="center", va="center")
    return figure


def _complete(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))


def study_charts(study: optuna.Study) -> tuple[dict[str, go.Figure], dict[str, Any]]:
    """Plotly figures by chart name, and matplotlib figures by PNG file name."""
    plotly_charts: dict[str, go.Figure] = {}
    png: dict[str, Any] = {}
    complete = _complete(study)
    with warnings.catch_warnings():
        # optuna.visualization.matplotlib is marked experimental; nothing to act on.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for name in CHARTS:
            title = name.replace("_", " ")
            if complete < 2 and name != "optimization_history":
                reason = f"needs 2 complete trials, the study has {complete}"
                plotly_charts[name] = _placeholder_plotly(title, reason)
                png[f"{name}.png"] = _placeholder_png(title, reason)
                continue
            plotly_charts[name] = getattr(optuna.visualization, f"plot_{name}")(study)
            axes = getattr(optuna.visualization.matplotlib, f"plot_{name}")(study)
            figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
            figure.set_size_inches(9, 5)
            figure.tight_layout()
            png[f"{name}.png"] = figure
    return plotly_charts, png
