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
minibatches and jackknife replicates.

Replicates (:mod:`ecgprobe.analyzers._stats.jackknife`): exact CKA is recomputed on the records that
remain when a group of patients is left out (0/1 record weights); minibatch CKA leaves out one
minibatch at a time, minibatches being groups of whole patients.
"""

from __future__ import annotations

import numpy as np

from ecgprobe.analyzers._stats.cka_linear import ratio
from ecgprobe.analyzers._stats.jackknife import group_plan
from ecgprobe.analyzers._stats.neighbors import distance_blocks
from ecgprobe.exceptions import AnalysisError

MEDIAN_SAMPLE = 2000
_GRAM_CACHE_BYTES = 1 << 30


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
    """HSIC on weighted records: column ``r`` of ``W`` (n × B) holds each record's multiplicity.

    Exactly the estimator applied to ``K[idx][:, idx]``, in ``O(n² B)`` without forming the
    sub-matrices. With 0/1 weights (the jackknife) that is the estimator on a subset of
    records; with larger multiplicities copies of one record would count as distinct records,
    which biases the unbiased estimator (the reason the analyzer does not bootstrap).
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


def minibatches(
    n: int, batch_size: int, rng: np.random.Generator, patient_ids: np.ndarray | None = None
) -> list[np.ndarray]:
    """A seeded random partition of ``n`` records into ``n // batch_size`` batches of near-equal
    size, whole patients per batch (each record its own patient without ``patient_ids``)."""
    plan = group_plan(n, max(1, n // batch_size), rng, patient_ids)
    return [np.sort(plan.order[s]) for s in plan.slices]


def exact_matrix(
    mats_a: list[np.ndarray],
    mats_b: list[np.ndarray],
    sig_a: list[float],
    sig_b: list[float],
    within: bool,
    debiased: bool,
    W: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact RBF CKA for every layer pair, and its replicates on weighted records (``W``: n × r).

    Gram matrices of side A are built one at a time; those of side B are kept when they fit in
    1 GiB, else rebuilt per pair.
    """
    n, p, q = len(mats_a[0]), len(mats_a), len(mats_b)
    cache: dict[int, np.ndarray] = {}
    keep = q * n * n * 8 <= _GRAM_CACHE_BYTES

    def gram_b(j: int) -> np.ndarray:
        L = cache.get(j)
        if L is None:
            L = rbf_gram(mats_b[j], sig_b[j])
            if keep:
                cache[j] = L
        return L

    def terms(K: np.ndarray, L: np.ndarray) -> tuple[float, np.ndarray]:
        return hsic(K, L, debiased), weighted_hsic(K, L, W, debiased)

    self_a: dict[int, tuple[float, np.ndarray]] = {}
    cross: dict[tuple[int, int], tuple[float, np.ndarray]] = {}
    for i in range(p):
        K = rbf_gram(mats_a[i], sig_a[i])
        self_a[i] = terms(K, K)
        for j in range(i if within else 0, q):
            cross[i, j] = self_a[i] if within and i == j else terms(K, gram_b(j))
    self_b = self_a if within else {j: terms(gram_b(j), gram_b(j)) for j in range(q)}
    point, boot = np.empty((p, q)), np.empty((W.shape[1], p, q))
    for (i, j), (h, hb) in cross.items():
        for ii, jj in {(i, j), (j, i)} if within else {(i, j)}:
            point[ii, jj] = ratio(h, self_a[ii][0], self_b[jj][0])
            boot[:, ii, jj] = ratio(hb, self_a[ii][1], self_b[jj][1])
    return point, boot


def minibatch_matrix(
    mats_a: list[np.ndarray],
    mats_b: list[np.ndarray],
    sig_a: list[float],
    sig_b: list[float],
    within: bool,
    batches: list[np.ndarray],
    V: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Minibatch RBF CKA for every layer pair and replicates reweighting minibatches (``V``:
    r × batches weights; leave-one-batch-out for the jackknife)."""
    t_n, p, q = len(batches), len(mats_a), len(mats_b)
    hxy, hxx, hyy = np.empty((t_n, p, q)), np.empty((t_n, p)), np.empty((t_n, q))
    for t, idx in enumerate(batches):
        Ks = [rbf_gram(M[idx], s) for M, s in zip(mats_a, sig_a)]
        Ls = Ks if within else [rbf_gram(M[idx], s) for M, s in zip(mats_b, sig_b)]
        hxx[t] = [hsic(K, K, True) for K in Ks]
        hyy[t] = hxx[t] if within else [hsic(L, L, True) for L in Ls]
        for i in range(p):
            for j in range(q):
                hxy[t, i, j] = hxx[t, i] if within and i == j else hsic(Ks[i], Ls[j], True)
    point = ratio(hxy.mean(0), hxx.mean(0)[:, None], hyy.mean(0)[None, :])
    Vn = V / t_n
    boot = ratio(np.einsum("rt,tij->rij", Vn, hxy), (Vn @ hxx)[:, :, None], (Vn @ hyy)[:, None, :])
    return point, boot
