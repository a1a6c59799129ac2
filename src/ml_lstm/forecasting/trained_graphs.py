"""The graphs TensorFlow keeps for every model trained in a process, released.

TensorFlow registers a gradient for the distribution step of each traced train function in
its global gradient registry (`CustomGradient-<n>`) and never removes it
(tensorflow/tensorflow#97697). Each entry holds its traced graph, so a long-lived process
(a Dask worker, run after run) kept two graphs per model it had trained: its memory, and
its CPU time per task, grew with every run. `keras.backend.clear_session()` does not
release them. An entry is read when a function is traced, not when the traced function
runs, so once the block that trained the models is over, its entries can go.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

PREFIX = "CustomGradient-"


def _gradient_registry() -> dict | None:
    """TensorFlow's registry of gradient functions; None when TensorFlow is not imported
    (nothing is imported here) or no longer keeps its registry there."""
    ops = sys.modules.get("tensorflow.python.framework.ops")
    registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", None)
    return registry if isinstance(registry, dict) else None


@contextmanager
def released_training_graphs() -> Iterator[None]:
    """On leaving, drops the custom gradients registered inside the block, so that the
    graphs of the models trained there can be freed.

    Only around work that nothing runs beside in the process: a model traced meanwhile by
    another thread could lose its gradient between registering and using it.
    """
    registry = _gradient_registry()
    before = set(registry) if registry is not None else set()
    try:
        yield
    finally:
        registry = _gradient_registry()
        if registry is not None:
            for name in [n for n in registry if n.startswith(PREFIX) and n not in before]:
                del registry[name]
