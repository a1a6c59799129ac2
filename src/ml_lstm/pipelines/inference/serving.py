"""The model that inference serves: a pinned registry version, else the champion.

A version is pinned for one run with Kedro's own flag or with a runtime parameter:

    kedro run --pipelines inference --load-versions nvda.served_model:<version>
    kedro run --pipelines inference --params inference.model_version=<version>

Without a pin the champion named by `champion.json` is served (see modelling/registry.py
for the registry layout). Keras is imported only when a model is actually loaded.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io import AbstractDataset, DatasetError, Version

from ml_lstm.pipelines.modelling.registry import (
    MANIFEST_FILE,
    MODEL_FILE,
    load_version,
    read_champion,
)


def stored_versions(root: Path) -> list[str]:
    """Versions with a manifest in the registry at `root`, oldest first."""
    folder = root / MANIFEST_FILE
    if not folder.is_dir():
        return []
    return sorted(path.name for path in folder.iterdir() if path.is_dir())


class ServedModelDataset(AbstractDataset[None, dict[str, Any]]):
    """Read-only: {"version", "source", "model", "scaler", "manifest"} of the served model.

    `source` is "pinned" or "champion". With `versioned: true` in the catalog, Kedro passes
    `--load-versions <name>:<version>` in as `version.load`; `pinned_version` comes from a
    runtime parameter. The bundle is loaded once per catalog: every inference node that
    takes it sees the same model.
    """

    def __init__(
        self,
        path: str,
        pinned_version: str | None = None,
        version: Version | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._root = Path(PurePosixPath(path))
        self._pinned = (version.load if version else None) or pinned_version
        self._loaded: dict[str, Any] | None = None
        self.metadata = metadata

    def load(self) -> dict[str, Any]:
        if self._loaded is None:
            self._loaded = self._load_bundle()
        return self._loaded

    def _load_bundle(self) -> dict[str, Any]:
        if self._pinned:
            version, source = str(self._pinned), "pinned"
        else:
            record = read_champion(self._root)
            if record is None:
                raise DatasetError(
                    f"No champion in {self._root / 'champion.json'}: run `kedro run --pipelines "
                    "modelling` (the first model is promoted), or pin a stored version with "
                    "--params inference.model_version=<version>. Stored versions: "
                    f"{stored_versions(self._root) or 'none'}."
                )
            version, source = record["version"], "champion"
        try:
            # compile=False: serving only predicts, and skips rebuilding the optimizer.
            bundle = load_version(self._root, version, compile_model=False)
        except FileNotFoundError as error:
            raise DatasetError(
                f"The {source} model version {version!r} is incomplete or absent in "
                f"{self._root}: missing {error.args[0]}. Stored versions: "
                f"{stored_versions(self._root) or 'none'}."
            ) from None
        return {"version": version, "source": source, **bundle}

    def save(self, data: None) -> None:
        raise DatasetError("ServedModelDataset is read-only: models are saved by modelling.")

    def _exists(self) -> bool:
        if self._pinned:
            return (self._root / MODEL_FILE / str(self._pinned) / MODEL_FILE).is_file()
        return read_champion(self._root) is not None

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._root), "pinned_version": self._pinned}
