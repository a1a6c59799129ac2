"""Project copies with several instruments, whole `kedro run` processes, and comparison
of two runs' data folders (the loopback cluster is ml_lstm.runners.loopback)."""

from __future__ import annotations

import importlib.util
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import yaml
from support import PROJECT_ROOT, SMALL_RUN, copy_project, merge

BIN = Path(sys.executable).parent
KEDRO = str(BIN / "kedro")

# SMALL_RUN on a shorter window: 33 sessions per instrument, two epochs of a tiny LSTM.
TEST_RUN = merge(SMALL_RUN, {"ingestion": {"start_date": "2024-02-12"}})

_compare = importlib.util.spec_from_file_location(
    "compare_default_run", PROJECT_ROOT / "scripts" / "compare_default_run.py"
)
compare_default_run = importlib.util.module_from_spec(_compare)
_compare.loader.exec_module(compare_default_run)


def project_with(target: Path, instruments: list[str], extra: dict | None = None) -> Path:
    """A project copy running `instruments` (universe keys) on TEST_RUN's window."""
    copy_project(target)
    parameters = merge(TEST_RUN, extra or {})
    parameters["instruments"] = {name: {"enabled": True} for name in instruments}
    if "nvda" not in instruments:
        parameters["instruments"]["nvda"] = {"enabled": False}
    (target / "conf/local/parameters.yml").write_text(yaml.safe_dump(parameters))
    return target


def environment(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "KEDRO_DISABLE_TELEMETRY": "true",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "COLUMNS": "200",
        **extra,
    }


def kedro_run(project: Path, *arguments: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [KEDRO, "run", *arguments],
        cwd=project,
        env=environment(**env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def run_files(data: Path) -> dict[str, bytes]:
    """Every output file with run stamps taken out (scripts/compare_default_run.py's rules);
    Keras archives as their layers' weights (the optimizer's name, `adam` or `adam_1`,
    counts the optimizers made before it in the process), and without the one chart that
    prints the version."""
    files = compare_default_run.normalised_files(data)
    for name in files:
        if name.endswith(".keras"):
            files[name] = layer_weights(next(data.glob(name.replace("<version>", "*"))))
        elif name.endswith("latest_prediction.png"):
            files[name] = b"(draws the model version in its title; its .json is compared)"
    return files


def layer_weights(path: Path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        weights = io.BytesIO(archive.read("model.weights.h5"))
    parts: list[bytes] = []
    with h5py.File(weights, "r") as h5:
        h5["layers"].visititems(
            lambda name, item: (
                parts.append(name.encode() + item[()].tobytes())
                if isinstance(item, h5py.Dataset)
                else None
            )
        )
    return b"\0".join(parts)


def differences(reference: dict[str, bytes], current: dict[str, bytes]) -> list[str]:
    return compare_default_run.compare(reference, current)
