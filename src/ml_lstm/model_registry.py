"""The model registry: every run's versioned artefacts and the champion among them.

Layout under `data/06_models/<instrument>/` (written by Kedro's versioned datasets, one
folder per run id):

    lstm_model.keras/<version>/lstm_model.keras
    scaler.json/<version>/scaler.json
    manifest.json/<version>/manifest.json
    champion.json            {"version": ..., "metric": ..., "score": ..., ...}

`ChampionDataset` loads the champion's model, scaler and manifest (None when there is no
champion); `ChampionRecordDataset` writes `champion.json` atomically; `ServedModelDataset`
loads what inference serves (a pinned version, else the champion). List the registry with
the project command `kedro models list` (see cli.py).

Keras is imported only when a model is actually loaded.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from kedro.io import AbstractDataset, AbstractVersionedDataset, DatasetError, Version

from ml_lstm.atomic_files import atomic_folder, remove_stale_temporaries, write_text_atomically

MODEL_FILE = "lstm_model.keras"
SCALER_FILE = "scaler.json"
MANIFEST_FILE = "manifest.json"
CHAMPION_FILE = "champion.json"


def _version_file(root: Path, artefact: str, version: str) -> Path:
    return root / artefact / version / artefact


def read_json(path: Path) -> Any:
    """A registry JSON file; a damaged one is an error that names it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DatasetError(
            f"{path} is not valid JSON (line {error.lineno}, column {error.colno}): "
            f"{error.msg}. Restore it, or move that version's folder aside."
        ) from None


def read_champion(root: Path) -> dict[str, Any] | None:
    """The champion record of the registry at `root`, or None when none was promoted."""
    path = root / CHAMPION_FILE
    if not path.is_file():
        return None
    return read_json(path)


def stored_versions(root: Path) -> list[str]:
    """Versions with a manifest in the registry at `root`, oldest first."""
    folder = root / MANIFEST_FILE
    if not folder.is_dir():
        return []
    return sorted(
        path.name
        for path in folder.iterdir()
        if path.is_dir() and _version_file(root, MANIFEST_FILE, path.name).is_file()
    )


def list_versions(root: Path) -> list[dict[str, Any]]:
    """The manifest of every stored version, oldest first."""
    return [
        read_json(_version_file(root, MANIFEST_FILE, version)) for version in stored_versions(root)
    ]


def load_version(root: Path, version: str, compile_model: bool = True) -> dict[str, Any]:
    """The model, scaler and manifest stored under `version`.

    Raises FileNotFoundError listing the missing files when the version is incomplete.
    """
    paths = {
        name: _version_file(root, name, version)
        for name in (MODEL_FILE, SCALER_FILE, MANIFEST_FILE)
    }
    missing = [str(path) for path in paths.values() if not path.is_file()]
    if missing:
        raise FileNotFoundError(missing)
    import keras

    from ml_lstm.forecasting.devices import gpus

    gpus()  # the device query, once, without the CUDA driver's stderr noise
    return {
        "model": keras.saving.load_model(paths[MODEL_FILE], compile=compile_model),
        "scaler": read_json(paths[SCALER_FILE]),
        "manifest": read_json(paths[MANIFEST_FILE]),
    }


class ChampionDataset(AbstractDataset[None, dict[str, Any] | None]):
    """Read-only: {"record", "model", "scaler", "manifest"} of the champion, or None."""

    def __init__(self, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._root = Path(PurePosixPath(path))
        self.metadata = metadata

    def load(self) -> dict[str, Any] | None:
        record = read_champion(self._root)
        if record is None:
            return None
        version = record["version"]
        try:
            bundle = load_version(self._root, version)
        except FileNotFoundError as error:
            raise DatasetError(
                f"{self._root / CHAMPION_FILE} names version {version!r} but its files are "
                f"missing: {error.args[0]}. Restore them or delete champion.json to start afresh."
            ) from None
        return {"record": record, **bundle}

    def save(self, data: None) -> None:
        raise DatasetError("ChampionDataset is read-only: promotion writes champion_record.")

    def _exists(self) -> bool:
        return (self._root / CHAMPION_FILE).is_file()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._root)}


class ChampionRecordDataset(AbstractDataset[dict[str, Any], dict[str, Any] | None]):
    """`champion.json`, replaced atomically; saving {} (still no champion) writes nothing."""

    def __init__(self, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._root = Path(PurePosixPath(path))
        self.metadata = metadata

    def load(self) -> dict[str, Any] | None:
        return read_champion(self._root)

    def save(self, data: dict[str, Any]) -> None:
        if not data:
            return
        write_text_atomically(self._root / CHAMPION_FILE, json.dumps(data, indent=2) + "\n")

    def _exists(self) -> bool:
        return (self._root / CHAMPION_FILE).is_file()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._root / CHAMPION_FILE)}


