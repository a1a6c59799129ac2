"""Shared measurement for the benchmarks: wall time and peak memory, ours against a reference.

Each side runs in a fresh subprocess so that its peak resident memory is its own and imports
already paid by the other side do not flatter either. Peak memory is the child's VmHWM
(/proc/self/status): on Linux, ru_maxrss survives fork and exec, so a child would report
the benchmark runner's own peak whenever that is higher.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

_CHILD = """
import json, resource, sys, time, runpy
target, function = sys.argv[1], sys.argv[2]
args = json.loads(sys.argv[3])
if target.endswith(".py"):
    func = runpy.run_path(target)[function]
else:
    func = getattr(__import__(target, fromlist=[function]), function)
start = time.perf_counter()
timed_part = func(**args)
elapsed = time.perf_counter() - start
if isinstance(timed_part, float):  # the function timed its own work (without its set-up)
    elapsed = timed_part
try:
    with open("/proc/self/status") as status:
        peak_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
except OSError:  # not Linux: ru_maxrss (KiB on Linux, bytes on macOS)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_kib = peak_kib / 1024 if sys.platform == "darwin" else peak_kib
print(json.dumps({"seconds": elapsed, "peak_mib": peak_kib / 1024}))
"""


@dataclass(frozen=True)
class Measurement:
    seconds: float
    peak_mib: float


def measure(module: str, function: str, repeat: int = 1, **kwargs: object) -> Measurement:
    """Runs `module.function(**kwargs)` in a fresh interpreter; the best of `repeat` runs.

    Only the call itself is timed (imports are not), or, where the function returns a
    float, the seconds it timed itself (its work without a set-up such as starting a server
    it talks to); peak memory is the process's own high-water resident set size (VmHWM),
    imports included.
    """
    runs = []
    for _ in range(repeat):
        result = subprocess.run(
            [sys.executable, "-c", _CHILD, module, function, json.dumps(kwargs)],
            check=True,
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        runs.append(json.loads(result.stdout.strip().splitlines()[-1]))
    best = min(runs, key=lambda run: run["seconds"])
    return Measurement(best["seconds"], max(run["peak_mib"] for run in runs))


def report(name: str, ours: Measurement, reference: Measurement, reference_name: str) -> dict:
    """Prints one comparison line (ratios are ours / reference) and returns it as a dict."""
    row = {
        "benchmark": name,
        "reference": reference_name,
        "ours_s": round(ours.seconds, 3),
        "reference_s": round(reference.seconds, 3),
        "time_ratio": round(ours.seconds / reference.seconds, 3),
        "ours_peak_mib": round(ours.peak_mib, 1),
        "reference_peak_mib": round(reference.peak_mib, 1),
        "memory_ratio": round(ours.peak_mib / reference.peak_mib, 3),
    }
    print(
        f"{name}: {row['ours_s']:.3f} s vs {reference_name} {row['reference_s']:.3f} s "
        f"-> time ratio {row['time_ratio']:.2f}; peak {row['ours_peak_mib']:.0f} MiB vs "
        f"{row['reference_peak_mib']:.0f} MiB -> memory ratio {row['memory_ratio']:.2f}",
        flush=True,
    )
    return row


def timed(func, *args, **kwargs) -> tuple[object, float]:
    """Calls func and returns (result, seconds)."""
    start = time.perf_counter()
    result = func(*args, **kwargs)
    return result, time.perf_counter() - start


_WHOLE_PROCESS = """
import resource, subprocess, sys, time
start = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def measure_process(
    command: list[str], cwd: Path, repeat: int = 1, env: dict | None = None
) -> Measurement:
    """`command` as a whole process (start-up and imports included), the best of `repeat`.

    A small wrapper runs it and reports its wall time and the largest resident set of it
    and its descendants (RUSAGE_CHILDREN, so the benchmark's own peak stays out).
    """
    runs = []
    for _ in range(repeat):
        result = subprocess.run(
            [sys.executable, "-c", _WHOLE_PROCESS, *command],
            check=True,
            capture_output=True,
            text=True,
            cwd=cwd,
            env=env,
        )
        seconds, peak_kib = result.stdout.split()
        peak_kib = int(peak_kib) / 1024 if sys.platform == "darwin" else int(peak_kib)
        runs.append(Measurement(float(seconds), peak_kib / 1024))
    best = min(runs, key=lambda run: run.seconds)
    return Measurement(best.seconds, max(run.peak_mib for run in runs))
