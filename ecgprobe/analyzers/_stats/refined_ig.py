"""Gradient attributions with as few Integrated-Gradients steps as their completeness allows.

Integrated Gradients satisfies completeness: the attributions of an example add up to
``f(x) − f(baseline)``, and the gap left by the quadrature (captum's convergence delta) is a
stated error of each example. :func:`refined_attribution` starts every example with
:data:`FIRST_STEPS` Gauss-Legendre steps and recomputes those whose gap exceeds ``tolerance`` of
``|f(x) − f(baseline)|`` with twice as many, up to ``max_steps``; the steps each example used are
returned beside its gap. For networks that are close to piecewise linear along the path (ReLU
CNNs) 8 steps already close the gap to ~1e-7, 4x cheaper than a fixed 32.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ecgprobe.analyzers._stats.attribution_methods import gradient_attribution

__all__ = ["FIRST_STEPS", "refined_attribution"]

#: Integrated-Gradients steps of the first pass.
FIRST_STEPS = 8


def refined_attribution(
    model: Any,
    x: np.ndarray,
    baseline: np.ndarray,
    target: int,
    *,
    method: str,
    max_steps: int,
    tolerance: float,
    **options: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`~ecgprobe.analyzers._stats.attribution_methods.gradient_attribution` of every example,
    refined until its completeness gap is within ``tolerance`` (``ig`` only; other methods, and
    ``tolerance == 0``, run once with ``max_steps``).

    Returns:
        ``(maps (k, L, n), deltas (k,), steps (k,))``.
    """
    k = len(x)
    maps = np.empty((k, *x.shape[1:]), dtype=np.float32)
    delta = np.empty(k)
    steps = np.zeros(k, dtype=np.int64)
    todo = np.arange(k)
    n = min(max_steps, FIRST_STEPS) if method == "ig" and tolerance > 0 else max_steps
    while len(todo):
        maps[todo], delta[todo] = gradient_attribution(
            model, x[todo], baseline[todo], target, method=method, n_steps=n, **options
        )
        steps[todo] = n
        if method != "ig" or n >= max_steps:
            break
        total = maps[todo].sum(axis=(1, 2), dtype=np.float64) - delta[todo]  # = f(x) - f(baseline)
        todo = todo[np.abs(delta[todo]) > tolerance * np.abs(total)]
        n = min(2 * n, max_steps)
    return maps, delta, steps
