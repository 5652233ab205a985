"""Spearman's rank correlation across a handful of models, with an interval.

The interval is Fisher's z-transform with the variance of Bonett & Wright (2000, Psychometrika
65(1), "Sample size requirements for estimating Pearson, Kendall and Spearman correlations"):
``z = atanh(ρ_s)``, ``se = sqrt((1 + ρ_s²/2) / (n − 3))``, ``tanh(z ± z_α se)``. Its coverage at
95 % from ``benchmarks/coverage_spearman.py`` (bivariate normal, population Spearman
``6/π asin(r/2)``, 4,000 simulated sets of models each):

==========  ======  ======  ======
population  n = 5   n = 9   n = 20
==========  ======  ======  ======
0.000       98.4 %  96.3 %  96.0 %
0.483       95.0 %  96.5 %  95.3 %
0.786       85.4 %  93.8 %  95.4 %
==========  ======  ======  ======

So it is close to nominal from about 9 models on, conservative near 0 with few, and short of
nominal for a strong correlation among 5 models (Spearman's ρ takes few values there).

With fewer than 4 models no interval exists (``n − 3`` must be positive): the interval is NaN and
the reason is returned.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

__all__ = ["spearman_interval"]


def _ranks(v: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean rank), 1-based."""
    order = np.argsort(v, kind="mergesort")
    ranks = np.empty(len(v), dtype=float)
    ranks[order] = np.arange(1, len(v) + 1)
    for value in np.unique(v):
        tie = v == value
        if tie.sum() > 1:
            ranks[tie] = ranks[tie].mean()
    return ranks


def spearman_interval(
    x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, level: float = 0.95
) -> tuple[float, float, float, int, str]:
    """Spearman ρ of ``x`` and ``y`` (pairs with a NaN dropped) and its Fisher-z interval.

    Returns:
        ``(rho, low, high, n, why)``: ``why`` is empty, or says why the interval (or ρ) is NaN.

    Raises:
        ValueError: ``x`` and ``y`` of different lengths, or ``level`` outside (0, 1).

    Example:
        >>> rho, lo, hi, n, why = spearman_interval([1, 2, 3, 4, 5, 6], [2, 1, 4, 3, 6, 5])
        >>> round(rho, 3), n, why
        (0.829, 6, '')
    """
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"x and y must be 1-d of the same length, got {a.shape} and {b.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    ok = np.isfinite(a) & np.isfinite(b)
    a, b, n = a[ok], b[ok], int(ok.sum())
    nan = float("nan")
    if n < 3:
        return nan, nan, nan, n, f"{n} models with both values: a rank correlation needs at least 3"
    ra, rb = _ranks(a), _ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return nan, nan, nan, n, "one of the two is the same for every model"
    rho = float(np.corrcoef(ra, rb)[0, 1])
    if n < 4:
        return rho, nan, nan, n, f"{n} models: an interval needs at least 4"
    zc = NormalDist().inv_cdf(0.5 + level / 2)
    z = math.atanh(max(min(rho, 1 - 1e-12), -1 + 1e-12))
    se = math.sqrt((1 + rho**2 / 2) / (n - 3))
    return rho, math.tanh(z - zc * se), math.tanh(z + zc * se), n, ""
