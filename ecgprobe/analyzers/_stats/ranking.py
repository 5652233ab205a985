"""Rank statistics of a leaderboard: rank intervals, groups of models not distinguishable from the
best (Holm-adjusted paired bootstrap), adjacent-rank tests, and an aggregate over tasks.

Every function takes bootstrap replicates ``(B, M)`` of one score per model (higher is better)
computed from the *same* resamples for every model (same patient draws: paired), as the
benchmark workflow computes them (:mod:`ecgprobe.workflows.benchmark`).

- Rank interval: the rank of each model (1 = best, ties share the mean rank) in each replicate;
  its percentile interval. A rank interval is a statement about the ordering, so it is wide
  whenever neighbours are close: most adjacent ranks in a leaderboard are not significant
  (as MTEB found), and :func:`rank_table` says how many are.
- Top group: each model's paired bootstrap difference to the best (by point estimate) and its
  two-sided bootstrap p-value ``2 min(P*(d <= 0), P*(d >= 0))``, Holm-adjusted; the top group is
  the best plus every model whose adjusted p is at least ``alpha``. The family of the adjustment
  is every pair of models, not only the ``M - 1`` comparisons with the best: the best is chosen
  from the same data, so "best vs worst" is a test of the range, and Holm over the ``M - 1``
  comparisons let 8-10 % of null benchmarks (four equal models) drop a model at alpha 0.05 in
  ``benchmarks/coverage_benchmark.py``. Over all pairs Holm bounds that error by alpha whatever
  model is picked (at some cost in power). Adjacent-rank tests use the same adjusted p-values.
- Aggregate: the mean score (and the mean rank) over tasks per model. Replicate ``b`` of the
  aggregate averages replicate ``b`` of every task. Tasks of one dataset share its test
  patients and its resamples (one bootstrap seed per dataset), so their dependence is kept;
  tasks on different datasets are resampled with independent seeds, so replicate ``b`` joins
  independent draws, which is the bootstrap of a mean of independent estimates. The percentile
  interval of those replicates is the aggregate's interval.

Coverage at 95 % from ``benchmarks/coverage_benchmark.py`` (four encoders, four one-label tasks
on two datasets, prevalence 0.25, shared latent rho 0.5; 1000 simulated benchmarks, 1000
resamples each; ``benchmarks/results/coverage_benchmark.json``; Monte Carlo SE about 0.4 %)::

    patients per dataset                  200      800
    aggregate mean-AUROC interval        94.8 %   94.3 %   (width 0.076 / 0.038)
    per-task rank interval               99.6 %   99.9 %   (conservative: ranks are discrete)
    top group FWER, equal encoders        5.8 %    5.0 %   (nominal 5 %)
    adjacent pairs called significant     0.08 %   0.04 %  (equal encoders)

With about 50 positives per task the top group's error is slightly above nominal, as percentile
intervals of AUROC are at that size (:mod:`ecgprobe.analyzers._stats.bootstrap`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ecgprobe.analyzers._stats.bootstrap import percentile_ci
from ecgprobe.exceptions import ConfigError

__all__ = ["aggregate", "bootstrap_p", "holm", "rank_interval", "rank_rows", "rank_table"]


def rank_rows(values: np.ndarray) -> np.ndarray:
    """Ranks along the last axis, 1 = highest value, ties share their mean rank; NaN rows stay NaN.

    Example:
        >>> rank_rows(np.array([[0.7, 0.9, 0.7]])).tolist()
        [[2.5, 1.0, 2.5]]
    """
    from scipy.stats import rankdata

    v = np.asarray(values, dtype=np.float64)
    out = rankdata(-np.nan_to_num(v, nan=0.0), axis=-1, method="average")
    bad = np.isnan(v).any(axis=-1)
    out[bad] = np.nan
    return out


def bootstrap_p(diff: np.ndarray) -> np.ndarray:
    """Two-sided bootstrap p-value of no difference along axis 0, ``2 min(P*(d<=0), P*(d>=0))``
    capped at 1 (the paired bootstrap's rule, :mod:`ecgprobe.analyzers.paired_bootstrap`); NaN
    replicates are ignored."""
    d = np.asarray(diff, dtype=np.float64)
    ok = np.isfinite(d)
    n = ok.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        le = np.where(ok, d <= 0, False).sum(0) / n
        ge = np.where(ok, d >= 0, False).sum(0) / n
    return np.where(n > 0, np.minimum(1.0, 2 * np.minimum(le, ge)), np.nan)


def holm(p: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control; NaN stays NaN).

    Example:
        >>> holm([0.01, 0.04, 0.03]).round(2).tolist()
        [0.03, 0.06, 0.06]
    """
    p = np.asarray(p, dtype=np.float64)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if not len(ok):
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adj, 1.0)
    return out


