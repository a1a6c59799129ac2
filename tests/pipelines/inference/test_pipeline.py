"""The inference pipeline through KedroSession, in a throw-away copy of the project.

One small project is generated and trained once for the module; each test then runs
inference (or a second training) on it as a user would.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from support import SMALL_RUN, copy_project, merge

from ml_lstm.pipelines.inference.nodes import MODELS, ModelMismatchError

pytestmark = pytest.mark.slow

MODELS_DIR = Path("data/06_models/nvda")
LOG = Path("data/07_model_output/nvda/predictions.csv")
EXPORT = Path("data/07_model_output/nvda/test_range_forecasts.csv")


def run(project: Path, pipeline: str = "__default__", **params) -> None:
    bootstrap_project(project)
    with KedroSession.create(project_path=project, runtime_params=merge(SMALL_RUN, params)) as s:
        s.run(pipeline_names=[pipeline])


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A project copy (conf, empty data folders) after one full default run."""
    target = copy_project(tmp_path_factory.mktemp("inference") / "project")
    run(target)
    return target


def champion_version(project: Path) -> str:
    return json.loads((project / MODELS_DIR / "champion.json").read_text())["version"]


def test_each_run_appends_one_row_and_never_rewrites_earlier_ones(project):
    before = (project / LOG).read_bytes()
    rows_before = len(pd.read_csv(project / LOG))

    run(project, "inference")
    run(project, "inference")

    after = (project / LOG).read_bytes()
    log = pd.read_csv(project / LOG)
    assert after.startswith(before)
    assert len(log) == rows_before + 2
    assert log["run_id"].is_unique
    assert set(log["model_version"]) == {champion_version(project)}


def independent_forecasts(project: Path, version: str) -> tuple[pd.DataFrame, np.ndarray]:
    """The model's test-range closes recomputed by hand: one window at a time."""
    model = keras.saving.load_model(
        project / MODELS_DIR / "lstm_model.keras" / version / "lstm_model.keras"
    )
    scaler = json.loads(
        (project / MODELS_DIR / "scaler.json" / version / "scaler.json").read_text()
    )
    manifest = json.loads(
        (project / MODELS_DIR / "manifest.json" / version / "manifest.json").read_text()
    )
    features = pd.read_csv(project / "data/04_feature/nvda/features.csv")
    times = pd.to_datetime(features["timestamp"], utc=True, format="ISO8601")
    lookback, horizon = manifest["lookback"], manifest["horizon"]
    first_test = pd.Timestamp(manifest["splits"]["test"]["first"])
    values = features[scaler["features"]].to_numpy("float64")
    scaled = (values - np.array(scaler["mean"])) / np.array(scaler["std"])
    rows = [t for t in range(len(features) - horizon) if times[t] >= first_test]
    windows = np.stack([scaled[t - lookback + 1 : t + 1] for t in rows]).astype("float32")
    raw = model.predict(windows, verbose=0).reshape(-1)
    log_return = raw * scaler["target_std"] + scaler["target_mean"]
    close = features["close"].to_numpy("float64")
    return features.iloc[rows], close[rows] * np.exp(log_return)


def test_export_matches_the_models_own_outputs_and_modellings_baselines(project):
    version = champion_version(project)
    export = pd.read_csv(project / EXPORT)

    rows, expected = independent_forecasts(project, version)

    assert list(export.columns[:4]) == [
        "as_of_bar_time",
        "target_bar_time",
        "last_close",
        "actual_close",
    ]
    assert set(MODELS) <= set(export.columns)
    assert set(export["model_version"]) == {version}
    assert (
        pd.to_datetime(export["as_of_bar_time"], utc=True).tolist()
        == pd.to_datetime(rows["timestamp"], utc=True).tolist()
    )
    np.testing.assert_allclose(export["lstm"], expected, rtol=1e-5)
    np.testing.assert_allclose(export["last_close"], rows["close"])
    # The champion was trained on this very table: its test range is modelling's test split,
    # so modelling's own test forecasts (LSTM and baselines) must agree row for row.
    modelling = pd.read_csv(project / "data/07_model_output/nvda/test_forecasts.csv")
    assert len(modelling) == len(export)
    for name in ("actual_close", *MODELS):
        np.testing.assert_allclose(export[name], modelling[name], rtol=1e-6, err_msg=name)


