"""Atomic file writes: a file appears complete under its name, or not at all.

Every writer in the project goes through `atomic_path`: the content is written to a hidden
temporary file beside the target (same folder, so the rename never crosses filesystems),
flushed, then renamed over the target. A failed or interrupted write removes its temporary
file and leaves the previous version of the target untouched.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TEMPORARY_MARK = ".tmp-"  # hidden temporaries are named .<stem>.tmp-<pid><suffix>


def temporary_name(path: Path) -> Path:
    """The hidden temporary beside `path`; it keeps the suffix, so writers that choose the
    format from the file name (imageio, cv2) still see `.png`, `.gif`, `.mp4`."""
    return path.with_name(f".{path.stem}{TEMPORARY_MARK}{os.getpid()}{path.suffix}")


def is_temporary(path: Path) -> bool:
    return path.name.startswith(".") and TEMPORARY_MARK in path.name


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
