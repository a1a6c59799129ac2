"""The gap chart: missing minutes per session, filled and left, and missing sessions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from matplotlib import units
from matplotlib.dates import date2num
from matplotlib.figure import Figure


def _title(gap_report: dict) -> str:
    return (
        f"{gap_report['symbol']} ({gap_report['calendar']}"
        f"{', extended hours' if gap_report['extended_hours'] else ''}): missing minutes "
        f"per session, gaps up to {gap_report['max_fill_minutes']} min filled"
    )


def gap_calendar_plot(gap_report: dict) -> go.Figure:
    """The gap chart for kedro-viz: stacked filled / unfilled minutes per session, missing
    sessions shaded."""
    sessions = pd.DataFrame(gap_report["sessions"])
    plot = go.Figure()
    if not sessions.empty:
        for column, name, colour in (
            ("filled_minutes", "filled", "darkorange"),
            ("unfilled_minutes", "left as gap", "steelblue"),
        ):
            plot.add_bar(x=sessions["session"], y=sessions[column], name=name, marker_color=colour)
    for block in gap_report["missing_sessions"]:
        plot.add_vrect(
            x0=block["first"], x1=block["last"], fillcolor="red", opacity=0.25, line_width=0
        )
    plot.update_layout(
        title=_title(gap_report), barmode="stack", yaxis_title="minutes", xaxis_type="date"
    )
    return plot


def gap_chart(gap_report: dict) -> Figure:
    """Stacked lines of filled and unfilled missing minutes per session; missing sessions red."""
    sessions = pd.DataFrame(gap_report["sessions"])
    figure = Figure(figsize=(12, 4.5), layout="constrained")
    axes = figure.add_subplot()
    axes.set_title(_title(gap_report))
    axes.set_ylabel("minutes")
    if not sessions.empty:
        # One line per session (a LineCollection): thousands of bar patches are slow to draw.
        dates = date2num(pd.to_datetime(sessions["session"]).to_numpy())
        filled = sessions["filled_minutes"]
        total = filled + sessions["unfilled_minutes"]
        axes.vlines(dates, 0, filled, color="tab:orange", label="filled")
        axes.vlines(dates, filled, total, color="tab:blue", label="left as gap")
    for index, block in enumerate(gap_report["missing_sessions"]):
        axes.axvspan(
            date2num(pd.Timestamp(block["first"]) - pd.Timedelta(hours=12)),
            date2num(pd.Timestamp(block["last"]) + pd.Timedelta(hours=12)),
            color="tab:red",
            alpha=0.25,
            label="missing sessions" if index == 0 else None,
        )
    if not sessions.empty or gap_report["missing_sessions"]:
        _date_ticks(axes)
    axes.legend(loc="upper right")
    summary = gap_report["summary"]
    axes.set_xlabel(
        f"{summary['sessions_present']} sessions with bars, {summary['sessions_missing']} "
        f"missing; {summary['gaps']} gaps ({summary['gap_minutes']} min), "
        f"{summary['filled_gaps']} filled"
    )
    return figure


def _date_ticks(axes) -> None:
    """Date ticks and labels as matplotlib's date converter sets them up, on an axis that
    was given date numbers: an axis with date units converts every drawn line's points
    again at each draw (two per saved PNG, thousands of sessions), for the same picture."""
    info = units.registry.get_converter(np.datetime64("2000-01-01")).axisinfo(None, axes.xaxis)
    axes.xaxis.set_major_locator(info.majloc)
    axes.xaxis.set_major_formatter(info.majfmt)
    axes.xaxis.isDefault_majloc = True
    axes.xaxis.isDefault_majfmt = True