def rank_interval(ranks: np.ndarray, level: float = 0.95) -> np.ndarray:
    """Percentile interval of bootstrap ranks along axis 0, ``(M, 2)``, without interpolation:
    the lower end is an attained rank at or below the ``(1 - level) / 2`` quantile, the upper end
    one at or above the ``(1 + level) / 2`` quantile (a rank between two attained ranks means
    nothing)."""
    r = np.asarray(ranks, dtype=np.float64)
    ok = np.isfinite(r).all(axis=1)
    if not ok.any():
        return np.full((r.shape[1], 2), np.nan)
    lo = np.quantile(r[ok], (1 - level) / 2, axis=0, method="lower")
    hi = np.quantile(r[ok], (1 + level) / 2, axis=0, method="higher")
    return np.stack([lo, hi], axis=-1)


def _pairwise_holm(reps: np.ndarray) -> np.ndarray:
    """Holm-adjusted bootstrap p-values of every pair of models, ``(M, M)`` (symmetric, NaN on
    the diagonal), the family being all ``M (M - 1) / 2`` pairs."""
    m = reps.shape[1]
    i, j = np.triu_indices(m, k=1)
    adj = holm(bootstrap_p(reps[:, i] - reps[:, j])) if len(i) else np.zeros(0)
    out = np.full((m, m), np.nan)
    out[i, j] = out[j, i] = adj
    return out


