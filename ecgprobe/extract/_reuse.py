"""Assembling embeddings from the cache, and the request memo that lets a cached re-run skip
creating the encoder (and so importing torch).

A cached ``ecgprobe extract`` re-run spends most of its time importing torch and building the
model, only to compute the provenance under which the cache stores the embeddings. The request
memo remembers that provenance per *request*: everything the command line says (encoder name and
raw options, the checkpoint file's path, size, modification time and inode, the extraction
settings, the dataset's identity), the versions of the libraries that shape the numbers, and a
fingerprint of ecgprobe's own files (path, size, modification time: an edited installation is a
new request). On a hit the cache is then read exactly as :func:`~ecgprobe.extract.extract` reads
it — every record's content digest is checked against its cached row — so a record whose file
changed, a missing shard or a corrupt one sends the command down the normal path; the memo never
substitutes for the cache's own checks, it only spares recomputing the key. A checkpoint changed
within the last two seconds is never remembered (its modification time could still tie).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from ecgprobe._io import atomic_write
from ecgprobe.data.record import RecordSet
from ecgprobe.exceptions import CacheError
from ecgprobe.extract.cache import embeddings_key, remembered_digests
from ecgprobe.extract.embeddings import Embeddings

__all__ = ["assemble", "from_request_memo", "remember_request", "request_key", "summary"]

#: Distributions whose versions are part of every request (their code shapes the numbers).
_DISTRIBUTIONS = ("torch", "numpy", "scipy", "wfdb", "onnxruntime", "openecg", "h5py")
_RACY_S = 2.0
_FOLDER = "requests"


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """SHA-256 over (path, size, mtime) of every file of the installed ecgprobe package."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if (
            path.is_file()
            and path.suffix in (".py", ".csv", ".json", ".npz", ".onnx")
            and "__pycache__" not in path.parts
        ):
            st = path.stat()
            h.update(f"{path.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for dist in _DISTRIBUTIONS:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _file_state(path: str | os.PathLike[str] | None) -> dict[str, Any] | None:
    """Path, size, mtime and inode of a checkpoint; ``None`` for no file; raises for a racy one."""
    if path is None:
        return None
    p = Path(path).resolve()
    st = p.stat()  # a missing checkpoint: the normal path gives the user its error
    if time.time() - st.st_mtime < _RACY_S:
        raise FileNotFoundError("racy")
    return {"path": str(p), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino}


def request_key(
    *,
    encoder: str,
    options: Sequence[str],
    checkpoint: str | os.PathLike[str] | None,
    sha256: str | None,
    extraction: Mapping[str, Any],
    records: RecordSet,
) -> str | None:
    """The memo key of an extraction request, or ``None`` when it cannot be remembered safely
    (a checkpoint missing or changed moments ago)."""
    try:
        ckpt = _file_state(checkpoint)
    except OSError:
        return None
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in extraction.items() if k != "progress"}
    doc = {
        "encoder": encoder,
        "options": list(options),
        "checkpoint": ckpt,
        "sha256": sha256,
        "extraction": settings,
        "dataset": records.fingerprint,
        "versions": _versions(),
        "code": code_fingerprint(),
        "env": {k: v for k, v in sorted(os.environ.items()) if k.startswith("ECGPROBE_")},
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def remember_request(
    cache_dir: str | os.PathLike[str], key: str, result: Embeddings | Mapping[str, Embeddings]
) -> None:
    """Store what :func:`from_request_memo` needs to serve ``key`` again (best effort: a memo
    that cannot be written only costs the next run its speed-up)."""
    embs = [result] if isinstance(result, Embeddings) else list(result.values())
    if not embs or any(not e.key for e in embs):
        return
    try:
        prov = {k: v for k, v in embs[0].provenance.items() if k not in ("extraction", "versions", "note")}
        doc = {
            "provenance": prov,
            "layers": [e.layer for e in embs],
            "single": isinstance(result, Embeddings),
            "note": embs[0].provenance.get("note"),
            "encoder_name": prov["encoder"]["encoder"],
        }
        folder = Path(cache_dir) / _FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / f"{key}.json", json.dumps(doc, default=str).encode())
    except (OSError, TypeError, ValueError, KeyError, AttributeError):
        pass