def registry_table(root: Path) -> list[dict[str, Any]]:
    """One row per version: its setup, test scores and whether it is the champion."""
    champion = read_champion(root)
    champion_version = champion["version"] if champion else None
    rows = []
    for manifest in list_versions(root):
        metrics = manifest.get("metrics", {})
        lstm, persistence = metrics.get("lstm", {}), metrics.get("persistence", {})
        rows.append(
            {
                "version": manifest["version"],
                "champion": manifest["version"] == champion_version,
                "trained_by": manifest.get("trained_by", "modelling"),
                "target": manifest.get("target"),
                "lookback": manifest.get("lookback"),
                "horizon": manifest.get("horizon"),
                "test_rows": lstm.get("rows"),
                "lstm_mase": lstm.get("mase"),
                "persistence_mase": persistence.get("mase"),
                "lstm_directional_accuracy": lstm.get("directional_accuracy"),
                "git_commit": manifest.get("git_commit"),
            }
        )
    return rows


class ServedModelDataset(AbstractDataset[None, dict[str, Any]]):
    """Read-only: {"version", "source", "model", "scaler", "manifest"} of the served model.

    A version is pinned for one run with Kedro's own flag or with a runtime parameter:

        kedro run --pipelines inference --load-versions nvda.served_model:<version>
        kedro run --pipelines inference --params inference.model_version=<version>

    `source` is "pinned" or "champion" (the version named by `champion.json`). A pinned
    version must be one the registry lists: it is never joined into a path unchecked. The
    bundle is loaded once per catalog: every inference node that takes it sees one model.
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

    def _chosen_version(self) -> tuple[str, str]:
        stored = stored_versions(self._root)
        if self._pinned:
            version = str(self._pinned)
            if version not in stored:
                raise DatasetError(
                    f"Pinned model version {version!r} is not in the registry at "
                    f"{self._root}. Stored versions: {stored or 'none'}. Pin one of them "
                    "(--params inference.model_version=<version>), or drop the pin to serve "
                    "the champion."
                )
            return version, "pinned"
        record = read_champion(self._root)
        if record is None:
            raise DatasetError(
                f"No champion in {self._root / CHAMPION_FILE}: run `kedro run --pipelines "
                "modelling` (the first model is promoted), or pin a stored version with "
                f"--params inference.model_version=<version>. Stored versions: {stored or 'none'}."
            )
        return record["version"], "champion"

    def _load_bundle(self) -> dict[str, Any]:
        version, source = self._chosen_version()
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
            return str(self._pinned) in stored_versions(self._root)
        return read_champion(self._root) is not None

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._root), "pinned_version": self._pinned}


class AtomicKerasModelDataset(AbstractVersionedDataset[Any, Any]):
    """A Keras model (`.keras`) in Kedro's versioned layout, published whole or not at all.

    The layout is that of kedro-datasets' TensorFlowModelDataset,
    `<filepath>/<version>/<name>`, but the version folder is written under a temporary name
    and renamed into place once the model is complete: a run killed mid-save leaves no
    version folder, only a temporary that a later run removes, so the registry never sees a
    half-written model. Loads with `safe_mode` (built-in Keras objects only), as
    TensorFlowModelDataset does. Local paths only; Keras is imported on first use.
    """

    DEFAULT_LOAD_ARGS: ClassVar[dict[str, Any]] = {"safe_mode": True}

    def __init__(
        self,
        *,
        filepath: str,
        version: Version | None = None,
        load_args: dict[str, Any] | None = None,
        save_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if version is None:
            raise DatasetError(
                f"AtomicKerasModelDataset({filepath}) keeps one folder per version: set "
                "`versioned: true` on its catalog entry."
            )
        super().__init__(filepath=PurePosixPath(filepath), version=version)
        self._load_args = {**self.DEFAULT_LOAD_ARGS, **(load_args or {})}
        self._save_args = dict(save_args or {})
        self.metadata = metadata
        remove_stale_temporaries(Path(self._filepath))

    def load(self) -> Any:
        import keras

        return keras.saving.load_model(Path(self._get_load_path()), **self._load_args)

    def save(self, data: Any) -> None:
        import keras

        save_path = Path(self._get_save_path())
        with atomic_folder(save_path.parent) as folder:
            keras.saving.save_model(data, folder / save_path.name, **self._save_args)

    def _exists(self) -> bool:
        try:
            return Path(self._get_load_path()).is_file()
        except DatasetError:
            return False

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": str(self._filepath),
            "load_args": self._load_args,
            "save_args": self._save_args,
            "version": self._version,
        }
