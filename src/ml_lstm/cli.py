"""Project commands, next to Kedro's own (`kedro run`, `kedro viz`, ...).

    kedro models list [--instrument nvda] [--json]

Kedro loads this module's `cli` group into its command line; `run` is Kedro's own run
command, which `python -m ml_lstm` uses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from kedro.framework.cli.project import run  # noqa: F401  (python -m ml_lstm runs it)
from kedro.framework.startup import ProjectMetadata

from ml_lstm.model_registry import read_champion, registry_table


@click.group(name="ml_lstm")
def cli() -> None:
    """ml_lstm's project commands."""


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
