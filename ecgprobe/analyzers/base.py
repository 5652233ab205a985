"""Analyzers and their typed, serialisable results.

An analyzer declares its settings as annotated class attributes under :func:`analyzer_settings` (a
keyword-only ``__init__`` that only stores them, nothing computed there);
its public :meth:`Analyzer.run` validates the settings and the inputs, aligns embeddings with
records by id and dispatches to the private ``_run`` holding the mathematics. Every analyzer
returns a :class:`Result`: metrics, tables and parameters as JSON, arrays in a side ``.npz``,
with the seed, the provenance of its inputs and the library versions, so that every number a
report shows can be recomputed from the saved results. Results never hold figures: plotting is
a separate, pure function of a result (``ecgprobe.report``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import inspect
import io
import json
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import pandas as pd

from ecgprobe._io import atomic_write, read_json_npz
from ecgprobe._versions import library_versions
from ecgprobe.data.record import RecordSet
from ecgprobe.exceptions import AnalysisError, DataError
from ecgprobe.extract.embeddings import Embeddings, align_to_records
from ecgprobe.options import check_instance, check_params
from ecgprobe.registry import Registry

__all__ = [
    "ANALYZERS",
    "RESULT_TYPES",
    "Analyzer",
    "PairwiseAnalyzer",
    "Result",
    "analyzer_settings",
    "check_ids_match",
    "migrate_params",
    "to_jsonable",
]

#: Registered analyzers (classes), e.g. ``@ANALYZERS.register("linear_probe")``; info key
#: ``pairwise=True`` marks a :class:`PairwiseAnalyzer` (compares two embedding sets).
ANALYZERS: Registry[type] = Registry("analyzer")
#: Result subclasses by ``kind``, so that :meth:`Result.load` returns the right type.
RESULT_TYPES: dict[str, type[Result]] = {}
#: Settings renamed since results were first saved, per kind (old name -> current name), so that
#: results written by older versions load with today's names (one name per setting:
#: ``n_resamples``, ``ci_level``).
RENAMED_PARAMS: dict[str, dict[str, str]] = {
    "cka": {"n_boot": "n_resamples", "ci": "ci_level"},
    "alignment": {"n_boot": "n_resamples", "ci": "ci_level"},
    "probe_shap": {"n_bootstrap": "n_resamples", "ci": "ci_level"},
}

R = TypeVar("R", bound="Result")
A = TypeVar("A", bound=type)

_EMBEDDINGS = (
    "an ecgprobe Embeddings (from ecgprobe.extract or ecgprobe.load_embeddings; wrap an array as "
    "Embeddings(X, ids) with one record id per row)"
)
_RECORDS = "a RecordSet (from ecgprobe.load_dataset)"


def to_jsonable(obj: Any) -> Any:
    """Recursively convert NumPy/pandas scalars and containers to JSON types (NaN/inf -> None)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, (Path,)):
        return str(obj)
    if isinstance(obj, pd.DataFrame):
        return to_jsonable(obj.to_dict(orient="records"))
    return obj


