"""Each logged prediction against the bar it was about.

A log row says: at the bar starting `as_of_bar_time`, model `model_version` forecast the
close of the bar starting `target_bar_time` (the instrument's calendar, `bar_after`). Once
that bar is in the bar table, the row is scored: realised close, error (actual - forecast,
as in `forecasting.evaluation`), absolute error, whether the direction was right, and the
error of persistence, whose forecast of the same target is the logged `last_close`.

Statuses: `scored`; `pending` (the target bar is not in yet); `missing_bar` (later bars are
in, this one is not: a gap in the data). A row repeating an earlier one (same source,
model, bars and forecast, e.g. an update run twice) is kept and marked `duplicate`; the
scorecard counts it once. Rows without a `source` column are batch predictions.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ml_lstm.calendars import bar_after, instrument_sessions, session_bar_starts, utc

logger = logging.getLogger(__name__)

REQUIRED = ("as_of_bar_time", "target_bar_time", "predicted_close", "last_close", "model_version")
SCORED, PENDING, MISSING_BAR = "scored", "pending", "missing_bar"
COLUMNS = [
    "log_row",
    "source",
    "run_id",
    "model_version",
    "as_of_bar_time",
    "target_bar_time",
    "predicted_close",
    "last_close",
    "direction",
    "status",
    "actual_close",
    "error",
    "abs_error",
    "direction_hit",
    "persistence_error",
    "persistence_abs_error",
    "duplicate",
]


def check_log(log: pd.DataFrame) -> None:
    """A clear error when the prediction log lacks a column scoring needs."""
    missing = [name for name in REQUIRED if name not in log.columns]
    if missing:
        raise ValueError(
            f"The prediction log (07_model_output/<instrument>/predictions.csv) has no column "
            f"{missing}; its columns are {list(log.columns)}. It is written by the inference "
            "pipeline: move a hand-made log aside and run `kedro run --pipelines inference`."
        )


def calendar_targets(
    as_of: pd.Series, horizons: pd.Series, instrument: dict, frequency: str
) -> pd.Series:
    """The bar `horizon` bars after each `as_of` by the instrument's calendar (what
    inference's `bar_after` gives), computed over one span of sessions for the whole log."""
    if as_of.empty:
        return pd.Series([], dtype="datetime64[ns, UTC]")
    sessions = instrument_sessions(
        instrument, as_of.min() - pd.Timedelta(days=1), as_of.max() + pd.Timedelta(days=14)
    )
    starts = pd.Index(utc(session_bar_starts(sessions, frequency)["bar_start"]))
    position = starts.searchsorted(as_of.to_numpy(), side="right") + horizons.to_numpy() - 1
    targets = []
    for when, steps, at in zip(as_of, horizons, position, strict=True):
        # Past the span's end (a long closure): bar_after widens its own window.
        inside = at < len(starts)
        targets.append(starts[at] if inside else bar_after(when, int(steps), instrument, frequency))
    return pd.Series(targets, index=as_of.index)


def _direction_hits(predicted_move: np.ndarray, actual_move: np.ndarray) -> pd.Series:
    """True/False where the forecast moves; empty (NA) where it does not (no direction)."""
    hits = pd.Series(np.sign(predicted_move) == np.sign(actual_move), dtype="boolean")
    hits[(predicted_move == 0) | np.isnan(predicted_move) | np.isnan(actual_move)] = pd.NA
    return hits


def checked_targets(
    table: pd.DataFrame, as_of: pd.Series, horizons: pd.Series, instrument: dict, frequency: str
) -> pd.Series:
    """Each row's target bar: the logged one (a WARNING where the calendar disagrees), or
    the calendar's where the log has none."""
    logged = utc(table["target_bar_time"])
    expected = calendar_targets(as_of, horizons.reset_index(drop=True), instrument, frequency)
    differs = logged.notna() & (logged != expected)
    if differs.any():
        first = int(np.flatnonzero(differs.to_numpy())[0])
        logger.warning(
            "%d prediction-log row(s) name a target bar the %s calendar does not give (first: "
            "log row %d, target %s, calendar %s): scored against the logged target.",
            int(differs.sum()),
            instrument["calendar"],
            first,
            logged.iloc[first],
            expected.iloc[first],
        )
    return logged.where(logged.notna(), expected)


def realised_closes(bars: pd.DataFrame, target: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The close of each target bar (NaN when absent) and the row's status: scored,
    missing_bar (later bars are in, this one is not) or pending."""
    closes = pd.Series(
        bars["close"].to_numpy(dtype="float64"), index=pd.Index(utc(bars["timestamp"]))
    )
    closes = closes[~closes.index.duplicated(keep="last")]
    actual = closes.reindex(pd.Index(target)).to_numpy()
    latest = closes.index.max() if len(closes) else None
    later_bars_in = (
        (target < latest).to_numpy() if latest is not None else np.zeros(len(target), bool)
    )
    found = ~np.isnan(actual)
    return actual, np.where(found, SCORED, np.where(later_bars_in, MISSING_BAR, PENDING))


def score_log(
    log: pd.DataFrame,
    bars: pd.DataFrame,
    horizons: pd.Series,
    instrument: dict,
    frequency: str,
) -> pd.DataFrame:
    """The log, one row each, with its status and, where scored, the errors (see module).

    `horizons` gives each row's horizon in bars (from its model's manifest); `bars` has a
    `timestamp` (bar start) and `close` column.
    """
    check_log(log)
    table = log.reset_index(drop=True)
    as_of = utc(table["as_of_bar_time"])
    target = checked_targets(table, as_of, horizons, instrument, frequency)
    actual, status = realised_closes(bars, target)
    predicted = table["predicted_close"].to_numpy(dtype="float64")
    last = table["last_close"].to_numpy(dtype="float64")
    source = table["source"].fillna("batch") if "source" in table else "batch"
    scored = pd.DataFrame(
        {
            "log_row": np.arange(len(table)),
            "source": source,
            "run_id": table.get("run_id"),
            "model_version": table["model_version"].astype(str),
            "as_of_bar_time": as_of,
            "target_bar_time": utc(target),
            "predicted_close": predicted,
            "last_close": last,
            "direction": table.get("direction"),
            "status": status,
            "actual_close": actual,
            "error": actual - predicted,
            "abs_error": np.abs(actual - predicted),
            "direction_hit": _direction_hits(predicted - last, actual - last),
            "persistence_error": actual - last,
            "persistence_abs_error": np.abs(actual - last),
        }
    )
    key = ["source", "model_version", "as_of_bar_time", "target_bar_time", "predicted_close"]
    scored["duplicate"] = scored.duplicated(subset=key, keep="first")
    if "latency_ms" in table:
        scored["latency_ms"] = table["latency_ms"]
    return scored
