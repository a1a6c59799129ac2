"""Project datasets: atomic CSV files, per-session partitions, and an append-only log.

Writes go through `ml_lstm.atomic_files`: a temporary file in the target folder moved into
place with `os.replace`, so a killed run never leaves a half-written file behind, and each
dataset removes what killed runs left in its folder when it is created. These datasets are
for local paths, which is where ml_lstm keeps its data.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from kedro.io import AbstractDataset, DatasetError, Version
from kedro.io.core import get_filepath_str
from kedro_datasets.json import JSONDataset
from kedro_datasets.partitions import PartitionedDataset

from ml_lstm.atomic_files import (
    atomic_folder,
    locked,
    remove_stale_temporaries,
    write_text_atomically,
)
from ml_lstm.csv_text import csv_text

logger = logging.getLogger(__name__)


class AtomicCSVDataset(AbstractDataset[pd.DataFrame, pd.DataFrame]):
    """A pandas CSV file that is replaced atomically on save."""

    DEFAULT_SAVE_ARGS: ClassVar[dict[str, Any]] = {"index": False}

    def __init__(
        self,
        filepath: str,
        load_args: dict[str, Any] | None = None,
        save_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._filepath = Path(PurePosixPath(filepath))
        self._load_args = dict(load_args or {})
        self._save_args = {**self.DEFAULT_SAVE_ARGS, **(save_args or {})}
        self.metadata = metadata
        remove_stale_temporaries(self._filepath.parent)

    def load(self) -> pd.DataFrame:
        return pd.read_csv(self._filepath, **self._load_args)

    def save(self, data: pd.DataFrame) -> None:
        # The same text as to_csv, built faster where csv_text can promise that.
        text = csv_text(data, self._save_args)
        write_text_atomically(
            self._filepath, data.to_csv(**self._save_args) if text is None else text
        )

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "save_args": self._save_args}


class SessionPartitionsDataset(PartitionedDataset):
    """One atomic CSV per trading session (`<YYYY-MM-DD>.csv`) in a folder.

    Loading an empty or missing folder gives `{}` rather than an error, so the first
    ingestion run can ask which sessions are already stored.
    """

    def __init__(self, path: str, **kwargs: Any) -> None:
        kwargs.setdefault("dataset", {"type": AtomicCSVDataset})
        kwargs.setdefault("filename_suffix", ".csv")
        super().__init__(path=path, **kwargs)
        remove_stale_temporaries(Path(PurePosixPath(path)))

    def load(self) -> dict[str, Any]:
        if not self._filesystem.exists(self._normalized_path):
            return {}
        try:
            return super().load()
        except DatasetError as error:
            if "No partitions found" in str(error):
                return {}
            raise

    def save(self, data: dict[str, Any]) -> None:
        # Each session file under its cross-process lock: `kedro live` read-modify-writes
        # the session in progress under the same lock (live/store.py), so the two never
        # interleave.
        for partition_id, partition_data in sorted(data.items()):
            with locked(Path(self._partition_to_path(partition_id))):
                super().save({partition_id: partition_data})

    def _list_partitions(self) -> list[str]:
        # Temporary files of an interrupted atomic write, and lock files, are not partitions.
        return [
            path
            for path in super()._list_partitions()
            if not PurePosixPath(path).name.startswith(".")
        ]


class SessionTableDataset(AbstractDataset[None, pd.DataFrame]):
    """Every session CSV of a folder as one table, read in a single parse (read-only).

    Reading thousands of small files one by one is dominated by the parser's per-call set-up;
    here the files' bodies are joined and parsed once, which is several times faster on
    years of minute bars. Each row keeps its origin in `source_file` (categorical) and
    `source_line` (as an editor shows it, the header being line 1), so later checks can
    name the file and line of a bad row. Files whose header differs from the first file's
    are parsed in their own group; a file lacking one of `required_columns`, or with no
    header at all, is an error naming the file.
    """

    def __init__(
        self,
        path: str,
        required_columns: list[str] | None = None,
        filename_suffix: str = ".csv",
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._path = Path(PurePosixPath(path))
        self._required = list(required_columns or [])
        self._suffix = filename_suffix
        self.metadata = metadata

    def load(self) -> pd.DataFrame:
        # Sorted by name as paths of one folder compare (case-folded where the platform
        # folds case), without comparing thousands of Path objects.
        files = sorted(
            (path for path in self._path.glob(f"*{self._suffix}") if not path.name.startswith(".")),
            key=lambda path: os.path.normcase(path.name),
        )
        groups: dict[bytes, list[tuple[int, bytes]]] = {}
        for code, path in enumerate(files):
            header, body = self._split_header(path)
            groups.setdefault(header, []).append((code, body))
        tables = [self._parse_group(header, members) for header, members in groups.items()]
        if not tables:
            columns = {name: pd.Series(dtype="object") for name in self._required}
            table = pd.DataFrame(columns)
            table["source_line"] = pd.Series(dtype="int64")
            codes = np.array([], dtype="int32")
        else:
            table = pd.concat(tables, ignore_index=True) if len(tables) > 1 else tables[0]
            if len(tables) > 1:
                table = table.sort_values(["_file", "source_line"], kind="stable")
                table = table.reset_index(drop=True)
            codes = table.pop("_file").to_numpy("int32")
        table["source_file"] = pd.Categorical.from_codes(codes, [path.name for path in files] or [])
        return table

    def _split_header(self, path: Path) -> tuple[bytes, bytes]:
        data = path.read_bytes()
        end = data.find(b"\n")
        header = (data if end < 0 else data[:end]).rstrip(b"\r")
        columns = [name.strip() for name in header.decode("utf-8", "replace").split(",")]
        missing = [name for name in self._required if name not in columns]
        if not header.strip() or missing:
            raise DatasetError(
                f"{path}: expected a header with the columns {self._required}, found "
                f"{columns if header.strip() else 'an empty file'}"
                + (f" (missing {missing})" if header.strip() else "")
                + "."
            )
        body = b"" if end < 0 else data[end + 1 :]
        if body and not body.endswith(b"\n"):
            body += b"\n"
        return header, body

    @staticmethod
    def _parse_group(header: bytes, members: list[tuple[int, bytes]]) -> pd.DataFrame:
        # Blank lines would be skipped by the parser and shift the line numbers; such
        # (rare) files are parsed on their own with their line numbers kept.
        blank = [b"\n\n" in body for _, body in members]  # one scan of each body
        plain = [member for member, gap in zip(members, blank, strict=True) if not gap]
        odd = [member for member, gap in zip(members, blank, strict=True) if gap]
        frames = []
        if plain:
            codes = np.array([code for code, _ in plain], dtype="int32")
            counts = np.array([body.count(b"\n") for _, body in plain], dtype="int64")
            data = b"".join([header, b"\n", *(body for _, body in plain)])
            # The files' bodies are in `data` now: letting go of them (the caller's list too)
            # keeps years of files from being held twice while they are parsed.
            members.clear()
            plain.clear()
            frame = pd.read_csv(io.BytesIO(data))
            del data
            line = np.arange(len(frame), dtype="int64")
            line -= np.repeat(np.cumsum(counts) - counts, counts)
            line += 2
            frame["source_line"] = line
            frame["_file"] = np.repeat(codes, counts)
            frames.append(frame)
        for code, body in odd:
            frame = pd.read_csv(io.BytesIO(header + b"\n" + body), skip_blank_lines=False)
            frame["source_line"] = np.arange(len(frame), dtype="int64") + 2
            frame = frame[frame.drop(columns="source_line").notna().any(axis=1)]
            frame["_file"] = np.int32(code)
            frames.append(frame)
        table = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        if odd:
            table = table.sort_values(["_file", "source_line"], kind="stable")
        return table.reset_index(drop=True)

    def save(self, data: None) -> None:
        raise DatasetError(
            "SessionTableDataset is read-only: sessions are written through "
            "SessionPartitionsDataset (the `@partitions` entry of the same folder)."
        )

    def _exists(self) -> bool:
        return self._path.is_dir()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path), "required_columns": self._required}


class AppendOnlyCSVDataset(AbstractDataset[pd.DataFrame, pd.DataFrame]):
    """A CSV log that only grows: `save` appends the given rows, never rewrites earlier ones.

    The first save writes the header (atomically); later saves must carry the same columns
    in the same order and are appended in place under `locked`, reading only the header and
    the last byte: the cost of an append does not grow with the log, two runs appending at
    once both keep their row, and a reader following the file (`tail -f`) sees each row.
    """

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(PurePosixPath(filepath))
        self.metadata = metadata
        remove_stale_temporaries(self._filepath.parent)

    def load(self) -> pd.DataFrame:
        return pd.read_csv(self._filepath)

    def save(self, data: pd.DataFrame) -> None:
        with locked(self._filepath):
            if not self._filepath.is_file() or self._filepath.stat().st_size == 0:
                write_text_atomically(self._filepath, data.to_csv(index=False))
                return
            self._append(data.to_csv(index=False, header=False).encode("utf-8"), data)

    def _append(self, rows: bytes, data: pd.DataFrame) -> None:
        with open(self._filepath, "rb") as handle:
            header_line = handle.readline()
            handle.seek(-1, os.SEEK_END)
            ends_with_newline = handle.read(1) == b"\n"
        header = next(csv.reader([header_line.decode("utf-8").rstrip("\r\n")]), [])
        columns = [str(column) for column in data.columns]
        if len(header) < len(columns) and columns[: len(header)] == header:
            self._add_columns(columns[len(header) :])
            ends_with_newline = True
        elif header != columns:
            raise DatasetError(
                f"Cannot append to {self._filepath}: its columns are {header}, the new "
                f"rows have {list(data.columns)}. Move the old log aside to change columns."
            )
        # A log edited by hand may lack its last newline; the new rows start on a new line.
        chunk = rows if ends_with_newline else b"\n" + rows
        with open(self._filepath, "ab") as handle:
            size = handle.tell()
            try:
                handle.write(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            except BaseException:
                # A failed append (disk full) takes back its partial row.
                handle.truncate(size)
                raise

    def _add_columns(self, added: list[str]) -> None:
        """Migrates a log written before `added` existed (e.g. the prediction log before
        `source` and `latency_ms`): the columns are added at the end, empty in the earlier
        rows, whose values are left as they were. The log is rewritten once, atomically."""
        lines = self._filepath.read_text(encoding="utf-8").splitlines()
        empty = "," * len(added)
        migrated = [lines[0] + "," + ",".join(added)]
        migrated += [line + empty if line else line for line in lines[1:]]
        write_text_atomically(self._filepath, "\n".join(migrated) + "\n")
        logger.warning(
            "%s: added the column(s) %s (empty in its %d earlier rows)",
            self._filepath,
            added,
            len(lines) - 1,
        )

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class AtomicJSONDataset(AbstractDataset[Any, Any]):
    """A JSON file replaced atomically on save; loads `missing` when the file does not exist.

    Used for small bookkeeping files (the ingestion ledger) that must never be half-written
    and whose first run starts from an empty state.
    """

    def __init__(
        self,
        filepath: str,
        missing: Any = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._filepath = Path(PurePosixPath(filepath))
        self._missing = missing
        self.metadata = metadata
        remove_stale_temporaries(self._filepath.parent)

    def load(self) -> Any:
        if not self._filepath.is_file():
            if self._missing is None:
                raise DatasetError(f"{self._filepath} does not exist.")
            return json.loads(json.dumps(self._missing))
        try:
            return json.loads(self._filepath.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise DatasetError(
                f"{self._filepath} is not valid JSON (line {error.lineno}, column "
                f"{error.colno}): {error.msg}. Move it aside to start afresh."
            ) from error

    def save(self, data: Any) -> None:
        write_text_atomically(self._filepath, json.dumps(data, indent=1, sort_keys=True) + "\n")

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class AtomicVersionedJSONDataset(JSONDataset):
    """kedro-datasets' JSONDataset (versioning, save_args) whose local writes are atomic.

    Registry artefacts (scaler, manifest) and reports are read back by later runs: a run
    killed mid-write must leave the previous file or none, never a truncated one. A
    versioned save publishes its whole version folder at once (`atomic_folder`).
    """

    def __init__(self, *, filepath: str, version: Version | None = None, **kwargs: Any) -> None:
        super().__init__(filepath=filepath, version=version, **kwargs)
        if self._protocol == "file":
            path = Path(get_filepath_str(self._filepath, self._protocol))
            remove_stale_temporaries(path if version else path.parent)

    def save(self, data: Any) -> None:
        if self._protocol != "file":
            super().save(data)
            return
        save_path = Path(get_filepath_str(self._get_save_path(), self._protocol))
        text = json.dumps(data, **self._save_args)
        if self._version:
            with atomic_folder(save_path.parent) as folder:
                (folder / save_path.name).write_text(text, encoding="utf-8", newline="")
        else:
            write_text_atomically(save_path, text)
        self._invalidate_cache()