def migrate_params(kind: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` of a saved ``kind`` result with renamed settings under their current names
    (:data:`RENAMED_PARAMS`); a current name already present wins.

    Example:
        >>> migrate_params("cka", {"n_boot": 50, "ci": 0.9})
        {'n_resamples': 50, 'ci_level': 0.9}
    """
    renames = RENAMED_PARAMS.get(kind, {})
    out: dict[str, Any] = {}
    for key, value in params.items():
        new = renames.get(key, key)
        if new == key or new not in params:
            out[new] = value
    return out


@dataclass
class Result:
    """What an analyzer found: data only, JSON + NPZ on disk.

    Attributes:
        kind: the analyzer's registered name (selects the Result subclass when loading).
        metrics: headline numbers (``{"macro_auroc": 0.91, "macro_auroc_ci": [0.89, 0.93]}``).
        tables: named tables as lists of row dicts (e.g. per-label AUROC with CIs).
        arrays: named NumPy arrays, saved beside the JSON in ``<name>.npz``.
        params: the analyzer's settings.
        seed: the seed every random step derived from (``None`` if nothing is random).
        provenance: where the inputs came from (embedding keys, encoder, dataset, n records).
        notes: what a reader must know (labels skipped and why, subsampling, ...).
        versions: library versions at run time.
        runtime_s: wall time of ``run``.
        created: UTC timestamp.
    """

    kind: str
    metrics: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=library_versions)
    runtime_s: float = 0.0
    created: str = field(
        default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        kind = getattr(cls, "KIND", None)
        if kind:
            RESULT_TYPES[kind] = cls

    def table(self, name: str) -> pd.DataFrame:
        """A named table as a DataFrame.

        Raises:
            KeyError: naming the tables that exist.
        """
        if name not in self.tables:
            raise KeyError(f"result {self.kind!r} has no table {name!r}; it has {list(self.tables)}")
        return pd.DataFrame(self.tables[name])

    def to_dict(self) -> dict[str, Any]:
        """The JSON part (arrays are described by shape and dtype only)."""
        return to_jsonable(
            {
                "kind": self.kind,
                "metrics": self.metrics,
                "tables": self.tables,
                "params": self.params,
                "seed": self.seed,
                "provenance": self.provenance,
                "notes": self.notes,
                "versions": self.versions,
                "runtime_s": self.runtime_s,
                "created": self.created,
                "arrays": {
                    k: {"shape": list(np.shape(v)), "dtype": str(np.asarray(v).dtype)}
                    for k, v in self.arrays.items()
                },
            }
        )

    def save(self, path: str | Path) -> Path:
        """Write ``<path>.json`` (and ``<path>.npz`` when there are arrays) atomically.

        ``path`` may end in ``.json``. Returns the JSON path. The NPZ's sha256 is recorded in
        the JSON so a stale or swapped array file is detected when loading.
        """
        p = Path(path)
        p = p if p.suffix == ".json" else p.with_name(p.name + ".json")
        p.parent.mkdir(parents=True, exist_ok=True)
        doc = self.to_dict()
        if self.arrays:
            buf = io.BytesIO()
            np.savez_compressed(buf, **{k: np.asarray(v) for k, v in self.arrays.items()})
            blob = buf.getvalue()
            npz = p.with_suffix(".npz")
            atomic_write(npz, blob)
            doc["arrays_file"] = {"name": npz.name, "sha256": hashlib.sha256(blob).hexdigest()}
        atomic_write(p, json.dumps(doc, indent=2, allow_nan=False).encode())
        return p

    @classmethod
    def load(cls, path: str | Path) -> Result:
        """Read a saved result (the subclass registered for its ``kind``).

        Raises:
            DataError: missing/invalid JSON, or an array file that does not match its checksum.
        """
        p = Path(path)
        p = p if p.suffix == ".json" else p.with_name(p.name + ".json")
        doc, arrays = read_json_npz(p, what="result file", redo="re-run the analysis")
        return Result.from_dict(doc, arrays)

    @staticmethod
    def from_dict(doc: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Result:
        """The result of type ``doc["kind"]`` (registered subclasses; else :class:`Result`) from
        its :meth:`to_dict` document and its arrays; settings saved under former names are
        renamed (:func:`migrate_params`)."""
        klass = RESULT_TYPES.get(doc["kind"], Result)
        return klass(
            kind=doc["kind"],
            metrics=doc.get("metrics", {}),
            tables=doc.get("tables", {}),
            arrays=dict(arrays),
            params=migrate_params(doc["kind"], doc.get("params", {})),
            seed=doc.get("seed"),
            provenance=doc.get("provenance", {}),
            notes=doc.get("notes", []),
            versions=doc.get("versions", {}),
            runtime_s=doc.get("runtime_s", 0.0),
            created=doc.get("created", ""),
        )


def _is_result(value: Any) -> bool:
    return isinstance(value, Result) or (
        isinstance(value, (tuple, list)) and bool(value) and all(isinstance(v, Result) for v in value)
    )


def analyzer_settings(cls: A) -> A:
    """Class decorator of an analyzer: its annotated attributes (not ``ClassVar``) are its
    settings; the generated ``__init__`` takes them keyword-only and only stores them (they are
    checked in ``run``), so each setting is written once.

    Example:
        >>> @analyzer_settings
        ... class Demo(Analyzer):
        ...     n_resamples: int = 1000
        ...     seed: int = 0
        ...
        ...     def _run(self, emb, records): ...
        >>> Demo(seed=3)
        Demo(n_resamples=1000, seed=3)
    """
    return dataclass(kw_only=True, eq=False, repr=False)(cls)


class _Base:
    """Shared parameter introspection (the scikit-learn ``get_params`` convention)."""

    name: ClassVar[str] = ""
    #: The analyses this one reads, as ``{constructor argument: analysis name}``. A workflow
    #: runs those first and passes their results (to a :class:`PairwiseAnalyzer`: the pair of
    #: side A's and side B's results); its cache key covers theirs.
    requires: ClassVar[Mapping[str, str]] = {}
    #: True when it runs the encoder itself (e.g. differentiates through it): a workflow passes
    #: ``encoder=`` and skips it, saying why, when only embeddings are at hand.
    needs_encoder: ClassVar[bool] = False
    #: True when it reads the dataset's labels (a workflow skips it on unlabelled records).
    needs_labels: ClassVar[bool] = True
    #: A :class:`PairwiseAnalyzer` that compares every extracted layer (``{layer: Embeddings}``
    #: per side) rather than the final embeddings.
    takes_layers: ClassVar[bool] = False

    def get_params(self) -> dict[str, Any]:
        """The settings given to ``__init__`` (read back from attributes of the same name)."""
        sig = inspect.signature(type(self).__init__)
        return {p: getattr(self, p) for p in sig.parameters if p != "self" and hasattr(self, p)}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def _validate(self) -> None:
        """Check the settings (called by ``run``); raise ConfigError naming the bad one."""

    def _check_settings(self) -> None:
        """Check every setting against its ``__init__`` annotation and declared range (the one
        mechanism that also checks loader and encoder options), before ``_validate``'s own rules.

        Raises:
            ConfigError: ``LinearProbe(seed="x")`` and the like, naming the setting and the type.
        """
        where = f"{type(self).__name__} setting"
        for key, value in check_params(type(self), self.get_params(), where=where).items():
            setattr(self, key, value)

    def _finish(self, result: Result, t0: float, provenance: dict[str, Any]) -> Result:
        # upstream results and the encoder are inputs, not settings: the provenance names them
        own = {
            k: v
            for k, v in self.get_params().items()
            if k != "encoder" and not (k in self.requires and _is_result(v))
        }
        result.params = {**own, **result.params}
        result.provenance = {**provenance, **result.provenance}
        result.runtime_s = time.perf_counter() - t0
        return result


def check_finite(emb: Embeddings) -> None:
    """Raise AnalysisError naming the records whose embedding rows are not finite."""
    finite = np.isfinite(emb.X).all(axis=1)
    if not finite.all():
        bad = [str(i) for i in emb.ids[~finite][:5]]
        raise AnalysisError(
            f"{int((~finite).sum())} embedding rows are not finite (e.g. records {bad}); re-extract them "
            "(the extractor reports such records) or drop them from the dataset"
        )


class Analyzer(_Base, ABC):
    """An analysis of one encoder's embeddings against a dataset's labels and splits."""

    def run(self, embeddings: Embeddings, records: RecordSet) -> Result:
        """Validate, align ``embeddings`` to ``records`` by id, and analyse.

        Raises:
            ConfigError: invalid settings.
            DataError: records without embeddings (counts and examples).
            AnalysisError: the inputs do not allow the analysis (e.g. no test positives).
        """
        t0 = time.perf_counter()
        check_instance(embeddings, Embeddings, name="embeddings", what=_EMBEDDINGS)
        check_instance(
            records, RecordSet, name="records", what=_RECORDS + " (its labels and splits are analysed)"
        )
        self._check_settings()
        self._validate()
        emb, rs = align_to_records(embeddings, records)
        check_finite(emb)
        result = self._run(emb, rs)
        provenance = {
            "embeddings": {"key": emb.key, "layer": emb.layer, "dim": emb.dim, **emb.provenance},
            "dataset": rs.identity,
            "n_records": len(rs),
        }
        return self._finish(result, t0, provenance)

    @abstractmethod
    def _run(self, emb: Embeddings, records: RecordSet) -> Result:
        """The mathematics, on aligned inputs (rows of ``emb`` are the records in order)."""


def check_ids_match(a: Embeddings, b: Embeddings) -> None:
    """Require two embedding sets to cover the same records in the same order.

    Raises:
        DataError: listing ids present on one side only, or saying the order differs.
    """
    if len(a) == len(b) and np.array_equal(a.ids, b.ids):
        return
    sa, sb = set(a.ids), set(b.ids)
    only_a, only_b = sorted(sa - sb), sorted(sb - sa)
    if not only_a and not only_b:
        raise DataError(
            f"the two embedding sets hold the same {len(sa)} records in a different row order; "
            "align them first (b.take(a.ids)) so that row i is the same record on both sides"
        )
    raise DataError(
        f"the two embedding sets do not cover the same records: {len(only_a)} only in A (e.g. {only_a[:5]}), "
        f"{len(only_b)} only in B (e.g. {only_b[:5]}); extract both from the same dataset and options"
    )


class PairwiseAnalyzer(_Base, ABC):
    """An analysis comparing two embedding sets of the *same* records (row i = the same record)."""

    def run(self, a: Embeddings, b: Embeddings, records: RecordSet | None = None) -> Result:
        """Validate, require identical ids in identical order, and compare.

        Raises:
            DataError: ids differ (listing the mismatch) or rows are in a different order.
        """
        t0 = time.perf_counter()
        check_instance(a, Embeddings, name="a", what=_EMBEDDINGS)
        check_instance(b, Embeddings, name="b", what=_EMBEDDINGS)
        check_instance(records, (RecordSet, type(None)), name="records", what=_RECORDS + " or None")
        self._check_settings()
        self._validate()
        check_ids_match(a, b)
        check_finite(a)
        check_finite(b)
        result = self._run(a, b, records)
        provenance = {
            "a": {"key": a.key, "layer": a.layer, "dim": a.dim, **a.provenance},
            "b": {"key": b.key, "layer": b.layer, "dim": b.dim, **b.provenance},
            "n_records": len(a),
        }
        if records is not None:
            provenance["dataset"] = records.identity
        return self._finish(result, t0, provenance)

    @abstractmethod
    def _run(self, a: Embeddings, b: Embeddings, records: RecordSet | None) -> Result:
        """The mathematics, on two aligned embedding sets."""
