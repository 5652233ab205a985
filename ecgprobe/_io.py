"""Atomic file writes (a reader never sees a half-written file, and a failed write leaves none),
and the one reader of a JSON document with its checksummed side ``.npz`` of arrays."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ecgprobe.exceptions import DataError

__all__ = ["atomic_write", "read_json_npz"]


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


def read_json_npz(
    path: str | Path, *, what: str, redo: str, missing: str | None = None, missing_npz: str | None = None
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read a JSON document and the arrays of the ``.npz`` its ``arrays_file`` entry names.

    The entry (``{"name": ..., "sha256": ...}``, written beside the document) is checked
    against the array file's bytes, so a stale or swapped file is refused rather than read.

    Args:
        path: the JSON file.
        what: how messages name it (``"result file"``).
        redo: the fix for an unreadable or stale file (``"re-run the analysis"``).
        missing: the fix when ``path`` does not exist (default: check the path, or ``redo``).
        missing_npz: the fix when the array file is missing (default: ``redo``).

    Returns:
        The document, and its arrays by name (empty without an ``arrays_file`` entry).

    Raises:
        DataError: naming the file and the fix: a missing file, invalid JSON, a missing array
            file, or one that does not match the recorded checksum.

    Example:
        >>> doc, arrays = read_json_npz("out/linear_probe.json", what="result file", redo="re-run")  # doctest: +SKIP
    """
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except FileNotFoundError:
        raise DataError(f"{what} {p} does not exist; {missing or 'check the path, or ' + redo}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{what} {p} is not valid JSON ({exc}); {redo}") from None
    if not isinstance(doc, dict):
        raise DataError(f"{what} {p} holds a JSON {type(doc).__name__}, not an object; {redo}")
    entry = doc.get("arrays_file")
    if not entry:
        return doc, {}
    npz = p.with_name(entry["name"])
    if not npz.exists():
        raise DataError(f"{p} refers to {npz.name}, which is missing; {missing_npz or redo}")
    blob = npz.read_bytes()
    if hashlib.sha256(blob).hexdigest() != entry["sha256"]:
        raise DataError(f"{npz} does not match the checksum recorded in {p.name} (stale or modified); {redo}")
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        return doc, {k: z[k] for k in z.files}
