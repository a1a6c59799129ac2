"""Tuning and tracking: trials per hour of the default search on the CPU, and what MLflow
tracking adds to a `kedro run`.

    python -m benchmarks tuning

Trials: `TRIALS` trials of the default `tuning` settings (conf/base: the default space,
3 folds, 10 epochs, median pruning) on a random-walk table the size of the default NVDA
features (2024, 1722 hourly rows), in this process; trials per hour = trials / wall time.

Tracking: the default `kedro run` (after a first run has backfilled the data) as a whole
process in a throw-away project copy, with tracking on (conf/base/mlflow.yml) and off
(`--env no_tracking`), alternating, `REPEAT` runs each. The goal's figure is best against
best, as before; on a machine shared with other work one run can take seconds more than
the next, so the medians, every run, the CPU seconds of each run's processes (the logging
process included) and the load average are printed too. The first tracked run, which
creates the SQLite store's schema, is timed on its own (a one-off per project).

    python -c "from benchmarks.bench_tuning import tracking_overhead; tracking_overhead()"

runs the tracking part alone.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from kedro.config import OmegaConfigLoader

from benchmarks.harness import measure_process

PROJECT = Path(__file__).resolve().parents[1]
ROWS = 1722
TRIALS = 6
REPEAT = 5


def parameters() -> dict:
    return OmegaConfigLoader(
        conf_source=str(PROJECT / "conf"),
        base_env="base",
        default_run_env="base",
        merge_strategy={"parameters": "soft"},
    )["parameters"]


def feature_table(rows: int = ROWS) -> tuple[pd.DataFrame, dict]:
    """A random-walk close with every column the default space and modelling name."""
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(0.004 * rng.standard_normal(rows)))
    timestamps = pd.date_range("2024-01-02 14:30", periods=rows, freq="h", tz="UTC")
    table = pd.DataFrame(
        {
            "timestamp": timestamps,
            "bar_end": timestamps + pd.Timedelta(hours=1),
            "close": close,
            "volume": rng.integers(1_000, 10_000, rows).astype("float64"),
            "log_return": np.concatenate([[0.0], np.diff(np.log(close))]),
        }
    )
    space = parameters()["tuning"]["space"]["features"]["optional"]
    for name in [*space, "sma_20", "rsi_14"]:
        if name not in table:
            table[name] = rng.standard_normal(rows)
    names = [name for name in table.columns if name not in ("timestamp", "bar_end", "close")]
    return table, {"features": names, "settings": {}, "frequency": "60min"}


def trials_per_hour() -> dict:
    from ml_lstm.pipelines.tuning import nodes

    table, feature_list = feature_table()
    settings = parameters()
    tuning = {**settings["tuning"], "n_trials": TRIALS, "study_name": "benchmark"}
    with tempfile.TemporaryDirectory() as folder:
        study = {"storage": f"sqlite:///{Path(folder) / 'tuning.db'}"}
        start = time.perf_counter()
        trials = nodes.run_search(study, table, feature_list, settings["modelling"], tuning)
        seconds = time.perf_counter() - start
    row = {
        "benchmark": "tuning_trials_per_hour",
        "trials": TRIALS,
        "rows": ROWS,
        "seconds": round(seconds, 1),
        "trials_per_hour": round(TRIALS / seconds * 3600, 1),
        "pruned": int((trials["state"] == "PRUNED").sum()),
        "cpus": os.cpu_count(),
    }
    print(
        f"tuning: {TRIALS} trials of the default space in {seconds:.0f} s "
        f"({row['pruned']} pruned) -> {row['trials_per_hour']:.0f} trials/hour on "
        f"{row['cpus']} CPUs",
        flush=True,
    )
    return row


def project_copy(target: Path) -> Path:
    """The project's conf and empty data layers: enough for the default `kedro run`."""
    shutil.copy2(PROJECT / "pyproject.toml", target / "pyproject.toml")
    shutil.copytree(PROJECT / "conf", target / "conf", ignore=shutil.ignore_patterns("local"))
    (target / "conf/local").mkdir()
    (target / "src").mkdir()
    for layer in (PROJECT / "data").iterdir():
        if layer.is_dir():
            (target / "data" / layer.name).mkdir(parents=True)
    return target


def timed_run(command: list[str], cwd: Path, env: dict) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and the children it waited for)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def tracking_overhead() -> dict:
    kedro = str(Path(sys.executable).with_name("kedro"))
    command, untracked = [kedro, "run"], [kedro, "run", "--env", "no_tracking"]
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "TF_CPP_MIN_LOG_LEVEL": "2"}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        project = project_copy(Path(folder))
        # The first run backfills 2024 from the simulator; later runs fetch nothing new,
        # train, evaluate, register and predict again, as a daily run does.
        measure_process(untracked, project, env=env)
        first = measure_process(command, project, env=env)
        on, off = [], []
        for _ in range(REPEAT):
            on.append(timed_run(command, project, env))
            off.append(timed_run(untracked, project, env))
    return _overhead_row(on, off, first.seconds, (load_before, os.getloadavg()[0]))


def _overhead_row(on: list, off: list, first_s: float, load: tuple[float, float]) -> dict:
    wall_on, wall_off = [run[0] for run in on], [run[0] for run in off]
    cpu_on, cpu_off = [run[1] for run in on], [run[1] for run in off]
    median_on, median_off = statistics.median(wall_on), statistics.median(wall_off)
    row = {
        "benchmark": "tracking_overhead_kedro_run",
        "tracked_s": round(min(wall_on), 2),
        "untracked_s": round(min(wall_off), 2),
        "overhead_percent": round(100 * (min(wall_on) / min(wall_off) - 1), 1),
        "median_overhead_percent": round(100 * (median_on / median_off - 1), 1),
        "cpu_overhead_s": round(statistics.median(cpu_on) - statistics.median(cpu_off), 2),
        "tracked_runs": [[round(wall, 2), round(cpu, 2)] for wall, cpu in on],
        "untracked_runs": [[round(wall, 2), round(cpu, 2)] for wall, cpu in off],
        "load_average": [round(value, 2) for value in load],
        "first_tracked_run_s": round(first_s, 2),
        "goal_percent": 5.0,
    }
    print(
        f"tracking: kedro run {row['tracked_s']:.1f} s tracked vs {row['untracked_s']:.1f} s "
        f"untracked (--env no_tracking), best of {len(on)} -> overhead "
        f"{row['overhead_percent']:+.1f}% (goal <= 5%); medians {median_on:.1f} vs "
        f"{median_off:.1f} s -> {row['median_overhead_percent']:+.1f}%; CPU (median) "
        f"{row['cpu_overhead_s']:+.2f} s; runs [wall, cpu] tracked {row['tracked_runs']}, "
        f"untracked {row['untracked_runs']}; load average {row['load_average']}; the first "
        f"tracked run, creating the store: {row['first_tracked_run_s']:.1f} s",
        flush=True,
    )
    return row


def main() -> list[dict]:
    return [trials_per_hour(), tracking_overhead()]


if __name__ == "__main__":
    main()
