"""TensorFlow's devices, found once per process, reported in one plain log line.

On a machine without an NVIDIA driver, TensorFlow's first device query prints
`failed call to cuInit: ... UNKNOWN ERROR (303)` at ERROR level straight to the process's
stderr, from C++: noise that hides real warnings on every CPU machine. The query runs here
once, with stderr (file descriptor 2) sent to the null device for its few milliseconds, and
its outcome is logged by this project instead: the GPUs found, or that there are none
(a WARNING when an NVIDIA driver is installed but TensorFlow still finds no GPU).
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
