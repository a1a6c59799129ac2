"""The project's command line as users type it: `kedro run` checks, quiet start-up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

KEDRO = str(Path(sys.executable).parent / "kedro")
ONE_DAY = "ingestion.start_date=2024-01-02,ingestion.end_date=2024-01-02"


def kedro(project: Path, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [KEDRO, *arguments],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"},
    )


def test_a_disabled_instrument_namespace_says_how_to_enable_it(project_copy):
    result = kedro(project_copy, "run", "--namespaces", "xagusd,zzzz")

    assert result.returncode == 2
    assert "Instrument 'xagusd' is disabled" in result.stderr
    assert "--params instruments.xagusd.enabled=true" in result.stderr
    assert "No instrument 'zzzz'" in result.stderr and "configured: nvda, xagusd" in result.stderr
    assert not any((project_copy / "data/01_raw").iterdir())


@pytest.mark.slow
def test_enabling_it_at_run_time_lets_the_namespace_run(project_copy):
    result = kedro(
        project_copy,
        "run",
        "--pipelines",
        "ingestion",
        "--namespaces",
        "xagusd",
        "--params",
        f"instruments.xagusd.enabled=true,{ONE_DAY}",
    )

    assert result.returncode == 0, result.stderr[-2000:]
    assert any((project_copy / "data/01_raw/xagusd/minute_bars").glob("*.csv"))
    assert not (project_copy / "data/01_raw/nvda").exists()


@pytest.mark.slow
def test_a_run_prints_no_warning_that_users_cannot_act_on(project_copy):
    result = kedro(project_copy, "run", "--pipelines", "ingestion", "--params", ONE_DAY)

    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert "register_new_resolver" not in output  # Kedro's own config loader
    assert "Add type hints" not in output  # MLflow, on importing kedro-mlflow's commands


@pytest.mark.slow
def test_tensorflow_start_up_prints_no_cuda_driver_error():
    # Building and running a model queries TensorFlow's devices; on a machine without an
    # NVIDIA driver TensorFlow itself prints "failed call to cuInit" at ERROR level.
    script = (
        "import logging, numpy as np\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "from ml_lstm.forecasting.lstm_factory import build_model\n"
        "model = build_model({'lookback': 3, 'n_features': 2, 'lstm_units': [2],"
        " 'dense_units': 0, 'optimizer': 'adam', 'learning_rate': 0.001, 'loss': 'mse',"
        " 'output': 'linear'})\n"
        "print(model.predict_on_batch(np.zeros((1, 3, 2), 'float32')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300
    )

    assert "cuInit" not in result.stderr
    assert "TensorFlow runs on the CPU" in result.stderr or "TensorFlow uses" in result.stderr
