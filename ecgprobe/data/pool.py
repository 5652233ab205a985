"""Pooling RecordSets of several sources into one, for leave-one-source-out and site analyses.

:func:`pool` concatenates RecordSets that share a sampling rate, leads, record length and task:

- a ``source`` metadata column names each record's source (its loader's name, or ``names=``),
  ``source_id`` keeps its original record id (a loader's own ``source`` column, such as the
  Challenge's Georgia or PTB-XL, moves to ``subsource``);
- ids stay as they are unless two sources share one; then *every* id becomes
  ``<source>:<id>`` (never some ids of a source prefixed and others not), and a note says so;
- patient ids are always namespaced, ``<source>/<patient>``: patient 17 of PTB-XL and patient 17
  of CODE-15 % are different people, and patient-wise resampling must not join them;
- labels: by default the labels present in every source (``labels="shared"``), since a label a
  source does not annotate is unknown there, not absent. ``labels="union"`` keeps all of them;
  labels a source lacks are then 0 for its records, which is only right when that source would
  have annotated them, so the note lists every such (label, source) pair;
- each record keeps its own split.

Signals are not copied: the pooled source reads from the sources' own. Sets at other sampling
rates or lengths are refused (load them at one rate, e.g. ``-o sampling_rate=500`` for PTB-XL and
``-o fs=500`` for Challenge records, or leave the conversion to an encoder's preprocessing
contract by extracting each set on its own).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Literal

import numpy as np

from ecgprobe.data.record import RecordSet, SignalSource
from ecgprobe.exceptions import ConfigError, DataError

__all__ = ["ConcatSource", "pool", "source_names"]


class ConcatSource(SignalSource):
    """The records of several sources one after the other (views are index maps, no copies)."""

    def __init__(self, parts: Sequence[SignalSource], index: np.ndarray | None = None) -> None:
        if not parts:
            raise DataError("ConcatSource needs at least one source")
        shapes = {(p.n_leads, p.n_samples) for p in parts}
        if len(shapes) != 1:
            raise DataError(f"sources differ in (leads, samples): {sorted(shapes)}")
        self._parts = list(parts)
        self.n_leads, self.n_samples = next(iter(shapes))
        sizes = np.array([len(p) for p in parts], dtype=np.int64)
        self._offsets = np.concatenate([[0], np.cumsum(sizes)])
        total = int(self._offsets[-1])
        self._index = np.arange(total, dtype=np.int64) if index is None else np.asarray(index, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._index)

    @property
    def in_memory(self) -> bool:
        return all(p.in_memory for p in self._parts)

    def _locate(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        flat = self._index[np.asarray(indices, dtype=np.int64)]
        part = np.searchsorted(self._offsets, flat, side="right") - 1
        return part, flat - self._offsets[part]

    def read(self, indices: np.ndarray) -> np.ndarray:
        part, local = self._locate(indices)
        out = np.empty((len(part), self.n_leads, self.n_samples), dtype=np.float32)
        for k in np.unique(part):
            sel = part == k
            out[sel] = self._parts[k].read(local[sel])
        return out

    def digests(self, indices: np.ndarray) -> list[str]:
        part, local = self._locate(indices)
        out: list[str] = [""] * len(part)
        for k in np.unique(part):
            sel = np.flatnonzero(part == k)
            for pos, d in zip(sel, self._parts[k].digests(local[sel])):
                out[pos] = d
        return out

    def take(self, indices: np.ndarray) -> ConcatSource:
        view = ConcatSource.__new__(ConcatSource)
        view._parts, view._offsets = self._parts, self._offsets
        view.n_leads, view.n_samples = self.n_leads, self.n_samples
        view._index = self._index[np.asarray(indices, dtype=np.int64)]
        return view


def source_names(sets: Sequence[RecordSet], names: Sequence[str] | None) -> list[str]:
    """One unique source name per set: ``names``, else the loaders' names numbered when repeated.

    Raises:
        ConfigError: a wrong number of names, or names that repeat, are empty or hold ':' or '/'.
    """
    if names is not None:
        out = [str(n) for n in names]
        if len(out) != len(sets):
            raise ConfigError(f"pool: {len(out)} names for {len(sets)} record sets; pass one name per set")
    else:
        out = [rs.name for rs in sets]
        seen: Counter[str] = Counter(out)
        count: Counter[str] = Counter()
        for i, n in enumerate(list(out)):
            if seen[n] > 1:
                count[n] += 1
                out[i] = f"{n}{count[n]}"
    bad = [n for n in out if not n or ":" in n or "/" in n]
    if bad or len(set(out)) != len(out):
        raise ConfigError(
            f"pool: source names must be unique, non-empty and free of ':' and '/', got {out}; pass names=[...]"
        )
    return out


def _check_compatible(sets: Sequence[RecordSet], names: Sequence[str]) -> None:
    first = sets[0]
    for rs, name in zip(sets[1:], names[1:]):
        if rs.fs != first.fs:
            raise DataError(
                f"pool: {name} is at {rs.fs:g} Hz but {names[0]} at {first.fs:g} Hz; load both at one rate "
                "(e.g. -o sampling_rate=500 for ptbxl, -o fs=500 for challenge) or extract each set on its own "
                "and let the encoder's preprocessing convert them"
            )
        if rs.leads != first.leads:
            raise DataError(
                f"pool: {name} has leads {list(rs.leads)} but {names[0]} has {list(first.leads)}; "
                "load both with the same leads= (in the same order)"
            )
        if rs.n_samples != first.n_samples:
            raise DataError(
                f"pool: {name} records are {rs.duration_s:g} s but {names[0]} records {first.duration_s:g} s; "
                "load both with one length (e.g. -o length_s=10)"
            )
        if rs.task != first.task:
            raise DataError(f"pool: {name} is a {rs.task} set but {names[0]} a {first.task} set")


def pool(
    *sets: RecordSet, names: Sequence[str] | None = None, labels: Literal["shared", "union"] = "shared"
) -> RecordSet:
    """Concatenate RecordSets of several sources (see the module docstring for the rules).

    Args:
        *sets: two or more RecordSets with one sampling rate, leads, length and task.
        names: the source name of each set (default: the loaders' names, numbered when repeated).
        labels: ``"shared"`` (the labels every source has) or ``"union"`` (all; the labels a
            source lacks are 0 there, listed in the notes).

    Returns:
        One RecordSet named ``"pool"``; ``meta`` gains ``source`` and ``source_id``; ``params``
        records each source's identity.

    Raises:
        ConfigError: fewer than two sets, bad names or an unknown ``labels``.
        DataError: sets that differ in rate, leads, length or task (with the fix), or
            ``labels="shared"`` with no label common to all.

    Example:
        >>> a = ecgprobe.load_dataset("synthetic", n_records=10, seed=0)  # doctest: +SKIP
        >>> b = ecgprobe.load_dataset("synthetic", n_records=8, seed=1)  # doctest: +SKIP
        >>> pool(a, b, names=["a", "b"]).meta["source"].value_counts().to_dict()  # doctest: +SKIP
        {'a': 10, 'b': 8}
    """
    import pandas as pd

    if len(sets) < 2 or not all(isinstance(s, RecordSet) for s in sets):
        raise ConfigError("pool needs two or more RecordSets (from ecgprobe.load_dataset)")
    if labels not in ("shared", "union"):
        raise ConfigError(f"pool: labels must be 'shared' or 'union', got {labels!r}")
    srcs = source_names(sets, names)
    _check_compatible(sets, srcs)
    notes: list[str] = []
    all_ids = [i for rs in sets for i in rs.ids]
    clash = len(set(all_ids)) != len(all_ids)
    ids = [f"{n}:{i}" if clash else str(i) for rs, n in zip(sets, srcs) for i in rs.ids]
    if clash:
        notes.append("record ids repeat across sources: every id is prefixed by its source ('<source>:<id>')")
    if sets[0].task == "regression":
        names_out = list(dict.fromkeys(n for rs in sets for n in rs.label_names))
        if any(rs.label_names != tuple(names_out) for rs in sets):
            raise DataError(
                f"pool: regression sets must share their targets, got {[rs.label_names for rs in sets]}"
            )
    elif labels == "shared":
        names_out = [n for n in sets[0].label_names if all(n in rs.label_names for rs in sets[1:])]
        dropped = sorted({n for rs in sets for n in rs.label_names} - set(names_out))
        if not names_out:
            raise DataError(
                f"pool: no label is present in every source ({', '.join(srcs)}); load them with one label "
                "space (e.g. -o labels=scored) or pass labels='union'"
            )
        if dropped:
            notes.append(
                f"{len(dropped)} label(s) not present in every source left out (labels='shared'): {dropped}"
            )
    else:
        names_out = list(dict.fromkeys(n for rs in sets for n in rs.label_names))
        absent = [f"{n} in {s}" for rs, s in zip(sets, srcs) for n in names_out if n not in rs.label_names]
        if absent:
            notes.append(
                f"labels='union': these labels are absent from a source and set to 0 there: {absent}"
            )
    dtype = np.uint8 if sets[0].task == "multilabel" else np.float32
    y = np.zeros((len(ids), len(names_out)), dtype=dtype)
    row = 0
    for rs in sets:
        for j, n in enumerate(names_out):
            if n in rs.label_names:
                y[row : row + len(rs), j] = rs.y[:, rs.label_names.index(n)]
        row += len(rs)
    metas = []
    for rs, n in zip(sets, srcs):
        m = rs.meta.reset_index(drop=True).copy()
        if "source" in m.columns:  # a loader's own sources (the Challenge's Georgia, PTB-XL, ...)
            m["subsource"] = m["source"]
        m["source"], m["source_id"] = n, [str(i) for i in rs.ids]
        metas.append(m)
    descriptions = {k: v for rs in sets for k, v in rs.label_descriptions.items() if k in names_out}
    pooled = RecordSet(
        source=ConcatSource([rs.source for rs in sets]),
        fs=sets[0].fs,
        leads=sets[0].leads,
        ids=np.asarray(ids, dtype=object),
        patient_ids=np.asarray(
            [f"{n}/{p}" for rs, n in zip(sets, srcs) for p in rs.patient_ids], dtype=object
        ),
        label_names=tuple(names_out),
        y=y,
        split=np.concatenate([rs.split for rs in sets]),
        meta=pd.concat(metas, ignore_index=True),
        task=sets[0].task,
        name="pool",
        params={"sources": {n: rs.identity for rs, n in zip(sets, srcs)}, "labels": labels},
        notes=(*notes, *(f"{n}: {note}" for rs, n in zip(sets, srcs) for note in rs.notes)),
    )
    return pooled.with_descriptions(descriptions)
