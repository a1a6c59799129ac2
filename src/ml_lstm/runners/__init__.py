"""Runners for many instruments: Kedro's ParallelRunner made to work, and a Dask runner.

    kedro run --runner ParallelRunner                 one process per node, on this machine
    kedro run --runner ml_lstm.runners.DaskRunner     each instrument on a Dask worker

`DaskRunner` is imported on first use only, so a run that does not use it never imports
`distributed`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DaskRunner"]


def __getattr__(name: str) -> Any:
    if name == "DaskRunner":
        from .dask_runner import DaskRunner

        return DaskRunner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
