"""Figures for the reports: each chart as a matplotlib Figure (PNG) and a plotly Figure (JSON).

Matplotlib figures are built with the object-oriented API (`matplotlib.figure.Figure`), not
pyplot, so no GUI backend is ever involved: saving a PNG goes through Agg wherever this
runs (a server, CI, a notebook). Nothing here imports TensorFlow.

The inputs are plain tables: `forecasts` has one row per test bar with `as_of_bar_time`,
`target_bar_time`, `last_close`, `actual_close` and one close column per model (`lstm`,
`persistence`, ...), as exported by the inference pipeline; `history` is the per-epoch
training history saved by modelling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ml_lstm.calendars import utc

if TYPE_CHECKING:  # matplotlib and plotly cost ~0.5 s: imported where a chart is drawn,
    # not when Kedro registers the pipelines (every `kedro` command does that).
    import plotly.graph_objects as go
    from matplotlib.figure import Figure

FIGSIZE = (10, 4.8)
DPI = 110


def residual_band(forecasts: pd.DataFrame, coverage: float) -> tuple[float, float]:
    """Lower and upper quantiles of log(actual / LSTM forecast) over the test range.

    Relative (log) residuals keep the band meaningful when the price level has moved since
    the test range; the quantiles give a `coverage` band without assuming normal errors.
    """
    ratio = np.log(forecasts["actual_close"] / forecasts["lstm"]).dropna()
    if ratio.empty:
        raise ValueError("The backtest has no LSTM price forecasts: no error band to draw.")
    tail = (1.0 - coverage) / 2.0
    return float(ratio.quantile(tail)), float(ratio.quantile(1.0 - tail))


def _new_figure(title: str, ylabel: str) -> tuple[Figure, object]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    axes.set_title(title)
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    return figure, axes


def bar_axis(axes, times: pd.Series, max_ticks: int = 10) -> None:
    """Labels an axis of bar positions (0, 1, ...) with the date of each day's first bar.

    Bars are drawn evenly spaced, in trading time: nights, weekends and holidays take no
    room, as on a trading terminal.
    """
    days = times.dt.strftime("%b %d").to_numpy()
    firsts = np.flatnonzero(np.r_[True, days[1:] != days[:-1]])
    firsts = firsts[:: max(1, -(-len(firsts) // max_ticks))]
    axes.set_xticks(firsts, days[firsts])
    axes.set_xlim(-0.5, len(times) - 0.5)


def bar_labels(times: pd.Series) -> list[str]:
    """Category labels for plotly's trading-time axis (one category per bar)."""
    return list(times.dt.strftime("%Y-%m-%d %H:%M"))


@dataclass(frozen=True)
class LatestPrediction:
    """What the latest-prediction chart shows, computed once for both renderings."""

    title: str
    times: pd.Series  # UTC start of each recent bar
    closes: pd.Series
    earlier: pd.DataFrame  # earlier predictions for recent bars: position, predicted_close
    target: pd.Series  # the predicted bar's start (one value)
    target_position: int  # its place on the trading-time axis
    predicted: float
    band: tuple[float, float] | None  # (low, high) prices, when there is a band
    band_label: str


def latest_prediction(
    recent: pd.DataFrame,
    latest: pd.Series,
    earlier: pd.DataFrame,
    band: tuple[float, float] | None,
    coverage: float,
    horizon: int,
    symbol: str,
) -> LatestPrediction:
    """The chart's content: recent closes (`recent`: timestamp, close), the earlier logged
    predictions whose target is one of those bars, and `latest` (`horizon` bars after the
    last recent bar) with its log-residual `band`."""
    times = utc(recent["timestamp"]).reset_index(drop=True)
    target = utc(pd.Series([latest["target_bar_time"]]))
    predicted = float(latest["predicted_close"])
    position = pd.Index(times).get_indexer(utc(earlier["target_bar_time"]))
    earlier = earlier[position >= 0].assign(position=position[position >= 0])
    title = (
        f"{symbol}: close of the bar at {target.iloc[0]:%Y-%m-%d %H:%M} UTC predicted "
        f"{predicted:.2f} ({latest['direction']}), model {latest['model_version']}"
    )
    prices = None
    if band is not None and np.isfinite(predicted):
        prices = (predicted * np.exp(band[0]), predicted * np.exp(band[1]))
    return LatestPrediction(
        title=title,
        times=times,
        closes=recent["close"],
        earlier=earlier,
        target=target,
        target_position=len(times) - 1 + horizon,
        predicted=predicted,
        band=prices,
        band_label=f"{coverage:.0%} band from test residuals",
    )


