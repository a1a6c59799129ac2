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

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from matplotlib.figure import Figure

FIGSIZE = (10, 4.8)
DPI = 110


def utc_times(values: pd.Series) -> pd.Series:
    """Timestamps (text or datetime) as tz-aware UTC datetimes."""
    return pd.to_datetime(values, utc=True, format="ISO8601")


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


def latest_prediction_figures(
    recent: pd.DataFrame,
    log: pd.DataFrame,
    band: tuple[float, float] | None,
    coverage: float,
    horizon: int,
    symbol: str,
) -> tuple[Figure, go.Figure]:
    """Recent closes, earlier logged predictions for those bars, and the latest prediction.

    `recent` has `timestamp` and `close`; `log` is the prediction log (its last row is the
    latest prediction, `horizon` bars after the last recent bar); `band` is the (low, high)
    log-residual band around it.
    """
    times = utc_times(recent["timestamp"]).reset_index(drop=True)
    latest = log.iloc[-1]
    target = utc_times(pd.Series([latest["target_bar_time"]]))
    predicted = float(latest["predicted_close"])
    earlier = log.iloc[:-1]
    position = pd.Index(times).get_indexer(utc_times(earlier["target_bar_time"]))
    earlier = earlier[position >= 0].assign(position=position[position >= 0])
    title = (
        f"{symbol}: close of the bar at {target.iloc[0]:%Y-%m-%d %H:%M} UTC predicted "
        f"{predicted:.2f} ({latest['direction']}), model {latest['model_version']}"
    )
    low = high = None
    if band is not None and np.isfinite(predicted):
        low, high = predicted * np.exp(band[0]), predicted * np.exp(band[1])
    band_label = f"{coverage:.0%} band from test residuals"
    target_position = len(times) - 1 + horizon
    axis_times = pd.concat([times, target], ignore_index=True)

    figure, axes = _new_figure(title, "price")
    axes.plot(np.arange(len(times)), recent["close"], color="tab:blue", label="close")
    if not earlier.empty:
        axes.scatter(
            earlier["position"],
            earlier["predicted_close"],
            color="tab:gray",
            s=14,
            label="earlier predictions",
        )
    if low is not None:
        axes.errorbar(
            [target_position],
            [predicted],
            yerr=[[predicted - low], [high - predicted]],
            color="tab:red",
            capsize=4,
            label=band_label,
        )
    axes.scatter([target_position], [predicted], color="tab:red", zorder=3, label="prediction")
    bar_axis(axes, axis_times)
    axes.set_xlim(-0.5, target_position + 1.5)
    axes.set_xlabel("bars (trading time, UTC dates)")
    axes.legend(loc="best")

    labels = bar_labels(times)
    plot = go.Figure()
    plot.add_scatter(x=labels, y=recent["close"], mode="lines", name="close")
    if not earlier.empty:
        plot.add_scatter(
            x=[labels[index] for index in earlier["position"]],
            y=earlier["predicted_close"],
            mode="markers",
            name="earlier predictions",
            marker={"color": "gray", "size": 5},
        )
    error_y = None
    if low is not None:
        error_y = {
            "type": "data",
            "symmetric": False,
            "array": [high - predicted],
            "arrayminus": [predicted - low],
        }
    plot.add_scatter(
        x=bar_labels(target),
        y=[predicted],
        mode="markers",
        name="prediction" + (f" ({band_label})" if low is not None else ""),
        marker={"color": "red", "size": 9},
        error_y=error_y,
    )
    plot.update_layout(title=title, yaxis_title="price", xaxis={"type": "category", "nticks": 10})
    return figure, plot


def test_range_figures(
    forecasts: pd.DataFrame, models: tuple[str, ...], symbol: str
) -> tuple[Figure, go.Figure]:
    """Actual closes on the test range against the LSTM's and every baseline's forecasts."""
    times = utc_times(forecasts["target_bar_time"]).reset_index(drop=True)
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
