"""Tiny LSTMs, really trained once per module on synthetic tables."""

from __future__ import annotations

from typing import Any

import pytest
from modelling_support import synthetic_features, tiny, train_and_evaluate


@pytest.fixture(scope="session")
def trained() -> dict[str, Any]:
    """A tiny LSTM trained on a table with real signal (log-return target)."""
    return train_and_evaluate(synthetic_features(), tiny())


@pytest.fixture(scope="session")
def trained_on_shuffled() -> dict[str, Any]:
    """The same tiny LSTM trained where the returns were shuffled (no signal)."""
    return train_and_evaluate(synthetic_features(shuffle_returns=True), tiny())