def latest_prediction_png(chart: LatestPrediction) -> Figure:
    """The chart as a matplotlib figure, bars in trading time."""
    figure, axes = _new_figure(chart.title, "price")
    axes.plot(np.arange(len(chart.times)), chart.closes, color="tab:blue", label="close")
    if not chart.earlier.empty:
        axes.scatter(
            chart.earlier["position"],
            chart.earlier["predicted_close"],
            color="tab:gray",
            s=14,
            label="earlier predictions",
        )
    predicted, position = chart.predicted, chart.target_position
    if chart.band is not None:
        low, high = chart.band
        axes.errorbar(
            [position],
            [predicted],
            yerr=[[predicted - low], [high - predicted]],
            color="tab:red",
            capsize=4,
            label=chart.band_label,
        )
    axes.scatter([position], [predicted], color="tab:red", zorder=3, label="prediction")
    bar_axis(axes, pd.concat([chart.times, chart.target], ignore_index=True))
    axes.set_xlim(-0.5, position + 1.5)
    axes.set_xlabel("bars (trading time, UTC dates)")
    axes.legend(loc="best")
    return figure


def latest_prediction_plotly(chart: LatestPrediction) -> go.Figure:
    """The chart as a plotly figure (kedro-viz previews it), bars as categories."""
    import plotly.graph_objects as go

    labels = bar_labels(chart.times)
    plot = go.Figure()
    plot.add_scatter(x=labels, y=chart.closes, mode="lines", name="close")
    if not chart.earlier.empty:
        plot.add_scatter(
            x=[labels[index] for index in chart.earlier["position"]],
            y=chart.earlier["predicted_close"],
            mode="markers",
            name="earlier predictions",
            marker={"color": "gray", "size": 5},
        )
    error_y = None
    if chart.band is not None:
        low, high = chart.band
        error_y = {
            "type": "data",
            "symmetric": False,
            "array": [high - chart.predicted],
            "arrayminus": [chart.predicted - low],
        }
    plot.add_scatter(
        x=bar_labels(chart.target),
        y=[chart.predicted],
        mode="markers",
        name="prediction" + (f" ({chart.band_label})" if chart.band is not None else ""),
        marker={"color": "red", "size": 9},
        error_y=error_y,
    )
    plot.update_layout(
        title=chart.title, yaxis_title="price", xaxis={"type": "category", "nticks": 10}
    )
    return plot


def test_range_figures(
    forecasts: pd.DataFrame, models: tuple[str, ...], symbol: str
) -> tuple[Figure, go.Figure]:
    """Actual closes on the test range against the LSTM's and every baseline's forecasts."""
    import plotly.graph_objects as go

    times = utc(forecasts["target_bar_time"]).reset_index(drop=True)
    positions = np.arange(len(times))
    names = [name for name in models if forecasts[name].notna().any()]
    title = f"{symbol}: test range, actual close and each model's forecast of it"

    figure, axes = _new_figure(title, "price")
    axes.plot(positions, forecasts["actual_close"], color="black", linewidth=1.6, label="actual")
    for name in names:
        is_lstm = name == "lstm"
        axes.plot(
            positions,
            forecasts[name],
            linewidth=1.3 if is_lstm else 0.8,
            alpha=1.0 if is_lstm else 0.7,
            label=name,
            zorder=3 if is_lstm else 2,
        )
    bar_axis(axes, times)
    axes.set_xlabel("target bar (trading time, UTC dates)")
    axes.legend(loc="upper left", ncol=3)

    labels = bar_labels(times)
    plot = go.Figure()
    plot.add_scatter(
        x=labels, y=forecasts["actual_close"], mode="lines", name="actual", line={"color": "black"}
    )
    for name in names:
        plot.add_scatter(x=labels, y=forecasts[name], mode="lines", name=name)
    plot.update_layout(
        title=title,
        yaxis_title="price",
        xaxis={"type": "category", "nticks": 10, "title": {"text": "target bar (UTC)"}},
    )
    return figure, plot


def training_curves_plot(history: dict, title: str) -> go.Figure:
    """Training and validation loss per epoch (interactive; modelling draws the PNG)."""
    import plotly.graph_objects as go

    plot = go.Figure()
    for name in ("loss", "val_loss"):
        values = history.get(name) or []
        plot.add_scatter(
            x=list(range(1, len(values) + 1)), y=values, mode="lines+markers", name=name
        )
    if history.get("best_epoch"):
        plot.add_vline(x=history["best_epoch"], line_dash="dash", annotation_text="best")
    plot.update_layout(title=title, xaxis_title="epoch", yaxis_title="loss (scaled target)")
    return plot
