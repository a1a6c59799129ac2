"""Project datasets: atomic CSV files, per-session partitions, and an append-only log.

Writes go to a temporary file in the target folder and are moved into place with
`os.replace`, so a killed run never leaves a half-written file behind. These datasets are
for local paths, which is where ml_lstm keeps its data.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from kedro.io import AbstractDataset, DatasetError
from kedro.io.core import get_filepath_str
from kedro_datasets.json import JSONDataset
from kedro_datasets.partitions import PartitionedDataset


def write_text_atomically(path: Path, text: str) -> None:
    """Writes `text` to `path` through a temporary sibling and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


@contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on `<path>.lock` (POSIX; a no-op where fcntl is absent)."""
    try:
        import fcntl
    except ImportError:  # Windows: one run at a time is the user's to ensure
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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

    def load(self) -> pd.DataFrame:
        return pd.read_csv(self._filepath, **self._load_args)

    def save(self, data: pd.DataFrame) -> None:
        write_text_atomically(self._filepath, data.to_csv(**self._save_args))

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

    def load(self) -> dict[str, Any]:
        if not self._filesystem.exists(self._normalized_path):
            return {}
        try:
            return super().load()
        except DatasetError as error:
            if "No partitions found" in str(error):
                return {}
            raise

    def _list_partitions(self) -> list[str]:
        # Temporary files of an interrupted atomic write are not partitions.
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
        files = sorted(
            path for path in self._path.glob(f"*{self._suffix}") if not path.name.startswith(".")
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
        plain = [(code, body) for code, body in members if b"\n\n" not in body]
        odd = [(code, body) for code, body in members if b"\n\n" in body]
        frames = []
        if plain:
            counts = np.array([body.count(b"\n") for _, body in plain], dtype="int64")
            frame = pd.read_csv(io.BytesIO(header + b"\n" + b"".join(b for _, b in plain)))
            starts = np.repeat(np.cumsum(counts) - counts, counts)
            frame["source_line"] = np.arange(len(frame), dtype="int64") - starts + 2
            frame["_file"] = np.repeat([code for code, _ in plain], counts).astype("int32")
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

    The first save writes the header; later saves must carry the same columns in the same
    order. The append itself is atomic: the old bytes plus the new rows go to a temporary
    file that replaces the log, so the earlier rows stay byte-for-byte identical.
    """

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(PurePosixPath(filepath))
        self.metadata = metadata

    def load(self) -> pd.DataFrame:
        return pd.read_csv(self._filepath)

    def save(self, data: pd.DataFrame) -> None:
        # Read-append-replace under an exclusive lock, so two runs appending at once both
        # keep their row.
        with _exclusive_lock(self._filepath):
            self._append(data)

    def _append(self, data: pd.DataFrame) -> None:
        if self._filepath.is_file():
            existing = self._filepath.read_text(encoding="utf-8")
            header = existing.splitlines()[0].split(",") if existing else []
            if header and header != list(data.columns):
                raise DatasetError(
                    f"Cannot append to {self._filepath}: its columns are {header}, the new "
                    f"rows have {list(data.columns)}. Move the old log aside to change columns."
                )
            if existing and not existing.endswith("\n"):
                existing += "\n"
            text = existing + data.to_csv(index=False, header=not header)
        else:
            text = data.to_csv(index=False)
        write_text_atomically(self._filepath, text)

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
    killed mid-write must leave the previous file or none, never a truncated one.
    """

    def save(self, data: Any) -> None:
        if self._protocol != "file":
            super().save(data)
            return
        save_path = Path(get_filepath_str(self._get_save_path(), self._protocol))
        write_text_atomically(save_path, json.dumps(data, **self._save_args))
        self._invalidate_cache()


class IBConnectionDataset(AbstractDataset[dict, None]):
    """Where TWS / IB Gateway listens: the `key` entry of a YAML credentials file.

    `kedro run --env ib` loads conf/base and conf/ib only, so Kedro's own credentials
    (conf/local/credentials.yml) are not available to it; this read-only dataset reads that
    file itself. A missing file or key gives `{}` (the client then uses IB_HOST, IB_PORT,
    IB_CLIENT_ID or 127.0.0.1:7497). The values are never shown by `_describe` or logs.
    """

    def __init__(
        self, filepath: str, key: str = "ib", metadata: dict[str, Any] | None = None
    ) -> None:
        self._filepath = Path(PurePosixPath(filepath))
        self._key = key
        self.metadata = metadata

    def load(self) -> dict:
        import yaml

        if not self._filepath.is_file():
            return {}
        try:
            content = yaml.safe_load(self._filepath.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as error:
            # PyYAML's message quotes the offending line, which may hold a credential: name
            # the place and the problem only.
            mark = getattr(error, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(error, "problem", None) or type(error).__name__
            raise DatasetError(f"{self._filepath} is not valid YAML{where}: {problem}.") from None
        entry = content.get(self._key, {}) if isinstance(content, dict) else {}
        if not isinstance(entry, dict):
            raise DatasetError(
                f"{self._filepath}: `{self._key}` must be a mapping with host, port, client_id."
            )
        unknown = set(entry) - {"host", "port", "client_id"}
        if unknown:
            raise DatasetError(
                f"{self._filepath}: unknown key(s) {sorted(unknown)} under `{self._key}`; "
                "expected host, port, client_id."
            )
        return entry

    def save(self, data: dict) -> None:
        raise DatasetError("IBConnectionDataset is read-only: edit the credentials file.")

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "key": self._key}
