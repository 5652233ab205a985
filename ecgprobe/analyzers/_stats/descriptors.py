"""Quantitative descriptors of an embedding space and of a 2-D projection of it.

Pure functions on arrays (no analyzer here); :mod:`ecgprobe.analyzers.projection` reports them.

- **Spectrum**: eigenvalues ``λ`` of the covariance, explained variance ratios, the
  participation ratio ``(Σλ)²/Σλ²`` (effective rank; Gao et al. 2017) and the entropy effective
  rank ``exp(−Σ p log p)``, ``p = λ/Σλ`` (Roy & Vetterli 2007). Both depend on the units of the
  features: on raw features they count the directions of the *largest-scale* features (186
  handcrafted features mixing milliseconds and millivolts had a participation ratio of 1.6).
  ``standardise=True`` computes them on the correlation matrix (every non-constant feature
  scaled to unit variance): how many independent directions the features span, whatever their
  units. Projections report both.
- **Isotropy** is not computed. Mu & Viswanath's partition-function isotropy
  ``min_c Σ_i exp(cᵀx_i) / max_c Σ_i exp(cᵀx_i)`` is not scale invariant: for embeddings whose
  norms are much larger than 1 the sums are dominated by single records and the ratio is
  ``exp(−Θ(norm))`` — 0.000 for every encoder we ran, which tells nothing. What it was meant
  to show (a common direction, variance in few directions) is measured, scale-free, by the
  mean cosine and the standardised effective ranks.
- **Mean cosine** between distinct records (Ethayarajh 2019), exactly from the sum of unit rows:
  ``(||Σ u_i||² − n) / (n(n − 1))``.
- **Trustworthiness** (Venna & Kaski 2001; ``sklearn.manifold.trustworthiness``) of a projection,
  on a seeded subsample of query records whose ranks are taken among *all* records: since
  ``T(k) = 1 − 2/(n k (2n − 3k − 1)) Σ_i Σ_{j ∈ U_k(i)} (r(i, j) − k)`` is a mean over records of a
  per-record penalty, the subsample mean estimates the full-data value without bias (equal
  to sklearn's when all records are queries).
- **Per-label structure**, in any space: silhouette of the partition "has label c / has not"
  (Rousseeuw 1987; mean over all queries and over positive queries) and kNN label purity (mean
  share of a positive record's ``k`` nearest neighbours that are positive; chance
  ``(n_c − 1)/(n − 1)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ecgprobe.analyzers._stats.neighbors import distance_blocks, prepare

__all__ = ["SpaceStats", "mean_cosine", "space_stats", "spectrum", "trustworthiness_from"]


def _second_moment(X: np.ndarray, centre: bool, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """``(XᵀX, mean)`` in float64 accumulated over row chunks (centred when asked)."""
    mu = X.mean(axis=0, dtype=np.float64)
    C = np.zeros((X.shape[1],) * 2)
    for s in range(0, len(X), chunk):
        R = X[s : s + chunk].astype(np.float64)
        if centre:
            R -= mu
        C += R.T @ R
    return C, mu


def spectrum(X: np.ndarray, *, standardise: bool = False) -> dict[str, np.ndarray | float | int]:
    """Covariance (or correlation) eigen-spectrum, effective ranks and the principal axes.

    Args:
        X: ``(n, d)`` features.
        standardise: scale every non-constant feature to unit variance first (the spectrum
            of the correlation matrix; constant features are left out).

    Returns:
        ``eigenvalues`` (descending, float64), ``explained_variance_ratio``,
        ``participation_ratio``, ``entropy_rank``, ``components`` (columns = axes, in the
        standardised space when ``standardise``), ``mean`` and ``n_features`` (features that
        vary; all ``d`` without ``standardise``).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> X = rng.standard_normal((5000, 3)) * [1000.0, 1.0, 0.001]  # one feature in other units
        >>> round(spectrum(X)["participation_ratio"], 2), round(spectrum(X, standardise=True)["participation_ratio"], 1)
        (1.0, 3.0)
    """
    C, mu = _second_moment(X, centre=True)
    C /= max(len(X) - 1, 1)
    n_features = C.shape[0]
    if standardise:
        sd = np.sqrt(np.clip(np.diag(C), 0.0, None))
        varying = sd > 1e-12 * max(float(sd.max(initial=0.0)), np.finfo(float).tiny)
        sd = sd[varying]
        C = C[np.ix_(varying, varying)] / np.outer(sd, sd)
        n_features = int(varying.sum())
    lam, V = np.linalg.eigh(C)
    lam, V = np.clip(lam[::-1], 0.0, None), V[:, ::-1]
    total = lam.sum()
    p = lam / total if total > 0 else np.zeros_like(lam)
    nz = p[p > 0]
    return {
        "eigenvalues": lam,
        "explained_variance_ratio": p,
        "participation_ratio": float(total**2 / (lam**2).sum()) if total > 0 else 0.0,
        "entropy_rank": float(np.exp(-(nz * np.log(nz)).sum())) if total > 0 else 0.0,
        "components": V,
        "mean": mu,
        "n_features": n_features,
    }


def mean_cosine(X: np.ndarray) -> float:
    """Mean cosine similarity over pairs of distinct records (zero rows count as cosine 0)."""
    Z, _ = prepare(np.asarray(X, dtype=np.float64), "cosine")
    n = len(Z)
    s = Z.sum(axis=0)
    nonzero = int((np.abs(Z).sum(axis=1) > 0).sum())
    return float((s @ s - nonzero) / (n * (n - 1)))


@dataclass
class SpaceStats:
    """What one pass over a space's query-to-all distances yields.

    Attributes:
        knn: ``(q, k)`` nearest neighbours of each query (self excluded).
        silhouette: ``(q, C)`` silhouette of each query for each label partition (NaN where
            undefined).
        ranks: ``(q, k_t)`` ranks ``r(i, j)`` of given targets ``j`` among all records by
            distance from ``i`` (1 = nearest), or None.
    """

    knn: np.ndarray
    silhouette: np.ndarray
    ranks: np.ndarray | None


def space_stats(
    X: np.ndarray,
    queries: np.ndarray,
    Y: np.ndarray,
    k: int,
    *,
    metric: str = "euclidean",
    rank_targets: np.ndarray | None = None,
) -> SpaceStats:
    """kNN, per-label silhouettes and (optionally) ranks of targets, for query records.

    Args:
        X: ``(n, d)`` points (any space: embeddings or a projection).
        queries: positions of the query records.
        Y: ``(n, C)`` binary labels (0/1).
        k: neighbours per query.
        metric: ``"euclidean"`` or ``"cosine"``.
        rank_targets: ``(q, k_t)`` positions whose rank from each query is wanted
            (trustworthiness of a projection: its neighbours, ranked in the original space).
    """
    n = len(X)
    Yf = np.asarray(Y, dtype=np.float32)
    n_pos = Yf.sum(axis=0).astype(np.float64)
    q = len(queries)
    knn = np.empty((q, k), dtype=np.int64)
    sil = np.empty((q, Yf.shape[1]))
    ranks = None if rank_targets is None else np.empty(rank_targets.shape, dtype=np.int64)
    pos = 0
    prepared = prepare(X, metric)
    for qb, D in distance_blocks(X, queries, metric=metric, prepared=prepared):
        ar = np.arange(len(qb))
        rows = slice(pos, pos + len(qb))
        D[ar, qb] = 0.0
        d_pos = (D @ Yf).astype(np.float64)
        d_all = D.sum(axis=1, dtype=np.float64)[:, None]
        own = Yf[qb] > 0
        n_own = np.where(own, n_pos, n - n_pos)
        with np.errstate(invalid="ignore", divide="ignore"):
            a = np.where(own, d_pos, d_all - d_pos) / (n_own - 1)
            b = np.where(own, d_all - d_pos, d_pos) / (n - n_own)
            s = (b - a) / np.maximum(a, b)
        s = np.where(n_own > 1, s, 0.0)  # a singleton cluster scores 0 (sklearn's convention)
        s[:, (n_pos == 0) | (n_pos == n)] = np.nan  # one cluster only: undefined
        sil[rows] = s
        if ranks is not None:
            D[ar, qb] = -np.inf  # the query itself counts as closer than anything: r = #closer + 1
            t = np.take_along_axis(D, rank_targets[rows], axis=1)
            for c in range(t.shape[1]):
                ranks[rows, c] = np.less(D, t[:, c : c + 1]).sum(axis=1)
        D[ar, qb] = np.inf
        part = np.argpartition(D, k - 1, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(D, part, axis=1), axis=1, kind="stable")
        knn[rows] = np.take_along_axis(part, order, axis=1)
        pos += len(qb)
    return SpaceStats(knn=knn, silhouette=sil, ranks=ranks)


def trustworthiness_from(ranks: np.ndarray, n: int, k: int) -> float:
    """Trustworthiness from the original-space ranks of each query's ``k`` projection neighbours.

    Args:
        ranks: ``(q, k)``; ``r(i, j)`` for the ``k`` nearest neighbours ``j`` of query ``i`` in
            the projection.
        n: records in the data set (ranks are among all of them).
        k: neighbourhood size (``k < n/2``).
    """
    q = len(ranks)
    penalty = np.clip(ranks - k, 0, None).sum(dtype=np.float64)
    return float(1.0 - 2.0 / (q * k * (2.0 * n - 3.0 * k - 1.0)) * penalty)


def label_purity(knn: np.ndarray, queries: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Per label: mean share of a positive query's neighbours that are positive (NaN if none)."""
    Yb = np.asarray(Y) > 0
    share = Yb[knn].mean(axis=1)  # (q, C)
    pos = Yb[queries]
    with np.errstate(invalid="ignore"):
        return np.where(pos.any(axis=0), (share * pos).sum(axis=0) / pos.sum(axis=0), np.nan)
