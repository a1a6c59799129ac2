"""`kedro run --runner ml_lstm.runners.DaskRunner` against a real cluster on loopback.

A `dask scheduler` and two single-threaded `dask worker` processes, started here; runs are
whole `kedro run` processes in project copies with instruments of the universe enabled, a
tiny LSTM on a short window. Compared file by file with a sequential run (run stamps out).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import time

import pandas as pd
import pytest
from filelock import FileLock
from runners_support import (
    KEDRO,
    differences,
    environment,
    kedro_run,
    project_with,
    run_files,
)

from ml_lstm.runners.dask_worker import EVENTS_TOPIC, METADATA_ROOT
from ml_lstm.runners.loopback import LoopbackCluster

pytestmark = pytest.mark.slow

INSTRUMENTS = ["nvda", "aapl", "msft", "spy"]
INGESTION_NODES = ("plan_backfill", "fetch_minute_bars")
DASK_RUNNER = ("--runner", "ml_lstm.runners.DaskRunner")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    started = LoopbackCluster(tmp_path_factory.mktemp("cluster"), env=environment())
    yield started
    started.close()


@pytest.fixture(scope="module")
def sequential_project(tmp_path_factory):
    project = project_with(tmp_path_factory.mktemp("sequential") / "project", INSTRUMENTS)
    result = kedro_run(project)
    assert result.returncode == 0, result.stderr[-3000:]
    return project


def test_four_instruments_on_two_workers_equal_the_sequential_run(
    cluster, sequential_project, tmp_path
):
    project = project_with(tmp_path / "project", INSTRUMENTS)
    _copy_raw(sequential_project, project, INSTRUMENTS)
    started = time.time()

    result = kedro_run(project, *DASK_RUNNER, DASK_SCHEDULER_ADDRESS=cluster.address)

    assert result.returncode == 0, result.stderr[-3000:]
    assert differences(run_files(sequential_project / "data"), run_files(project / "data")) == []
    with cluster.client() as client:
        events = [event for when, event in client.get_events(EVENTS_TOPIC) if when >= started]
        workers = client.run(os.getpid)  # {address: pid}
        # Four tasks, two worker threads: the other two waited on the client until a worker
        # was free, instead of being placed on a worker (to wait there) at once.
        assert _most_instrument_tasks_on_workers(client, started) == len(workers)
    reports = [event for event in events if "instrument" in event]
    # The scheduler's record: every instrument done once, on both workers, none of them
    # running an ingestion node.
    assert sorted(report["instrument"] for report in reports) == sorted(INSTRUMENTS)
    assert {report["worker"] for report in reports} == set(workers)
    assert all(set(report["node_seconds"]) == set(report["nodes"]) for report in reports)
    assert not [
        name for report in reports for name in report["nodes"] if name.endswith(INGESTION_NODES)
    ]
    # Ingestion ran on the client process only, one node after another.
    ingestion = sorted((event for event in events if "where" in event), key=lambda e: e["start"])
    assert {event["node"] for event in ingestion} == {
        f"{name}.{node}" for name in INSTRUMENTS for node in INGESTION_NODES
    }
    assert {event["where"] for event in ingestion} == {"client"}
    assert len({event["pid"] for event in ingestion}) == 1
    assert ingestion[0]["pid"] not in set(workers.values())
    assert all(a["end"] <= b["start"] for a, b in itertools.pairwise(ingestion))
    # The workers are still running and hold no lock on any file under data/.
    locks = list((project / "data").rglob("*.lock"))
    assert locks
    for path in locks:
        with FileLock(path, timeout=0):
            pass


def test_a_failing_node_is_named_with_its_instrument_and_worker(
    cluster, sequential_project, tmp_path
):
    project = project_with(
        tmp_path / "project", ["aapl"], {"data_processing": {"max_rejected_share": -1.0}}
    )
    _copy_raw(sequential_project, project, ["aapl"])

    result = kedro_run(project, *DASK_RUNNER, DASK_SCHEDULER_ADDRESS=cluster.address)

    assert result.returncode != 0
    output = " ".join((result.stdout + result.stderr).split())
    assert "Node 'aapl.accept_minute_bars' of instrument 'aapl' failed on worker tcp://" in output
    assert "--namespaces aapl" in output


def test_a_worker_killed_mid_run_fails_that_instrument_clearly_and_leaves_whole_files(
    cluster, sequential_project, tmp_path
):
    project = project_with(tmp_path / "project", ["nvda", "aapl"])
    _copy_raw(sequential_project, project, ["nvda", "aapl"])
    run = subprocess.Popen(
        [KEDRO, "run", *DASK_RUNNER],
        cwd=project,
        env=environment(DASK_SCHEDULER_ADDRESS=cluster.address),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        victim = _kill_worker_during_modelling(cluster)
        output, _ = run.communicate(timeout=240)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()

    assert run.returncode != 0
    flat = " ".join(output.split())
    assert f"Instrument '{victim['instrument']}': its worker" in flat
    assert f"was lost while node '{victim['node']}' ran" in flat
    survivor = ({"nvda", "aapl"} - {victim["instrument"]}).pop()
    assert (project / f"data/07_model_output/{survivor}/predictions.csv").is_file()
    _assert_whole_files(project / "data")


def _most_instrument_tasks_on_workers(client, since: float) -> int:
    """The most instrument tasks placed on workers (in Dask's `processing` state) at once,
    from the scheduler's transition log."""

    def transitions(dask_scheduler) -> list[tuple]:
        return [
            (entry[0], entry[1], entry[2], entry[-1]) for entry in dask_scheduler.transition_log
        ]

    changes = [
        (when, (finish == "processing") - (start == "processing"))
        for key, start, finish, when in client.run_on_scheduler(transitions)
        if str(key).startswith("instrument-") and when >= since
    ]
    held = most = 0
    for _, change in sorted(changes):
        held += change
        most = max(most, held)
    return most


def _copy_raw(source, target, instruments: list[str]) -> None:
    # The sequential run's bars and ledger: ingestion still runs on the client (and finds
    # them complete); the backfill's seconds are spent once per module.
    for name in instruments:
        shutil.copytree(source / f"data/01_raw/{name}", target / f"data/01_raw/{name}")


def _kill_worker_during_modelling(cluster) -> dict:
    """SIGKILLs the worker that runs an instrument's training; returns what it was running."""
    deadline = time.monotonic() + 180
    with cluster.client() as client:
        while time.monotonic() < deadline:
            runs = client.get_metadata([METADATA_ROOT], default={}) or {}
            for instruments in runs.values():
                for instrument, state in (instruments or {}).items():
                    if state and state["node"].endswith((".train_lstm", ".forecast_test_split")):
                        os.kill(state["pid"], signal.SIGKILL)
                        return {"instrument": instrument, **state}
            time.sleep(0.05)
    raise AssertionError("no instrument reached training within 180 s")


def _assert_whole_files(data) -> None:
    leftovers = [path for path in data.rglob("*") if path.name.endswith(".tmp")]
    assert leftovers == []
    for path in data.rglob("*.csv"):
        pd.read_csv(path)
    for path in data.rglob("*.json"):
        if path.is_file():
            json.loads(path.read_text())
    for version in data.glob("06_models/*/*/*"):
        assert version.is_dir() and any(version.iterdir()), version


def test_parallel_runner_backfills_namespaces_as_the_sequential_run_did(
    sequential_project, tmp_path
):
    # Before SharedMemoryIntermediatesHook, fetch_minute_bars got an empty plan in its
    # process ("'object' object is not iterable") and the run failed.
    project = project_with(tmp_path / "project", ["nvda", "aapl"])

    result = kedro_run(project, "--runner", "ParallelRunner", "--pipelines", "ingestion")

    assert result.returncode == 0, result.stderr[-3000:]
    reference = run_files(sequential_project / "data")
    produced = run_files(project / "data")
    assert produced and set(produced) <= set(reference)
    assert [name for name in produced if produced[name] != reference[name]] == []
    assert {name.split("/")[1] for name in produced} == {"nvda", "aapl"}
