"""What runs on a Dask worker: one instrument's nodes in order, with the project's hooks.

Imported by the workers (the project must be installed there: `pip install -e .`).
"""

from __future__ import annotations

import os
import random
import sys
import time
from contextlib import nullcontext
from typing import Any

from kedro.runner.task import Task

from ml_lstm.forecasting.trained_graphs import released_training_graphs

# The scheduler's event topic with one record per instrument task (worker, nodes, memory);
# `Client.get_events(EVENTS_TOPIC)` lists them, and the tests read them there.
EVENTS_TOPIC = "ml_lstm.instruments"
# Scheduler metadata per instrument under way: ["ml_lstm", run_id, instrument].
METADATA_ROOT = "ml_lstm"


class InstrumentRunError(RuntimeError):
    """An instrument's nodes did not all run; the message says which node, where and why."""


def run_instrument(
    instrument: str,
    nodes: list[Any],
    catalog: Any,
    run_id: str,
    is_async: bool,
    package_name: str | None,
    threads: dict[str, int],
) -> dict[str, Any]:
    """One instrument's nodes, in order, on a Dask worker (the task DaskRunner submits)."""
    from distributed import get_client, get_worker

    worker, client = get_worker(), get_client()
    hook_manager = _prepare_worker(package_name, threads.get(worker.address))
    key = [METADATA_ROOT, run_id, instrument]
    _refuse_second_attempt(instrument, client.get_metadata(key, default=None))
    started, cpu_started = time.time(), time.process_time()
    node_seconds = {}
    # A worker serves run after run: the graphs TensorFlow keeps per trained model are
    # released after each task, where no other task runs beside it (one thread).
    alone = worker.state.nthreads == 1
    with released_training_graphs() if alone else nullcontext():
        for node in nodes:
            client.set_metadata(
                key, {"node": node.name, "worker": worker.address, "pid": os.getpid()}
            )
            node_started = time.perf_counter()
            try:
                Task(
                    node=node,
                    catalog=catalog,
                    hook_manager=hook_manager,
                    is_async=is_async,
                    run_id=run_id,
                ).execute()
            except Exception as error:
                raise InstrumentRunError(
                    f"Node '{node.name}' of instrument '{instrument}' failed on worker "
                    f"{worker.address}: {type(error).__name__}: {error}"
                ) from error
            node_seconds[node.name] = round(time.perf_counter() - node_started, 3)
    report = {
        "instrument": instrument,
        "worker": worker.address,
        "pid": os.getpid(),
        "nodes": [node.name for node in nodes],
        "node_seconds": node_seconds,
        "start": started,
        "end": time.time(),
        "seconds": time.time() - started,
        # CPU of this worker process while the task ran (its event loop included).
        "cpu_seconds": time.process_time() - cpu_started,
        "peak_rss_bytes": peak_rss_bytes(),
    }
    worker.log_event(EVENTS_TOPIC, report)
    return report


def _refuse_second_attempt(instrument: str, earlier: dict | None) -> None:
    # Dask gives a task whose worker died to another worker. Here that is refused: the first
    # attempt may have appended its prediction and saved its model version already.
    if earlier:
        raise InstrumentRunError(
            f"Instrument '{instrument}': its worker {earlier['worker']} (pid {earlier['pid']}) "
            f"was lost while node '{earlier['node']}' ran. Not run again in this run, since a "
            "second attempt would append a second prediction and meet the first attempt's "
            "model version; files are written atomically, so each is whole or absent."
        )


def _prepare_worker(package_name: str | None, tensorflow_threads: int | None) -> Any:
    """The project's settings and hooks in this worker process; its share of the cores."""
    from kedro.framework import project
    from kedro.framework.hooks.manager import _create_hook_manager, _register_hooks

    if package_name and package_name != project.PACKAGE_NAME:
        project.configure_project(package_name)
    if tensorflow_threads:
        os.environ.setdefault("ML_LSTM_TF_THREADS", str(tensorflow_threads))
    _isolate_dask_sampling()
    # Project hooks only: plugins' hooks (kedro-viz's dataset statistics, ...) expect the
    # session's after_context_created / after_catalog_created, which ran on the client.
    # The hook manager cannot be pickled, so each task makes its own (as ParallelRunner does).
    hook_manager = _create_hook_manager()
    _register_hooks(hook_manager, project.settings.HOOKS)
    return hook_manager


def _isolate_dask_sampling() -> None:
    # dask.sizeof samples large lists and dicts with the `random` module's shared generator,
    # from the worker's event loop, while a task runs. Keras draws its layers' initial seeds
    # from that same generator after `keras.utils.set_random_seed`, so those draws made a
    # worker's model differ from a sequential run's. dask gets a generator of its own.
    import dask.sizeof

    if dask.sizeof.random is random:
        dask.sizeof.random = random.Random()


def peak_rss_bytes() -> int:
    """This process's peak resident memory."""
    if sys.platform == "win32":
        import psutil

        return int(psutil.Process().memory_info().peak_wset)
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)
