"""Atomic file writes: a file appears complete under its name, or not at all.

Every writer in the project goes through `atomic_path`: the content is written to a hidden
temporary file beside the target (same folder, so the rename never crosses filesystems),
flushed, then renamed over the target. A failed or interrupted write removes its temporary
file and leaves the previous version of the target untouched.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from frgan.errors import FRGANError

TEMPORARY_MARK = ".tmp-"  # hidden temporaries are named .<stem>.tmp-<pid><suffix>
_TEMPORARY_PID = re.compile(re.escape(TEMPORARY_MARK) + r"(\d+)")
# errno of a write that fails because of the place written to, not the program
UNWRITABLE = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


LOCK_NAME = ".frgan.lock"


class UnwritableError(FRGANError, OSError):
    """A folder cannot take the files a job writes (full disk, read-only, no permission)."""


class FolderInUse(FRGANError):
    """Another process holds the folder a job would write into."""


def temporary_name(path: Path) -> Path:
    """The hidden temporary beside `path`; it keeps the suffix, so writers that choose the
    format from the file name (imageio, cv2) still see `.png`, `.gif`, `.mp4`."""
    return path.with_name(f".{path.stem}{TEMPORARY_MARK}{os.getpid()}{path.suffix}")


def is_temporary(path: Path) -> bool:
    return path.name.startswith(".") and TEMPORARY_MARK in path.name


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporaries that killed writers left in `folder` (those whose process is gone
    or is this one); returns what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in sorted(folder.iterdir()):
        match = _TEMPORARY_PID.search(path.name)
        if not (is_temporary(path) and match and path.is_file()):
            continue
        pid = int(match.group(1))
        if pid == os.getpid() or not _process_alive(pid):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


@contextmanager
def reporting_unwritable(folder: str | Path, setting: str, then: str = "") -> Iterator[None]:
    """Turn a write that fails for lack of space or permission under `folder` into one
    UnwritableError naming the folder and saying what to do: free space or point `setting`
    (the config key of the folder) elsewhere, `then` (e.g. "then re-run ...")."""
    try:
        yield
    except OSError as error:
        if isinstance(error, UnwritableError) or error.errno not in UNWRITABLE:
            raise
        full = error.errno in (errno.ENOSPC, errno.EDQUOT)
        remedy = (
            f"free space there or set {setting} to a folder with room"
            if full
            else f"set {setting} to a writable folder (or make this one writable)"
        )
        raise UnwritableError(
            f"Cannot write to {folder} ({UNWRITABLE[error.errno]}): {remedy}"
            + (f"; {then}" if then else "")
            + "."
        ) from error


@contextmanager
def atomic_path(path: str | Path, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode())


def write_json_atomic(path: str | Path, payload: Any, **dumps_kwargs: Any) -> Path:
    options = {"indent": 2, **dumps_kwargs}
    return write_text_atomic(path, json.dumps(payload, **options) + "\n")


@contextmanager
def exclusive_folder(folder: str | Path, what: str, remedy: str) -> Iterator[None]:
    """Hold `folder` (made if missing) for this process while the block runs: a second holder,
    in this or another process, gets FolderInUse saying that another `what` holds it, and
    `remedy`. An flock on <folder>/.frgan.lock: the system releases it when the holder ends,
    killed too, so it is never stale (a DataLoader worker forked by the holder keeps it until it
    exits). The file stays; it records who holds the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    try:  # never through a planted link: the file is truncated below
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as error:
        if error.errno != errno.ELOOP:
            raise
        raise FolderInUse(
            f"{path} is a symbolic link, not the lock file of a run; remove it, or {remedy}"
        ) from None
    handle = os.fdopen(descriptor, "r+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise FolderInUse(
            f"{folder} is in use by another {what} ({holder}); wait for it to end, or {remedy}"
        ) from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        yield
    finally:
        handle.close()  # releases the lock
