"""``Embeddings``: one matrix of pooled embeddings with its record ids, layer and provenance,
and the on-disk exchange format other tools can read and write.

Exchange format (a folder):

- ``embeddings.npy``: ``(N, D)`` float32 — or ``embeddings.<layer>.npy``, one per layer;
- ``ids.npy``: the record ids in row order (strings);
- ``manifest.json``: encoder, weights sha256, input contract, dataset, split per id, layers,
  versions (optional for folders made elsewhere: then only the two arrays are required).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ecgprobe._io import atomic_write
from ecgprobe.data.record import RecordSet, id_positions
from ecgprobe.exceptions import ArgumentTypeError, DataError
from ecgprobe.settings import FINAL_LAYER

__all__ = ["Embeddings", "align_to_records", "load_embeddings", "save_embeddings"]

FINAL = FINAL_LAYER


@dataclass(frozen=True, eq=False)
class Embeddings:
    """Pooled embeddings of N records.

    Attributes:
        X: ``(N, D)`` float32.
        ids: record ids in row order.
        layer: the layer they come from (``"embedding"`` = the encoder's official embedding).
        key: the cache key (a digest of encoder, weights, spec, preprocessing, dataset, ids,
            every record's content digest, layer, window policy, precision, numeric library
            versions and extraction code version); ``""`` when imported or extracted uncached.
        provenance: the facts behind the key (encoder identity, dataset identity, window, ...).
    """

    X: np.ndarray
    ids: np.ndarray
    layer: str = FINAL
    key: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        X = np.asarray(self.X)
        if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool) or np.issubdtype(
            X.dtype, np.complexfloating
        ):
            raise ArgumentTypeError(
                f"embeddings X must be a real-valued numeric matrix (records x dims), got dtype {X.dtype}; "
                "convert it first, e.g. np.asarray(X, dtype=np.float32)"
            )
        if X.ndim != 2:
            raise DataError(f"embeddings must be a 2-D matrix (records x dims), got shape {X.shape}")
        ids = np.asarray([str(i) for i in self.ids], dtype=object)
        if len(ids) != len(X):
            raise DataError(f"embeddings have {len(X)} rows but {len(ids)} ids")
        if len(set(ids)) != len(ids):
            raise DataError("embedding ids are not unique")
        X = X.astype(np.float32, copy=False)
        X.setflags(write=False)
        ids.setflags(write=False)
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "ids", ids)

    def __len__(self) -> int:
        return len(self.X)

    def __repr__(self) -> str:
        enc = self.provenance.get("encoder", {}).get("encoder", "?")
        return f"Embeddings(encoder={enc!r}, layer={self.layer!r}, n={len(self)}, dim={self.dim})"

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return int(self.X.shape[1])

    @property
    def encoder_name(self) -> str:
        """The encoder's name, from the provenance (``"unknown"`` for imported matrices)."""
        return str(self.provenance.get("encoder", {}).get("encoder", "unknown"))

    @property
    def token_shape(self) -> tuple[int, int] | None:
        """``(T', D)`` when the rows are flattened token sequences (``extract(..., tokens=)``),
        else ``None``."""
        info = self.provenance.get("tokens") or {}
        if "n_tokens" not in info or "token_dim" not in info:
            return None
        return int(info["n_tokens"]), int(info["token_dim"])

    def tokens(self) -> np.ndarray:
        """The rows as token sequences ``(N, T', D)`` (a view); pooled embeddings are sequences
        of one token ``(N, 1, D)``.

        Raises:
            DataError: the recorded token shape does not match the row width.
        """
        shape = self.token_shape or (1, self.dim)
        if shape[0] * shape[1] != self.dim:
            raise DataError(
                f"embeddings record token shape {shape} but rows have {self.dim} values; re-extract them"
            )
        return self.X.reshape(len(self), *shape)

    def take(self, ids: Sequence[str]) -> Embeddings:
        """Rows for ``ids``, in that order.

        Raises:
            DataError: with counts and examples of ids that are not present.
        """
        idx, missing = id_positions(self.ids, ids)
        if missing:
            raise DataError(
                f"{len(missing)} of {len(ids)} records have no embedding (e.g. {missing[:5]}); the embeddings "
                f"hold {len(self)} records (e.g. {list(self.ids[:3])}). Extract them for this dataset, "
                "or check that the ids follow the dataset's naming"
            )
        return replace(self, X=self.X[idx], ids=np.asarray(ids, dtype=object))


def align_to_records(
    emb: Embeddings, records: RecordSet, *, allow_subset: bool = False
) -> tuple[Embeddings, RecordSet]:
    """Match embeddings and records by id; rows of both come back in the records' order.

    Args:
        allow_subset: when the embeddings cover only some records, keep just those records
            (the count is in the error otherwise).

    Raises:
        DataError: ids missing on either side, with counts and examples.
    """
    have = set(emb.ids)
    missing = [r for r in records.ids if r not in have]
    if missing and not allow_subset:
        extra = len(have - set(records.ids))
        raise DataError(
            f"{len(missing)} of {len(records)} records of dataset {records.name!r} have no embedding "
            f"(e.g. {missing[:5]}); {extra} embedding ids are not in the dataset (e.g. "
            f"{sorted(have - set(records.ids))[:3]}). Use embeddings extracted from the same dataset and options"
        )
    if missing:
        records = records.subset(np.asarray([r in have for r in records.ids]))
    if not len(records):
        raise DataError(f"no embedding id matches a record id of dataset {records.name!r}")
    return emb.take(list(records.ids)), records


def _layer_file(layer: str, several: bool) -> str:
    if not several:
        return "embeddings.npy"
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", layer)
    return f"embeddings.{safe}.npy"


def save_embeddings(
    out: str | Path, embeddings: Embeddings | Sequence[Embeddings], *, records: RecordSet | None = None
) -> Path:
    """Write the exchange format (atomically, file by file) and return the folder.

    With several layers, each goes to ``embeddings.<layer>.npy``; all must share the ids.
    """
    embs = [embeddings] if isinstance(embeddings, Embeddings) else list(embeddings)
    if not embs:
        raise DataError("nothing to save: no embeddings given")
    ids = embs[0].ids
    for e in embs[1:]:
        if not np.array_equal(e.ids, ids):
            raise DataError("all layers saved together must share the same record ids in the same order")
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    several = len(embs) > 1
    files = {}
    for e in embs:
        name = _layer_file(e.layer, several)
        files[e.layer] = name
        atomic_write(folder / name, lambda fh, e=e: np.save(fh, np.ascontiguousarray(e.X)))
    atomic_write(folder / "ids.npy", lambda fh: np.save(fh, np.asarray(ids, dtype=str)))
    from ecgprobe._versions import library_versions

    manifest = {
        "format": "ecgprobe-embeddings/1",
        "layers": files,
        "n_records": len(ids),
        "dim": {e.layer: e.dim for e in embs},
        "keys": {e.layer: e.key for e in embs},
        "provenance": embs[0].provenance,
        "split": dict(zip(records.ids, records.split)) if records is not None else None,
        "versions": library_versions(),
    }
    text = json.dumps(manifest, indent=2, default=str).encode()
    atomic_write(folder / "manifest.json", lambda fh: fh.write(text))
    return folder


_RESAVE = {
    "ids": "np.save('ids.npy', np.asarray(ids, dtype=str))",
    "embeddings": "np.save('embeddings.npy', np.asarray(X, dtype=np.float32))",
}


def _load_npy(path: Path, what: str) -> np.ndarray:
    """One ``.npy`` file of an embeddings folder, never unpickled, with a message naming the file
    and the fix when it holds Python objects, is truncated or is not a ``.npy`` file.

    Raises:
        DataError: naming ``path``, what is wrong with it and how to re-save it.
    """
    fix = f"re-run `ecgprobe extract`, or re-save it with {_RESAVE[what]}"
    try:
        with path.open("rb") as fh:
            version = np.lib.format.read_magic(fh)
            read = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read(fh)
            offset = fh.tell()
    except (ValueError, EOFError, OSError, SyntaxError) as exc:
        raise DataError(f"{path} is not a readable .npy file ({exc}); {fix}") from None
    if dtype.hasobject:
        raise DataError(
            f"{path} holds a Python object array (dtype=object), which would have to be unpickled to be read and "
            f"ecgprobe never unpickles data files; {fix}"
        )
    need = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    size = path.stat().st_size
    if size != need:
        state = "truncated" if size < need else "longer than its header says"
        raise DataError(
            f"{path} is {state}: {size} bytes, but its header declares a {dtype} array of shape {shape} "
            f"({need} bytes); an interrupted copy or write? {fix}"
        )
    return np.load(path, allow_pickle=False)


def load_embeddings(folder: str | Path, layer: str | None = None) -> Embeddings:
    """Read an exchange-format folder (ours, or any folder with ``embeddings*.npy`` + ``ids.npy``).

    Args:
        layer: which layer when the folder holds several (default: the official embedding, or
            the only one).

    Raises:
        DataError: missing files, unknown layer, row/id count mismatch, repeated ids, or a
            ``.npy`` file that is truncated, not a ``.npy`` file or holds Python objects (named,
            with how to re-save it).
    """
    f = Path(folder)
    if not f.is_dir():
        raise DataError(f"embeddings folder {f} does not exist")
    manifest: dict[str, Any] = {}
    if (f / "manifest.json").exists():
        try:
            manifest = json.loads((f / "manifest.json").read_text())
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{f / 'manifest.json'} is not valid JSON ({exc}); re-run `ecgprobe extract`"
            ) from None
    layers: dict[str, str] = manifest.get("layers") or {}
    if not layers:
        found = sorted(f.glob("embeddings*.npy"))
        layers = {
            (p.name[len("embeddings.") : -4] or FINAL) if p.name != "embeddings.npy" else FINAL: p.name
            for p in found
        }
    if not layers:
        raise DataError(
            f"{f} holds no embeddings.npy (or embeddings.<layer>.npy); it is not an embeddings folder"
        )
    if layer is None:
        layer = FINAL if FINAL in layers else (next(iter(layers)) if len(layers) == 1 else None)
        if layer is None:
            raise DataError(f"{f} holds several layers {list(layers)}; choose one with layer=")
    if layer not in layers:
        raise DataError(f"{f} has no layer {layer!r}; it holds {list(layers)}")
    if not (f / "ids.npy").exists():
        raise DataError(f"{f} has no ids.npy: the record ids in row order are needed to match labels")
    X = _load_npy(f / layers[layer], "embeddings")
    ids = _load_npy(f / "ids.npy", "ids")
    if X.ndim != 2 or not (
        np.issubdtype(X.dtype, np.number) and not np.issubdtype(X.dtype, np.complexfloating)
    ):
        raise DataError(
            f"{f / layers[layer]} holds a {X.ndim}-D {X.dtype} array of shape {X.shape}; embeddings must be a 2-D "
            "real-valued matrix (records x dims): re-save it with np.save(path, np.asarray(X, dtype=np.float32))"
        )
    if ids.ndim != 1:
        raise DataError(f"{f / 'ids.npy'} has shape {ids.shape}; it must be 1-D, one record id per row")
    dups = [str(i) for i, c in zip(*np.unique(ids.astype(str), return_counts=True)) if c > 1]
    if dups:
        raise DataError(
            f"{f / 'ids.npy'} repeats record ids, e.g. {dups[:5]}; each row must be a different record"
        )
    if len(ids) != len(X):
        raise DataError(f"{f}: {layers[layer]} has {len(X)} rows but ids.npy has {len(ids)} ids")
    if not np.isfinite(X).all():
        bad = np.flatnonzero(~np.isfinite(X).all(axis=1))
        raise DataError(
            f"{f}: {len(bad)} embedding rows are not finite, e.g. records {[str(ids[i]) for i in bad[:5]]}"
        )
    return Embeddings(
        X=X,
        ids=ids,
        layer=layer,
        key=(manifest.get("keys") or {}).get(layer, ""),
        provenance=manifest.get("provenance") or {"encoder": {"encoder": f.name}, "imported_from": str(f)},
    )
