"""Crash-safe file writes: every file stagepose writes goes through `atomic_write`.

A show machine can lose power mid-write. Writing to a temporary file in the same folder, flushing it to
disk and renaming it over the target (atomic on one file system) means a reader sees either the old file
or the new one, never half of one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Written files are readable by the show's other accounts; some writers (safetensors, mkstemp) would
# otherwise leave owner-only files.
FILE_MODE = 0o644


def temp_path_beside(path: Path) -> Path:
    """A unique hidden temporary name in ``path``'s folder that keeps its suffix.

    Same folder: the final rename stays on one file system. Same suffix: some writers (matplotlib,
    safetensors) pick the format by it. Unique: two processes writing one file do not share a temp file.
    """
    return path.with_name(f".{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp_path)``, fsync the file and rename it to ``path``; returns ``path``.

    The folder is created. On any failure the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_beside(path)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` crash-safely."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` crash-safely."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
