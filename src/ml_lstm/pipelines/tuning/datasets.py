"""Tuning's datasets: the Optuna study's SQLite database, and the adoptable parameters file.

The study:

Loading gives the node a handle, `{"storage": <SQLAlchemy URL>}`, not the file (the study's
name is `tuning.study_name`): the node adds trials through Optuna, which writes the database
itself (SQLite with its own locking, so worker processes can share it). Nothing is pickled.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io import AbstractDataset

from ml_lstm.atomic_files import write_text_atomically


class OptunaStudyDataset(AbstractDataset[None, dict[str, str]]):
    """`filepath`: the SQLite file (created on first use) holding the instrument's studies."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(PurePosixPath(filepath))
        self.metadata = metadata

    def load(self) -> dict[str, str]:
        self._filepath.parent.mkdir(parents=True, exist_ok=True)
        return {"storage": f"sqlite:///{self._filepath.resolve().as_posix()}"}

    def save(self, data: None) -> None:
        raise NotImplementedError("The study is written by Optuna while it runs.")

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class AtomicTextDataset(AbstractDataset[str, str]):
    """A text file (the generated parameters file) replaced atomically on save."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(PurePosixPath(filepath))
        self.metadata = metadata

    def load(self) -> str:
        return self._filepath.read_text(encoding="utf-8")

    def save(self, data: str) -> None:
        write_text_atomically(self._filepath, data)

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}
