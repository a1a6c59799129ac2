"""The simulator run standalone (`python -m ...tws_simulator`), as the README tells users to,
with the `ib` source (what `kedro run --env ib` uses) connecting to it through IB_PORT."""

from __future__ import annotations

from ingestion_support import assert_stored_equal_market, ingestion_parameters, run_ingestion
from support import PROJECT_ROOT

from ml_lstm.pipelines.ingestion.tws_simulator import SimulatorProcess


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
