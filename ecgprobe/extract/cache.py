"""A content-keyed store of embeddings: shards of rows, a JSON manifest, atomic writes, checksums.

One cache entry holds one layer of one extraction. Its key is the sha256 of everything that
determines the numbers except the signals themselves: the cache format and extraction code
version, the encoder (name, options, weights sha256, input contract), the dataset (loader,
options, sampling rate, leads, length, record ids), the layer, the window policy, the numeric
precision and the versions of the libraries that compute it (NumPy, SciPy, PyTorch). Batch size
and device are not part of the key (they do not change the result beyond float noise).

The signals enter per record: every row is stored with the content digest of its record
(:meth:`ecgprobe.data.RecordSet.content_digests`: SHA-256 of the record's raw file bytes, or of
its samples when in memory), and a row whose digest differs from the record's current one is
stale. Editing one record therefore recomputes exactly that record's row; the rest of its shard
is reused. The embeddings' own key (:func:`embeddings_key`) digests the entry key together with
every record's content digest, so downstream caches keyed by it see the change too. Caches
written before per-record digests existed (format 1) are never trusted: they are misses.

Layout: ``<cache_dir>/<encoder>/<key[:24]>/manifest.json`` (the provenance, shard size and a
summary) and, per shard of ``shard_size`` consecutive records, ``shard-00000.npy`` with its sidecar
``shard-00000.json`` (rows, dim, sha256, key, the rows' content digests). A shard is written to a temporary file and renamed
(atomic), then its sidecar (atomic): a shard counts only once its sidecar exists and its bytes
match the sidecar's checksum. A run killed at any moment (even ``kill -9``) therefore leaves
complete shards and at worst a shard without sidecar, which is recomputed; a shard whose bytes
do not match its checksum is recomputed, never used. Because every shard has its own sidecar,
several processes (e.g. Ray workers) can fill different shards of one entry concurrently.

Checking the records' content digests must not cost a re-run as much as the extraction saved:
:func:`remembered_digests` keeps, per dataset, the digests of its record files by the files'
metadata (size, modification and status-change times, inode) in
``<cache_dir>/.digest-memo/<dataset fingerprint>.json``, so an unchanged file is not read again
and a changed one always is (:mod:`ecgprobe.data._digest_memo` says why that is safe).
"""

from __future__ import annotations

import errno
import hashlib
import json
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ecgprobe._io import atomic_write
from ecgprobe.data._digest_memo import DigestMemo
from ecgprobe.exceptions import CacheError

__all__ = ["EXTRACTION_CODE_VERSION", "CacheEntry", "cache_key", "embeddings_key", "remembered_digests"]

#: Bump when a change to the extraction code changes the numbers it produces.
EXTRACTION_CODE_VERSION = "1"
_FORMAT = "ecgprobe-cache/2"


def cache_key(provenance: dict[str, Any], layer: str) -> str:
    """The sha256 (hex) of the cache format, the provenance facts and the layer, canonically serialised.

    Every fact in ``provenance`` counts (encoder identity with its weights digest and input
    contract, dataset identity, window, precision, library versions); nothing is filtered out.
    """
    doc = {
        "format": _FORMAT,
        "provenance": provenance,
        "layer": layer,
    }
    blob = json.dumps(doc, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def embeddings_key(entry_key: str, digests: np.ndarray) -> str:
    """The key of extracted embeddings: the entry key and every record's content digest, in order."""
    h = hashlib.sha256(entry_key.encode())
    h.update("\n".join(digests).encode())
    return h.hexdigest()


_MEMO_FORMAT = "ecgprobe-digest-memo/1"


@contextmanager
def remembered_digests(cache_dir: str | Path, dataset: str) -> Iterator[DigestMemo]:
    """Within the block, record files' content digests are reused from the memo of ``dataset`` (a
    :attr:`~ecgprobe.data.RecordSet.fingerprint`) kept under ``cache_dir`` when the files'
    metadata is unchanged; the memo is written back (atomically) if it changed.

    The memo only saves reading: an unreadable memo is ignored and rebuilt, and one that cannot
    be written (a read-only cache still serves its shards) is left as it was.

    Example:
        >>> import ecgprobe, tempfile
        >>> rs = ecgprobe.load_dataset("synthetic", n_records=4, fs=100.0)
        >>> with remembered_digests(tempfile.mkdtemp(), rs.fingerprint):
        ...     digests = rs.content_digests()
    """
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", dataset)
    path = Path(cache_dir).expanduser() / ".digest-memo" / f"{safe}.json"
    entries: dict[str, Any] = {}
    try:
        doc = json.loads(path.read_text())
        if isinstance(doc, dict) and doc.get("format") == _MEMO_FORMAT and isinstance(doc.get("files"), dict):
            entries = doc["files"]
    except (OSError, ValueError):  # absent, unreadable or corrupt: rebuilt from the files
        pass
    memo = DigestMemo(entries)
    with memo.active():
        yield memo
    if memo.changed:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, json.dumps({"format": _MEMO_FORMAT, "files": memo.kept()}).encode())
        except OSError:
            pass  # only an optimisation: the next run reads the files again


