"""A content-keyed store of embeddings: shards of rows, a JSON manifest, atomic writes, checksums.

One cache entry holds one layer of one extraction. Its key is the sha256 of everything that
determines the numbers: the extraction code version, the encoder (name, options, weights
sha256, input contract), the dataset (loader, options, sampling rate, leads, length, record
ids), the layer, the window policy and the numeric precision. Batch size and device are not
part of the key (they do not change the result beyond float noise).

Layout: ``<cache_dir>/<encoder>/<key[:24]>/manifest.json`` and ``shard-00000.npy``, ... Each shard
holds ``shard_size`` consecutive records. A shard is written to a temporary file and renamed
(atomic), then the manifest is rewritten (atomic) with the shard's sha256. A run killed at any
moment (even ``kill -9``) leaves complete shards listed in the manifest and at worst an
unlisted file, which is ignored and recomputed; a listed shard whose bytes do not match its
checksum is recomputed, never used.
"""

from __future__ import annotations

import errno
import hashlib
import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ecgprobe._io import atomic_write
from ecgprobe.exceptions import CacheError

__all__ = ["EXTRACTION_CODE_VERSION", "CacheEntry", "cache_key"]

#: Bump when a change to the extraction code changes the numbers it produces.
EXTRACTION_CODE_VERSION = "1"
_FORMAT = "ecgprobe-cache/1"


def cache_key(provenance: dict[str, Any], layer: str) -> str:
    """The sha256 (hex) of the provenance facts and the layer, canonically serialised."""
    blob = json.dumps({"provenance": provenance, "layer": layer}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


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
    dim: int | None = None

    @classmethod
    def open(
        cls,
        cache_dir: str | Path,
        encoder_name: str,
        provenance: dict[str, Any],
        layer: str,
        n_records: int,
        shard_size: int,
    ) -> CacheEntry:
        """Open (or prepare) the entry for these facts; an existing manifest's shard size wins."""
        key = cache_key(provenance, layer)
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", encoder_name)
        folder = Path(cache_dir).expanduser() / safe / key[:24]
        entry = cls(folder, key, layer, n_records, shard_size, provenance, {})
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
            entry.dim = doc.get("dim")
            entry.shards = {int(k): v for k, v in doc.get("shards", {}).items()}
        return entry

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
        if x.shape != (len(self.rows(shard)), self.dim):
            warnings.warn(
                f"cache shard {p} has shape {x.shape}, expected {(len(self.rows(shard)), self.dim)}; recomputing",
                stacklevel=3,
            )
            return None
        return x

    def missing(self, verify: bool = True) -> list[int]:
        """Shards that must be computed (absent, or failing verification when ``verify``)."""
        out = []
        for s in range(self.n_shards):
            if s not in self.shards or not self.path(s).exists():
                out.append(s)
            elif verify and self.load_shard(s) is None:
                del self.shards[s]
                out.append(s)
        return out

    def write_shard(self, shard: int, x: np.ndarray) -> None:
        """Write one shard atomically, then record it in the manifest (also atomic).

        Raises:
            CacheError: the folder is not writable or the disk is full (nothing half-written remains).
        """
        x = np.ascontiguousarray(x, dtype=np.float32)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            import io

            buf = io.BytesIO()
            np.save(buf, x)
            blob = buf.getvalue()
            atomic_write(self.path(shard), blob)
            self.dim = int(x.shape[1])
            self.shards[shard] = {"rows": int(x.shape[0]), "sha256": hashlib.sha256(blob).hexdigest()}
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
            "dim": self.dim,
            "complete": len(self.shards) == self.n_shards,
            "shards": {str(k): v for k, v in sorted(self.shards.items())},
            "provenance": self.provenance,
        }
        atomic_write(self.folder / "manifest.json", json.dumps(doc, indent=1, default=str).encode())

    def clear(self) -> None:
        """Forget every shard (``overwrite="always"``); files are replaced as they are rewritten."""
        self.shards = {}
