"""The live scorecard as a chart: a matplotlib Figure (PNG) and a plotly Figure (kedro-viz).

Top: each scored prediction's forecast and persistence's (the last close) against the
realised close, pending predictions marked at their forecast. Bottom: the rolling mean
absolute error of the model and of persistence over the scorecard's window. Built with the
object-oriented matplotlib API (no GUI backend).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ml_lstm.calendars import utc

from .scorecard import countable
from .scoring import PENDING

if TYPE_CHECKING:  # matplotlib and plotly cost ~0.5 s: imported where a chart is drawn,
    # not when Kedro registers the pipelines (every `kedro` command does that).
    import plotly.graph_objects as go
    from matplotlib.figure import Figure


def _series(scored: pd.DataFrame, window: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    table = scored.assign(target_bar_time=utc(scored["target_bar_time"]))
    rows = countable(table).reset_index(drop=True)
    rolling = max(1, min(window, len(rows)))
    rows["model_mae"] = rows["abs_error"].rolling(rolling, min_periods=1).mean()
    rows["persistence_mae"] = rows["persistence_abs_error"].rolling(rolling, min_periods=1).mean()
    pending = table[(table["status"] == PENDING) & ~table["duplicate"].astype(bool)]
    return rows, pending


def _title(card: dict, symbol: str) -> str:
    live = card["served"]["live"]
    if not live["rows"]:
        return f"{symbol}: live scorecard (no prediction scored yet)"
    return (
        f"{symbol}: model {card['served_model']} live, {live['rows']} scored, MAE relative to "
        f"persistence {live['relative_mae']:.3f}"
    )


def scorecard_figures(scored: pd.DataFrame, card: dict, symbol: str) -> tuple[Any, Any]:
    """(matplotlib Figure, plotly Figure) of the scored predictions."""
    rows, pending = _series(scored, card["window"])
    title = _title(card, symbol)
    return _png(rows, pending, title, card["window"]), _plotly(rows, pending, title, card["window"])


def _png(rows: pd.DataFrame, pending: pd.DataFrame, title: str, window: int) -> Figure:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 6), dpi=110, layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    top.set_title(title)
    times = rows["target_bar_time"].dt.tz_localize(None)
    top.plot(times, rows["actual_close"], "k.-", label="realised close", linewidth=1)
    top.plot(times, rows["predicted_close"], "o", color="tab:blue", label="model forecast")
    top.plot(times, rows["last_close"], "x", color="tab:gray", label="persistence (last close)")
    if len(pending):
        top.plot(
            pending["target_bar_time"].dt.tz_localize(None),
            pending["predicted_close"],
            "o",
            markerfacecolor="none",
            color="tab:orange",
            label="pending forecast",
        )
    top.set_ylabel("close")
    top.legend(loc="best", fontsize=8)
    bottom.plot(times, rows["model_mae"], color="tab:blue", label="model")
    bottom.plot(times, rows["persistence_mae"], color="tab:gray", label="persistence")
    bottom.set_ylabel(f"MAE, last {window}")
    bottom.legend(loc="best", fontsize=8)
    for axes in (top, bottom):
        axes.grid(alpha=0.3)
    if rows.empty and pending.empty:
        top.text(0.5, 0.5, "no prediction logged yet", ha="center", transform=top.transAxes)
    return figure


def _plotly(rows: pd.DataFrame, pending: pd.DataFrame, title: str, window: int) -> go.Figure:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.65, 0.35])
    times = rows["target_bar_time"]
    traces = [
        (times, rows["actual_close"], "realised close", "lines+markers", 1),
        (times, rows["predicted_close"], "model forecast", "markers", 1),
        (times, rows["last_close"], "persistence (last close)", "markers", 1),
        (pending["target_bar_time"], pending["predicted_close"], "pending forecast", "markers", 1),
        (times, rows["model_mae"], f"model MAE, last {window}", "lines", 2),
        (times, rows["persistence_mae"], f"persistence MAE, last {window}", "lines", 2),
    ]
    for x, y, name, mode, row in traces:
        figure.add_trace(
            go.Scatter(x=list(x), y=np.asarray(y, dtype="float64"), name=name, mode=mode),
            row=row,
            col=1,
        )
    figure.update_layout(title=title, height=560)
    return figure
