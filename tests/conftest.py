"""Shared fixtures: the project's own configuration, shrunk to run in seconds."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from kedro.config import OmegaConfigLoader
from support import PROJECT_ROOT, SMALL_RUN, copy_project, merge

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def project_parameters() -> dict[str, Any]:
    """The committed base parameters (conf/base), as a Kedro run would see them."""
    loader = OmegaConfigLoader(
        conf_source=str(PROJECT_ROOT / "conf"),
        base_env="base",
        default_run_env="base",
        merge_strategy={"parameters": "soft"},
    )
    return loader["parameters"]


@pytest.fixture(scope="session")
def small_parameters(project_parameters: dict[str, Any]) -> dict[str, Any]:
    """Base parameters shrunk by SMALL_RUN."""
    return merge(project_parameters, SMALL_RUN)


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """A throw-away copy of the project (see support.copy_project)."""
    return copy_project(tmp_path / "project")
