"""Read-only view of the model registry's manifests: {version: manifest}, oldest first.

Monitoring reads every version's manifest (its training naive MAE for MASE, its test-split
figures, its training split and data range) without loading any model. The registry's
layout and reading live in `ml_lstm.model_registry` (`list_versions`).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from ml_lstm.model_registry import list_versions


class RegistryManifestsDataset(AbstractDataset[None, dict[str, dict[str, Any]]]):
    """Every stored version's manifest, keyed by version ({} for an empty registry)."""

    def __init__(self, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._root = Path(PurePosixPath(path))
        self.metadata = metadata

    def load(self) -> dict[str, dict[str, Any]]:
        return {manifest["version"]: manifest for manifest in list_versions(self._root)}

    def save(self, data: None) -> None:
        raise DatasetError("RegistryManifestsDataset is read-only: modelling writes manifests.")

    def _exists(self) -> bool:
        return True

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._root)}
