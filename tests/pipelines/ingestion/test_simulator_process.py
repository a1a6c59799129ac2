"""The simulator run standalone (`python -m ml_lstm.tws_simulator`), as the README tells users to,
with the `ib` source (what `kedro run --env ib` uses) connecting to it through IB_PORT."""

from __future__ import annotations

import subprocess
import sys

from ingestion_support import assert_stored_equal_market, ingestion_parameters, run_ingestion
from support import PROJECT_ROOT

from ml_lstm.tws_simulator import SimulatorProcess


def test_ib_source_backfills_from_the_standalone_simulator(
    tmp_path, monkeypatch, project_parameters
):
    nvda = project_parameters["instruments"]["nvda"]  # what the standalone simulator serves
    with SimulatorProcess(["--instrument", "nvda"], cwd=PROJECT_ROOT) as simulator:
        monkeypatch.setenv("IB_PORT", str(simulator.port))
        monkeypatch.setenv("IB_CLIENT_ID", "23")
        run_ingestion(
            tmp_path,
            ingestion_parameters(source="ib", start_date="2024-01-08", end_date="2024-01-12"),
            instrument=nvda,
            connection={"host": "127.0.0.1", "port": 1, "client_id": 1},
        )

    assert simulator.returncode == 0, simulator.log
    assert "TWS simulator stopped" in simulator.log
    sessions = ["2024-01-08", "2024-01-09", "2024-01-10", "2024-01-11", "2024-01-12"]
    assert_stored_equal_market(tmp_path, nvda, sessions)


def test_simulator_reports_a_bad_command_line(tmp_path):
    process = SimulatorProcess(
        ["--instrument", "nvda", "--csv", "a.csv", "--instrument", "x"], cwd=PROJECT_ROOT
    )
    try:
        process.start()
    except RuntimeError as error:
        assert "--csv serves one instrument" in str(error)
    else:
        process.stop()
        raise AssertionError("the simulator started with an invalid command line")


def test_the_simulator_and_the_ib_client_import_no_pipeline():
    # Infrastructure: the ingestion pipeline imports them, never the other way round.
    script = (
        "import sys\n"
        "import ml_lstm.tws_simulator, ml_lstm.ib_client\n"
        "loaded = sorted(name for name in sys.modules if name.startswith('ml_lstm.pipelines'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
