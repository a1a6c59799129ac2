"""Safe local files: atomic writes, cross-process locks, and cleanup after killed writers.

- Atomic writes. A file (`atomic_file`, `write_bytes_atomically`, `write_text_atomically`)
  or a whole folder (`atomic_folder`: a model version) is written under a temporary name
  in its target's folder and renamed into place when complete, so a killed run leaves the
  previous file (or nothing), never a half-written one.
- Permissions. Temporaries are created like any file, 0666/0777 less the umask (0644/0755
  under the usual 022), not with mkstemp's 0600: colleagues and scheduler users can read.
- Temporaries name their writer: `.<name>.<host>-<pid>-<token>.tmp`. The first write or
  dataset in a folder per process (`remove_stale_temporaries`) removes those whose writer
  is gone (this host, process no longer alive), never those of a run still going.
  Temporaries of another host, and unnamed ones of earlier versions
  (`.<name>.<8 characters>.tmp`, from mkstemp), go once untouched for an hour.
- Locks. `locked(path)` holds a `filelock.FileLock` on the hidden sibling `.<name>.lock`
  (flock on POSIX, LockFileEx on Windows) for a read-modify-write of `path`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from filelock import FileLock, Timeout

logger = logging.getLogger(__name__)

# A temporary another host wrote (its pid means nothing here), or one without a writer in
# its name, is stale once untouched for this long: a live write touches it within seconds.
UNATTRIBUTED_STALE_AFTER_S = 3600.0
# How long `locked` waits quietly before saying which lock it is waiting for.
LOCK_WAIT_NOTICE_S = 10.0

_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]
_OURS = re.compile(r"^\..+\.(?P<host>[0-9a-f]{6})-(?P<pid>\d+)-[0-9a-f]{8}\.tmp$")
_MKSTEMP = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")

_swept: set[Path] = set()
_swept_guard = threading.Lock()


def temporary_sibling(path: Path) -> Path:
    """A fresh temporary name next to `path` that names this host and process."""
    token = secrets.token_hex(4)
    return path.with_name(f".{path.name}.{_HOST}-{os.getpid()}-{token}.tmp")


@contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A binary handle whose bytes replace `path` atomically when the block ends.

    On an error the temporary is removed and `path` is left as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
    temporary = temporary_sibling(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    descriptor = os.open(temporary, flags, 0o666)  # the umask applies, unlike mkstemp's 0600
    try:
        with os.fdopen(descriptor, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_bytes_atomically(path: Path, data: bytes) -> None:
    """Replaces `path` with `data` through a temporary sibling and an atomic rename."""
    with atomic_file(path) as handle:
        handle.write(data)


def write_text_atomically(path: Path, text: str) -> None:
    """Replaces `path` with `text` (UTF-8, newlines as given) atomically."""
    write_bytes_atomically(path, text.encode("utf-8"))


@contextmanager
def atomic_folder(path: Path) -> Iterator[Path]:
    """A temporary folder that becomes `path` (which must not exist yet) when the block ends.

    What the block writes into it appears at `path` all at once; on an error, or if the
    process is killed, no `path` appears (a killed writer's temporary is removed later).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
    temporary = temporary_sibling(path)
    temporary.mkdir()  # 0777 less the umask, unlike mkdtemp's 0700
    try:
        yield temporary
        for written in temporary.rglob("*"):
            if written.is_file():
                _fsync(written)
        os.rename(temporary, path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def _fsync(path: Path) -> None:
    # Opened for writing: Windows flushes only handles with write access.
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


@contextmanager
def locked(path: Path | str) -> Iterator[None]:
    """Holds an exclusive lock for a read-modify-write of `path`, across processes.

    Every process (and thread) that changes `path` through `with locked(path):` waits for
    the others, on POSIX and Windows alike. The lock is `filelock.FileLock` on the hidden
    sibling `.<name>.lock`, released when the block ends or the process dies. It is not
    re-entrant: do not nest `locked` on the same path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path.with_name(f".{path.name}.lock"))
    try:
        lock.acquire(timeout=LOCK_WAIT_NOTICE_S)
    except Timeout:
        logger.info("Waiting for %s: another process is writing %s.", lock.lock_file, path)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Removes the temporaries in `folder` whose writer is gone; once per folder and process.

    Returns what was removed. Called by every atomic write and by the project's datasets
    when they are created, so a run clears what a killed run left before it writes there.
    """
    key = Path(os.path.abspath(folder))
    with _swept_guard:
        if key in _swept:
            return []
        _swept.add(key)
    return sweep_stale_temporaries(folder)


def sweep_stale_temporaries(folder: Path) -> list[Path]:
    """`remove_stale_temporaries` without the once-per-process memory."""
    try:
        entries = [entry for entry in os.scandir(folder) if entry.name.endswith(".tmp")]
    except (FileNotFoundError, NotADirectoryError):
        return []
    removed = []
    for entry in entries:
        if not _writer_is_gone(entry):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except FileNotFoundError:  # another run removed it first
            continue
        except OSError as error:  # e.g. still open on Windows: try again next run
            logger.warning("Could not remove the stale temporary %s: %s", entry.path, error)
            continue
        removed.append(Path(entry.path))
    if removed:
        logger.info(
            "Removed %d temporary file(s) left in %s by interrupted runs: %s",
            len(removed),
            folder,
            ", ".join(path.name for path in removed[:3]) + (", ..." if len(removed) > 3 else ""),
        )
    return removed


def _writer_is_gone(entry: os.DirEntry) -> bool:
    ours = _OURS.match(entry.name)
    if ours and ours["host"] == _HOST:
        return not process_is_alive(int(ours["pid"]))
    if ours or _MKSTEMP.match(entry.name):
        try:
            age = time.time() - entry.stat(follow_symlinks=False).st_mtime
        except FileNotFoundError:
            return False
        return age > UNATTRIBUTED_STALE_AFTER_S
    return False  # not a temporary of ours: leave it alone


def process_is_alive(pid: int) -> bool:
    """Whether process `pid` exists on this host (a zombie counts as alive until reaped).

    When in doubt it answers True, so that a live writer's file is never removed.
    """
    if pid == os.getpid():
        return True
    if os.name == "nt":
        return _windows_process_is_alive(pid)
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def _windows_process_is_alive(pid: int) -> bool:
    # os.kill on Windows terminates the process whatever the signal, so ask the kernel.
    import ctypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    query_limited_information, still_active, access_denied = 0x1000, 259, 5
    handle = kernel32.OpenProcess(query_limited_information, False, pid)
    if not handle:
        return ctypes.get_last_error() == access_denied  # type: ignore[attr-defined]
    try:
        exit_code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(exit_code)):
            return True
        return exit_code.value == still_active
    finally:
        kernel32.CloseHandle(handle)
