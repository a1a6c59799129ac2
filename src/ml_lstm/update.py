"""The scheduled update: `kedro run --pipelines update` (the project's run command).

One command for cron or Task Scheduler. For every enabled instrument (or --namespaces):

1. ingestion, data_processing, and the retraining decision (`retraining_decision`: the
   policy `modelling.retraining.policy`, the registry, the previous update's alerts);
2. retraining (warm start from the champion, then the usual evaluation and promotion rule)
   for the instruments whose decision says `retrain`, modelling for those with no model
   yet (`train`), nothing for the others: their decision and its reason are logged and kept
   in `08_reporting/<instrument>/retraining_decision.json`;
3. inference and monitoring (every logged prediction scored, the live scorecard, alerts).

Each step is an ordinary Kedro run (its own run id), so a step that fails stops the update
with Kedro's error and a non-zero exit status. Running it again is safe: ingestion fetches
only what is missing, the decision counts sessions since the latest training, and scoring
counts a repeated prediction once.

Only one update runs on a project at a time: `update_lock` holds a `filelock` lock on
`data/.update.lock`, which the operating system releases when its process ends, crashed
or killed. A second update started meanwhile exits at once, with status 0, naming the
running one's pid (from `data/.update.json`, written by the holder).
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from ml_lstm.atomic_files import process_is_alive, write_text_atomically

logger = logging.getLogger(__name__)

PIPELINE = "update"
BEFORE_RETRAINING = ["ingestion", "data_processing", "retraining_decision"]
AFTER_RETRAINING = ["inference", "monitoring"]
# What the orchestrator runs for each decided action.
ACTION_PIPELINES = {"train": "modelling", "retrain": "retraining"}

RunStage = Callable[[list[str], list[str]], Any]
LoadDecisions = Callable[[list[str]], dict[str, dict]]


class UpdateAlreadyRunning(RuntimeError):
    """Another update holds the project's update lock."""


def lock_paths(project_path: Path) -> tuple[Path, Path]:
    """The lock file and the holder's description beside it."""
    data = Path(project_path) / "data"
    return data / ".update.lock", data / ".update.json"


def _holder(holder_file: Path) -> str:
    try:
        holder = json.loads(holder_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "pid unknown (it is starting)"
    pid = holder.get("pid")
    alive = holder.get("host") != socket.gethostname() or process_is_alive(int(pid))
    state = "" if alive else ", not alive: it is ending"
    return f"pid {pid} on {holder.get('host')}, started {holder.get('started_at')}{state}"


@contextmanager
def update_lock(project_path: Path) -> Iterator[None]:
    """Holds the project's update lock, or raises UpdateAlreadyRunning at once."""
    lock_file, holder_file = lock_paths(project_path)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_file)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise UpdateAlreadyRunning(
            f"Another update is running on this project ({_holder(holder_file)}); this one "
            "exits without doing anything."
        ) from None
    try:
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            # Not a node: the clock here only describes the lock's holder to a second update.
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        write_text_atomically(holder_file, json.dumps(holder) + "\n")
        yield
    finally:
        holder_file.unlink(missing_ok=True)
        lock.release()


def run_update(
    project_path: Path,
    instruments: list[str],
    run_stage: RunStage,
    load_decisions: LoadDecisions,
    echo: Callable[[str], Any] = print,
) -> bool:
    """The update's three steps under the lock; False when another update holds it."""
    try:
        with update_lock(project_path):
            _steps(instruments, run_stage, load_decisions, echo)
    except UpdateAlreadyRunning as busy:
        echo(str(busy))
        return False
    return True


def _steps(
    instruments: list[str], run_stage: RunStage, load_decisions: LoadDecisions, echo
) -> None:
    run_stage(BEFORE_RETRAINING, instruments)
    decisions = load_decisions(instruments)
    for action, pipeline in ACTION_PIPELINES.items():
        chosen = [name for name in instruments if decisions[name]["action"] == action]
        for name in chosen:
            echo(f"Update: {pipeline} for {name}: {decisions[name]['reason']}.")
        if chosen:
            run_stage([pipeline], chosen)
    for name in instruments:
        if decisions[name]["action"] not in ACTION_PIPELINES:
            echo(f"Update: no retraining for {name}: {decisions[name]['reason']}.")
    run_stage(AFTER_RETRAINING, instruments)
    echo(f"Update finished for {', '.join(instruments)}.")


def command(
    context: Any, kedro_run: Any, arguments: dict[str, Any], instruments: dict[str, dict]
) -> None:
    """`kedro run --pipelines update [--env ...] [--namespaces ...] [--params ...]`: the
    steps as Kedro runs with the same options, under the lock (see `run_update`)."""
    import click

    from ml_lstm.instruments import enabled_instrument_names

    others = [name for name in arguments["pipelines"] if name != PIPELINE]
    if others:
        raise click.BadParameter(
            f"`update` runs its own stages; run {others} separately.", param_hint="--pipelines"
        )
    names = list(arguments.get("namespaces") or enabled_instrument_names(instruments))
    project_path = Path.cwd()

    def run_stage(pipelines: list[str], namespaces: list[str]) -> None:
        context.invoke(kedro_run, **{**arguments, "pipelines": pipelines, "namespaces": namespaces})

    def load_decisions(chosen: list[str]) -> dict[str, dict]:
        from kedro.framework.session import KedroSession

        with KedroSession.create(
            project_path=project_path,
            env=arguments.get("env"),
            conf_source=arguments.get("conf_source"),
            runtime_params=arguments.get("params"),
        ) as session:
            catalog = session.load_context().catalog
            return {name: catalog.load(f"{name}.retraining_decision") for name in chosen}

    run_update(project_path, names, run_stage, load_decisions, echo=click.echo)
