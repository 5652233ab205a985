"""Label-free geometry of an embedding: RankMe, TwoNN intrinsic dimension, IsoScore (pure NumPy).

- :func:`rankme` (Garrido et al. 2023, "RankMe: Assessing the downstream performance of pretrained
  self-supervised representations by their rank"): ``exp(−Σ p_k log p_k)`` with
  ``p_k = σ_k / Σ σ + ε`` over the singular values ``σ`` of the ``(n, d)`` matrix — the entropy
  effective rank of the *singular values* (not of the eigenvalues ``σ²``, which
  :func:`~ecgprobe.analyzers._stats.descriptors.spectrum` reports as ``entropy_rank``).
- :func:`twonn` (Facco et al. 2017, "Estimating the intrinsic dimension of datasets by a minimal
  neighborhood information"): ``μ_i = r2_i / r1_i`` from each point's first and second nearest
  neighbour distances is Pareto with exponent ``d`` on a locally uniform ``d``-manifold; the
  published fit is the regression through the origin of ``−log(1 − F(μ))`` on ``log μ`` over
  the empirical CDF ``F``, leaving out the 10 % largest ``μ`` (the tail most affected by
  curvature and density changes). ``method="mle"`` gives ``(N − 1) / Σ log μ`` instead (the
  unbiased version of the Pareto MLE ``N / Σ log μ``). Duplicate rows have ``r1 = 0`` and an
  infinite ``μ``; they are removed first (one copy kept), and the count is returned by
  :func:`n_duplicates` so that callers can say so.
- :func:`isoscore` (Rudman, Gillman, Rayne & Eickhoff 2022, "IsoScore: Measuring the uniformity
  of embedding space utilization", Findings of ACL 2022, Algorithm 1): reorient by PCA, take the
  variance vector of the principal coordinates, scale it to norm ``√d``, measure its distance to
  the all-ones vector ``δ = ‖Σ̂ − 1‖ / √(2(d − √d))``, turn it into the fraction of dimensions
  used ``φ = (d − δ²(d − √d))² / d²`` and map to [0, 1]: ``ι = (d φ − 1)/(d − 1)``. Known
  answers (checked in the tests, since the ``IsoScore`` package is not a dependency): 1 for
  isotropic data, 0 when all variance lies in one direction, ``(k − 1)/(d − 1)`` for ``k``
  equal-variance directions out of ``d``.

:func:`standardise` z-scores each feature on the rows given (constant features are dropped): the
three statistics are then about the shape of the embedding, not the units or scales of its
features. All three are biased by the number of points ``n`` (RankMe and IsoScore shrink as the
sample covariance's eigenvalues spread, TwoNN depends on the neighbour scale), so values are
comparable across layers or models only at the same ``n``.
"""

from __future__ import annotations

import numpy as np

from ecgprobe.exceptions import ConfigError, DataError

__all__ = ["isoscore", "n_duplicates", "rankme", "standardise", "twonn"]

#: Added to the normalised singular values before the entropy (Garrido et al. 2023).
RANKME_EPS = 1e-7
#: Share of the largest ratios μ the TwoNN regression leaves out (Facco et al. 2017).
TWONN_DISCARD = 0.1


def _matrix(X: np.ndarray, least: int, what: str) -> np.ndarray:
    A = np.asarray(X, dtype=np.float64)
    if A.ndim != 2 or len(A) < least:
        raise DataError(f"{what} needs an (n, d) matrix with n >= {least}, got shape {A.shape}")
    if not np.isfinite(A).all():
        raise DataError(f"{what}: the matrix has non-finite values; drop or re-extract those rows")
    return A


def standardise(X: np.ndarray) -> np.ndarray:
    """``X`` with each feature z-scored on these rows (float64); constant features are dropped.

    Raises:
        DataError: fewer than 2 rows, non-finite values, or no feature that varies.

    Example:
        >>> [round(float(v), 3) for v in standardise(np.array([[1.0, 5.0], [3.0, 5.0]])).ravel()]
        [-0.707, 0.707]
    """
    A = _matrix(X, 2, "standardise")
    A = A - A.mean(axis=0)
    sd = A.std(axis=0, ddof=1)
    keep = sd > 1e-12 * max(float(sd.max(initial=0.0)), np.finfo(float).tiny)
    if not keep.any():
        raise DataError("standardise: no feature varies over these rows (every embedding is the same)")
    return A[:, keep] / sd[keep]


