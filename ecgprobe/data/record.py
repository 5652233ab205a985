"""``RecordSet``: the one in-memory form every loader returns and every encoder reads.

A RecordSet holds ``N`` ECG records of equal shape ``(n_leads, n_samples)`` in millivolts at one
sampling rate, with canonical lead names, record and patient ids, a label matrix, a split per
record and a metadata table. Signals live behind a :class:`SignalSource`: an in-memory array for
small datasets, or a lazy reader that loads records on demand, so that an 800k-record dataset
streams through extraction in batches without ever being held whole.

A RecordSet is immutable; :meth:`RecordSet.subset` and :meth:`RecordSet.by_split` return views
that share the signal source (only index arrays are copied).
"""

from __future__ import annotations

import hashlib
import json
import os
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ecgprobe.data._digest_memo import note_file
from ecgprobe.exceptions import ConfigError, DataError

if TYPE_CHECKING:  # pandas is imported where it is used (light commands stay light)
    import pandas as pd

__all__ = [
    "SPLITS",
    "ArraySource",
    "RecordSet",
    "SignalSource",
    "Task",
    "content_digest",
    "files_digest",
    "id_positions",
]

SPLITS: tuple[str, ...] = ("train", "val", "test")
Task = Literal["multilabel", "regression"]
_DIGEST_HEX = 32  # 128 bits: no accidental collision among any number of records
_CHUNK = 1 << 20
# SHA-256 rather than BLAKE2b: with the SHA extensions of current x86/ARM CPUs it hashes ~2.5x
# faster (750 vs 290 MB/s measured on the project's 2-core machine), and a cached re-run pays it
# for every record; the digest must be one algorithm everywhere (caches are shared across hosts).


def content_digest(*parts: bytes | memoryview | np.ndarray) -> str:
    """SHA-256, truncated to 128 bits (hex), of byte strings or arrays in order: a record's content digest.

    Example:
        >>> content_digest(b"abc") == content_digest(b"abc") != content_digest(b"abd")
        True
    """
    h = hashlib.sha256()
    for part in parts:
        h.update(memoryview(np.ascontiguousarray(part)) if isinstance(part, np.ndarray) else part)
    return h.hexdigest()[:_DIGEST_HEX]


def files_digest(paths: Sequence[str | os.PathLike[str]]) -> str:
    """SHA-256/128 (hex) of the raw bytes of ``paths`` (each prefixed by its size), read in chunks.

    Each file's status is noted for the digest memo of a cached extraction
    (:mod:`ecgprobe.data._digest_memo`) before its bytes are read.

    Raises:
        DataError: naming a file that is missing or unreadable.
    """
    h = hashlib.sha256()
    for path in paths:
        try:
            with open(path, "rb") as fh:
                st = os.fstat(fh.fileno())
                note_file(path, st)
                h.update(st.st_size.to_bytes(8, "little"))
                while block := fh.read(_CHUNK):
                    h.update(block)
        except OSError as exc:
            raise DataError(
                f"cannot read record file {path} to check its content ({exc.strerror}); "
                "the dataset changed since it was loaded: load it again"
            ) from None
    return h.hexdigest()[:_DIGEST_HEX]


