"""Alignment of two latent spaces beyond CKA: mutual k-nearest-neighbour overlap and
orthogonal Procrustes distance.

These complement CKA: CKA compares global second-order structure (all pairwise similarities);
**mutual kNN overlap** asks whether the two encoders agree on *which records are close* —
local structure, invariant to any monotone distortion of distances (used by Huh et al. 2024,
"The Platonic Representation Hypothesis"); **Procrustes distance** asks how far one space is
from a rotation of the other after centring and scaling — a proper metric on shapes (Williams
et al. 2021, "Generalized Shape Metrics on Neural Representations") that is sensitive to
directions that carry little variance, where CKA is dominated by the top principal components.

They form one analyzer (``"alignment"``) separate from :mod:`ecgprobe.analyzers.cka`: they
compare one pair of embedding sets (CKA also compares layer matrices) and need exact kNN graphs
(``O(n² d)``) that CKA does not.

Procrustes with different dimensions: ``min_Q ||X̃Q − Ỹ||_F`` over orthogonal ``Q`` of the
zero-padded matrices equals ``2 − 2 ||X̃ᵀỸ||_*`` for Frobenius-normalised centred ``X̃``, ``Ỹ``
(nuclear norm of the ``d1 × d2`` cross product; zero columns add nothing), so padding needs no
memory. When ``n`` is not much larger than the dimensions, any two sets align well: read the
distance against ``n/d`` and compare encoders at equal ``n``.

Intervals: the delete-a-group jackknife of :mod:`ecgprobe.analyzers._stats.jackknife` (groups of
whole patients when a dataset is given), each statistic recomputed exactly without each group.
Mutual kNN: the kNN graphs are recomputed too — each record's ``K > k`` nearest neighbours are
found once and the ``k`` nearest that remain are read off per replicate (exact while at least
``k`` of the ``K`` remain, which is checked; ``K`` grows when not). The record bootstrap used
before resampled copies of records, which align perfectly with themselves: its Procrustes
interval lay above its own estimate (similarity 0.502, interval [0.518, 0.554]).

Bias. Procrustes similarity is the nuclear norm of a noisy cross-covariance, biased upward when
``n/d`` is small (on independent data with ``d1 = d2 = d`` it is ≈ ``0.85 sqrt(d/n)``: 0.30 at
``n = 500``, ``d = 64``, not 0); its interval then covers the value expected at this ``n``, not
the population value. Mutual kNN overlap depends on ``n`` by definition (``k`` of ``n``
neighbours): its interval is for this ``n``, and conservative (coverage 99.6 % at nominal 95 %
in ``benchmarks/coverage_similarity.py``, which measures both).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ecgprobe.analyzers._stats import cka_linear as lin
from ecgprobe.analyzers._stats import jackknife as jk
from ecgprobe.analyzers._stats.bootstrap import check_resampling
from ecgprobe.analyzers._stats.neighbors import METRICS, exact_knn
from ecgprobe.analyzers.base import ANALYZERS, PairwiseAnalyzer, Result, analyzer_settings
from ecgprobe.data.record import RecordSet
from ecgprobe.exceptions import AnalysisError, ConfigError, DataError
from ecgprobe.extract.embeddings import Embeddings

__all__ = [
    "Alignment",
    "AlignmentResult",
    "mutual_knn_overlap",
    "mutual_knn_replicates",
    "procrustes",
    "procrustes_replicates",
]


def _check(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X, Y = np.asarray(X), np.asarray(Y)
    if X.ndim != 2 or Y.ndim != 2:
        raise ConfigError(f"X and Y must be 2-D (records x features), got {X.shape} and {Y.shape}")
    if len(X) != len(Y):
        raise DataError(f"X has {len(X)} rows but Y has {len(Y)}: they must be the same records")
    return X, Y


def mutual_knn_overlap(
    X: np.ndarray, Y: np.ndarray, k: int = 10, *, metric: str = "cosine"
) -> tuple[float, np.ndarray]:
    """Mean over records of ``|kNN_X(i) ∩ kNN_Y(i)| / k`` (exact kNN, self excluded).

    Returns:
        ``(mean, per_record)``; chance level (random neighbour sets) is ``k / (n − 1)``.

    Raises:
        ConfigError: ``k`` not in ``[1, n − 1)`` or an unknown metric.

    Example:
        >>> X = np.random.default_rng(0).standard_normal((50, 4))
        >>> mutual_knn_overlap(X, 2 * X, k=5)[0]
        1.0
    """
    X, Y = _check(X, Y)
    if not 1 <= k < len(X) - 1:
        raise ConfigError(f"k must be in [1, n - 1) = [1, {len(X) - 1}), got {k}")
    ia, _ = exact_knn(X, k, metric=metric)
    ib, _ = exact_knn(Y, k, metric=metric)
    both = np.sort(np.concatenate([ia, ib], axis=1), axis=1)
    per = (both[:, 1:] == both[:, :-1]).sum(axis=1) / k
    return float(per.mean()), per


def _procrustes_from(C: np.ndarray, nx2: float, ny2: float) -> float:
    """Nuclear norm of the cross product of Frobenius-normalised centred matrices."""
    if not (nx2 > 0 and ny2 > 0):
        return float("nan")
    return float(np.linalg.svd(C, compute_uv=False).sum() / np.sqrt(nx2 * ny2))


def procrustes(X: np.ndarray, Y: np.ndarray) -> dict[str, float]:
    """Orthogonal Procrustes comparison after centring and Frobenius normalisation.

    Returns:
        ``similarity`` ``ρ = ||X̃ᵀỸ||_*`` in [0, 1], ``distance`` ``sqrt(2 − 2ρ)`` in [0, √2]
        (the residual of the best rotation) and ``angle`` ``arccos ρ`` in [0, π/2] (a metric,
        Williams et al. 2021).

    Raises:
        AnalysisError: a side has no variance.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> X = rng.standard_normal((100, 3))
        >>> Q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
        >>> round(procrustes(X, 5 * X @ Q + 1)["distance"], 6)
        0.0
    """
    X, Y = _check(X, Y)
    A, B = lin.make_side(["X"], [X], np.float64), lin.make_side(["Y"], [Y], np.float64)
    rho = _procrustes_from(A.Z.T @ B.Z, A.alpha.sum(), B.alpha.sum())
    if not np.isfinite(rho):
        raise AnalysisError("Procrustes distance is undefined: one representation has no variance")
    return _shape_metrics(rho)


def procrustes_replicates(A: lin.Side, B: lin.Side, rb: list[slice], W: np.ndarray) -> np.ndarray:
    """Procrustes similarity ``ρ`` recomputed exactly on block-weighted records.

    ``A``/``B`` hold one layer each with rows in block order; row ``r`` of ``W`` gives the
    weight of each block (0/1 for the jackknife). Per replicate the cross product is re-centred with the
    replicate's means and both sides re-normalised: ``C_w = Σ w_b S_b − N μx μyᵀ``,
    ``||X̃_w||² = Σ w_b a_b − N ||μx||²``.
    """
    Sb = np.stack([A.Z[r].T @ B.Z[r] for r in rb])
    starts = [r.start for r in rb]
    U, V = np.add.reduceat(A.Z, starts, axis=0), np.add.reduceat(B.Z, starts, axis=0)
    ax, ay = np.add.reduceat(A.alpha[:, 0], starts), np.add.reduceat(B.alpha[:, 0], starts)
    nb = np.array([r.stop - r.start for r in rb], dtype=np.float64)
    out = np.empty(len(W))
    for t, w in enumerate(W):
        N = w @ nb
        mx, my = w @ U / N, w @ V / N
        C = np.tensordot(w, Sb, axes=1) - N * np.outer(mx, my)
        out[t] = _procrustes_from(C, w @ ax - N * mx @ mx, w @ ay - N * my @ my)
    return out


def mutual_knn_replicates(
    X: np.ndarray, Y: np.ndarray, k: int, groups: np.ndarray, *, metric: str = "cosine"
) -> tuple[float, np.ndarray, np.ndarray]:
    """Mutual kNN overlap, per-record overlaps, and its value without each group of records.

    Replicate ``g`` is exactly :func:`mutual_knn_overlap` on the records outside group ``g``
    (kNN graphs rebuilt among them), read off each record's ``K`` nearest neighbours.

    Args:
        X: ``(n, d1)``.
        Y: ``(n, d2)``, the same records.
        k: neighbours per record.
        groups: ``(n,)`` group index ``0 … m−1`` of each record.
        metric: ``"cosine"`` or ``"euclidean"``.

    Returns:
        ``(mean, per_record, replicates (m,))``.

    Raises:
        ConfigError: ``k`` not in ``[1, n − 1 − largest group)``.
    """
    X, Y = _check(X, Y)
    n, m = len(X), int(groups.max()) + 1
    largest = int(np.bincount(groups).max())
    if not 1 <= k < n - 1 - largest:
        raise ConfigError(
            f"k must be in [1, {n - 1 - largest}) for {n} records in jackknife groups of up to {largest}, "
            f"got {k}; lower k or use fewer, smaller groups (n_blocks)"
        )
    K = min(n - 1, 2 * k + 10)
    while True:
        ia, _ = exact_knn(X, K, metric=metric)
        ib, _ = exact_knn(Y, K, metric=metric)
        hit = ia[:, :, None] == ib[:, None, :]
        where_b = np.where(hit.any(axis=2), hit.argmax(axis=2), K)  # X's neighbours in Y's list; K: absent
        per, _ = _overlap_without(ia, ib, where_b, k, groups, -1)
        reps = np.empty(m)
        complete = True
        for g in range(m):
            ov, ok = _overlap_without(ia, ib, where_b, k, groups, g)
            complete &= ok
            reps[g] = ov[groups != g].mean()
        if complete or n - 1 == K:
            return float(per.mean()), per, reps
        K = min(n - 1, 2 * K)


def _overlap_without(
    ia: np.ndarray, ib: np.ndarray, where_b: np.ndarray, k: int, groups: np.ndarray, g: int
) -> tuple[np.ndarray, bool]:
    """Per-record overlap of the ``k`` nearest neighbours outside group ``g`` (``-1``: none left
    out), read off the ``K``-lists ``ia``/``ib`` (``where_b``: position of each of ``ia``'s
    entries in ``ib``'s row, ``K`` when absent); and whether every record outside ``g`` kept at
    least ``k`` neighbours in both lists (else the result is not exact)."""
    n, K = ia.shape
    keep_a, keep_b = groups[ia] != g, groups[ib] != g
    sel_a = keep_a & (np.cumsum(keep_a, axis=1) <= k)
    sel_b = np.zeros((n, K + 1), dtype=bool)  # column K: "not in Y's list"
    sel_b[:, :K] = keep_b & (np.cumsum(keep_b, axis=1) <= k)
    both = (sel_a & np.take_along_axis(sel_b, where_b, axis=1)).sum(axis=1)
    enough = (keep_a.sum(axis=1) >= k) & (keep_b.sum(axis=1) >= k)
    return both / k, bool(enough[groups != g].all())


#: Upper ends of the Procrustes values (the lower ends are 0).
_RANGE = {"similarity": 1.0, "distance": float(np.sqrt(2.0)), "angle": float(np.pi / 2)}


def _shape_metrics(rho: float | np.ndarray) -> dict[str, Any]:
    rho = np.clip(rho, 0.0, 1.0)
    return {"similarity": rho, "distance": np.sqrt(2.0 - 2.0 * rho), "angle": np.arccos(rho)}


class AlignmentResult(Result):
    """Mutual kNN overlap and Procrustes comparison of two embedding sets.

    Schema:
        metrics: ``mutual_knn`` (mean overlap), ``mutual_knn_ci_low/high``, ``mutual_knn_se``,
            ``mutual_knn_chance`` (``k/(n−1)``), ``procrustes_similarity``,
            ``procrustes_distance``, ``procrustes_angle``, each Procrustes value with
            ``_ci_low/_ci_high/_se``, and ``n_records``.
        arrays: ``mutual_knn_per_record`` ``(n,)`` float32 and ``ids`` (record ids, in order),
            ``replicates_mutual_knn``, ``replicates_procrustes_similarity`` (leave-one-group-out
            values; results before the jackknife hold ``boot_*`` bootstrap replicates).
        params: settings, ``n_blocks_used``, ``resampling_unit`` and ``interval`` (in words).
    """

    KIND: ClassVar[str] = "alignment"


@ANALYZERS.register(
    "alignment",
    pairwise=True,
    summary="mutual kNN overlap and orthogonal Procrustes distance between two encoders, with CIs",
)
@analyzer_settings
class Alignment(PairwiseAnalyzer):
    """Mutual kNN overlap and orthogonal Procrustes distance between two embedding sets.

    Args:
        k: neighbours per record for the mutual kNN overlap.
        metric: ``"cosine"`` or ``"euclidean"`` for the kNN graphs.
        n_resamples: ``0``: no intervals; any positive value: jackknife intervals (the replicates
            are the ``n_blocks`` groups; saved as ``n_boot`` by older versions).
        n_blocks: jackknife groups of patients (records without a dataset).
        ci_level: confidence level.
        seed: seeds the group assignment.

    CIs: delete-a-group jackknife (module doc): both statistics are recomputed exactly —
    kNN graphs rebuilt, Procrustes re-centred and re-normalised — without each group, and the
    interval is ``estimate ± t(m − 1) × SE``.

    Example:
        >>> from ecgprobe.extract.embeddings import Embeddings
        >>> rng = np.random.default_rng(0)
        >>> ids = [f"r{i}" for i in range(200)]
        >>> a = Embeddings(rng.standard_normal((200, 6)), ids)
        >>> res = Alignment(k=5, n_resamples=20).run(a, a)
        >>> res.metrics["mutual_knn"], round(res.metrics["procrustes_distance"], 6)
        (1.0, 0.0)
    """

    name = "alignment"

    needs_labels = False

    k: int = 10
    metric: str = "cosine"
    n_resamples: int = 200
    n_blocks: int = 50
    ci_level: float = 0.95
    seed: int = 0

    def _validate(self) -> None:
        if not (isinstance(self.k, int) and self.k >= 1):
            raise ConfigError(f"k must be a positive integer, got {self.k!r}")
        if self.metric not in METRICS:
            raise ConfigError(f"metric must be one of {list(METRICS)}, got {self.metric!r}")
        check_resampling(self.n_resamples, self.ci_level, least=0)
        if not (isinstance(self.n_blocks, int) and self.n_blocks >= 2):
            raise ConfigError(f"n_blocks must be an integer >= 2, got {self.n_blocks!r}")

    def _run(self, a: Embeddings, b: Embeddings, records: RecordSet | None) -> AlignmentResult:
        n = len(a)
        if n < self.k + 2:
            raise AnalysisError(f"mutual kNN with k={self.k} needs at least {self.k + 2} records, got {n}")
        rng = np.random.default_rng(self.seed)
        plan = (
            jk.group_plan(n, self.n_blocks, rng, jk.patients_of(a.ids, records)) if self.n_resamples else None
        )
        groups = plan.membership(n) if plan is not None else np.zeros(n, dtype=np.int64)
        params: dict[str, Any] = {}
        notes = []
        with_ci = plan is not None and plan.m >= 2
        if with_ci:
            try:
                mean, per, reps_knn = mutual_knn_replicates(a.X, b.X, self.k, groups, metric=self.metric)
            except ConfigError as exc:
                notes.append(f"no intervals: {exc}")
                with_ci = False
        if not with_ci:
            mean, per = mutual_knn_overlap(a.X, b.X, self.k, metric=self.metric)
        metrics: dict[str, Any] = {"n_records": n, "mutual_knn": mean, "mutual_knn_chance": self.k / (n - 1)}
        arrays: dict[str, np.ndarray] = {
            "mutual_knn_per_record": per.astype(np.float32),
            "ids": np.asarray(a.ids, dtype=str),
        }
        order = plan.order if plan is not None else np.arange(n)
        A = lin.make_side([a.layer], [a.X], np.float64, order=order)
        B = lin.make_side([b.layer], [b.X], np.float64, order=order)
        rho = _procrustes_from(A.Z.T @ B.Z, A.alpha.sum(), B.alpha.sum())
        if not np.isfinite(rho):
            raise AnalysisError("Procrustes distance is undefined: one embedding set has no variance")
        shape = _shape_metrics(rho)
        metrics.update({f"procrustes_{k}": v for k, v in shape.items()})
        if n < 10 * max(a.dim, b.dim):
            notes.append(
                f"n={n} records for {max(a.dim, b.dim)} dimensions: with few records per dimension any two "
                "spaces align well by rotation (Procrustes similarity is biased upward); compare Procrustes "
                "distances only at equal n and dims"
            )
        if with_ci:
            assert plan is not None
            lo, hi, se = jk.jackknife_interval(mean, reps_knn, self.ci_level)
            metrics.update(mutual_knn_ci_low=max(lo, 0.0), mutual_knn_ci_high=min(hi, 1.0), mutual_knn_se=se)
            W = jk.leave_one_out_weights(plan.m)
            reps_rho = procrustes_replicates(A, B, plan.slices, W)
            for name, vals in _shape_metrics(reps_rho).items():
                lo, hi, se = jk.jackknife_interval(shape[name], vals, self.ci_level)
                lo, hi = np.clip([lo, hi], 0.0, _RANGE[name])
                metrics[f"procrustes_{name}_ci_low"], metrics[f"procrustes_{name}_ci_high"] = lo, hi
                metrics[f"procrustes_{name}_se"] = se
            arrays.update(replicates_mutual_knn=reps_knn, replicates_procrustes_similarity=reps_rho)
            params.update(
                n_blocks_used=plan.m,
                resampling_unit=plan.unit,
                interval=f"delete-a-group jackknife, {plan.m} groups of {plan.unit}s: estimate ± t({plan.m - 1}) × SE",
            )
        return AlignmentResult(
            kind="alignment", metrics=metrics, arrays=arrays, params=params, seed=self.seed, notes=notes
        )
