"""Records' content digests remembered by their files' metadata, so that a cached re-run neither
reads every record's bytes again nor parses its header.

A :class:`~ecgprobe.data.sources.FileSource` digests a record with its digester (e.g.
:func:`~ecgprobe.data.wfdb_io.wfdb_digest`: the header and every signal file it lists), which
hashes the files through :func:`~ecgprobe.data.record.files_digest`. While a :class:`DigestMemo`
is active (``with memo.active():``), the source first looks the record up in the memo: it holds
the files that digest covered with their metadata when they were read — size, modification and
status-change times in nanoseconds, inode and device — and the digest is reused only if every one
of those files still has exactly that metadata. Any difference reads and hashes the record again:
an edit changes the status-change time even when the size is kept and the modification time is
set back (``touch -d``, ``cp -p``, ``rsync -t``), and a file replaced by another has another inode.
An unchanged header lists the same signal files, so those are the files to check. Files changed
within the last :data:`RACY_SECONDS` before the hashing are not remembered: a write in the same
clock tick could leave their metadata unchanged (git's "racy" index entries). The extraction cache
stores the memo beside its entries (:func:`ecgprobe.extract.cache.remembered_digests`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["RACY_SECONDS", "DigestMemo", "active_memo", "note_file"]

#: Files whose modification or status change is this recent are not remembered (coarse clocks,
#: and file systems with 1-2 s timestamps).
RACY_SECONDS = 2.0

_ACTIVE: list[DigestMemo] = []  # a stack: the innermost active memo is consulted
_STACK_LOCK = threading.Lock()
_LOCAL = threading.local()  # the files one digest computation hashed, per thread


def active_memo() -> DigestMemo | None:
    """The memo file-backed sources consult now (``None``: none is active).

    Process-wide rather than per thread, so that a source's digest threads see it.
    """
    return _ACTIVE[-1] if _ACTIVE else None


def _meta(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def note_file(path: str | os.PathLike[str], st: os.stat_result) -> None:
    """Called by :func:`~ecgprobe.data.record.files_digest` for each file it hashes, with the
    file's status taken before its bytes were read (so a concurrent edit is never hidden)."""
    files = getattr(_LOCAL, "files", None)
    if files is not None:
        files.append([os.fspath(path), *_meta(st)])


class DigestMemo:
    """Records' digests with the files (and their metadata) each digest covered.

    Args:
        entries: ``{key: [digest, [path, size, mtime_ns, ctime_ns, inode, device], ...]}`` as a
            previous run stored them (:meth:`kept`); malformed entries are ignored.

    Example:
        >>> memo = DigestMemo()
        >>> with memo.active():
        ...     pass  # FileSource.digests() here consults and fills the memo
    """

    def __init__(self, entries: dict[str, Any] | None = None) -> None:
        self.entries: dict[str, list[Any]] = dict(entries or {})
        self.used: set[str] = set()
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()

    @property
    def changed(self) -> bool:
        """Whether saving would store something new (a digest computed, or an entry unused)."""
        return self.misses > 0 or len(self.used) != len(self.entries)

    def _valid(self, stored: Any) -> bool:
        if not isinstance(stored, list) or len(stored) < 2 or not isinstance(stored[0], str):
            return False
        try:
            return all(_meta(os.stat(f[0])) == f[1:] for f in stored[1:])  # noqa: PTH116 (speed)
        except (OSError, TypeError, IndexError, ValueError):
            return False

    def lookup(self, key: str) -> str | None:
        """The digest remembered under ``key`` if every file it covered is unchanged, else ``None``."""
        with self._lock:
            self.used.add(key)
            stored = self.entries.get(key)
        if not self._valid(stored):
            return None
        with self._lock:
            self.hits += 1
        return str(stored[0])  # type: ignore[index]

    def digest(self, key: str, compute: Callable[[], str]) -> str:
        """:meth:`lookup`, or ``compute()`` remembered with the files it hashed through
        ``files_digest`` (not when it hashed none, or one changed within :data:`RACY_SECONDS`)."""
        hit = self.lookup(key)
        return hit if hit is not None else self._remember(key, compute)

    def _remember(self, key: str, compute: Callable[[], str]) -> str:
        _LOCAL.files = []
        try:
            value = compute()
            files = _LOCAL.files
        finally:
            _LOCAL.files = None
        recent = time.time_ns() - int(RACY_SECONDS * 1e9)
        with self._lock:
            self.misses += 1
            if files and all(max(f[2], f[3]) < recent for f in files):
                self.entries[key] = [value, *files]
            else:
                self.entries.pop(key, None)
        return value

    def digests(
        self,
        digester: Callable[[str], str],
        paths: list[str],
        map_: Callable[[Callable[[Any], str], list[Any]], list[str]],
    ) -> list[str]:
        """``[digester(p) for p in paths]``: the remembered ones looked up here (two ``stat``
        calls for a WFDB record), only the others computed, through ``map_`` (a thread pool)."""
        name = f"{getattr(digester, '__module__', '')}.{getattr(digester, '__qualname__', digester)}"
        out = [self.lookup(f"{name}\0{p}") for p in paths]
        todo = [i for i, d in enumerate(out) if d is None]

        def compute(i: int) -> str:
            return self._remember(f"{name}\0{paths[i]}", lambda: digester(paths[i]))

        for i, value in zip(todo, map_(compute, todo)):
            out[i] = value
        return [str(d) for d in out]

    def kept(self) -> dict[str, list[Any]]:
        """The entries looked up since creation (records no longer read are dropped)."""
        with self._lock:
            return {k: v for k, v in self.entries.items() if k in self.used}

    @contextmanager
    def active(self) -> Iterator[DigestMemo]:
        """Make this memo the one file-backed sources consult within the block."""
        with _STACK_LOCK:
            _ACTIVE.append(self)
        try:
            yield self
        finally:
            with _STACK_LOCK:
                _ACTIVE.remove(self)
