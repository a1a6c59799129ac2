"""Does the CSV import still give the same per-session frames? Compares two versions of the code.

    python scripts/compare_csv_import.py --reference <git revision> [--current <revision>]
        [--file bars.csv] [--preset plain] [--rows 1000000]

Imports one CSV file of minute bars (by default the 1M-row file of `python -m benchmarks
ingestion`, written by the current code) with each version, in a throw-away copy of the
project (as `scripts/compare_default_run.py` makes them), for the `nvda` instrument of that
version's conf/base: the bars read and split by session, as a `csv` source does. Then it
compares, session by session, the rows, the dtypes (time zone included), the index and the
frame's CSV text (a SHA-256 of `to_csv()`). Exit status 0 when every session matches.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from compare_default_run import export_revision, export_working_tree

# Run inside each copy: the sessions of the file, summarised.
SUMMARY = """
import hashlib, json, sys
from benchmarks.bench_ingestion import NVDA
from ml_lstm.pipelines.ingestion.csv_bars import PRESETS, read_bars_csv
from ml_lstm.pipelines.ingestion.file_sources import split_by_session
path, preset = sys.argv[1], sys.argv[2]
sessions = split_by_session(read_bars_csv(path, PRESETS[preset]), NVDA, path)
print(json.dumps({
    label: {
        "rows": len(frame),
        "dtypes": {name: str(dtype) for name, dtype in frame.dtypes.items()},
        "zone": repr(frame["timestamp"].dt.tz),
        "index": repr(frame.index),
        "csv_sha256": hashlib.sha256(frame.to_csv().encode()).hexdigest(),
    }
    for label, frame in sessions.items()
}))
"""
WRITE_BENCHMARK_FILE = """
import sys
from pathlib import Path
from benchmarks.bench_ingestion import _write_minute_csv
_write_minute_csv(Path(sys.argv[1]), int(sys.argv[2]))
"""


def run_in(project: Path, code: str, *arguments: str) -> str:
    environment = {**os.environ, "PYTHONPATH": f"{project / 'src'}{os.pathsep}{project}"}
    environment["KEDRO_DISABLE_TELEMETRY"] = "true"
    result = subprocess.run(
        [sys.executable, "-c", code, *arguments],
        cwd=project,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def differences(reference: dict, current: dict) -> list[str]:
    problems = [
        f"only in the reference: {label}" for label in sorted(reference.keys() - current.keys())
    ]
    problems += [
        f"only in this version: {label}" for label in sorted(current.keys() - reference.keys())
    ]
    for label in sorted(reference.keys() & current.keys()):
        for key, value in reference[label].items():
            if current[label][key] != value:
                problems.append(f"{label}: {key} {value!r} -> {current[label][key]!r}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", required=True, help="git revision to compare with")
    parser.add_argument("--current", help="git revision to check (default: the working tree)")
    parser.add_argument("--file", help="the CSV file (default: the benchmark's, written here)")
    parser.add_argument("--preset", default="plain", help="csv_format preset (default plain)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the benchmark file")
    arguments = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="compare_csv_") as folder:
        reference, current = Path(folder, "reference"), Path(folder, "current")
        export_revision(arguments.reference, reference)
        if arguments.current:
            export_revision(arguments.current, current)
        else:
            export_working_tree(current)
        path = arguments.file or str(Path(folder, "bars.csv"))
        if not arguments.file:
            run_in(current, WRITE_BENCHMARK_FILE, path, str(arguments.rows))
        before = json.loads(run_in(reference, SUMMARY, path, arguments.preset))
        after = json.loads(run_in(current, SUMMARY, path, arguments.preset))
    problems = differences(before, after)
    print(
        "\n".join(problems)
        or f"IDENTICAL: {len(after)} sessions, {sum(s['rows'] for s in after.values())} bars"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
