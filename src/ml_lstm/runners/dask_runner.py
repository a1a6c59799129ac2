"""`DaskRunner`: each instrument's pipelines on a Dask cluster; ingestion on this process.

After Kedro's deployment guide for Dask (docs.kedro.org, deploy/supported-platforms/dask),
adapted to Kedro 1.7's `AbstractRunner` (`_run`, `_get_executor`, `Task`) and to this
project's shape:

- IB's pacing rules and its 50-request limit hold per TWS connection, so the ingestion
  nodes run here, in the client process, one after another, with one pacing book.
- Everything after ingestion is independent per instrument (a namespace), so each
  instrument's data_processing -> modelling -> inference nodes go to a worker as one Dask
  task, submitted as soon as that instrument's ingestion is done: its in-memory
  intermediates never cross the network, and the next instrument's backfill overlaps
  the first one's training.
- A node that fails is reported with its name, its instrument and the worker it ran on.
  A worker lost mid-task (killed, out of memory) fails that instrument with a clear error
  rather than running it again: a second attempt would append a second prediction to the
  log and meet the first attempt's model version. Files are written atomically, so the
  lost attempt leaves whole files or none; its temporaries on this host are removed.

Connects to `DASK_SCHEDULER_ADDRESS` (dask's own setting; or `--runner-params
address=tcp://host:8786`), or starts a LocalCluster of one single-threaded worker process
per core.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

from kedro.pipeline import Pipeline
from kedro.runner import AbstractRunner
from kedro.runner.task import Task

from ml_lstm.atomic_files import sweep_stale_temporaries

from .dask_cluster import scheduler_address, tensorflow_threads_per_worker, warn_about_threads
from .dask_worker import EVENTS_TOPIC, METADATA_ROOT, InstrumentRunError, run_instrument

logger = logging.getLogger(__name__)

# Stages whose nodes stay on the client (one IB connection, one pacing book).
CLIENT_STAGES = ("ingestion",)


class DaskRunner(AbstractRunner):
    """Runs ingestion here and each instrument's remaining nodes as one task on a Dask worker.

    Args:
        address: the scheduler (`tcp://host:8786`); default `DASK_SCHEDULER_ADDRESS`, else
            a LocalCluster on this machine.
        n_workers: LocalCluster's worker processes (default: one per core).
        is_async: load and save node inputs and outputs in threads (Kedro's option).
    """

    def __init__(
        self, address: str | None = None, n_workers: int | None = None, is_async: bool = False
    ) -> None:
        super().__init__(is_async=is_async)
        self._address = address
        self._n_workers = n_workers
        self.instrument_reports: list[dict[str, Any]] = []

    def _get_executor(self, max_workers: int) -> None:
        return None  # the Dask client is the executor; see _run

    def _run(
        self,
        pipeline: Pipeline,
        catalog: Any,
        hook_manager: Any = None,
        run_id: str | None = None,
    ) -> None:
        from distributed import Client

        local_nodes, groups = split_for_cluster(pipeline, client_node_names())
        with (
            scheduler_address(self._address, self._n_workers) as address,
            Client(address) as client,
        ):
            self._logger.info(
                "Dask scheduler %s: %d instrument task(s), %d ingestion node(s) here.",
                client.scheduler.address,
                len(groups),
                len(local_nodes),
            )
            warn_about_threads(client)
            threads = tensorflow_threads_per_worker(client)
            submit = _Submitter(client, catalog, run_id or "run", self._is_async, threads)
            try:
                self.instrument_reports = self._run_with(
                    pipeline, local_nodes, groups, submit, catalog, hook_manager, run_id
                )
            finally:
                # The attempt records of this run (see run_instrument) are no longer needed.
                client.set_metadata([METADATA_ROOT, submit.run_id], None)

    def _run_with(
        self,
        pipeline: Pipeline,
        local_nodes: list[Any],
        groups: dict[str, list[Any]],
        submit: _Submitter,
        catalog: Any,
        hook_manager: Any,
        run_id: str | None,
    ) -> list[dict[str, Any]]:
        pending = dict(groups)
        done_local: set[Any] = set()
        needs = {
            name: _local_dependencies(pipeline, nodes, local_nodes)
            for name, nodes in groups.items()
        }
        failure: BaseException | None = None
        for name in [name for name, deps in needs.items() if not deps]:
            submit(name, pending.pop(name))
        for node in local_nodes:
            try:
                _run_local(node, catalog, hook_manager, self._is_async, run_id, submit.client)
            except Exception as error:
                failure = InstrumentRunError(
                    f"Node '{node.name}' of instrument '{_instrument_of(node)}' failed here, "
                    f"on the client: {type(error).__name__}: {error}"
                )
                failure.__cause__ = error
                break
            done_local.add(node)
            self._logger.info("Completed node here: %s", node.name)
            for name in [name for name in pending if needs[name] <= done_local]:
                submit(name, pending.pop(name))
        reports, errors = submit.wait_all(self._logger)
        if errors or failure:
            _remove_lost_temporaries(errors)
            raise _combined(failure, errors, list(pending))
        return reports


def client_node_names() -> set[str]:
    """Node names (without namespace) of the stages that stay on the client."""
    from ml_lstm.pipeline_registry import STAGES

    return {node.name for stage in CLIENT_STAGES for node in STAGES[stage]().nodes}


def split_for_cluster(
    pipeline: Pipeline, client_names: set[str]
) -> tuple[list[Any], dict[str, list[Any]]]:
    """(client nodes in run order, {instrument: its other nodes in run order})."""
    local: list[Any] = []
    groups: dict[str, list[Any]] = defaultdict(list)
    for node in pipeline.nodes:  # topologically sorted
        base_name = node.name.rsplit(".", 1)[-1]
        if base_name in client_names:
            local.append(node)
        else:
            groups[_instrument_of(node)].append(node)
    crossing = [
        node.name
        for name, nodes in groups.items()
        for node in nodes
        for other, other_nodes in groups.items()
        if other != name and set(node.inputs) & {o for n in other_nodes for o in n.outputs}
    ]
    if crossing:
        raise ValueError(
            f"DaskRunner runs each instrument as one task, but {sorted(crossing)} read "
            "another instrument's outputs: run these pipelines with the SequentialRunner."
        )
    # One instrument's backfill after another: the first instrument's task can start while
    # the next one's bars are fetched (stable sort: each keeps its own run order).
    order = {name: index for index, name in enumerate(dict.fromkeys(map(_instrument_of, local)))}
    local.sort(key=lambda node: order[_instrument_of(node)])
    return local, dict(groups)


def _instrument_of(node: Any) -> str:
    return node.namespace.split(".", 1)[0] if node.namespace else "(shared)"


def _local_dependencies(pipeline: Pipeline, nodes: list[Any], local_nodes: list[Any]) -> set:
    """The client nodes whose outputs `nodes` read (transcoded names count as one)."""
    inputs = {name.split("@", 1)[0] for node in nodes for name in node.inputs}
    return {
        node
        for node in local_nodes
        if inputs & {output.split("@", 1)[0] for output in node.outputs}
    }


def _run_local(
    node: Any, catalog: Any, hook_manager: Any, is_async: bool, run_id: str | None, client: Any
) -> None:
    started = time.time()
    Task(
        node=node, catalog=catalog, hook_manager=hook_manager, is_async=is_async, run_id=run_id
    ).execute()
    client.log_event(
        EVENTS_TOPIC,
        {
            "node": node.name,
            "where": "client",
            "pid": os.getpid(),
            "start": started,
            "end": time.time(),
        },
    )


class _Submitter:
    """Hands instrument tasks to the cluster, no more at a time than its workers have
    threads, and gathers their outcomes.

    A task waits here until a thread is free, so whichever worker finishes first takes the
    next one. Submitted all at once, each task is placed on a worker straight away (Dask
    queues only large groups of like tasks), and a worker that finished early waited,
    seconds at a time, for work stealing to move a task queued on the other one.
    """

    def __init__(
        self, client: Any, catalog: Any, run_id: str, is_async: bool, threads: dict[str, int]
    ) -> None:
        self.client = client
        self._catalog = catalog
        self.run_id = run_id
        self._is_async = is_async
        self._threads = threads
        self._futures: dict[str, Any] = {}
        self._waiting: deque[tuple[str, list[Any]]] = deque()
        # Tasks are handed over from this thread and from Dask's callback thread.
        self._lock = threading.Lock()

    def __call__(self, instrument: str, nodes: list[Any]) -> None:
        with self._lock:
            self._waiting.append((instrument, nodes))
        self._hand_over()

    def _hand_over(self, _finished: Any = None) -> None:
        """Submits waiting tasks while the cluster has free threads (at least one task runs,
        so a run waits for a worker to join rather than for nothing)."""
        from kedro.framework.project import PACKAGE_NAME

        with self._lock:
            if not self._waiting:  # nothing to hand over (nor a cluster to ask, at the end)
                return
            running = sum(not future.done() for future in self._futures.values())
            free = max(1, sum(self.client.nthreads().values())) - running
            while free > 0 and self._waiting:
                instrument, nodes = self._waiting.popleft()
                future = self.client.submit(
                    run_instrument,
                    instrument,
                    nodes,
                    self._catalog,
                    self.run_id,
                    self._is_async,
                    PACKAGE_NAME,
                    self._threads,
                    key=f"instrument-{instrument}-{self.run_id}",
                    pure=False,
                )
                self._futures[instrument] = future
                future.add_done_callback(self._hand_over)
                free -= 1

    def wait_all(self, log: logging.Logger) -> tuple[list[dict], dict[str, BaseException]]:
        """Every task's report, or its error, in the order they finish."""
        from distributed import wait

        reports, errors, handled = [], {}, set()
        while True:
            with self._lock:
                outstanding = {n: f for n, f in self._futures.items() if n not in handled}
                waiting = bool(self._waiting)
            if not outstanding:
                if not waiting:
                    return reports, errors
                self._hand_over()  # a task just ended before its callback handed over more
                continue
            finished = [name for name, future in outstanding.items() if future.done()]
            if not finished:
                wait(list(outstanding.values()), return_when="FIRST_COMPLETED")
                continue
            for instrument in finished:
                handled.add(instrument)
                self._gather(instrument, outstanding[instrument], reports, errors, log)

    def _gather(
        self, instrument: str, future: Any, reports: list, errors: dict, log: logging.Logger
    ) -> None:
        try:
            report = future.result()
        except Exception as error:
            errors[instrument] = _explained(error, instrument, self.run_id, self.client)
            log.error("Instrument %s failed: %s", instrument, errors[instrument])
            return
        reports.append(report)
        log.info(
            "Instrument %s: %d nodes on %s in %.1f s (worker peak memory %.0f MiB).",
            instrument,
            len(report["nodes"]),
            report["worker"],
            report["seconds"],
            report["peak_rss_bytes"] / 2**20,
        )


def _explained(error: BaseException, instrument: str, run_id: str, client: Any) -> BaseException:
    if isinstance(error, InstrumentRunError):
        return error
    # distributed.KilledWorker, or any failure outside a node (lost connection, ...).
    state = client.get_metadata([METADATA_ROOT, run_id, instrument], default={}) or {}
    where = f" (node '{state['node']}' was running on {state['worker']})" if state else ""
    explained = InstrumentRunError(
        f"Instrument '{instrument}' did not finish{where}: {type(error).__name__}: {error}"
    )
    explained.__cause__ = error
    return explained


def _combined(
    failure: BaseException | None, errors: dict[str, BaseException], not_started: list[str]
) -> BaseException:
    messages = ([str(failure)] if failure else []) + [str(error) for error in errors.values()]
    if not_started:
        messages.append(f"Not started after that: {', '.join(not_started)}.")
    names = sorted(errors) + not_started
    rerun = (
        f" Re-run them with `kedro run --runner ml_lstm.runners.DaskRunner --namespaces "
        f"{','.join(names)}`."
        if names
        else ""
    )
    combined = InstrumentRunError(" | ".join(messages) + rerun)
    combined.__cause__ = failure or next(iter(errors.values()))
    return combined


def _remove_lost_temporaries(errors: dict[str, BaseException]) -> None:
    # A killed writer's temporaries (named after this host and its pid) go at once instead of
    # at the next write there; those of a live process or of another host stay.
    for instrument in errors:
        for folder in Path("data").glob(f"*/{instrument}"):
            for sub in [folder, *(path for path in folder.rglob("*") if path.is_dir())]:
                sweep_stale_temporaries(sub)
