"""Project commands, next to Kedro's own (`kedro viz`, `kedro jupyter`, ...).

    kedro run ...                        Kedro's run, which first checks --namespaces
    kedro run --pipelines update         the scheduled update (ml_lstm/update.py)
    kedro live [--env ib] [--namespaces nvda] [--params live.dry_run=true]
    kedro models list [--instrument nvda] [--json]

Kedro loads this module's `cli` group into its command line, where it takes precedence over
Kedro's built-in commands; `python -m ml_lstm` runs this module's `run`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click
from kedro.framework.cli.project import run as kedro_run
from kedro.framework.project import settings
from kedro.framework.startup import ProjectMetadata

from ml_lstm import update
from ml_lstm.instruments import namespace_problems
from ml_lstm.model_registry import read_champion, registry_table


@click.group(name="ml_lstm")
def cli() -> None:
    """ml_lstm's project commands."""


@cli.command(name="run", params=kedro_run.params, help=kedro_run.help)
@click.pass_context
def run(context: click.Context, **arguments: Any) -> Any:
    """Kedro's `run`, after checking that each --namespaces entry is an enabled instrument
    (Kedro's own message, "Pipeline does not contain nodes with the following namespaces",
    says neither why nor how to enable it)."""
    refuse_unknown_namespaces(Path.cwd(), arguments)
    if update.PIPELINE in (arguments.get("pipelines") or []):
        # The scheduled update: several Kedro runs under one lock (see ml_lstm/update.py).
        instruments = configured_instruments(
            Path.cwd(), arguments.get("env"), arguments.get("conf_source"), arguments["params"]
        )
        return update.command(context, kedro_run, arguments, instruments)
    return context.invoke(kedro_run, **arguments)


# `kedro live` takes these options exactly as `kedro run` does.
LIVE_OPTIONS = ("env", "namespaces", "conf_source", "params")


@cli.command(
    name="live", params=[option for option in kedro_run.params if option.name in LIVE_OPTIONS]
)
@click.pass_obj
def live(metadata: ProjectMetadata, **arguments: Any) -> None:
    """Stream 1-minute bars and predict at every completed bar until stopped (Ctrl-C,
    SIGTERM, the kill-switch file, or live.until). See README "Running live"."""
    refuse_unknown_namespaces(Path(metadata.project_path), arguments)
    namespaces = list(arguments.get("namespaces") or [])
    from ml_lstm.live.runner import run_live

    run_live(
        Path(metadata.project_path), arguments.get("env"), namespaces or None, arguments["params"]
    )
    # Every write has finished (atomically) and every connection is closed. The process
    # then leaves at once: TensorFlow's native teardown otherwise takes seconds on exit,
    # and a stop must end the process within 5 s.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def refuse_unknown_namespaces(project_path: Path, arguments: dict[str, Any]) -> None:
    """A usage error naming each --namespaces entry that is not an enabled instrument, and
    how to enable it."""
    namespaces = list(arguments.get("namespaces") or [])
    if not namespaces:
        return
    instruments = configured_instruments(
        project_path, arguments.get("env"), arguments.get("conf_source"), arguments["params"]
    )
    problems = namespace_problems(namespaces, instruments)
    if problems:
        raise click.BadParameter("\n".join(problems), param_hint="--namespaces")


def configured_instruments(
    project_path: Path, env: str | None, conf_source: str | None, params: dict
) -> dict[str, dict]:
    """The `instruments` parameters a run with this environment and these params sees."""
    loader = settings.CONFIG_LOADER_CLASS(
        conf_source=str(conf_source or project_path / settings.CONF_SOURCE),
        env=env,
        runtime_params=params,
        **settings.CONFIG_LOADER_ARGS,
    )
    return loader["parameters"].get("instruments", {})


@cli.group()
def models() -> None:
    """The model registry: every trained version, its test scores and the champion."""


@models.command("list")
@click.option(
    "--instrument",
    "-i",
    "instruments",
    multiple=True,
    help="Instrument key, e.g. nvda (repeatable). Default: every instrument with a registry.",
)
@click.option(
    "--models-dir",
    default="data/06_models",
    show_default=True,
    help="Registry root, relative to the project.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def list_models(
    metadata: ProjectMetadata, instruments: tuple[str, ...], models_dir: str, as_json: bool
) -> None:
    """Versions, test MASE against persistence, and the champion of each instrument."""
    root = Path(metadata.project_path) / models_dir
    names = list(instruments) or sorted(path.name for path in root.glob("*") if path.is_dir())
    if not names:
        click.echo(f"No model registry under {root}: run `kedro run --pipelines modelling` first.")
        return
    if as_json:
        listing = {
            name: {"champion": read_champion(root / name), "versions": registry_table(root / name)}
            for name in names
        }
        click.echo(json.dumps(listing, indent=2))
        return
    for name in names:
        click.echo(f"== {name} ==")
        click.echo(registry_listing(root / name))


def registry_listing(root: Path) -> str:
    """One instrument's registry as an aligned text table, then its champion."""
    rows = registry_table(root)
    if not rows:
        return f"No model versions under {root}: run `kedro run --pipelines modelling` first."
    columns = list(rows[0])
    widths = {
        name: max(len(name), *(len(_cell(row[name], name)) for row in rows)) for name in columns
    }
    lines = ["  ".join(name.ljust(widths[name]) for name in columns)]
    lines += [
        "  ".join(_cell(row[name], name).ljust(widths[name]) for name in columns) for row in rows
    ]
    champion = read_champion(root)
    lines.append(f"champion: {champion['version'] if champion else 'none'}")
    return "\n".join(lines)


def _cell(value: Any, column: str) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, bool):
        return "*" if value else ""
    if value is None:
        return "-"
    # A short commit hash is enough to find it; versions are shown whole, since they are
    # what --params inference.model_version=<version> takes.
    return str(value)[:12] if column == "git_commit" else str(value)