def _as_cache_error(exc: OSError, folder: Path) -> CacheError:
    if exc.errno == errno.ENOSPC:
        return CacheError(
            f"the disk holding the cache {folder} is full; free space or pass another cache_dir"
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return CacheError(
            f"the cache directory {folder} is not writable ({exc.strerror}); pass a writable cache_dir "
            "(CLI: --cache-dir DIR) or disable the cache (cache_dir=None, CLI: --no-cache)"
        )
    return CacheError(f"cannot write the cache in {folder}: {exc}")


@dataclass
class CacheEntry:
    """One (extraction, layer) entry of the cache; see the module docstring for the layout."""

    folder: Path
    key: str
    layer: str
    n_records: int
    shard_size: int
    provenance: dict[str, Any]
    shards: dict[int, dict[str, Any]]
    digests: np.ndarray
    dim: int | None = None
    #: Width D of one token when rows are flattened token sequences ``(T' * D)``, else ``None``.
    token_dim: int | None = None

    @classmethod
    def open(
        cls,
        cache_dir: str | Path,
        encoder_name: str,
        provenance: dict[str, Any],
        layer: str,
        digests: np.ndarray,
        shard_size: int,
    ) -> CacheEntry:
        """Open (or prepare) the entry for these facts and the records' current content
        ``digests`` (one per record); an existing manifest's shard size wins."""
        key = cache_key(provenance, layer)
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", encoder_name)
        folder = Path(cache_dir).expanduser() / safe / key[:24]
        n_records = len(digests)
        digests = np.asarray(digests, dtype=object)
        entry = cls(folder, key, layer, n_records, shard_size, provenance, {}, digests)
        manifest = folder / "manifest.json"
        if manifest.exists():
            try:
                doc = json.loads(manifest.read_text())
            except (json.JSONDecodeError, OSError):
                warnings.warn(
                    f"cache manifest {manifest} is unreadable; recomputing this entry", stacklevel=3
                )
                return entry
            if doc.get("key") != key or doc.get("n_records") != n_records:
                warnings.warn(
                    f"cache manifest {manifest} belongs to another extraction; recomputing", stacklevel=3
                )
                return entry
            entry.shard_size = int(doc["shard_size"])
        entry.refresh()
        return entry

    def refresh(self) -> None:
        """Re-read the shard sidecars (shards written by other processes become visible)."""
        self.shards = {}
        for s in range(self.n_shards):
            side = self.sidecar(s)
            if not side.exists():
                continue
            try:
                info = json.loads(side.read_text())
            except (json.JSONDecodeError, OSError):
                continue
            rows = len(self.rows(s))
            digests = info.get("digests")
            if (
                info.get("key") == self.key
                and info.get("rows") == rows
                and isinstance(digests, list)
                and len(digests) == rows
            ):
                self.shards[s] = info
                self.dim = info.get("dim", self.dim)
                self.token_dim = info.get("token_dim", self.token_dim)

    @property
    def n_shards(self) -> int:
        """Number of shards covering all records."""
        return -(-self.n_records // self.shard_size)

    def rows(self, shard: int) -> range:
        """Record positions held by ``shard``."""
        return range(shard * self.shard_size, min((shard + 1) * self.shard_size, self.n_records))

    def path(self, shard: int) -> Path:
        """File of ``shard``."""
        return self.folder / f"shard-{shard:05d}.npy"

    def sidecar(self, shard: int) -> Path:
        """Metadata file of ``shard`` (its presence marks the shard complete)."""
        return self.folder / f"shard-{shard:05d}.json"

    def load_shard(self, shard: int) -> np.ndarray | None:
        """The shard's rows, or ``None`` if it is absent, unlisted, or fails its checksum/shape."""
        info = self.shards.get(shard)
        p = self.path(shard)
        if info is None or not p.exists():
            return None
        blob = p.read_bytes()
        if hashlib.sha256(blob).hexdigest() != info.get("sha256"):
            warnings.warn(
                f"cache shard {p} does not match its checksum (corrupt); recomputing it", stacklevel=3
            )
            return None
        try:
            x = np.load(p, allow_pickle=False)
        except ValueError:
            warnings.warn(f"cache shard {p} is unreadable; recomputing it", stacklevel=3)
            return None
        if x.shape != (len(self.rows(shard)), info.get("dim")):
            warnings.warn(
                f"cache shard {p} has shape {x.shape}, expected {(len(self.rows(shard)), self.dim)}; recomputing",
                stacklevel=3,
            )
            return None
        return x

    def stale(self, shard: int) -> np.ndarray:
        """Positions of the listed ``shard``'s records whose content changed since it was written."""
        rows = self.rows(shard)
        stored = np.asarray(self.shards[shard]["digests"], dtype=object)
        return np.asarray(rows, dtype=np.int64)[stored != self.digests[rows.start : rows.stop]]

    def todo(self, verify: bool = True) -> dict[int, np.ndarray]:
        """Record positions to compute, per shard: all of an absent shard (or one failing
        verification when ``verify``), the changed records of a present one; shards with
        nothing to do are left out."""
        out: dict[int, np.ndarray] = {}
        for s in range(self.n_shards):
            if s not in self.shards or not self.path(s).exists() or (verify and self.load_shard(s) is None):
                self.shards.pop(s, None)
                out[s] = np.arange(self.rows(s).start, self.rows(s).stop)
            elif len(changed := self.stale(s)):
                out[s] = changed
        return out

    def write_shard(self, shard: int, x: np.ndarray) -> None:
        """Write one shard atomically, then its sidecar (also atomic, with the rows' content
        digests), then the summary manifest.

        Raises:
            CacheError: the folder is not writable or the disk is full (nothing half-written remains).
        """
        import io

        x = np.ascontiguousarray(x, dtype=np.float32)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            buf = io.BytesIO()
            np.save(buf, x)
            blob = buf.getvalue()
            atomic_write(self.path(shard), blob)
            info = {
                "key": self.key,
                "rows": int(x.shape[0]),
                "dim": int(x.shape[1]),
                "sha256": hashlib.sha256(blob).hexdigest(),
                "digests": [str(d) for d in self.digests[self.rows(shard).start : self.rows(shard).stop]],
            }
            if self.token_dim is not None:
                info["token_dim"] = int(self.token_dim)
            atomic_write(self.sidecar(shard), json.dumps(info).encode())
            self.dim = info["dim"]
            self.shards[shard] = info
            self._write_manifest()
        except OSError as exc:
            raise _as_cache_error(exc, self.folder) from None

    def _write_manifest(self) -> None:
        doc = {
            "format": _FORMAT,
            "key": self.key,
            "layer": self.layer,
            "n_records": self.n_records,
            "shard_size": self.shard_size,
            "n_shards": self.n_shards,
            "dim": self.dim,
            "shards_done": len(self.shards),
            "complete": len(self.shards) == self.n_shards,
            "provenance": self.provenance,
        }
        atomic_write(self.folder / "manifest.json", json.dumps(doc, indent=1, default=str).encode())

    def clear(self) -> None:
        """Forget every shard (``overwrite="always"``); files are replaced as they are rewritten."""
        self.shards = {}
        for s in range(self.n_shards):
            self.sidecar(s).unlink(missing_ok=True)
