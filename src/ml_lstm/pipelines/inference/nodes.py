"""Inference nodes: check the served model against the features, predict, backtest, plot.

The served model arrives as a bundle {"version", "source", "model", "scaler", "manifest"}
(see serving.py). TensorFlow is never imported here: the model object comes loaded.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from ml_lstm.calendars import instrument_sessions, session_bar_starts
from ml_lstm.pipelines.modelling.nodes import (
    BASELINES,
    forecast_test_split,
    scale_features,
    to_price,
)

from . import charts

logger = logging.getLogger(__name__)

MODELS = ("lstm", *BASELINES)


class ModelMismatchError(ValueError):
    """The served model was trained on inputs other than those the pipeline now produces."""


def check_served_model(
    served_model: dict,
    champion_record: dict | None,
    features: pd.DataFrame,
    modelling: dict,
    data_processing: dict,
) -> dict:
    """The served model, once its manifest is known to match the current features.

    Compares the manifest with the current configuration and table: feature names and
    order, lookback, bar frequency, and the model's own input shape. Any difference is a
    ModelMismatchError naming the field, both values, and the ways out.
    """
    manifest, scaler = served_model["manifest"], served_model["scaler"]
    version = served_model["version"]
    problems = manifest_mismatches(
        manifest, scaler, served_model["model"], features, modelling, data_processing
    )
    if problems:
        raise ModelMismatchError(
            f"Model {version} ({served_model['source']}) does not match the current features:\n"
            + "\n".join(f"  - {problem}" for problem in problems)
            + "\nRetrain (`kedro run --pipelines modelling`), pin a matching version "
            "(--params inference.model_version=<version>), or restore the settings above."
        )
    champion = champion_record["version"] if champion_record else None
    if served_model["source"] == "pinned" and version != champion:
        logger.warning("Serving pinned version %s; the champion is %s.", version, champion)
    else:
        logger.info("Serving %s version %s.", served_model["source"], version)
    return served_model


def with_utc_timestamps(features: pd.DataFrame) -> pd.DataFrame:
    """A copy of the feature table whose `timestamp` column is tz-aware UTC."""
    table = features.copy()
    table["timestamp"] = pd.to_datetime(table["timestamp"], utc=True, format="ISO8601")
    return table


def manifest_mismatches(
    manifest: dict,
    scaler: dict,
    model: Any,
    features: pd.DataFrame,
    modelling: dict,
    data_processing: dict,
) -> list[str]:
    """Every way the manifest disagrees with the current features, one sentence each."""
    problems = []
    expected = list(manifest["features"])
    configured = list(modelling["features"])
    if expected != configured:
        if sorted(expected) == sorted(configured):
            problems.append(
                f"feature order: the model takes {expected}, modelling.features is {configured}"
            )
        else:
            problems.append(
                f"feature names: the model takes {expected}, modelling.features is {configured}"
            )
    if list(scaler["features"]) != expected:
        problems.append(
            f"scaler features {scaler['features']} differ from the manifest's {expected}"
        )
    absent = [name for name in expected if name not in features.columns]
    if absent:
        problems.append(f"the feature table has no column {absent}")
    if manifest["lookback"] != modelling["lookback"]:
        problems.append(
            f"lookback: the model reads {manifest['lookback']} bars, modelling.lookback is "
            f"{modelling['lookback']}"
        )
    if manifest["frequency"] != data_processing["frequency"]:
        problems.append(
            f"frequency: the model was trained on {manifest['frequency']} bars, "
            f"data_processing.frequency is {data_processing['frequency']}"
        )
    elif "minutes" in features.columns and len(features):
        longest = int(features["minutes"].max())
        if longest != pd.Timedelta(manifest["frequency"]) / pd.Timedelta(minutes=1):
            problems.append(
                f"frequency: the model was trained on {manifest['frequency']} bars, the "
                f"feature table's longest bar lasts {longest} minutes"
            )
    shape = tuple(model.input_shape[1:])
    if shape != (manifest["lookback"], len(expected)):
        problems.append(
            f"the model's input shape {shape} is not (lookback, features) = "
            f"({manifest['lookback']}, {len(expected)}) from its manifest"
        )
    return problems


def predict_next_close(
    checked_model: dict,
    features: pd.DataFrame,
    instrument: dict,
    inference: dict,
    run_info: dict,
) -> pd.DataFrame:
    """One prediction-log row: the close `horizon` bars after the last bar, and its direction.

    Warns when the last bar is stale (see `stale_by`) relative to the run's start.
    """
    model, scaler, manifest = (checked_model[key] for key in ("model", "scaler", "manifest"))
    lookback, horizon = manifest["lookback"], manifest["horizon"]
    if len(features) < lookback:
        raise ValueError(
            f"Inference needs the last {lookback} bars, the feature table has {len(features)}."
        )
    recent = with_utc_timestamps(features.iloc[-lookback:])
    window = scale_features(recent, scaler)[np.newaxis, :, :]
    # One batch through the compiled predict step: `model.predict` sets up a data pipeline
    # per call and an eager `model(window)` runs the LSTM step by step (both ~50x slower).
    raw = float(np.asarray(model.predict_on_batch(window)).reshape(-1)[0])
    value = raw * scaler["target_std"] + scaler["target_mean"]
    last_close = float(recent["close"].iloc[-1])
    predicted = float(to_price(np.array([value]), scaler["target"], np.array([last_close]))[0])
    if scaler["target"] == "direction":
        direction = "up" if value > 0.5 else "down"
    else:
        direction = "up" if predicted > last_close else "down" if predicted < last_close else "flat"
    as_of = utc(recent["timestamp"].iloc[-1])
    frequency = manifest["frequency"]
    target = bar_after(as_of, horizon, instrument, frequency)
    started = run_info.get("started_at")
    if started is None:
        logger.info("run_info has no started_at: data staleness not checked.")
    else:
        late = stale_by(as_of, utc(started), instrument, frequency, inference["stale_after"])
        if late is not None:
            logger.warning(
                "%s: stale data. The last bar starts %s, but the bar after it ended %s before "
                "this run (allowed: %s). Ingest newer bars before acting on this prediction.",
                instrument["symbol"],
                as_of,
                late.floor("min"),
                inference["stale_after"],
            )
    logger.info(
        "%s: close of the bar starting %s predicted at %.4f (%s; last close %.4f, model %s)",
        instrument["symbol"],
        target,
        predicted,
        direction,
        last_close,
        checked_model["version"],
    )
    return pd.DataFrame(
        [
            {
                "as_of_bar_time": as_of.isoformat(),
                "target_bar_time": target.isoformat(),
                "predicted_close": round(predicted, 6),
                "last_close": last_close,
                "direction": direction,
                "model_version": checked_model["version"],
                "run_id": run_info["run_id"],
            }
        ]
    )


def utc(value: Any) -> pd.Timestamp:
    """`value` as a tz-aware UTC timestamp (naive values are taken to be UTC)."""
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def bar_after(
    bar_start: pd.Timestamp, steps: int, instrument: dict, frequency: str
) -> pd.Timestamp:
    """Start (UTC) of the bar `steps` bars after `bar_start`, following the instrument's
    sessions (its calendar, extended hours included when it trades them).

    Looks a week ahead first and widens the window only when that holds too few bars
    (long closures, many steps): computing a month of bars costs more than the prediction.
    """
    days = 7
    while True:
        sessions = instrument_sessions(
            instrument, bar_start - pd.Timedelta(days=1), bar_start + pd.Timedelta(days=days)
        )
        starts = session_bar_starts(sessions, frequency)["bar_start"]
        later = starts[starts > bar_start]
        if len(later) >= steps:
            return pd.Timestamp(later.iloc[steps - 1])
        if days >= 366:
            raise ValueError(
                f"The {instrument['calendar']} calendar has no session {steps} bars after "
                f"{bar_start}."
            )
        days = min(days * 4, 366)


def stale_by(
    last_bar: pd.Timestamp, now: pd.Timestamp, instrument: dict, frequency: str, stale_after: str
) -> pd.Timedelta | None:
    """How long ago the bar after `last_bar` should have been complete, if beyond tolerance.

    Data is stale when the calendar says a newer bar has ended more than `stale_after`
    before `now`; weekends, holidays and overnight hours never make data stale.
    """
    next_start = bar_after(last_bar, 1, instrument, frequency)
    expected_end = next_start + pd.Timedelta(frequency)
    late = now - expected_end
    return late if late > pd.Timedelta(stale_after) else None


def label_served_splits(features: pd.DataFrame, manifest: dict) -> pd.DataFrame:
    """The feature table labelled with the served model's own splits.

    `train` are the model's training rows (the baselines are fitted on them); `test` runs
    from the model's first test bar to the end of the table, so bars that arrived after
    training are forecast too; everything in between is `purged`.
    """
    splits = manifest["splits"]
    times = features["timestamp"]
    train = (times >= utc(splits["train"]["first"])) & (times <= utc(splits["train"]["last"]))
    test = times >= utc(splits["test"]["first"])
    table = features.copy()
    table["split"] = np.select([train, test], ["train", "test"], default="purged")
    return table


def forecast_test_range(
    checked_model: dict, features: pd.DataFrame, modelling: dict
) -> pd.DataFrame:
    """The served model's and every baseline's forecasts over its whole test range.

    One row per test bar t: `as_of_bar_time` (t), `target_bar_time` (t + horizon bars),
    last and actual close, then the close forecast by each model (columns named as in
    modelling's test_forecasts), and the model version: a table for downstream backtests.
    """
    manifest = checked_model["manifest"]
    settings = {key: manifest[key] for key in ("lookback", "horizon", "target")}
    table = label_served_splits(with_utc_timestamps(features), manifest)
    forecasts = forecast_test_split(
        checked_model["model"], table, checked_model["scaler"], {**modelling, **settings}
    )
    times = table["timestamp"].reset_index(drop=True)
    position = pd.Index(times).get_indexer(pd.to_datetime(forecasts["timestamp"], utc=True))
    forecasts.insert(1, "target_bar_time", times.iloc[position + manifest["horizon"]].to_numpy())
    forecasts = forecasts.rename(columns={"timestamp": "as_of_bar_time"})
    forecasts["model_version"] = checked_model["version"]
    logger.info(
        "Backtest of %s: %d test bars from %s to %s.",
        checked_model["version"],
        len(forecasts),
        forecasts["as_of_bar_time"].iloc[0],
        forecasts["as_of_bar_time"].iloc[-1],
    )
    return forecasts


def plot_latest_prediction(
    features: pd.DataFrame,
    predictions: pd.DataFrame,
    test_range_forecasts: pd.DataFrame,
    instrument: dict,
    inference: dict,
) -> tuple[Any, Any]:
    """Recent closes with the latest prediction and its error band from test residuals."""
    chart = inference["chart"]
    coverage = chart["band_coverage"]
    has_prices = test_range_forecasts["lstm"].notna().any()
    band = charts.residual_band(test_range_forecasts, coverage) if has_prices else None
    table = with_utc_timestamps(features)
    times = pd.Index(table["timestamp"])
    first = test_range_forecasts.iloc[0]
    horizon = int(
        times.get_loc(utc(first["target_bar_time"])) - times.get_loc(utc(first["as_of_bar_time"]))
    )
    recent = table.iloc[-chart["recent_bars"] :]
    return charts.latest_prediction_figures(
        recent, predictions, band, coverage, horizon, instrument["symbol"]
    )


def plot_test_range(test_range_forecasts: pd.DataFrame, instrument: dict) -> tuple[Any, Any]:
    """Actual closes on the test range against the LSTM's and every baseline's forecasts."""
    return charts.test_range_figures(test_range_forecasts, MODELS, instrument["symbol"])


def plot_training_curves(training_history: dict, instrument: dict) -> Any:
    """Training and validation loss per epoch of the latest training, for kedro-viz."""
    return charts.training_curves_plot(
        training_history, f"{instrument['symbol']}: loss per epoch of the latest training"
    )
