"""Inference: `kedro run --pipelines inference` against its floor, and one prediction's latency.

- Wall time of `kedro run --pipelines inference` (a fresh process: Kedro start-up, catalog,
  loading the champion, the prediction, the test-range export and the charts) against the
  floor, a bare Python process that imports TensorFlow and loads the same .keras model.
  Both sides are timed from outside, process start to exit, best of REPEAT.
- In-process latency of one prediction: `predict_next_close` on the loaded champion
  (scaling, one Keras forward pass, the calendar look-up for the target bar), median of
  many calls after a warm-up, next to the bare `model.predict_on_batch` call it wraps
  (and, for scale, an eager `model(window)` and `model.predict` on the same window).

Runs on a throw-away copy of the project generated and trained here (a short backfill and
a small model), never on the repository's data/.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import measure_process, report

ROOT = Path(__file__).resolve().parents[1]
REPEAT = 3
CALLS = 50
# A quarter of synthetic bars and a few epochs: training is not what is measured here.
RUNTIME_PARAMS = {
    "ingestion": {"start_date": "2024-01-02", "end_date": "2024-06-28"},
    "modelling": {"training": {"epochs": 3}},
}
ENV = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "TF_CPP_MIN_LOG_LEVEL": "2"}


def make_project(target: Path) -> Path:
    """A project copy (conf, empty data folders) after one full default run."""
    shutil.copy2(ROOT / "pyproject.toml", target / "pyproject.toml")
    shutil.copytree(ROOT / "conf", target / "conf", ignore=shutil.ignore_patterns("local"))
    (target / "conf" / "local").mkdir()
    (target / "src").mkdir()
    for layer in (ROOT / "data").iterdir():
        if layer.is_dir():
            (target / "data" / layer.name).mkdir(parents=True)
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(target)
    with KedroSession.create(project_path=target, runtime_params=RUNTIME_PARAMS) as session:
        session.run()
    return target


def champion_model_path(project: Path) -> Path:
    models = project / "data/06_models/nvda"
    version = json.loads((models / "champion.json").read_text())["version"]
    return models / "lstm_model.keras" / version / "lstm_model.keras"


def prediction_latency(project: Path) -> dict:
    """Median seconds of one `predict_next_close` call and of the bare `model.predict`."""
    import numpy as np
    import pandas as pd

    from ml_lstm.forecasting.scaling import scale_features
    from ml_lstm.model_registry import ServedModelDataset
    from ml_lstm.pipelines.inference.nodes import predict_next_close

    served = ServedModelDataset(path=str(project / "data/06_models/nvda")).load()
    features = pd.read_csv(project / "data/04_feature/nvda/features.csv")
    instrument = {"symbol": "NVDA", "calendar": "XNYS"}
    inference = {"stale_after": "2h"}
    run_info = {"run_id": "bench"}
    lookback = served["manifest"]["lookback"]
    window = scale_features(features.iloc[-lookback:], served["scaler"])[np.newaxis]

    def median_seconds(call) -> float:
        for _ in range(5):
            call()
        times = []
        for _ in range(CALLS):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    node = median_seconds(
        lambda: predict_next_close(served, features, instrument, inference, run_info)
    )
    model = served["model"]
    bare = median_seconds(lambda: model.predict_on_batch(window))
    eager = median_seconds(lambda: model(window, training=False))
    keras_predict = median_seconds(lambda: model.predict(window, verbose=0))
    print(
        f"one prediction in-process: predict_next_close {node * 1000:.2f} ms (median of "
        f"{CALLS}); bare model.predict_on_batch {bare * 1000:.2f} ms -> ratio "
        f"{node / bare:.2f} (same window: eager model(x) {eager * 1000:.1f} ms, "
        f"model.predict {keras_predict * 1000:.1f} ms)",
        flush=True,
    )
    return {
        "benchmark": "inference_one_prediction",
        "reference": "model.predict_on_batch on the same window",
        "eager_call_s": round(eager, 5),
        "keras_predict_s": round(keras_predict, 5),
        "ours_s": round(node, 5),
        "reference_s": round(bare, 5),
        "time_ratio": round(node / bare, 3),
    }


def main() -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="bench_inference_") as folder:
        project = make_project(Path(folder))
        kedro = [sys.executable, "-m", "kedro", "run", "--pipelines", "inference"]
        ours = measure_process(kedro, project, repeat=REPEAT, env=ENV)
        floor_script = (
            "import sys, keras, tensorflow; keras.saving.load_model(sys.argv[1], compile=False)"
        )
        floor = measure_process(
            [sys.executable, "-c", floor_script, str(champion_model_path(project))],
            project,
            repeat=REPEAT,
            env=ENV,
        )
        rows = [
            report(
                "kedro run --pipelines inference",
                ours,
                floor,
                "python: import tensorflow + load the model",
            ),
            prediction_latency(project),
        ]
    return rows


if __name__ == "__main__":
    for row in main():
        print(row)
    sys.exit(0)