def _check(point: np.ndarray, reps: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    point, reps = np.asarray(point, dtype=np.float64), np.asarray(reps, dtype=np.float64)
    if point.ndim != 1 or reps.ndim != 2 or reps.shape[1] != len(point):
        raise ConfigError(
            f"rank statistics need point (M,) and replicates (B, M); got {point.shape} and {reps.shape}"
        )
    if not 0 < level < 1:
        raise ConfigError(f"ci_level must lie in (0, 1), e.g. 0.95; got {level!r}")
    return point, reps


def rank_table(
    point: np.ndarray, reps: np.ndarray, names: Sequence[str], *, level: float = 0.95
) -> dict[str, Any]:
    """Ranks with intervals, the top group and the adjacent-rank tests of one task.

    Args:
        point: ``(M,)`` score per model on the full test set (higher is better).
        reps: ``(B, M)`` paired bootstrap replicates (same resamples for every model).
        names: the models' names.
        level: confidence level; the tests use ``alpha = 1 - level``.

    Returns:
        ``rows`` (per model, best first: name, value, value_ci, rank, rank_ci, diff_to_best,
        diff_ci, p, p_holm, top_group), ``adjacent`` (per consecutive pair in the point order:
        upper, lower, diff, diff_ci, p, p_holm, significant), ``best``, ``n_top``,
        ``n_adjacent_significant``, ``alpha``.

    Raises:
        ConfigError: mismatched shapes or a level outside (0, 1).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> reps = np.array([0.8, 0.7]) + 0.01 * rng.normal(size=(200, 2))
        >>> rank_table(np.array([0.8, 0.7]), reps, ["a", "b"])["n_top"]
        1
    """
    point, reps = _check(point, reps, level)
    alpha = 1 - level
    names = [str(n) for n in names]
    order = np.argsort(-point, kind="stable")
    best = int(order[0])
    ranks = rank_rows(reps)
    rank_ci = rank_interval(ranks, level)
    value_ci = percentile_ci(reps, level)
    diff = reps[:, [best]] - reps  # >= 0 when the best stays ahead
    diff_ci = percentile_ci(diff, level)
    others = [int(j) for j in order[1:]]
    pair_p = _pairwise_holm(reps)
    p = np.full(len(point), np.nan)
    p[others] = bootstrap_p(diff[:, others])
    p_holm = np.full(len(point), np.nan)
    p_holm[others] = pair_p[best, others]
    point_rank = rank_rows(point[None, :])[0]
    rows = []
    for j in order:
        j = int(j)
        top = j == best or bool(p_holm[j] >= alpha)
        rows.append({
            "name": names[j],
            "value": float(point[j]),
            "value_ci": value_ci[j].tolist(),
            "rank": float(point_rank[j]),
            "rank_ci": rank_ci[j].tolist(),
            "diff_to_best": float(point[best] - point[j]),
            "diff_ci": diff_ci[j].tolist(),
            "p": None if j == best else float(p[j]),
            "p_holm": None if j == best else float(p_holm[j]),
            "top_group": top,
        })  # fmt: skip
    adj_d = reps[:, order[:-1]] - reps[:, order[1:]]
    adj_p = bootstrap_p(adj_d) if len(order) > 1 else np.zeros(0)
    adj_holm = pair_p[order[:-1], order[1:]]
    adj_ci = percentile_ci(adj_d, level) if len(order) > 1 else np.zeros((0, 2))
    adjacent = [
        {
            "upper": names[int(order[k])],
            "lower": names[int(order[k + 1])],
            "diff": float(point[order[k]] - point[order[k + 1]]),
            "diff_ci": adj_ci[k].tolist(),
            "p": float(adj_p[k]),
            "p_holm": float(adj_holm[k]),
            "significant": bool(adj_holm[k] < alpha),
        }
        for k in range(len(order) - 1)
    ]
    return {
        "rows": rows,
        "adjacent": adjacent,
        "best": names[best],
        "n_top": sum(r["top_group"] for r in rows),
        "n_adjacent_significant": sum(a["significant"] for a in adjacent),
        "alpha": alpha,
    }


def aggregate(
    points: np.ndarray, reps: np.ndarray, names: Sequence[str], *, level: float = 0.95
) -> dict[str, Any]:
    """Mean score and mean rank over tasks per model, with percentile intervals.

    Args:
        points: ``(T, M)`` point scores per task and model.
        reps: ``(B, T, M)`` replicates; replicate ``b`` of tasks on one dataset from the same
            resample, of tasks on different datasets from independent ones (see the module
            docstring).
        names: the models' names.
        level: confidence level.

    Returns:
        ``rows`` (per model, by mean score: name, mean, mean_ci, mean_rank, mean_rank_ci),
        ``ranks`` (rank table of the mean score, :func:`rank_table`), ``n_tasks``.

    Raises:
        ConfigError: mismatched shapes or a level outside (0, 1).
    """
    points, reps = np.asarray(points, dtype=np.float64), np.asarray(reps, dtype=np.float64)
    if points.ndim != 2 or reps.ndim != 3 or reps.shape[1:] != points.shape:
        raise ConfigError(
            f"aggregate needs points (T, M) and replicates (B, T, M); got {points.shape}, {reps.shape}"
        )
    mean_p, mean_r = points.mean(0), reps.mean(1)
    rank_p = rank_rows(points).mean(0)
    rank_r = rank_rows(reps).mean(1)
    mean_ci, rank_ci = percentile_ci(mean_r, level), percentile_ci(rank_r, level)
    table = rank_table(mean_p, mean_r, names, level=level)
    pos = {str(n): j for j, n in enumerate(names)}
    rows = [
        {
            "name": r["name"],
            "mean": float(mean_p[pos[r["name"]]]),
            "mean_ci": mean_ci[pos[r["name"]]].tolist(),
            "mean_rank": float(rank_p[pos[r["name"]]]),
            "mean_rank_ci": rank_ci[pos[r["name"]]].tolist(),
            "top_group": r["top_group"],
        }
        for r in table["rows"]
    ]
    return {"rows": rows, "ranks": table, "n_tasks": int(points.shape[0])}