def rankme(X: np.ndarray, *, eps: float = RANKME_EPS) -> float:
    """RankMe: the entropy effective rank of the singular values of ``X`` (between 1 and ``min(n, d)``).

    Args:
        X: ``(n, d)`` embeddings (standardise them first to make the value unit-free).
        eps: added to the normalised singular values (the paper's 1e-7).

    Raises:
        DataError: fewer than 2 rows or non-finite values.

    Example:
        >>> X = np.random.default_rng(0).standard_normal((20000, 8))
        >>> round(rankme(X), 1)
        8.0
    """
    A = _matrix(X, 2, "rankme")
    s = np.linalg.svd(A, compute_uv=False)
    total = s.sum()
    if not total > 0:
        return 0.0
    p = s / total + eps
    return float(np.exp(-(p * np.log(p)).sum()))


def n_duplicates(X: np.ndarray) -> int:
    """How many rows of ``X`` repeat an earlier row exactly (what :func:`twonn` removes)."""
    A = np.asarray(X)
    return int(len(A) - len(np.unique(A, axis=0)))


def twonn(X: np.ndarray, *, discard: float = TWONN_DISCARD, method: str = "regression") -> float:
    """TwoNN intrinsic dimension (Facco et al. 2017) of the points ``X``.

    Args:
        X: ``(n, d)`` points; exact duplicate rows are removed first (their ``r1`` is 0).
        discard: share of the largest ``μ = r2/r1`` left out of the fit (the paper's 0.1).
        method: ``"regression"`` (the published fit through the origin) or ``"mle"``.

    Raises:
        ConfigError: ``discard`` outside [0, 1) or an unknown ``method``.
        DataError: fewer than 3 distinct points, or non-finite values.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> X = rng.standard_normal((2000, 3)) @ rng.standard_normal((3, 50))  # a 3-d plane in 50-d
        >>> 2.5 < twonn(X) < 3.5
        True
    """
    from sklearn.neighbors import NearestNeighbors

    if not (isinstance(discard, (int, float)) and 0 <= discard < 1):
        raise ConfigError(f"discard must be a share in [0, 1), e.g. 0.1; got {discard!r}")
    if method not in ("regression", "mle"):
        raise ConfigError(f"method must be 'regression' or 'mle', got {method!r}")
    A = np.unique(_matrix(X, 3, "twonn"), axis=0)
    if len(A) < 3:
        raise DataError(f"twonn needs at least 3 distinct points, got {len(A)}")
    dist, _ = NearestNeighbors(n_neighbors=3).fit(A).kneighbors(A)
    r1, r2 = dist[:, 1], dist[:, 2]  # column 0 is the point itself
    ok = r1 > 0  # distinct rows, so only a rounding tie could leave r1 = 0
    mu = np.sort(r2[ok] / r1[ok])
    n = len(mu)
    logmu = np.log(mu)
    if method == "mle":
        return float((n - 1) / logmu.sum()) if logmu.sum() > 0 else float("inf")
    keep = min(max(int(np.floor(n * (1 - discard))), 2), n - 1)  # F = 1 at the largest μ
    x = logmu[:keep]
    y = -np.log1p(-np.arange(1, keep + 1) / n)  # the empirical CDF F(μ_(i)) = i / n
    sxx = float(x @ x)
    return float(x @ y / sxx) if sxx > 0 else float("inf")


def isoscore(X: np.ndarray) -> float:
    """IsoScore (Rudman et al. 2022, Algorithm 1): 1 for isotropic data, 0 for one direction.

    Args:
        X: ``(n, d)`` points, ``d >= 2``.

    Raises:
        DataError: fewer than 2 rows or 2 columns, non-finite values, or no variance.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> round(isoscore(rng.standard_normal((20000, 4)) * [1, 1, 0, 0]), 2)  # 2 of 4 used: 1/3
        0.33
    """
    A = _matrix(X, 2, "isoscore")
    d = A.shape[1]
    if d < 2:
        raise DataError(f"isoscore needs at least 2 features, got {d}")
    A = A - A.mean(axis=0)
    # steps 1-2: the variances of the principal coordinates are the covariance eigenvalues
    var = np.clip(np.linalg.eigvalsh(A.T @ A / max(len(A) - 1, 1)), 0.0, None)
    norm = float(np.linalg.norm(var))
    if not norm > 0:
        raise DataError("isoscore: the points have no variance")
    sigma = np.sqrt(d) * var / norm  # step 3: the variance vector scaled to norm sqrt(d)
    delta = np.linalg.norm(sigma - 1.0) / np.sqrt(2 * (d - np.sqrt(d)))  # step 4
    phi = (d - delta**2 * (d - np.sqrt(d))) ** 2 / d**2  # step 5: fraction of dimensions used
    return float(np.clip((d * phi - 1) / (d - 1), 0.0, 1.0))  # step 6
