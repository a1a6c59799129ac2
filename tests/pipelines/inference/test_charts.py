"""Charts: written through the catalog's dataset types, non-empty, showing what they claim."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from kedro_datasets.matplotlib import MatplotlibDataset
from kedro_datasets.plotly import JSONDataset

from ml_lstm.pipelines.inference.charts import residual_band
from ml_lstm.pipelines.inference.nodes import (
    MODELS,
    plot_latest_prediction,
    plot_test_range,
    plot_training_curves,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NVDA = {"symbol": "NVDA", "calendar": "XNYS"}
INFERENCE = {"stale_after": "2h", "chart": {"recent_bars": 20, "band_coverage": 0.9}}


def features(rows: int = 40) -> pd.DataFrame:
    times = pd.date_range("2024-03-01T14:30:00Z", periods=rows, freq="60min")
    return pd.DataFrame({"timestamp": times, "close": 100 + np.sin(np.arange(rows))})


def forecasts(table: pd.DataFrame) -> pd.DataFrame:
    rows = table.iloc[20:-1]
    actual = table["close"].iloc[21:].to_numpy()
    frame = pd.DataFrame(
        {
            "as_of_bar_time": rows["timestamp"].to_numpy(),
            "target_bar_time": table["timestamp"].iloc[21:].to_numpy(),
            "last_close": rows["close"].to_numpy(),
            "actual_close": actual,
        }
    )
    for offset, name in enumerate(MODELS):
        frame[name] = actual * (1 + 0.001 * (offset + 1) * np.cos(np.arange(len(actual))))
    return frame


def log_for(table: pd.DataFrame) -> pd.DataFrame:
    last = table["timestamp"].iloc[-1]
    earlier = table["timestamp"].iloc[-5]
    return pd.DataFrame(
        {
            "as_of_bar_time": [str(earlier - pd.Timedelta("1h")), str(last)],
            "target_bar_time": [str(earlier), str(last + pd.Timedelta("1h"))],
            "predicted_close": [100.2, 100.5],
            "last_close": [100.0, 100.1],
            "direction": ["up", "up"],
            "model_version": ["v1", "v1"],
            "run_id": ["r1", "r2"],
        }
    )


def save_both(tmp_path, name, figure, plot):
    """Saves and reloads both figures: the PNG's bytes and the plotly figure read back."""
    MatplotlibDataset(filepath=str(tmp_path / f"{name}.png")).save(figure)
    charts = JSONDataset(filepath=str(tmp_path / f"{name}.json"))
    charts.save(plot)
    return (tmp_path / f"{name}.png").read_bytes(), charts.load()


def test_latest_prediction_chart_shows_the_prediction_its_band_and_earlier_ones(tmp_path):
    table = features()
    backtest = forecasts(table)

    figure, plot = plot_latest_prediction(
        table, log_for(table), backtest, NVDA, INFERENCE, {"run_id": "r2"}
    )
    png, spec = save_both(tmp_path, "latest", figure, plot)

    assert png.startswith(PNG_SIGNATURE) and len(png) > 10_000
    traces = {trace.name: trace for trace in spec.data}
    assert list(traces["close"].y) == list(table["close"].iloc[-20:])
    prediction = next(trace for name, trace in traces.items() if name.startswith("prediction"))
    assert list(prediction.y) == [100.5]
    low, high = residual_band(backtest, 0.9)
    assert prediction.error_y.array[0] == pytest.approx(100.5 * (np.exp(high) - 1))
    assert prediction.error_y.arrayminus[0] == pytest.approx(100.5 * (1 - np.exp(low)))
    assert list(traces["earlier predictions"].y) == [100.2]
    assert "predicted 100.50 (up)" in spec.layout.title.text


def test_latest_prediction_chart_draws_this_runs_row_not_the_logs_last(tmp_path):
    # Another run appended to the shared log after this run's row (r2): the chart still
    # shows r2's prediction, and the other run's row among the earlier ones.
    table = features()
    log = log_for(table)
    other = log.iloc[[1]].assign(predicted_close=99.0, run_id="r3", direction="down")
    log = pd.concat([log, other], ignore_index=True)

    _, plot = plot_latest_prediction(
        table, log, forecasts(table), NVDA, INFERENCE, {"run_id": "r2"}
    )

    prediction = next(trace for trace in plot.data if trace.name.startswith("prediction"))
    assert list(prediction.y) == [100.5]
    assert "predicted 100.50 (up)" in plot.layout.title.text
    with pytest.raises(ValueError, match=r"no row of this run \(r9\)"):
        plot_latest_prediction(table, log, forecasts(table), NVDA, INFERENCE, {"run_id": "r9"})


def test_residual_band_holds_the_requested_share_of_test_residuals():
    backtest = forecasts(features(400))
    low, high = residual_band(backtest, 0.8)
    ratio = np.log(backtest["actual_close"] / backtest["lstm"])
    inside = ((ratio >= low) & (ratio <= high)).mean()
    assert low < 0 < high
    assert inside == pytest.approx(0.8, abs=0.02)


def test_test_range_chart_has_actuals_and_every_model(tmp_path):
    backtest = forecasts(features())

    figure, plot = plot_test_range(backtest, NVDA)
    png, spec = save_both(tmp_path, "test_range", figure, plot)

    assert png.startswith(PNG_SIGNATURE) and len(png) > 10_000
    assert [trace.name for trace in spec.data] == ["actual", *MODELS]
    assert list(spec.data[1].y) == list(backtest["lstm"])
    assert [line.get_label() for line in figure.axes[0].get_lines()] == ["actual", *MODELS]


def served(version: str, manifest_training: dict) -> dict:
    return {"version": version, "manifest": {"training": manifest_training}}


def test_training_curves_chart_shows_the_served_versions_losses(tmp_path):
    history = {"loss": [1.0, 0.8, 0.7], "val_loss": [1.1, 0.9, 0.95], "learning_rate": [1e-3] * 3}
    model = served("v1", {"best_epoch": 2, "history": history})

    dataset = JSONDataset(filepath=str(tmp_path / "curves.json"))
    dataset.save(plot_training_curves(model, NVDA))

    assert (tmp_path / "curves.json").stat().st_size > 0
    chart = dataset.load()
    assert {trace.name: list(trace.y) for trace in chart.data} == {
        "loss": [1.0, 0.8, 0.7],
        "val_loss": [1.1, 0.9, 0.95],
    }
    assert "model v1" in chart.layout.title.text


def test_a_version_without_stored_curves_gets_an_empty_chart_and_a_warning(caplog):
    plot = plot_training_curves(served("v0", {"best_epoch": 2}), NVDA)

    assert [list(trace.y) for trace in plot.data] == [[], []]
    assert "v0 was registered without its loss curves" in caplog.text
