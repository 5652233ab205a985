"""A content-keyed store of analyzer results, so that re-rendering never recomputes.

A result is stored under a key derived from everything that determines it: the analyzer and
its settings, the identity of its inputs (embedding keys, which already digest the encoder's
weights, the preprocessing and the records; the dataset's fingerprint; upstream results), and
the ecgprobe version. Files are ``<root>/results/<analyzer>-<key>.json`` (+ ``.npz``), written
atomically by :meth:`Result.save`, with a small ``.key.json`` beside them saying what the key
covers, so a cache hit can be explained.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ecgprobe._io import atomic_write
from ecgprobe._version import __version__
from ecgprobe.analyzers.base import Result, to_jsonable
from ecgprobe.exceptions import DataError
from ecgprobe.extract.embeddings import Embeddings

__all__ = ["ResultCache", "embeddings_identity"]


def embeddings_identity(emb: Embeddings) -> str:
    """The embeddings' provenance key, or a digest of the matrix and ids for ad-hoc embeddings."""
    if emb.key:
        return f"{emb.key}:{emb.layer}"
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(emb.X).tobytes())
    h.update("\n".join(map(str, emb.ids)).encode())
    return f"sha256:{h.hexdigest()}:{emb.layer}"


class ResultCache:
    """Results stored by content key under ``root`` (``None``: nothing is stored or reused).

    Example:
        >>> cache = ResultCache(tmp_path)  # doctest: +SKIP
        >>> key = cache.key("linear_probe", {"C": 1.0}, inputs=[embeddings_identity(emb), records.fingerprint])  # doctest: +SKIP
        >>> cache.load("linear_probe", key) or cache.save("linear_probe", key, probe.run(emb, records))  # doctest: +SKIP
    """

    def __init__(self, root: str | Path | None) -> None:
        self.root = None if root is None else Path(root).expanduser() / "results"
        self.hits: list[str] = []
        self.misses: list[str] = []

    @staticmethod
    def key(analyzer: str, settings: Mapping[str, Any], inputs: Sequence[str]) -> str:
        """A digest of the analyzer, its settings, its inputs' identities and ecgprobe's version."""
        doc = {
            "analyzer": analyzer,
            "settings": to_jsonable(dict(settings)),
            "inputs": list(inputs),
            "ecgprobe": __version__,
        }
        blob = json.dumps(doc, sort_keys=True, default=repr).encode()
        return hashlib.sha256(blob).hexdigest()[:24]

    def _path(self, analyzer: str, key: str) -> Path | None:
        return None if self.root is None else self.root / f"{analyzer}-{key}.json"

    def load(self, analyzer: str, key: str) -> Result | None:
        """The stored result, or None (also when the stored files are damaged: it is recomputed)."""
        path = self._path(analyzer, key)
        if path is None or not path.exists():
            self.misses.append(f"{analyzer}-{key}")
            return None
        try:
            result = Result.load(path)
        except DataError:
            self.misses.append(f"{analyzer}-{key}")
            return None
        self.hits.append(f"{analyzer}-{key}")
        return result

    def save(
        self, analyzer: str, key: str, result: Result, described: Mapping[str, Any] | None = None
    ) -> Result:
        """Store ``result`` under ``key`` (no-op without a root); returns it."""
        path = self._path(analyzer, key)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            result.save(path)
            about = {
                "analyzer": analyzer,
                "key": key,
                "ecgprobe": __version__,
                **to_jsonable(dict(described or {})),
            }
            atomic_write(path.with_suffix(".key.json"), json.dumps(about, indent=1, default=repr).encode())
        return result
