"""The trained project every live test copies (trained once per test session)."""

from __future__ import annotations

from pathlib import Path

import pytest
from live_support import train


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Path:
    return train(tmp_path_factory.mktemp("trained") / "project")
