"""`kedro run --pipelines data_processing` in a copy of the project: outputs, no TensorFlow,
and a failing validation that still leaves its report behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
from data_processing_support import minute_bars, session_minutes

from ml_lstm.pipelines.ingestion.nodes import to_raw_format

RUN = """
import json, sys
from pathlib import Path
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
project = Path(sys.argv[1])
bootstrap_project(project)
error = None
try:
    with KedroSession.create(project_path=project) as session:
        session.run(pipeline_names=["data_processing"])
except Exception as exc:
    error = str(exc)
print(json.dumps({"error": error, "tensorflow": "tensorflow" in sys.modules,
                  "keras": "keras" in sys.modules}))
"""


def write_raw(project: Path, days: list[str], corrupt: int = 0) -> None:
    folder = project / "data" / "01_raw" / "nvda" / "minute_bars"
    folder.mkdir(parents=True, exist_ok=True)
    for number, day in enumerate(days):
        raw = to_raw_format(minute_bars(session_minutes("XNYS", day), seed=number))
        raw.loc[: corrupt - 1, "low"] = -1.0
        raw.to_csv(folder / f"{day}.csv", index=False)


def run(project: Path) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", RUN, str(project)],
        capture_output=True,
        text=True,
        check=True,
        cwd=project,
        env={"KEDRO_DISABLE_TELEMETRY": "true", "PATH": "/usr/bin:/bin"},
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_data_processing_run_writes_its_outputs_without_tensorflow(project_copy: Path):
    days = [
        "2024-11-19",
        "2024-11-20",
        "2024-11-21",
        "2024-11-22",
        "2024-11-25",
        "2024-11-26",
        "2024-11-27",
        "2024-11-29",
        "2024-12-02",
        "2024-12-03",
    ]
    write_raw(project_copy, days)
    outcome = run(project_copy)
    assert outcome == {"error": None, "tensorflow": False, "keras": False}
    data = project_copy / "data"
    hourly = pd.read_csv(data / "03_primary" / "nvda" / "hourly_bars.csv")
    assert len(hourly) == 9 * 7 + 4  # nine full days and the early close
    features = pd.read_csv(data / "04_feature" / "nvda" / "features.csv")
    listing = json.loads((data / "04_feature" / "nvda" / "feature_list.json").read_text())
    assert set(listing["features"]) <= set(features.columns)
    assert {"log_return", "sma_5", "sma_20", "rsi_14"} <= set(listing["features"])
    assert len(features) == len(hourly) - listing["warm_up_rows_dropped"]
    gap_report = json.loads((data / "08_reporting" / "nvda" / "gap_report.json").read_text())
    assert gap_report["summary"]["sessions_expected"] == 10  # Thanksgiving is no session
    assert (data / "08_reporting" / "nvda" / "gap_chart.png").stat().st_size > 0
    report = json.loads((data / "02_intermediate" / "nvda" / "validation_report.json").read_text())
    assert report["rows_valid"] == 9 * 390 + 210


def test_too_many_rejected_rows_fail_after_writing_the_report(project_copy: Path):
    write_raw(project_copy, ["2024-03-04", "2024-03-05"], corrupt=10)
    outcome = run(project_copy)
    assert "2.56% of 780 raw minute bars were rejected" in outcome["error"]
    assert (
        "Rejected rows lie in 2 session(s): 2024-03-04, 2024-03-05. Correct the source, then "
        "replace the stored files of these sessions with: kedro run --pipelines ingestion "
        "--params ingestion.refetch=true,ingestion.start_date=2024-03-04,"
        "ingestion.end_date=2024-03-05" in outcome["error"]
    )
    data = project_copy / "data"
    rejected = pd.read_csv(data / "02_intermediate" / "nvda" / "rejected_minute_bars.csv")
    assert len(rejected) == 20
    assert set(rejected["reason"]) == {"price is zero or negative"}
    assert not (data / "03_primary" / "nvda" / "hourly_bars.csv").exists()
