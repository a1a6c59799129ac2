"""The model registry: every run's versioned artefacts and the champion among them.

Layout under `data/06_models/<instrument>/` (written by Kedro's versioned datasets, one
folder per run id):

    lstm_model.keras/<version>/lstm_model.keras
    scaler.json/<version>/scaler.json
    manifest.json/<version>/manifest.json
    champion.json            {"version": ..., "metric": ..., "score": ..., ...}

`ChampionDataset` loads the champion's model, scaler and manifest (None when there is no
champion); `ChampionRecordDataset` writes `champion.json` atomically. List the registry:

    python -m ml_lstm.pipelines.modelling.registry list --instrument nvda

Keras is imported only when a champion model is actually loaded.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from ml_lstm.datasets import write_text_atomically

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


def list_versions(root: Path) -> list[dict[str, Any]]:
    """The manifest of every stored version, oldest first."""
    folder = root / MANIFEST_FILE
    if not folder.is_dir():
        return []
    manifests = []
    for version in sorted(path.name for path in folder.iterdir() if path.is_dir()):
        path = _version_file(root, MANIFEST_FILE, version)
        if path.is_file():
            manifests.append(read_json(path))
    return manifests


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


def _format(value: Any, column: str = "") -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, bool):
        return "*" if value else ""
    if value is None:
        return "-"
    # A short commit hash is enough to find it; versions are shown whole, since they are
    # what --params inference.model_version=<version> takes.
    return str(value)[:12] if column == "git_commit" else str(value)


def main(argv: list[str] | None = None) -> int:
    """`list`: the versions of one instrument's registry, their test scores and the champion."""
    parser = argparse.ArgumentParser(prog="python -m ml_lstm.pipelines.modelling.registry")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="versions, test metrics, champion")
    listing.add_argument("--instrument", required=True, help="instrument key, e.g. nvda")
    listing.add_argument("--models-dir", default="data/06_models", help="registry root folder")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    root = Path(args.models_dir) / args.instrument
    rows = registry_table(root)
    if args.json:
        print(json.dumps({"champion": read_champion(root), "versions": rows}, indent=2))
        return 0
    if not rows:
        print(f"No model versions under {root}: run `kedro run --pipelines modelling` first.")
        return 0
    columns = list(rows[0])
    widths = {
        name: max(len(name), *(len(_format(row[name], name)) for row in rows)) for name in columns
    }
    print("  ".join(name.ljust(widths[name]) for name in columns))
    for row in rows:
        print("  ".join(_format(row[name], name).ljust(widths[name]) for name in columns))
    champion = read_champion(root)
    print(f"champion: {champion['version'] if champion else 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
