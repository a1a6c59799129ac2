"""Two ingestion runs at once on one instrument, in two real processes (#13 item 8)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from ingestion_support import NVDA, stored_sessions, window_sessions
from support import PROJECT_ROOT

WINDOWS = [("2024-01-02", "2024-02-29"), ("2024-03-01", "2024-04-30")]

# One run: it says it is ready, waits for the start signal, then backfills its window from
# its own in-process simulator, slowly (one request at a time, saved every 2 sessions), so
# that the two runs' ledger saves interleave.
RUN = """
import sys, time
from pathlib import Path
root, start, end = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
from ingestion_support import ingestion_parameters, run_ingestion
parameters = ingestion_parameters(
    start_date=start, end_date=end, batch_sessions=2, simulator={"latency_s": 0.02}
)
parameters["requests"]["max_concurrent_requests"] = 1
(root / f"ready-{start}").touch()
while not (root / "go").exists():
    time.sleep(0.01)
run_ingestion(root, parameters)
"""


def test_two_runs_with_disjoint_windows_keep_every_ledger_entry(tmp_path):
    paths = [str(PROJECT_ROOT / "tests"), str(PROJECT_ROOT / "tests/pipelines/ingestion")]
    command = [sys.executable, "-c", f"import sys; sys.path[:0] = {paths!r}\n{RUN}"]
    runs = [
        subprocess.Popen([*command, str(tmp_path), start, end], stderr=subprocess.PIPE, text=True)
        for start, end in WINDOWS
    ]
    try:
        deadline = time.monotonic() + 120
        while not all((tmp_path / f"ready-{start}").exists() for start, _ in WINDOWS):
            assert time.monotonic() < deadline, "the runs did not start"
            assert all(run.poll() is None for run in runs), [r.stderr.read() for r in runs]
            time.sleep(0.05)
        (tmp_path / "go").touch()
        errors = [run.communicate(timeout=300)[1] for run in runs]
    finally:
        for run in runs:
            run.kill()
    assert [run.returncode for run in runs] == [0, 0], errors

    expected = sorted(s for start, end in WINDOWS for s in window_sessions(NVDA, start, end))
    ledger = json.loads((tmp_path / "nvda" / "ingestion_ledger.json").read_text())
    assert sorted(ledger["sessions"]) == expected
    assert {entry["status"] for entry in ledger["sessions"].values()} == {"complete"}
    assert sorted(stored_sessions(tmp_path)) == expected
