"""A project trained once per test module, copied for each live run, and the runs' helpers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from support import PROJECT_ROOT, copy_project, merge

# Two months of history and a tiny model: trained in a few seconds.
TRAINING: dict[str, Any] = {
    "ingestion": {"start_date": "2024-04-01", "end_date": "2024-05-31"},
    "modelling": {
        "lookback": 8,
        "model": {"lstm_units": [8], "dense_units": 4},
        "training": {"epochs": 2, "batch_size": 32, "patience": 1},
    },
}
# The live runs: the same parameters, backfilled up to the feed's day. 2024-06-03 is a
# Monday: the session 13:30-20:00 UTC; the stored history ends on Friday 2024-05-31.
LIVE_DAY = "2024-06-03"
OPEN, CLOSE = "2024-06-03T13:30:00Z", "2024-06-03T20:00:00Z"


def project_parameters(project: Path = PROJECT_ROOT) -> dict[str, Any]:
    """A project's parameters as `kedro run` loads them (base, soft-merged)."""
    from kedro.config import OmegaConfigLoader

    loader = OmegaConfigLoader(
        str(project / "conf"),
        base_env="base",
        default_run_env="base",
        merge_strategy={"parameters": "soft"},
    )
    return loader["parameters"]


def live_parameters(**live: Any) -> dict[str, Any]:
    base = {
        "ingestion": {"start_date": "2024-04-01", "requests": {"retry_backoff_s": 0.1}},
        "modelling": TRAINING["modelling"],
        "live": {
            "clock_poll_s": 0.05,
            "stall_after_s": 1.0,
            "retry_backoff_s": 0.1,
            "retry_backoff_max_s": 0.5,
            "max_reconnects": 20,
            "chart": False,
        },
    }
    return merge(base, {"live": live})


def train(target: Path) -> Path:
    project = copy_project(target)
    # Run tracking (kedro-mlflow), where the project has it, is not what these tests test.
    untracked = project / "conf" / "no_tracking" / "mlflow.yml"
    if untracked.is_file():
        shutil.copy2(untracked, project / "conf" / "local" / "mlflow.yml")
    bootstrap_project(project)
    with KedroSession.create(project_path=project, runtime_params=TRAINING) as session:
        session.run()
    return project


def copy_trained(trained: Path, target: Path) -> Path:
    shutil.copytree(trained, target)
    return target


def flatten(parameters: dict[str, Any], prefix: str = "") -> list[str]:
    """`--params` items (key.sub=value) for a nested dict."""
    items = []
    for key, value in parameters.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            items += flatten(value, f"{name}.")
        elif isinstance(value, list):
            items.append(f"{name}=[{','.join(str(v) for v in value)}]")
        else:
            items.append(f"{name}={'null' if value is None else value}")
    return items


def start_kedro_live(project: Path, parameters: dict[str, Any]) -> subprocess.Popen:
    kedro = Path(sys.executable).with_name("kedro")
    environment = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen(
        [str(kedro), "live", "--params", ",".join(flatten(parameters))],
        cwd=project,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_line(process: subprocess.Popen, text: str, timeout_s: float) -> str:
    """The output up to the first line holding `text` (fails after `timeout_s`)."""
    output = ""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        output += line
        if text in line:
            return output
    process.kill()
    raise AssertionError(f"no line with {text!r} within {timeout_s} s:\n{output[-3000:]}")


def leftover_temporaries(project: Path) -> list[Path]:
    """Temporaries of an atomic write left behind (filelock's `.lock` files are not data)."""
    return [path for path in (project / "data").rglob(".*.tmp")]