def id_positions(ids: Sequence[str], wanted: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """The positions of the ``wanted`` ids among ``ids``, in ``wanted``'s order, and the wanted ids
    that are not there (compared as strings)."""
    pos = {str(rid): i for i, rid in enumerate(ids)}
    missing = [str(i) for i in wanted if str(i) not in pos]
    idx = np.fromiter((pos[str(i)] for i in wanted if str(i) in pos), dtype=np.int64)
    return idx, missing


class SignalSource(ABC):
    """Where a RecordSet's signals come from: ``read(indices)`` returns ``(k, L, T)`` float32 mV.

    Subclasses must be cheap to :meth:`take` (a view on a subset of records) and picklable, so a
    source can be shipped to worker processes.
    """

    n_leads: int
    n_samples: int

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def read(self, indices: np.ndarray) -> np.ndarray:
        """Load records ``indices`` (positions in this source) as a new float32 array (k, L, T)."""

    @abstractmethod
    def take(self, indices: np.ndarray) -> SignalSource:
        """A source restricted to ``indices`` (positions in this source), sharing storage."""

    @property
    def in_memory(self) -> bool:
        """True when all signals are already in memory (reading costs no I/O)."""
        return False

    def digests(self, indices: np.ndarray) -> list[str]:
        """Content digests (:func:`content_digest`) of records ``indices``: equal digests, equal signals.

        This default decodes the records and hashes their samples; file-backed sources override
        it to hash their files' raw bytes, so that checking a cache never decodes a signal.
        """
        idx = np.asarray(indices, dtype=np.int64)
        out: list[str] = []
        for start in range(0, len(idx), 256):  # bounded memory for lazy sources
            out += [content_digest(x) for x in self.read(idx[start : start + 256])]
        return out


class ArraySource(SignalSource):
    """Signals held in one ``(N, L, T)`` float32 array, optionally viewed through an index.

    Args:
        array: the signals (made read-only here).
        index: the rows of ``array`` this source shows, in order (``None``: all).
        owned: the caller hands ``array`` over (a loader that just filled it): no other
            reference can write to it, so its rows' content digests are computed once and
            remembered. Otherwise (an array a user built) they are recomputed on every call,
            because a writable view made before this source would change the rows unseen.
        decoded_from: the file source whose records, decoded unchanged and in order, are the
            rows of ``array``: digests are then its files' digests, so that a dataset read into
            memory and the same dataset read lazily share their cache entries.
    """

    def __init__(
        self,
        array: np.ndarray,
        index: np.ndarray | None = None,
        *,
        owned: bool = False,
        decoded_from: SignalSource | None = None,
    ) -> None:
        if array.ndim != 3:
            raise DataError(f"signals must have shape (records, leads, samples); got {array.shape}")
        arr = np.asarray(array, dtype=np.float32)
        arr.setflags(write=False)
        self._array = arr
        self._index = None if index is None else np.asarray(index, dtype=np.int64)
        self.n_leads = int(arr.shape[1])
        self.n_samples = int(arr.shape[2])
        self._memo: list[str | None] | None = [None] * len(arr) if owned else None  # per row of array
        if decoded_from is not None and len(decoded_from) != len(arr):
            raise DataError(f"decoded_from has {len(decoded_from)} records for {len(arr)} rows")
        self._origin = decoded_from

    def __len__(self) -> int:
        return len(self._array) if self._index is None else len(self._index)

    @property
    def in_memory(self) -> bool:
        return True

    def array(self) -> np.ndarray:
        """The signals as one read-only array (a view when no index is set)."""
        return self._array if self._index is None else self._array[self._index]

    def read(self, indices: np.ndarray) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64)
        rows = idx if self._index is None else self._index[idx]
        return np.array(self._array[rows], dtype=np.float32, copy=True)

    def take(self, indices: np.ndarray) -> ArraySource:
        idx = np.asarray(indices, dtype=np.int64)
        view = ArraySource(self._array, idx if self._index is None else self._index[idx])
        view._memo, view._origin = self._memo, self._origin  # views share the array, hence its digests
        return view

    def digests(self, indices: np.ndarray) -> list[str]:
        """Content digests of the rows' float32 bytes (hashed in place, no copy; remembered
        when the array is ``owned``), or the digests of the files they were decoded from."""
        idx = np.asarray(indices, dtype=np.int64)
        rows = (idx if self._index is None else self._index[idx]).tolist()
        if self._origin is not None:
            return self._origin.digests(np.asarray(rows, dtype=np.int64))
        memo = self._memo
        if memo is None:
            return [content_digest(self._array[r]) for r in rows]
        for r in rows:
            if memo[r] is None:
                memo[r] = content_digest(self._array[r])
        return [str(memo[r]) for r in rows]


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class RecordSet:
    """N ECG records with labels, splits and metadata.

    Attributes:
        source: where the ``(N, n_leads, n_samples)`` float32 mV signals come from.
        fs: sampling rate in Hz, the same for every record.
        leads: canonical lead names, in the order of the signal's lead axis.
        ids: record ids (strings), unique.
        patient_ids: patient ids (strings); where a source has none, the record id is used, so
            that patient-wise splits fall back to record-wise ones.
        label_names: names of the label columns.
        y: ``(N, C)`` uint8 for ``task="multilabel"`` (1 = present), float32 for ``"regression"``.
        task: ``"multilabel"`` or ``"regression"``.
        split: ``'train'``, ``'val'`` or ``'test'`` per record.
        meta: per-record metadata (at least ``age`` and ``sex`` where known), indexed by id.
        name: the loader that made it (``"ptbxl"``, ``"synthetic"``, ...).
        params: the loader options, JSON-serialisable; with ``name`` they identify the dataset.
        notes: what the loader did that a user must know (records dropped, cropped, zeroed, ...).
        label_descriptions: optional human-readable description per label name.

    Example:
        >>> import ecgprobe
        >>> rs = ecgprobe.load_dataset("synthetic", n_records=20, seed=0)
        >>> rs.signals.shape, rs.fs, rs.leads[:3]
        ((20, 12, 5000), 500.0, ('I', 'II', 'III'))
        >>> len(rs.by_split("train")) + len(rs.by_split("val")) + len(rs.by_split("test"))
        20
    """

    source: SignalSource
    fs: float
    leads: tuple[str, ...]
    ids: np.ndarray
    patient_ids: np.ndarray
    label_names: tuple[str, ...]
    y: np.ndarray
    split: np.ndarray
    meta: pd.DataFrame
    task: Task = "multilabel"
    name: str = "custom"
    params: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    label_descriptions: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        import pandas as pd

        n = len(self.source)
        ids = np.asarray([str(i) for i in self.ids], dtype=object)
        pids = np.asarray([str(p) for p in self.patient_ids], dtype=object)
        split = np.asarray([str(s) for s in self.split], dtype=object)
        y = np.asarray(self.y)
        if y.ndim == 1:
            y = y[:, None]
        for what, arr in (("ids", ids), ("patient_ids", pids), ("split", split), ("y", y)):
            if len(arr) != n:
                raise DataError(f"RecordSet: {what} has {len(arr)} entries but there are {n} records")
        if len(self.meta) != n:
            raise DataError(f"RecordSet: meta has {len(self.meta)} rows but there are {n} records")
        if len(self.leads) != self.source.n_leads:
            raise DataError(f"RecordSet: {len(self.leads)} lead names for {self.source.n_leads} leads")
        if y.shape[1] != len(self.label_names):
            raise DataError(f"RecordSet: y has {y.shape[1]} columns but {len(self.label_names)} label names")
        if self.task not in ("multilabel", "regression"):
            raise ConfigError(f"task must be 'multilabel' or 'regression', got {self.task!r}")
        bad = sorted(set(split) - set(SPLITS))
        if bad:
            raise DataError(f"RecordSet: unknown split names {bad}; use {list(SPLITS)}")
        if len(set(ids)) != n:
            dups = sorted(k for k, c in Counter(ids.tolist()).items() if c > 1)[:5]
            raise DataError(f"RecordSet: duplicate record ids, e.g. {dups}; ids must be unique")
        y = y.astype(np.uint8 if self.task == "multilabel" else np.float32, copy=False)
        meta = self.meta.copy()
        meta.index = pd.Index(ids, name="id")
        object.__setattr__(self, "ids", _readonly(ids))
        object.__setattr__(self, "patient_ids", _readonly(pids))
        object.__setattr__(self, "split", _readonly(split))
        object.__setattr__(self, "y", _readonly(y))
        object.__setattr__(self, "meta", meta)
        object.__setattr__(self, "fs", float(self.fs))
        object.__setattr__(self, "leads", tuple(self.leads))
        object.__setattr__(self, "label_names", tuple(str(n) for n in self.label_names))
        object.__setattr__(self, "notes", tuple(self.notes))

    # ------------------------------------------------------------------ shape
    def __len__(self) -> int:
        return len(self.source)

    def __repr__(self) -> str:
        return (
            f"RecordSet(name={self.name!r}, n={len(self)}, fs={self.fs:g}, leads={len(self.leads)}, "
            f"samples={self.n_samples}, labels={len(self.label_names)}, task={self.task!r})"
        )

    @property
    def n_leads(self) -> int:
        """Number of leads."""
        return self.source.n_leads

    @property
    def n_samples(self) -> int:
        """Samples per record (``T``)."""
        return self.source.n_samples

    @property
    def duration_s(self) -> float:
        """Record duration in seconds."""
        return self.n_samples / self.fs

    # ---------------------------------------------------------------- signals
    @property
    def signals(self) -> np.ndarray:
        """All signals as one ``(N, L, T)`` float32 array in mV (loads lazy sources whole).

        For datasets too large for memory use :meth:`iter_batches` instead.
        """
        if isinstance(self.source, ArraySource):
            return self.source.array()
        return self.source.read(np.arange(len(self)))

    def read(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Signals of the records at positions ``indices``, as a new ``(k, L, T)`` float32 array."""
        return self.source.read(np.asarray(indices, dtype=np.int64))

    def iter_batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(positions, signals)`` batches in record order; memory is bounded by one batch."""
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        for start in range(0, len(self), batch_size):
            pos = np.arange(start, min(start + batch_size, len(self)))
            yield pos, self.source.read(pos)

    # ------------------------------------------------------------------ views
    def subset(self, indices: Sequence[int] | np.ndarray) -> RecordSet:
        """A view on the records at ``indices`` (positions or a boolean mask), in that order."""
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if len(idx) != len(self):
                raise ConfigError(f"boolean mask has {len(idx)} entries for {len(self)} records")
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64, copy=False)
        if len(idx) and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise ConfigError(f"record positions out of range 0..{len(self) - 1}")
        return replace(
            self,
            source=self.source.take(idx),
            ids=self.ids[idx],
            patient_ids=self.patient_ids[idx],
            y=self.y[idx],
            split=self.split[idx],
            meta=self.meta.iloc[idx],
        )

    def by_split(self, name: str) -> RecordSet:
        """The records of one split (``'train'``, ``'val'`` or ``'test'``)."""
        if name not in SPLITS:
            raise ConfigError(f"unknown split {name!r}; use one of {list(SPLITS)}")
        return self.subset(self.split == name)

    def select_ids(self, ids: Sequence[str]) -> RecordSet:
        """The records with the given ids, in that order.

        Raises:
            DataError: naming (up to five of) the ids that are not in this RecordSet.
        """
        idx, missing = id_positions(self.ids, ids)
        if missing:
            raise DataError(
                f"{len(missing)} of {len(ids)} requested ids are not in dataset {self.name!r}, "
                f"e.g. {missing[:5]}; check that ids and dataset belong together"
            )
        return self.subset(idx)

    def with_labels(self, label_names: Sequence[str], y: np.ndarray, task: Task) -> RecordSet:
        """The same records with a different label table (e.g. age as a regression target)."""
        return replace(self, label_names=tuple(label_names), y=np.asarray(y), task=task)

    def with_descriptions(self, descriptions: dict[str, str]) -> RecordSet:
        """The same records with human-readable label descriptions (shown in reports)."""
        return replace(
            self, label_descriptions={k: v for k, v in descriptions.items() if k in self.label_names}
        )

    def with_meta_target(self, column: str) -> RecordSet:
        """Use a numeric metadata column (e.g. ``"age"``) as the single regression target.

        Records where the column is missing keep NaN targets; probes drop them and say so.
        """
        import pandas as pd

        if column not in self.meta.columns:
            raise ConfigError(
                f"metadata column {column!r} not in dataset {self.name!r}; available: {list(self.meta.columns)}"
            )
        vals = pd.to_numeric(self.meta[column], errors="coerce").to_numpy(dtype=np.float32)
        return self.with_labels((column,), vals[:, None], "regression")

    # ------------------------------------------------------------ provenance
    @property
    def identity(self) -> dict[str, Any]:
        """What identifies these records: loader name, options, fs, leads, length and ids' digest."""
        return {
            "dataset": self.name,
            "params": self.params,
            "fs": self.fs,
            "leads": list(self.leads),
            "n_samples": self.n_samples,
            "n_records": len(self),
            "ids_sha256": hashlib.sha256("\n".join(self.ids).encode()).hexdigest(),
        }

    def content_digests(self) -> np.ndarray:
        """One content digest (hex) per record, in record order.

        File-backed (lazy) sets hash the raw bytes of each record's files; in-memory sets hash
        their float32 samples. Nothing is decoded for a lazy set, so this stays cheap enough to
        run before every cached extraction (:func:`ecgprobe.extract` compares these digests with
        the cached ones and recomputes exactly the records whose content changed).

        Raises:
            DataError: a record's file can no longer be read (named).
        """
        return np.asarray(self.source.digests(np.arange(len(self))), dtype=object)

    @property
    def fingerprint(self) -> str:
        """A short digest of :attr:`identity`, stable across processes."""
        blob = json.dumps(self.identity, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    # ---------------------------------------------------------------- summary
    def split_sizes(self) -> dict[str, int]:
        """Number of records per split."""
        return {s: int(np.sum(self.split == s)) for s in SPLITS}

    def label_counts(self) -> pd.DataFrame:
        """Positives per label and split (multi-label), or mean/std per split (regression)."""
        import pandas as pd

        rows = {}
        for s in SPLITS:
            m = self.split == s
            if self.task == "multilabel":
                rows[s] = self.y[m].sum(axis=0).astype(int)
            else:
                rows[s] = np.nanmean(self.y[m], axis=0) if m.any() else np.full(len(self.label_names), np.nan)
        df = pd.DataFrame(rows, index=pd.Index(self.label_names, name="label"))
        if self.task == "multilabel":
            df["all"] = df[list(SPLITS)].sum(axis=1)
            df["prevalence"] = df["all"] / max(len(self), 1)
        return df

    def summary(self) -> str:
        """A human-readable multi-line summary: counts, fs, leads, labels per split, notes."""
        import pandas as pd

        sizes = self.split_sizes()
        n_pat = len(set(self.patient_ids))
        lines = [
            f"dataset   {self.name}  {json.dumps(self.params, default=str)}",
            f"records   {len(self)}  (patients {n_pat})  " + "  ".join(f"{k} {v}" for k, v in sizes.items()),
            f"signal    {self.fs:g} Hz x {self.n_samples} samples ({self.duration_s:g} s), "
            f"{self.n_leads} leads: {' '.join(self.leads)}",
            f"labels    {len(self.label_names)} ({self.task})",
        ]
        if len(self.label_names):
            table = self.label_counts()
            lines.append(table.to_string(float_format=lambda v: f"{v:.3f}"))
        if "age" in self.meta:
            age = pd.to_numeric(self.meta["age"], errors="coerce")
            lines.append(f"age       median {age.median():.0f}, missing {int(age.isna().sum())}")
        if "sex" in self.meta:
            lines.append(
                "sex       " + ", ".join(f"{k}: {v}" for k, v in self.meta["sex"].value_counts().items())
            )
        lines += [f"note      {n}" for n in self.notes]
        return "\n".join(lines)
