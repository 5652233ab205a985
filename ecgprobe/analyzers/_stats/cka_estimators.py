"""The CKA estimators as functions of matrices: :func:`linear_cka` (feature space),
:func:`rbf_cka` (Gaussian kernels, exact or minibatch) and :func:`cka_from_grams` (any Gram
matrices, the reference). The :class:`~ecgprobe.analyzers.cka.CKA` analyzer, which documents the
methods, adds layers, ids and intervals; it re-exports these functions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ecgprobe.analyzers._stats import cka_linear as lin
from ecgprobe.analyzers._stats import cka_rbf as rbf
from ecgprobe.exceptions import AnalysisError, ArgumentTypeError, ConfigError, DataError

__all__ = ["PRECISIONS", "bandwidths", "cka_from_grams", "linear_cka", "precision_dtype", "rbf_cka"]

PRECISIONS = ("mixed", "float64")


def _check_pair(X: np.ndarray, Y: np.ndarray, min_n: int) -> tuple[np.ndarray, np.ndarray]:
    X, Y = np.asarray(X), np.asarray(Y)
    for name, M in (("X", X), ("Y", Y)):
        if not (np.issubdtype(M.dtype, np.number) and not np.issubdtype(M.dtype, np.complexfloating)):
            raise ArgumentTypeError(
                f"{name} must be a real-valued numeric matrix (records x features), got dtype {M.dtype}; "
                f"convert it with np.asarray({name}, dtype=float) (or pass Embeddings.X)"
            )
        if M.ndim != 2:
            raise ConfigError(f"{name} must be a 2-D matrix (records x features), got shape {M.shape}")
        if not np.isfinite(M).all():
            raise DataError(f"{name} holds non-finite values; drop or re-extract those records")
    if len(X) != len(Y):
        raise DataError(
            f"X has {len(X)} rows but Y has {len(Y)}; CKA compares two representations of the same records"
        )
    if len(X) < min_n:
        raise AnalysisError(f"CKA needs at least {min_n} records here, got {len(X)}")
    return X, Y


def precision_dtype(precision: str) -> type:
    """The product dtype of a ``precision`` setting (ConfigError naming it when unknown)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    return np.float32 if precision == "mixed" else np.float64


def _finite_or_raise(value: float, what: str) -> float:
    if not np.isfinite(value):
        raise AnalysisError(
            f"{what} is undefined: one representation has no variance across these records "
            "(or, debiased, too few records for the unbiased estimator to be positive)"
        )
    return float(value)


def linear_cka(X: np.ndarray, Y: np.ndarray, debiased: bool = False, *, precision: str = "mixed") -> float:
    """Linear CKA of two representations of the same records (rows), in feature space.

    Args:
        X: ``(n, d1)``.
        Y: ``(n, d2)``; row ``i`` is the same record as in ``X``.
        debiased: use the unbiased HSIC estimator (Song et al. 2012; needs ``n ≥ 4``).
        precision: ``"mixed"`` (float64 centring and accumulation, float32 products) or
            ``"float64"``.

    Raises:
        ConfigError: not 2-D, or an unknown precision.
        DataError: row counts differ or values are not finite.
        AnalysisError: a side has no variance.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> X = rng.standard_normal((200, 10))
        >>> Q, _ = np.linalg.qr(rng.standard_normal((10, 10)))
        >>> round(linear_cka(X, 3.0 * X @ Q), 6)
        1.0
    """
    X, Y = _check_pair(X, Y, 4 if debiased else 2)
    dt = precision_dtype(precision)
    A, B = lin.make_side(["X"], [X], dt), lin.make_side(["Y"], [Y], dt)
    return _finite_or_raise(lin.point_cka(A, B, False, debiased)[0, 0], "linear CKA")


def cka_from_grams(K: np.ndarray, L: np.ndarray, debiased: bool = False) -> float:
    """CKA of two ``n×n`` Gram matrices (float64), e.g. a custom kernel; the reference method.

    Raises:
        ConfigError: the matrices are not square of the same size.
    """
    K, L = np.asarray(K, dtype=np.float64), np.asarray(L, dtype=np.float64)
    if K.ndim != 2 or K.shape != L.shape or K.shape[0] != K.shape[1]:
        raise ConfigError(f"Gram matrices must be square and of the same size, got {K.shape} and {L.shape}")
    value = lin.ratio(rbf.hsic(K, L, debiased), rbf.hsic(K, K, debiased), rbf.hsic(L, L, debiased))
    return _finite_or_raise(float(value), "CKA")


def rbf_cka(
    X: np.ndarray,
    Y: np.ndarray,
    sigma: float | tuple[float, float] | None = None,
    debiased: bool = False,
    *,
    batch_size: int | None = None,
    max_exact_n: int = 5000,
    seed: int = 0,
) -> float:
    """CKA with Gaussian (RBF) kernels.

    Args:
        X: ``(n, d1)``.
        Y: ``(n, d2)``, same records in the same order.
        sigma: bandwidth(s) ``σ`` of ``exp(−||x−y||²/(2σ²))``: one value for both sides, a
            pair ``(σx, σy)``, or ``None`` for the median heuristic per side.
        debiased: unbiased HSIC (Song et al. 2012).
        batch_size: minibatch size; default: exact when ``n ≤ max_exact_n``, else batches of
            1,024 (the minibatch estimator is always debiased: pass ``debiased=True``).
        max_exact_n: largest ``n`` computed from full Gram matrices.
        seed: seeds the median-heuristic subsample and the minibatch partition.

    Raises:
        ConfigError: a minibatch estimate without ``debiased=True``, or a bad ``sigma``.
        AnalysisError: undefined (constant representations, too few records).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> X = rng.standard_normal((100, 5))
        >>> round(rbf_cka(X, X), 6)
        1.0
    """
    X, Y = _check_pair(X, Y, 6 if (debiased or batch_size) else 2)
    rng = np.random.default_rng(seed)
    sx, sy = bandwidths(sigma, X, Y, rng)
    n = len(X)
    if batch_size is None and n <= max_exact_n:
        K, L = rbf.rbf_gram(X, sx), rbf.rbf_gram(Y, sy)
        return cka_from_grams(K, L, debiased)
    if not debiased:
        raise ConfigError(
            f"with n={n} > max_exact_n={max_exact_n} (or batch_size set), RBF CKA uses the minibatch "
            "estimator, which is only consistent with unbiased HSIC: pass debiased=True "
            f"(or raise max_exact_n to {n} for the exact, O(n²)-memory computation)"
        )
    bs = batch_size or 1024
    if bs < 6:
        raise ConfigError(f"batch_size must be at least 6 for the unbiased estimator, got {bs}")
    batches = rbf.minibatches(n, bs, rng)
    point, _ = rbf.minibatch_matrix([X], [Y], [sx], [sy], False, batches, np.ones((0, len(batches))))
    return _finite_or_raise(float(point[0, 0]), "minibatch RBF CKA")


def bandwidths(sigma: Any, X: np.ndarray, Y: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """RBF bandwidths ``(σx, σy)``: the given value(s), or the median heuristic per side."""
    if sigma is None:
        return rbf.median_sigma(X, rng, "X"), rbf.median_sigma(Y, rng, "Y")
    pair = tuple(sigma) if isinstance(sigma, (tuple, list)) else (sigma, sigma)
    if len(pair) != 2 or not all(isinstance(s, (int, float)) and s > 0 for s in pair):
        raise ConfigError(f"sigma must be a positive number, a pair of them, or None; got {sigma!r}")
    return float(pair[0]), float(pair[1])