def test_charts_are_written_and_not_empty(project):
    reporting = project / "data/08_reporting/nvda"
    for name in ("latest_prediction.png", "test_range.png"):
        assert (reporting / name).read_bytes().startswith(b"\x89PNG"), name
    for name in ("latest_prediction.json", "test_range.json", "training_curves.json"):
        spec = json.loads((reporting / name).read_text())
        assert spec["data"] and all(trace.get("y") is not None for trace in spec["data"]), name


def test_a_pinned_version_is_served_instead_of_the_champion(project):
    champion = champion_version(project)
    # A challenger trained for 4 epochs (the champion: at most SMALL_RUN's 2), not promoted.
    training = {"epochs": 4, "patience": 10}
    run(project, "modelling", modelling={"promotion": "skip", "training": training})
    versions = sorted(p.name for p in (project / MODELS_DIR / "manifest.json").iterdir())
    challenger = versions[-1]
    assert champion_version(project) == champion != challenger

    run(project, "inference", inference={"model_version": challenger})
    assert len(training_curve(project)) == 4
    run(project, "inference")

    log = pd.read_csv(project / LOG)
    assert log["model_version"].iloc[-2:].tolist() == [challenger, champion]
    # The training-curves chart is the served champion's, though the latest training (and
    # 08_reporting/nvda/training_history.json) is the challenger's.
    manifest = json.loads(
        (project / MODELS_DIR / f"manifest.json/{champion}/manifest.json").read_text()
    )
    assert training_curve(project) == manifest["training"]["history"]["loss"]
    latest = json.loads((project / "data/08_reporting/nvda/training_history.json").read_text())
    assert len(latest["loss"]) == 4 != len(training_curve(project))


def training_curve(project: Path) -> list[float]:
    """The training-loss trace of the inference training-curves chart."""
    spec = json.loads((project / "data/08_reporting/nvda/training_curves.json").read_text())
    return next(trace["y"] for trace in spec["data"] if trace["name"] == "loss")


def test_a_pinned_version_must_be_one_the_registry_lists(project):
    from kedro.io import DatasetError

    rows_before = len(pd.read_csv(project / LOG))
    for pinned in ("../../../../etc", "2000-01-01T00.00.00.000Z"):
        with pytest.raises(DatasetError, match=r"is not in the registry at .*Stored versions"):
            run(project, "inference", inference={"model_version": pinned})
    assert len(pd.read_csv(project / LOG)) == rows_before


def test_a_manifest_that_does_not_match_the_features_stops_inference(project):
    rows_before = len(pd.read_csv(project / LOG))

    with pytest.raises(
        ModelMismatchError, match=r"lookback: the model reads 8 bars, modelling\.lookback is 6"
    ):
        run(project, "inference", modelling={"lookback": 6})

    assert len(pd.read_csv(project / LOG)) == rows_before


def test_forecast_test_range_covers_the_served_models_test_rows(project):
    from ml_lstm.model_registry import load_version
    from ml_lstm.pipelines.inference.nodes import forecast_test_range

    version = champion_version(project)
    bundle = {"version": version, **load_version(project / MODELS_DIR, version)}
    features = pd.read_csv(project / "data/04_feature/nvda/features.csv")
    modelling = {**SMALL_RUN["modelling"], "baselines": {"sma_window": 5}}

    export = forecast_test_range(bundle, features, modelling)

    test = bundle["manifest"]["splits"]["test"]
    # Every test bar but the last `horizon`, whose target lies beyond the table.
    assert len(export) == test["rows"] - bundle["manifest"]["horizon"]
    as_of = pd.to_datetime(export["as_of_bar_time"], utc=True)
    assert as_of.is_monotonic_increasing and as_of.iloc[0] == pd.Timestamp(test["first"])
    # The target is the next bar of the feature table (horizon 1), never the same bar.
    times = pd.to_datetime(features["timestamp"], utc=True)
    following = times.shift(-1)[times.isin(as_of)].to_numpy()
    assert (pd.to_datetime(export["target_bar_time"], utc=True).to_numpy() == following).all()
    assert set(export["model_version"]) == {version}