def from_request_memo(
    cache_dir: str | os.PathLike[str], key: str, records: RecordSet, shard_size: int | None = None
) -> tuple[Embeddings | dict[str, Embeddings], dict[str, Any]] | None:
    """The embeddings of a remembered request, read from the cache with every row's record
    digest checked; ``None`` when anything is not cached as it was (the caller extracts)."""
    from ecgprobe.extract._plan import plan_work

    path = Path(cache_dir) / _FOLDER / f"{key}.json"
    try:
        doc = json.loads(path.read_text())
        prov, layers, name = doc["provenance"], list(doc["layers"]), doc["encoder_name"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not layers or not isinstance(name, str):
        return None
    t0 = time.perf_counter()
    with remembered_digests(cache_dir, records.fingerprint):
        digests = records.content_digests()
    try:  # the shard grid is the cached one whatever shard_size says (plan_work adopts it)
        plan = plan_work(name, prov, layers, digests, len(records), cache_dir, shard_size or 512, "never")
    except (CacheError, TypeError, KeyError, ValueError):
        return None
    if plan.todo or plan.n_changed():
        return None
    stats = {
        "records": len(records),
        "computed": 0,
        "from_cache": len(records),
        "changed": 0,
        "seconds": round(time.perf_counter() - t0, 3),
        "records_per_s": None,
        "device": "none (request memo: the encoder was not created)",
        "batch_size": None,
    }
    try:
        out = assemble(
            plan, {layer: {} for layer in layers}, layers, records, digests, prov, stats, doc.get("note")
        )
    except CacheError:
        return None
    return (out[layers[0]] if doc.get("single") else out), stats


def assemble(
    plan: Any,
    computed: Mapping[str, Mapping[int, np.ndarray]],
    layers: Sequence[str],
    records: RecordSet,
    digests: np.ndarray | None,
    provenance: Mapping[str, Any],
    stats: Mapping[str, Any],
    note: str | None,
) -> dict[str, Embeddings]:
    """One Embeddings per layer from the shards just ``computed`` and the cached ones.

    Raises:
        CacheError: a cached shard vanished between the check and the read.
    """
    from ecgprobe._versions import library_versions

    results: dict[str, Embeddings] = {}
    for layer in layers:
        blocks = []
        for s in range(plan.n_shards):
            block = computed[layer].get(s)
            if block is None:
                block = plan.entries[layer].load_shard(s)
            if block is None:  # vanished between check and read: a concurrent writer
                raise CacheError(
                    f"cache shard {plan.entries[layer].path(s)} disappeared during extraction; run again"
                )
            blocks.append(block)
        X = np.concatenate(blocks)
        key = embeddings_key(plan.entries[layer].key, digests) if digests is not None else ""
        prov = {
            **provenance,
            "extraction": dict(stats),
            "versions": library_versions(),
            **({"note": note} if note else {}),
        }
        results[layer] = Embeddings(X=X, ids=records.ids, layer=layer, key=key, provenance=prov)
    return results


def summary(
    name: str,
    records: RecordSet,
    layers: list[str],
    stats: dict[str, Any],
    cache_dir: Any,
    note: str | None,
) -> None:
    """Say on stderr what an extraction computed and what it reused."""
    where = f"; cache {cache_dir}" if cache_dir is not None else ""
    if stats["computed"] == 0:
        how = " (the encoder was not created: request memo)" if stats.get("batch_size") is None else ""
        line = f"reused {stats['records']} cached embeddings of {name} on {records.name} ({', '.join(layers)}){where}{how}"
    else:
        rate = stats["records_per_s"]
        changed = f" ({stats['changed']} of them changed since cached)" if stats["changed"] else ""
        line = (
            f"extracted {name} on {records.name}: {stats['computed']} records computed{changed} "
            f"({rate:g} rec/s on {stats['device']}), {stats['from_cache']} from cache, layers {', '.join(layers)}, "
            f"{stats['seconds']:.1f} s{where}"
        )
    print(line, file=sys.stderr)
    if note:
        print(f"note: {note}", file=sys.stderr)
