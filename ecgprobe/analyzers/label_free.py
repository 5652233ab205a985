"""``label_free``: the geometry of each layer's embedding without labels — RankMe, TwoNN, IsoScore.

Per extracted layer, on the embeddings standardised over the records given (each feature
z-scored, constant features dropped, so that units and feature scales do not count; no label is
used, so every split is used):

- **RankMe** (Garrido et al. 2023): the entropy effective rank of the singular values — how many
  directions the embedding really spreads over;
- **TwoNN** (Facco et al. 2017): the intrinsic dimension of the point cloud from each point's
  first two neighbour distances — how many degrees of freedom the records vary in;
- **IsoScore** (Rudman et al. 2022): 0 when all variance lies in one direction, 1 when it is
  spread evenly over every direction.

The formulas and their known answers are in :mod:`ecgprobe.analyzers._stats.label_free`.

Spread, not confidence intervals: all three depend on the number of points, so a resample of the
records (the bootstrap's duplicates even make TwoNN's first-neighbour distance 0) estimates
something other than the full-sample value. What is reported beside each value is the range
(2.5-97.5 %) of the statistic over ``n_subsamples`` random halves of the *patients* — how stable
it is to which patients were recorded, at half the sample size — and it is labelled as such.
Values are comparable across layers and encoders only at the same number of records.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from ecgprobe.analyzers._stats.label_free import isoscore, n_duplicates, rankme, standardise, twonn
from ecgprobe.analyzers.base import ANALYZERS, Analyzer, Result, analyzer_settings, check_finite
from ecgprobe.data.record import RecordSet
from ecgprobe.exceptions import AnalysisError, ConfigError
from ecgprobe.extract.embeddings import Embeddings, align_to_records
from ecgprobe.options import check_instance
from ecgprobe.settings import FINAL_LAYER

__all__ = ["STATISTICS", "LabelFree", "LabelFreeResult"]

#: The statistics per layer, in table order.
STATISTICS: tuple[str, ...] = ("rankme", "twonn", "isoscore")
_MIN_RECORDS = 20


class LabelFreeResult(Result):
    """Result of :class:`LabelFree` (``kind = "label_free"``).

    Schema:
        metrics: ``layers`` (in order), ``final_layer``, ``n_records``, ``n_patients``,
            ``n_subsamples``, ``subsample_size`` (patients per half), ``standardised``
            (True), ``statistics``.
        tables: ``layers``: layer, n, dim (features that vary), duplicates (rows TwoNN left
            out), and per statistic ``<s>`` with ``<s>_half_low`` / ``<s>_half_high`` (the
            2.5-97.5 % range over half-patient subsamples).
        arrays: ``<s>_halves`` (layers x subsamples) per statistic.
    """

    KIND: ClassVar[str] = "label_free"


def _stats(X: np.ndarray) -> dict[str, float]:
    Z = standardise(X)
    return {
        "rankme": rankme(Z),
        "twonn": twonn(Z),
        "isoscore": isoscore(Z) if Z.shape[1] >= 2 else float("nan"),
    }


@ANALYZERS.register(
    "label_free",
    summary="label-free geometry per layer: RankMe effective rank, TwoNN intrinsic dimension, IsoScore",
)
@analyzer_settings
class LabelFree(Analyzer):
    """RankMe, TwoNN and IsoScore of every layer (see the module docstring).

    Args:
        n_subsamples: random halves of the patients for the stability range (0: none).
        seed: seed of the subsamples.

    Example:
        >>> layers = ecgprobe.extract(encoder, records, layers="all")  # doctest: +SKIP
        >>> LabelFree().run(layers, records).table("layers")[["layer", "rankme", "twonn"]]  # doctest: +SKIP
    """

    needs_labels: ClassVar[bool] = False
    takes_layers: ClassVar[bool] = True

    n_subsamples: int = 20
    seed: int = 0

    def _validate(self) -> None:
        if self.n_subsamples < 0:
            raise ConfigError(f"n_subsamples must be >= 0, got {self.n_subsamples}")

    def run(  # type: ignore[override]
        self, embeddings: Embeddings | Mapping[str, Embeddings], records: RecordSet
    ) -> LabelFreeResult:
        """Measure every layer of ``embeddings`` (``{layer: Embeddings}`` or one Embeddings).

        Raises:
            ConfigError: invalid settings, or an empty layer mapping.
            DataError: records without embeddings in some layer (named).
            AnalysisError: fewer than 20 records.
        """
        if isinstance(embeddings, Embeddings):
            return super().run(embeddings, records)  # type: ignore[return-value]
        t0 = time.perf_counter()
        if not isinstance(embeddings, Mapping) or not embeddings:
            raise ConfigError("embeddings must be an Embeddings or a non-empty {layer: Embeddings} mapping")
        check_instance(records, RecordSet, name="records", what="a RecordSet (from ecgprobe.load_dataset)")
        self._check_settings()
        self._validate()
        layers: dict[str, Embeddings] = {}
        for name, emb in embeddings.items():
            check_instance(emb, Embeddings, name=f"embeddings[{name!r}]", what="an ecgprobe Embeddings")
            layers[str(name)], rs = align_to_records(emb, records)
            check_finite(layers[str(name)])
        result = self._measure(layers, rs)
        provenance = {
            "embeddings": {"layers": list(layers), "keys": {k: e.key for k, e in layers.items()}},
            "dataset": rs.identity,
            "n_records": len(rs),
        }
        return self._finish(result, t0, provenance)  # type: ignore[return-value]

    def _run(self, emb: Embeddings, records: RecordSet) -> Result:
        return self._measure({emb.layer or FINAL_LAYER: emb}, records)

    def _measure(self, layers: dict[str, Embeddings], records: RecordSet) -> LabelFreeResult:
        n = len(records)
        if n < _MIN_RECORDS:
            raise AnalysisError(f"label-free geometry needs at least {_MIN_RECORDS} records, got {n}")
        patients, inverse = np.unique(records.patient_ids, return_inverse=True)
        half = len(patients) // 2
        rng = np.random.default_rng(self.seed)
        # the same halves for every layer, so layers are compared on the same records
        halves = [
            np.flatnonzero(np.isin(inverse, rng.permutation(len(patients))[:half]))
            for _ in range(self.n_subsamples)
        ]
        halves = [h for h in halves if len(h) >= 3]
        rows: list[dict[str, Any]] = []
        arrays: dict[str, list[list[float]]] = {s: [] for s in STATISTICS}
        for name, emb in layers.items():
            X = np.asarray(emb.X, dtype=np.float64)
            point = _stats(X)
            reps = [_stats(X[h]) for h in halves]
            row: dict[str, Any] = {
                "layer": name,
                "n": n,
                "dim": int(standardise(X).shape[1]),
                "duplicates": n_duplicates(X),
            }
            for s in STATISTICS:
                values = np.array([r[s] for r in reps], dtype=float)
                arrays[s].append(values.tolist())
                lo, hi = np.percentile(values, [2.5, 97.5]) if len(values) else (np.nan, np.nan)
                row.update({s: point[s], f"{s}_half_low": float(lo), f"{s}_half_high": float(hi)})
            rows.append(row)
        notes = [
            "ranges are the 2.5-97.5 % spread over random halves of the patients (stability at half the "
            "sample size), not confidence intervals: the statistics depend on the number of records",
        ]
        dup = sum(r["duplicates"] for r in rows)
        if dup:
            notes.append(
                f"{dup} duplicate embedding rows were left out of TwoNN (their nearest-neighbour distance is 0)"
            )
        final = FINAL_LAYER if FINAL_LAYER in layers else list(layers)[-1]
        metrics = {
            "layers": list(layers),
            "final_layer": final,
            "n_records": n,
            "n_patients": len(patients),
            "n_subsamples": len(halves),
            "subsample_size": half,
            "standardised": True,
            "statistics": list(STATISTICS),
        }
        return LabelFreeResult(
            kind="label_free",
            metrics=metrics,
            tables={"layers": rows},
            arrays={f"{s}_halves": np.asarray(v, dtype=float) for s, v in arrays.items()},
            seed=self.seed,
            notes=notes,
        )
