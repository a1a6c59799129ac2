"""TensorFlow's devices, found once per process, reported in one plain log line.

On a machine without an NVIDIA driver, TensorFlow's first device query prints
`failed call to cuInit: ... UNKNOWN ERROR (303)` at ERROR level straight to the process's
stderr, from C++: noise that hides real warnings on every CPU machine. The query runs here
once, with stderr (file descriptor 2) sent to the null device for its few milliseconds, and
its outcome is logged by this project instead: the GPUs found, or that there are none
(a WARNING when an NVIDIA driver is installed but TensorFlow still finds no GPU).

The same first use sets TensorFlow's thread pools (`tensorflow_threads`): a process that
shares the machine with other runner processes (Kedro's ParallelRunner, Dask workers)
gets its share of the cores instead of a pool as wide as the machine in every process.
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# Threads for TensorFlow's intra- and inter-op pools in this process; unset: see
# `tensorflow_threads`. DaskRunner sets it on its workers (cores per worker process).
THREADS_VARIABLE = "ML_LSTM_TF_THREADS"


@contextmanager
def _stderr_silenced():
    """Sends file descriptor 2 (C and C++ writers included) to the null device."""
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(null)
        os.close(saved)


def _nvidia_driver_installed() -> bool:
    return (
        Path("/proc/driver/nvidia/version").exists()
        or Path(os.environ.get("SYSTEMROOT", "C:/Windows"), "System32", "nvcuda.dll").exists()
    )


@cache
def gpus() -> tuple[Any, ...]:
    """The GPUs TensorFlow can use (empty on CPU machines), probed once per process."""
    import tensorflow as tf

    _limit_threads(tf)
    with _stderr_silenced():
        found = tuple(tf.config.list_physical_devices("GPU"))
    if found:
        logger.info("TensorFlow uses %s.", ", ".join(device.name for device in found))
    elif _nvidia_driver_installed():
        logger.warning(
            "An NVIDIA driver is installed but TensorFlow finds no usable GPU: training "
            "runs on the CPU. Check that the CUDA libraries match TensorFlow %s.",
            tf.__version__,
        )
    else:
        logger.info("No GPU: TensorFlow runs on the CPU.")
    return found


def tensorflow_threads() -> int | None:
    """Threads per TensorFlow pool for this process; None keeps TensorFlow's default.

    `ML_LSTM_TF_THREADS` when set; else 1 in a child of a process pool (Kedro's
    ParallelRunner starts as many as there are cores, each running one node); else None:
    a sequential run has the machine to itself.
    """
    configured = os.environ.get(THREADS_VARIABLE, "").strip()
    if configured:
        try:
            threads = int(configured)
        except ValueError:
            threads = 0
        if threads < 1:
            raise ValueError(
                f"{THREADS_VARIABLE}={configured!r}: expected a whole number of threads, "
                "at least 1 (or leave it unset for the default)."
            )
        return threads
    import multiprocessing

    return 1 if multiprocessing.parent_process() is not None else None


def _limit_threads(tf: Any) -> None:
    threads = tensorflow_threads()
    if threads is None:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        # TensorFlow ran an op before this first use (a model loaded elsewhere): its pools
        # are fixed for the life of the process.
        logger.warning("TensorFlow was already initialised: its thread pools stay as they are.")
        return
    logger.info("TensorFlow limited to %d thread(s) per pool in this process.", threads)
