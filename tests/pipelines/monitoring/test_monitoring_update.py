"""`kedro run --pipelines update` as a scheduler runs it: from a fresh project, one day at
a time, twice at once; and its lock after a crash."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from support import SMALL_RUN, copy_project

from ml_lstm.update import UpdateAlreadyRunning, lock_paths, update_lock

KEDRO = str(Path(sys.executable).parent / "kedro")
# Thursday 21 to Monday 25 March 2024: three NYSE sessions after the first update's data.
DAYS = ["2024-03-21", "2024-03-22", "2024-03-25"]


def kedro_update(project: Path, end_date: str, *params: str, wait: bool = True):
    command = [
        KEDRO,
        "run",
        "--pipelines",
        "update",
        "--params",
        ",".join([f"ingestion.end_date={end_date}", *params]),
    ]
    options = {
        "cwd": project,
        "stdout": subprocess.PIPE,
        "stderr": subprocess.STDOUT,
        "text": True,
        "env": {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"},
    }
    if not wait:
        return subprocess.Popen(command, **options)
    return subprocess.run(command, check=False, timeout=300, **options)


@pytest.fixture(scope="module")
def first_update(tmp_path_factory) -> Path:
    """A fresh project after its first update (to 2024-03-20): no model yet, so the update
    trains one, then predicts and scores. Retraining every 2 sessions."""
    project = copy_project(tmp_path_factory.mktemp("update") / "project")
    small = {
        **SMALL_RUN,
        "ingestion": {"start_date": "2024-01-02"},
        "modelling": {
            **SMALL_RUN["modelling"],
            "retraining": {"policy": {"every_n_sessions": 2}, "epochs": 2},
        },
    }
    (project / "conf/local/parameters.yml").write_text(yaml.safe_dump(small))
    # Run tracking (MLflow) is not what these tests check, and costs seconds per step.
    (project / "conf/local/mlflow.yml").write_text("enabled: false\n")
    result = kedro_update(project, "2024-03-20")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Update: modelling for nvda: no model in the registry yet" in result.stdout
    return project


def copy_of(project: Path, target: Path) -> Path:
    shutil.copytree(project, target)
    return target


def model_output(project: Path, name: str) -> Path:
    return project / "data/07_model_output/nvda" / name


def test_a_crashed_update_does_not_hold_the_lock(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom ml_lstm.update import update_lock\n"
            "with update_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(600)\n",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with (
            pytest.raises(UpdateAlreadyRunning, match=f"pid {holder.pid} on"),
            update_lock(tmp_path),
        ):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    # Killed without any clean-up: its holder file is left, its lock is not.
    assert lock_paths(tmp_path)[1].is_file()
    with update_lock(tmp_path):
        assert json.loads(lock_paths(tmp_path)[1].read_text())["pid"] == os.getpid()
    assert not lock_paths(tmp_path)[1].exists()


@pytest.mark.slow
def test_two_concurrent_updates_one_runs_one_exits_naming_it(first_update, tmp_path):
    project = copy_of(first_update, tmp_path / "project")
    log_before = model_output(project, "predictions.csv").read_bytes()
    # The first update's backfill answers slowly, so it surely still runs when the second
    # starts.
    first = kedro_update(project, DAYS[0], "ingestion.simulator.latency_s=6", wait=False)
    try:
        holder = lock_paths(project)[1]
        deadline = time.monotonic() + 120
        while not holder.is_file() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert holder.is_file(), "the first update never took the lock"
        second = kedro_update(project, DAYS[0])
        assert first.poll() is None, "the first update ended before the second was refused"
    finally:
        output, _ = first.communicate(timeout=300)

    assert second.returncode == 0, second.stdout[-3000:]
    assert f"Another update is running on this project (pid {first.pid} on" in second.stdout
    assert "Running node" not in second.stdout
    assert first.returncode == 0, output[-3000:]
    assert "Update finished for nvda." in output
    # Nothing lost: the log gained the first update's row, the earlier row is scored.
    log_after = model_output(project, "predictions.csv").read_bytes()
    assert log_after.startswith(log_before)
    scored = pd.read_csv(model_output(project, "scored_predictions.csv"))
    assert scored["status"].tolist() == ["scored", "pending"]
    assert not lock_paths(project)[1].exists()


@pytest.mark.slow
def test_daily_updates_score_every_earlier_prediction_once_its_bar_is_in(first_update, tmp_path):
    project = copy_of(first_update, tmp_path / "project")
    bars_path = project / "data/03_primary/nvda/hourly_bars.csv"
    decisions = []
    for day, end_date in enumerate(DAYS, start=1):
        log_before = model_output(project, "predictions.csv").read_bytes()
        result = kedro_update(project, end_date)
        assert result.returncode == 0, result.stdout[-3000:]
        # The append-only log is never rewritten: the old bytes are a prefix of the new.
        assert model_output(project, "predictions.csv").read_bytes().startswith(log_before)

        scored = pd.read_csv(model_output(project, "scored_predictions.csv"))
        assert len(scored) == day + 1
        assert scored["status"].tolist() == ["scored"] * day + ["pending"]
        bars = pd.read_csv(bars_path).set_index("timestamp")["close"]
        for row in scored.itertuples():
            if row.status == "scored":
                target = pd.Timestamp(row.target_bar_time).strftime("%Y-%m-%dT%H:%M:%S%z")
                assert row.actual_close == bars[target]
                assert row.persistence_error == pytest.approx(row.actual_close - row.last_close)
        card = json.loads((project / "data/08_reporting/nvda/live_scorecard.json").read_text())
        assert card["counts"]["scored"] == day and card["counts"]["pending"] == 1
        assert card["last_window"]["rows"] == day
        assert (project / "data/08_reporting/nvda/live_scorecard.png").is_file()
        assert (project / "data/08_reporting/nvda/alerts.json").is_file()
        decision = json.loads(
            (project / "data/08_reporting/nvda/retraining_decision.json").read_text()
        )
        decisions.append(decision["action"])
        retrained = "Update: retraining for nvda:" in result.stdout
        assert retrained == (decision["action"] == "retrain")
    # every_n_sessions: 2, counted from the latest training (the first update's, then the
    # retraining's): retrain on the second day only; the third is one session after it.
    assert decisions == ["none", "retrain", "none"]
    manifests = list((project / "data/06_models/nvda/manifest.json").iterdir())
    assert len(manifests) == 2

    # The same day again (a scheduler retrying): nothing new to fetch or train; its repeated
    # prediction is logged, marked a repeat, and the scorecard's figures stay the same.
    again = kedro_update(project, DAYS[-1])
    assert again.returncode == 0, again.stdout[-3000:]
    assert "Update: no retraining for nvda: 1 session(s) since" in again.stdout
    repeated = json.loads((project / "data/08_reporting/nvda/live_scorecard.json").read_text())
    assert repeated["counts"]["duplicates"] == 1 and repeated["counts"]["pending"] == 1
    assert repeated["last_window"] == card["last_window"]
    assert len(list((project / "data/06_models/nvda/manifest.json").iterdir())) == 2
