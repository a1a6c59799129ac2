"""Inference nodes: check the served model against the features, predict, backtest, plot.

The served model arrives as a bundle {"version", "source", "model", "scaler", "manifest"}
(see `ml_lstm.model_registry.ServedModelDataset`). TensorFlow is never imported here: the
model object comes loaded.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from ml_lstm.calendars import bar_after, stale_by, utc
from ml_lstm.forecasting.baselines import BASELINES
from ml_lstm.forecasting.forecast import forecast_rows, predict_next
from ml_lstm.forecasting.splits import label_served_splits

from . import charts

logger = logging.getLogger(__name__)

MODELS = ("lstm", *BASELINES)


class ModelMismatchError(ValueError):
    """The served model was trained on inputs other than those the pipeline now produces."""


def check_served_model(
    served_model: dict,
    champion_record: dict | None,
    features: pd.DataFrame,
    feature_list: dict,
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
    ) + feature_settings_mismatches(manifest, feature_list)
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


def feature_settings_mismatches(manifest: dict, feature_list: dict) -> list[str]:
    """Feature settings (windows, families) that differ from those the model was trained
    on: same column names can then hold different values. Versions registered before the
    manifest kept the settings are not checked."""
    trained = manifest.get("feature_settings")
    if trained is None:
        return []
    current = feature_list["settings"]
    return [
        f"feature settings: data_processing.features.{key} was {trained.get(key)!r} for the "
        f"model, is {current.get(key)!r} now"
        for key in sorted(set(trained) | set(current))
        if trained.get(key) != current.get(key)
    ]


def predict_next_close(
    checked_model: dict,
    features: pd.DataFrame,
    instrument: dict,
    inference: dict,
    run_info: dict,
) -> pd.DataFrame:
    """One prediction-log row: the close `horizon` bars after the last bar, and its direction.

    Warns when the last bar is stale (see `calendars.stale_by`) relative to the run's start.
    """
    manifest = checked_model["manifest"]
    lookback, horizon = manifest["lookback"], manifest["horizon"]
    if len(features) < lookback:
        raise ValueError(
            f"Inference needs the last {lookback} bars, the feature table has {len(features)}."
        )
    recent = features.iloc[-lookback:]
    recent = recent.assign(timestamp=utc(recent["timestamp"]))
    forecast = predict_next(checked_model["model"], recent, checked_model["scaler"])
    as_of = utc(recent["timestamp"].iloc[-1])
    target = bar_after(as_of, horizon, instrument, manifest["frequency"])
    warn_if_stale(as_of, run_info, instrument, manifest["frequency"], inference["stale_after"])
    logger.info(
        "%s: close of the bar starting %s predicted at %.4f (%s; last close %.4f, model %s)",
        instrument["symbol"],
        target,
        forecast["predicted_close"],
        forecast["direction"],
        forecast["last_close"],
        checked_model["version"],
    )
    return pd.DataFrame(
        [
            {
                "as_of_bar_time": as_of.isoformat(),
                "target_bar_time": target.isoformat(),
                "predicted_close": round(forecast["predicted_close"], 6),
                "last_close": forecast["last_close"],
                "direction": forecast["direction"],
                "model_version": checked_model["version"],
                "run_id": run_info["run_id"],
                # `kedro live` writes "live" rows with their latency (ml_lstm.live).
                "source": "batch",
                "latency_ms": None,
            }
        ]
    )


def warn_if_stale(
    as_of: pd.Timestamp, run_info: dict, instrument: dict, frequency: str, stale_after: str
) -> None:
    """A WARNING when the calendar says newer bars than `as_of` should have been ingested."""
    started = run_info.get("started_at")
    if started is None:
        logger.info("run_info has no started_at: data staleness not checked.")
        return
    late = stale_by(as_of, utc(started), instrument, frequency, stale_after)
    if late is not None:
        logger.warning(
            "%s: stale data. The last bar starts %s, but the bar after it ended %s before "
            "this run (allowed: %s). Ingest newer bars before acting on this prediction.",
            instrument["symbol"],
            as_of,
            late.floor("min"),
            stale_after,
        )


def forecast_test_range(
    checked_model: dict, features: pd.DataFrame, modelling: dict
) -> pd.DataFrame:
    """The served model's and every baseline's forecasts over its whole test range.

    One row per test bar t: `as_of_bar_time` (t), `target_bar_time` (t + horizon bars),
    last and actual close, then the close forecast by each model (columns named as in
    modelling's test_forecasts), and the model version: a table for downstream backtests.
    The model's own manifest says how it forecasts; `modelling` only sets the SMA window.
    """
    manifest = checked_model["manifest"]
    table = features.assign(timestamp=utc(features["timestamp"]))
    table = label_served_splits(table, manifest["splits"])
    forecasts = forecast_rows(
        checked_model["model"],
        table,
        checked_model["scaler"],
        lookback=manifest["lookback"],
        horizon=manifest["horizon"],
        sma_window=modelling["baselines"]["sma_window"],
    )
    times = table["timestamp"].reset_index(drop=True)
    position = pd.Index(times).get_indexer(utc(forecasts["timestamp"]))
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
    run_info: dict,
) -> tuple[Any, Any]:
    """Recent closes with this run's prediction and its error band from test residuals.

    `predictions` is the whole (shared, append-only) log: the prediction drawn is this run's
    own row, found by its run id, never simply the last row, which another run writing to
    the same log may have appended; the log's other rows are drawn as earlier predictions.
    """
    chart = inference["chart"]
    coverage = chart["band_coverage"]
    has_prices = test_range_forecasts["lstm"].notna().any()
    band = charts.residual_band(test_range_forecasts, coverage) if has_prices else None
    table = features.assign(timestamp=utc(features["timestamp"]))
    times = pd.Index(table["timestamp"])
    first = test_range_forecasts.iloc[0]
    horizon = int(
        times.get_loc(utc(first["target_bar_time"])) - times.get_loc(utc(first["as_of_bar_time"]))
    )
    recent = table.iloc[-chart["recent_bars"] :]
    latest, earlier = own_prediction(predictions, run_info["run_id"])
    content = charts.latest_prediction(
        recent, latest, earlier, band, coverage, horizon, instrument["symbol"]
    )
    return charts.latest_prediction_png(content), charts.latest_prediction_plotly(content)


def own_prediction(predictions: pd.DataFrame, run_id: str) -> tuple[pd.Series, pd.DataFrame]:
    """This run's (last) row of the prediction log, and every other row."""
    own = predictions.index[predictions["run_id"].astype(str) == str(run_id)]
    if len(own) == 0:
        raise ValueError(
            f"The prediction log has no row of this run ({run_id}): predict_next_close "
            "writes it before the chart is drawn; was the log replaced during the run?"
        )
    return predictions.loc[own[-1]], predictions.drop(index=own[-1])


def plot_test_range(test_range_forecasts: pd.DataFrame, instrument: dict) -> tuple[Any, Any]:
    """Actual closes on the test range against the LSTM's and every baseline's forecasts."""
    return charts.test_range_figures(test_range_forecasts, MODELS, instrument["symbol"])


def plot_training_curves(checked_model: dict, instrument: dict) -> Any:
    """Training and validation loss per epoch of the served model (from its manifest), for
    kedro-viz: the curves of the model that predicts, not of the latest training."""
    version = checked_model["version"]
    training = checked_model["manifest"].get("training", {})
    history = training.get("history")
    if history is not None:
        history = {**history, "best_epoch": training.get("best_epoch")}
    else:
        logger.warning(
            "Model %s was registered without its loss curves (before they were kept in the "
            "manifest): the training-curves chart is empty.",
            version,
        )
    return charts.training_curves_plot(
        history or {}, f"{instrument['symbol']}: loss per epoch of model {version}"
    )
