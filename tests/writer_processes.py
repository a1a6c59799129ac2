"""Real writer processes for the file-safety tests: killed mid-write, or contending.

A writer is killed mid-write by the kernel, not by a patched function: the child lowers
its file-size limit (RLIMIT_FSIZE) and restores SIGXFSZ's default action (Python ignores
it), so the first write past the limit kills it with part of its bytes on disk, wherever
the implementation happens to write them. POSIX only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd

# The child writes this many bytes of its file, then dies.
KILL_AFTER_BYTES = 64 * 1024

_KILL_SWITCH = f"""
import resource, signal
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
resource.setrlimit(resource.RLIMIT_FSIZE, ({KILL_AFTER_BYTES}, {KILL_AFTER_BYTES}))
"""


def run_python(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh interpreter (no bytecode written: the kill switch counts bytes)."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def big_frame(rows: int = 20_000) -> pd.DataFrame:
    """Minute bars whose CSV is several times KILL_AFTER_BYTES."""
    minutes = pd.date_range("2020-03-16 13:30", periods=rows, freq="min", tz="UTC")
    return pd.DataFrame({"timestamp": minutes.strftime("%Y-%m-%dT%H:%M:%SZ"), "close": 1.5})


def save_killed_mid_write(setup: str, save: str, *args: str) -> subprocess.CompletedProcess:
    """Runs `setup` (imports, dataset), arms the kill switch, then runs `save`.

    `setup` may use `big_frame()` and `sys.argv[1:]` (= `args`). Returns the finished
    process; it was killed mid-write when its return code is -SIGXFSZ.
    """
    code = "\n".join(
        [
            "import sys",
            f"sys.path.insert(0, {str(Path(__file__).parent)!r})",
            "from writer_processes import big_frame",
            textwrap.dedent(setup),
            _KILL_SWITCH,
            textwrap.dedent(save),
        ]
    )
    return run_python(code, *args)


def was_killed_mid_write(process: subprocess.CompletedProcess) -> bool:
    return process.returncode == -signal.SIGXFSZ
