"""RBF-kernel HSIC/CKA from Gram matrices (private engine of :mod:`ecgprobe.analyzers.cka`).

Estimators (per pair of Gram matrices ``K``, ``L`` of ``n`` records):

- biased HSIC ``tr(KHLH)/(n−1)²`` (Gretton et al. 2005);
- unbiased HSIC_1 (Song et al. 2012)
  ``[tr(K̃L̃) + (1ᵀK̃1)(1ᵀL̃1)/((n−1)(n−2)) − 2/(n−2) 1ᵀK̃L̃1] / (n(n−3))``, ``K̃`` = K with a zero
  diagonal — the estimator behind debiased CKA (Nguyen et al. 2021);
- minibatch CKA (Nguyen et al. 2021): unbiased HSIC averaged over minibatches, then the ratio
  ``mean HSIC(K,L) / sqrt(mean HSIC(K,K) · mean HSIC(L,L))``; averaging is consistent only for
  the unbiased estimator, so the minibatch path is always debiased.

Bandwidth: ``k(x, y) = exp(−||x−y||² / (2σ²))`` with ``σ`` the median of the pairwise distances
(off-diagonal) of up to 2,000 seeded records (all when fewer) unless given; it is held fixed over
minibatches and bootstrap replicates.
"""

from __future__ import annotations

import numpy as np

from ecgprobe.analyzers.neighbors import distance_blocks
from ecgprobe.exceptions import AnalysisError

MEDIAN_SAMPLE = 2000


def median_sigma(X: np.ndarray, rng: np.random.Generator, what: str = "X") -> float:
    """The median pairwise euclidean distance (off-diagonal) of up to 2,000 seeded rows."""
    n = len(X)
    sub = X if n <= MEDIAN_SAMPLE else X[np.sort(rng.choice(n, MEDIAN_SAMPLE, replace=False))]
    D = next(distance_blocks(np.asarray(sub, dtype=np.float64), block_rows=len(sub)))[1]
    med = float(np.median(D[np.triu_indices(len(sub), 1)]))
    if not med > 0:
        raise AnalysisError(
            f"{what}: the median pairwise distance is 0 (most records have identical embeddings); "
            "an RBF bandwidth cannot be chosen — pass sigma= or check the embeddings"
        )
    return med


def rbf_gram(X: np.ndarray, sigma: float) -> np.ndarray:
    """``exp(−||x_i − x_j||² / (2σ²))`` in float64."""
    D = next(distance_blocks(np.asarray(X, dtype=np.float64), block_rows=len(X)))[1]
    np.fill_diagonal(D, 0.0)
    D **= 2
    D *= -1.0 / (2.0 * sigma**2)
    return np.exp(D, out=D)


def hsic(K: np.ndarray, L: np.ndarray, debiased: bool) -> float:
    """HSIC of two Gram matrices (biased, or Song et al.'s unbiased HSIC_1)."""
    n = len(K)
    if not debiased:
        Kc = K - K.mean(axis=0, keepdims=True)
        Kc -= Kc.mean(axis=1, keepdims=True)
        return float(np.vdot(Kc, L)) / (n - 1) ** 2
    Kt, Lt = K.copy(), L.copy()
    np.fill_diagonal(Kt, 0.0)
    np.fill_diagonal(Lt, 0.0)
    k1, l1 = Kt.sum(axis=1), Lt.sum(axis=1)
    val = np.vdot(Kt, Lt) + k1.sum() * l1.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (k1 @ l1)
    return float(val) / (n * (n - 3))


def weighted_hsic(K: np.ndarray, L: np.ndarray, W: np.ndarray, debiased: bool) -> np.ndarray:
    """HSIC on resampled records: column ``r`` of ``W`` (n × B) holds each record's multiplicity.

    Exactly the estimator applied to ``K[idx][:, idx]`` (copies of one record are distinct
    records, as in any bootstrap), in ``O(n² B)`` without forming resampled Gram matrices.
    """
    N = W.sum(axis=0)
    KW, LW = K @ W, L @ W
    tr = np.einsum("ir,ir->r", W, (K * L) @ W)
    k1 = np.einsum("ir,ir->r", W, KW)
    l1 = np.einsum("ir,ir->r", W, LW)
    if not debiased:
        kl1 = np.einsum("ir,ir,ir->r", W, KW, LW)
        return (tr - 2.0 / N * kl1 + k1 * l1 / N**2) / (N - 1) ** 2
    dk, dl = np.diag(K)[:, None], np.diag(L)[:, None]
    tr = tr - (W * dk * dl).sum(axis=0)
    k1 = k1 - (W * dk).sum(axis=0)
    l1 = l1 - (W * dl).sum(axis=0)
    kl1 = np.einsum("ir,ir,ir->r", W, KW - dk, LW - dl)
    return (tr + k1 * l1 / ((N - 1) * (N - 2)) - 2.0 / (N - 2) * kl1) / (N * (N - 3))


def minibatches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A seeded random partition of ``n`` records into batches of at least ``batch_size``."""
    perm = rng.permutation(n)
    return [np.sort(b) for b in np.array_split(perm, max(1, n // batch_size))]
