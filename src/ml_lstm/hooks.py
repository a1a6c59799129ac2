"""Project hooks: which instruments are enabled, and the run's identity for the registry."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from ml_lstm.instruments import set_active_instruments


class InstrumentsHook:
    """Lets the pipeline registry see the instruments of the environment being run."""

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        # The config loader's parameters include the environment and runtime params. Not
        # `context.params`: reading it validates against every pipeline, which would
        # register the pipelines before the instruments are known.
        parameters = context.config_loader["parameters"]
        set_active_instruments(parameters.get("instruments", {}))


class RunInfoHook:
    """Provides `run_info`: the run's save version, the code's git commit and start time.

    Model artefacts name their version after the run, so a prediction can be traced back to
    the model, the data and the code that produced it.
    """

    def __init__(self) -> None:
        self._project_path: Path | None = None

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._project_path = Path(context.project_path)

    @hook_impl
    def after_catalog_created(self, catalog: Any, save_version: str) -> None:
        # Saved into the catalog's own `run_info` MemoryDataset (declared in catalog.yml so
        # kedro-viz places it), rather than replacing that dataset.
        catalog.save(
            "run_info",
            {
                "run_id": save_version,
                "git_commit": git_commit(self._project_path or Path.cwd()),
                # "Now" for nodes (inference's staleness check), read once so nodes stay pure.
                "started_at": datetime.now(UTC).isoformat(),
            },
        )


def git_commit(project_path: Path) -> str | None:
    """The checked-out commit (with a `-dirty` suffix for local changes), or None."""
    try:
        commit = _git(project_path, "rev-parse", "HEAD")
        dirty = _git(project_path, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit


def _git(project_path: Path, *arguments: str) -> str:
    result = subprocess.run(
        ["git", *arguments], cwd=project_path, capture_output=True, text=True, check=True, timeout=5
    )
    return result.stdout.strip()
