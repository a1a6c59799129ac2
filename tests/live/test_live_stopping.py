"""Stopping `kedro live` (SIGTERM, the kill-switch file) and its dry run, against the TWS
simulator over a real socket."""

from __future__ import annotations

import hashlib
import json
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from live_support import (
    copy_trained,
    leftover_temporaries,
    live_parameters,
    start_kedro_live,
    wait_for_line,
)

from ml_lstm.live.runner import run_live

pytestmark = pytest.mark.slow

STOP_WITHIN_S = 5.0


def streaming_parameters() -> dict:
    # Slow enough that the session is still streaming when the stop comes.
    return live_parameters(simulator={"start": "2024-06-03T13:20:00Z", "speed": 120})


def assert_stopped_cleanly(process, project: Path, started: float) -> None:
    process.wait(timeout=30)
    assert time.monotonic() - started < STOP_WITHIN_S
    assert process.returncode == 0, process.stdout.read()[-3000:]
    assert leftover_temporaries(project) == []
    session = pd.read_csv(project / "data/01_raw/nvda/minute_bars/2024-06-03.csv")
    assert session["timestamp"].is_monotonic_increasing and len(session) > 0
    json.loads((project / "data/01_raw/nvda/ingestion_ledger.json").read_text())


def test_sigterm_stops_it_within_5_s_with_exit_0(trained, tmp_path):
    project = copy_trained(trained, tmp_path / "project")
    process = start_kedro_live(project, streaming_parameters())
    wait_for_line(process, "minute(s) up", timeout_s=90)

    started = time.monotonic()
    process.send_signal(signal.SIGTERM)

    assert_stopped_cleanly(process, project, started)


def test_the_kill_switch_file_stops_it_within_5_s(trained, tmp_path):
    project = copy_trained(trained, tmp_path / "project")
    session_file = project / "data/01_raw/nvda/minute_bars/2024-06-03.csv"
    touched: list[float] = []

    def touch_once_streaming() -> None:
        while not session_file.exists():
            time.sleep(0.05)
        time.sleep(0.5)
        touched.append(time.monotonic())
        (project / "STOP").touch()

    toucher = threading.Thread(target=touch_once_streaming, daemon=True)
    toucher.start()
    (loop,) = run_live(project, params=streaming_parameters())

    assert time.monotonic() - touched[0] < STOP_WITHIN_S
    assert loop.stopper_reason.startswith("kill-switch file STOP")
    assert loop.stats.minutes_written > 0
    assert leftover_temporaries(project) == []


def data_files(project: Path) -> dict[str, str]:
    return {
        str(path.relative_to(project)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted((project / "data").rglob("*"))
        if path.is_file()
    }


def test_a_dry_run_writes_nothing_and_prints_each_prediction(trained, tmp_path, capsys):
    project = copy_trained(trained, tmp_path / "project")
    before = data_files(project)
    parameters = live_parameters(
        dry_run=True,
        until="2024-06-03T14:45:00Z",
        simulator={"start": "2024-06-03T13:20:00Z", "speed": 1500},
    )

    (loop,) = run_live(project, params=parameters)

    assert data_files(project) == before
    printed = [line for line in capsys.readouterr().out.splitlines() if "[dry run]" in line]
    assert len(printed) == len(loop.stats.predictions) == 1
    assert "2024-06-03T13:30:00+00:00" in printed[0]
