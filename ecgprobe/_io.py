"""Atomic file writes: a reader never sees a half-written file, and a failed write leaves none."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write"]


def _default_mode() -> int:
    """``0o666`` less the process umask: the mode ``open()`` would give a new file.

    ``tempfile.mkstemp`` creates private ``0o600`` files; results, reports and caches are meant
    to be shared like any other output. The umask is read once (reading it means setting it).
    """
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


_MODE = _default_mode()


def atomic_write(path: str | Path, data: bytes | Callable[[BinaryIO], object]) -> Path:
    """Write ``data`` (bytes, or a function writing to a binary file) to ``path`` atomically.

    The content goes to a temporary file in the same folder, is flushed to disk, and is renamed
    over ``path``; on any error the temporary file is removed and the error propagates.
    """
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _MODE)
        with os.fdopen(fd, "wb") as fh:
            if isinstance(data, (bytes, bytearray)):
                fh.write(data)
            else:
                data(fh)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).replace(target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
