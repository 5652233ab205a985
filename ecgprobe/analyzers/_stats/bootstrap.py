"""Bootstrap confidence intervals that resample patients (percentile or BCa), the small-sample
rule of the headline macro averages (the paired bootstrap that compares two encoders builds on
them: :mod:`ecgprobe.analyzers.paired_bootstrap`).

Records of one patient are not independent, so the resampling unit is the patient (a cluster
bootstrap): each resample draws as many patients as the test split holds, with replacement, and
every record of a drawn patient enters with the patient's draw count as its weight. Where a
dataset has no patient ids (each record is its own patient) this is the ordinary record-wise
bootstrap. Metrics are computed for all resamples at once from the weights
(:func:`ecgprobe.analyzers._stats.metrics.rank_metrics`), and intervals are the ``(1 - level) / 2`` and
``(1 + level) / 2`` percentiles of the replicates. A resample in which a label lacks a class
gives no value for that label: its interval uses the other resamples, and the macro average of
that resample averages the labels it has.

Two interval methods (``ci_method``):

- ``"percentile"`` (default): the percentiles above.
- ``"bca"``: Efron's bias-corrected and accelerated percentiles. The bias correction ``z0`` is
  the normal quantile of the share of replicates below the estimate (ties count one half); the
  acceleration ``a`` comes from a delete-one-patient jackknife (delete-one-block of patients,
  seeded, above :data:`MAX_JACKKNIFE_BLOCKS` patients), ``a = sum U^3 / (6 (sum U^2)^1.5)``.

Coverage of the 95 % AUROC interval measured by ``benchmarks/coverage_auroc.py`` (binormal
scores, true AUROC 0.8, 150 negatives, 2000 simulated test sets, 1000 resamples each; results in
``benchmarks/results/coverage_auroc.json``; Monte Carlo SE 0.5 %)::

    positives         7      10     20     50     macro (7, 10, 20, 50)
    percentile      88.4 %  89.5 %  92.1 %  94.0 %  93.2 %
    bca             91.3 %  91.3 %  94.0 %  94.5 %  93.8 %
    width pct/bca   .31/.35 .27/.29 .20/.20 .14/.14 .12/.13

Both methods undercover with few positives (BCa less so, with slightly wider intervals), which
is why labels with fewer than ``min_positives`` positive (or negative) test patients are
flagged and left out of the headline macro averages (:func:`headline_columns`); the macro over
all evaluated labels is still reported beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ecgprobe.analyzers._stats.metrics import f1_at_thresholds, rank_metrics
from ecgprobe.exceptions import ConfigError

__all__ = [
    "CI_METHODS",
    "DEFAULT_MIN_POSITIVES",
    "bca_ci",
    "bootstrap_unit",
    "check_ci_method",
    "check_resampling",
    "class_patients",
    "confidence_interval",
    "headline_columns",
    "jackknife_weights",
    "percentile_ci",
    "resample_weights",
]

CI_METHODS = ("percentile", "bca")
#: Labels with fewer positive (or negative) test patients are flagged and left out of headlines.
DEFAULT_MIN_POSITIVES = 10
#: Above this many patients the jackknife of the BCa acceleration deletes blocks of patients.
MAX_JACKKNIFE_BLOCKS = 1000


def resample_weights(groups: Sequence[str] | np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Cluster-bootstrap weights ``(n_resamples, N)``: how often each record's patient was drawn.

    Args:
        groups: patient id per record (record ids where there are none: record-wise bootstrap).
        n_resamples: number of resamples B.
        seed: seed of the draws (the same groups and seed give the same weights).

    Raises:
        ConfigError: ``n_resamples < 1``.

    Example:
        >>> w = resample_weights(["a", "a", "b"], 4, seed=0)
        >>> w.shape, bool((w[:, 0] == w[:, 1]).all())
        ((4, 3), True)
    """
    if int(n_resamples) < 1:
        raise ConfigError(f"n_resamples must be >= 1, got {n_resamples}")
    _, inv = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    n_groups = int(inv.max()) + 1 if len(inv) else 0
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_groups, size=(int(n_resamples), n_groups))
    flat = (draws + n_groups * np.arange(int(n_resamples))[:, None]).ravel()
    counts = np.bincount(flat, minlength=int(n_resamples) * n_groups).reshape(int(n_resamples), n_groups)
    return counts[:, inv].astype(np.float32)


def bootstrap_unit(groups: Sequence[str] | np.ndarray, ids: Sequence[str] | np.ndarray) -> str:
    """``"patient"`` when some patient has several records (or ids differ), else ``"record"``."""
    g = np.asarray(groups, dtype=str)
    return "record" if np.array_equal(g, np.asarray(ids, dtype=str)) or len(set(g)) == len(g) else "patient"


def percentile_ci(replicates: np.ndarray, level: float = 0.95) -> np.ndarray:
    """Percentile interval along axis 0: ``(..., 2)`` holding (low, high); NaN replicates ignored.

    Raises:
        ConfigError: ``level`` outside (0, 1).
    """
    if not 0 < level < 1:
        raise ConfigError(f"confidence level must be in (0, 1), got {level}")
    r = np.asarray(replicates, dtype=np.float64)
    q = [50 * (1 - level), 50 * (1 + level)]
    valid = np.isfinite(r).any(axis=0)
    out = np.full((*r.shape[1:], 2), np.nan)
    if valid.any():
        lohi = np.nanpercentile(r[:, valid], q, axis=0)  # (2, k)
        out[valid] = np.moveaxis(lohi, 0, -1)
    return out


def check_ci_method(ci_method: str, min_positives: int) -> None:
    """Validate the interval settings shared by the probes.

    Raises:
        ConfigError: an unknown ``ci_method`` or a negative ``min_positives``.
    """
    if ci_method not in CI_METHODS:
        raise ConfigError(f"ci_method must be one of {list(CI_METHODS)}, got {ci_method!r}")
    if isinstance(min_positives, bool) or int(min_positives) != min_positives or int(min_positives) < 0:
        raise ConfigError(
            f"min_positives must be a non-negative integer (positive test patients a label needs "
            f"to enter the headline macro; 0 keeps every label), got {min_positives!r}"
        )


def check_resampling(n_resamples: Any, ci_level: Any, *, least: int = 1) -> None:
    """Validate the two resampling settings every analyzer with intervals shares.

    Args:
        n_resamples: resamples (or, for the jackknife, a switch), at least ``least`` (0: an
            analyzer for which 0 means no interval).
        ci_level: confidence level, in (0, 1).

    Raises:
        ConfigError: naming the setting, its value and what it must be.
    """
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < least:
        raise ConfigError(f"n_resamples must be an integer >= {least}, got {n_resamples!r}")
    if isinstance(ci_level, bool) or not isinstance(ci_level, (int, float)) or not 0 < ci_level < 1:
        raise ConfigError(f"ci_level must lie in (0, 1), e.g. 0.95; got {ci_level!r}")


def jackknife_weights(groups: Sequence[str] | np.ndarray, *, seed: int = 0) -> np.ndarray:
    """Delete-one-patient jackknife weights ``(M, N)``: row m is 0 on the records of patient m.

    Above :data:`MAX_JACKKNIFE_BLOCKS` patients, patients are dealt (seeded) into that many
    blocks and a block is deleted at a time; the acceleration estimated from block influences
    has the same expectation (sums of independent influences keep their total second and third
    moments), at a bounded cost.
    """
    _, inv = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    n_groups = int(inv.max()) + 1 if len(inv) else 0
    if n_groups > MAX_JACKKNIFE_BLOCKS:
        block = np.random.default_rng(seed).permutation(n_groups) % MAX_JACKKNIFE_BLOCKS
        inv, n_groups = block[inv], MAX_JACKKNIFE_BLOCKS
    return (inv[None, :] != np.arange(n_groups)[:, None]).astype(np.float32)


def bca_ci(
    replicates: np.ndarray, point: np.ndarray, jackknife: np.ndarray, level: float = 0.95
) -> np.ndarray:
    """Bias-corrected and accelerated bootstrap interval along axis 0: ``(..., 2)``.

    Args:
        replicates: ``(B, ...)`` bootstrap replicates (NaN ignored).
        point: ``(...)`` the estimate on the full sample.
        jackknife: ``(M, ...)`` leave-one-patient (or block) out estimates (NaN ignored).
        level: confidence level.

    Returns:
        (low, high); NaN where the point or every replicate is NaN. Without a usable jackknife
        (fewer than 3 finite values, or no spread) the acceleration is 0 (bias-corrected only).

    Raises:
        ConfigError: ``level`` outside (0, 1).
    """
    from scipy.special import ndtr, ndtri

    if not 0 < level < 1:
        raise ConfigError(f"confidence level must be in (0, 1), got {level}")
    r = np.asarray(replicates, dtype=np.float64)
    shape = r.shape[1:]
    r2 = r.reshape(len(r), -1)
    t = np.asarray(point, dtype=np.float64).reshape(-1)
    jk = np.asarray(jackknife, dtype=np.float64).reshape(len(jackknife), -1)
    out = np.full((r2.shape[1], 2), np.nan)
    z = ndtri(np.array([(1 - level) / 2, (1 + level) / 2]))
    for j in range(r2.shape[1]):
        v = np.sort(r2[np.isfinite(r2[:, j]), j])
        if not len(v) or not np.isfinite(t[j]):
            continue
        share = (np.searchsorted(v, t[j], "left") + np.searchsorted(v, t[j], "right")) / (2 * len(v))
        z0 = ndtri(np.clip(share, 0.5 / len(v), 1 - 0.5 / len(v)))
        u = jk[np.isfinite(jk[:, j]), j]
        u = u.mean() - u if len(u) >= 3 else np.zeros(0)
        ss = float(np.sum(u**2))
        a = float(np.sum(u**3)) / (6 * ss**1.5) if ss > 0 else 0.0
        zz = z0 + z
        with np.errstate(divide="ignore", invalid="ignore"):
            alpha = np.where(1 - a * zz > 0, ndtr(z0 + zz / (1 - a * zz)), np.where(zz > 0, 1.0, 0.0))
        out[j] = np.quantile(v, np.clip(alpha, 0.0, 1.0))
    return out.reshape(*shape, 2)


def confidence_interval(
    replicates: np.ndarray,
    level: float = 0.95,
    *,
    method: str = "percentile",
    point: np.ndarray | None = None,
    jackknife: np.ndarray | None = None,
) -> np.ndarray:
    """The interval of ``method``: :func:`percentile_ci`, :func:`bca_ci` (needs point and
    jackknife) or ``"basic"`` (needs point): ``[2 t - q_high, 2 t - q_low]``, floored at 0.

    The basic interval is what the probes use for ECE, whatever ``ci_method``: ECE is biased
    upwards in small samples, and its bootstrap replicates are biased upwards again, so the
    percentile interval can miss far above the truth; reflecting the replicates around the
    estimate corrects that bias (and can place the interval below the estimate). Coverage of the
    95 % interval from ``benchmarks/coverage_auroc.py`` (true binned ECE 0.10, 10 bins, 1000
    simulated test sets) with 45 / 200 / 1000 records: basic 83.7 / 85.5 / 91.4 %, percentile
    11.6 / 82.2 / 95.2 %. It stays below nominal with a few hundred records or fewer: an
    approximate interval, which the reports say.

    Raises:
        ConfigError: an unknown method, or ``"bca"``/``"basic"`` without what they need.
    """
    if method == "percentile":
        return percentile_ci(replicates, level)
    if method == "basic" and point is not None:
        t = np.asarray(point, dtype=np.float64)[..., None]
        lohi = percentile_ci(replicates, level)
        return np.maximum(2 * t - lohi[..., ::-1], 0.0)
    if method != "bca" or point is None or jackknife is None:
        raise ConfigError(f"ci_method {method!r} needs one of {list(CI_METHODS)} (bca: point and jackknife)")
    return bca_ci(replicates, point, jackknife, level)


def class_patients(y: np.ndarray, groups: Sequence[str] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Patients with a positive record and patients with a negative record, per label: ``(C,)`` each.

    The unit of the small-sample rule is the patient, like the bootstrap's: three records of one
    patient are one piece of evidence.
    """
    yb = np.asarray(y).reshape(len(y), -1) > 0
    _, inv = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    n_groups = int(inv.max()) + 1 if len(inv) else 0
    pos = np.zeros((n_groups, yb.shape[1]), dtype=bool)
    neg = np.zeros_like(pos)
    np.logical_or.at(pos, inv, yb)
    np.logical_or.at(neg, inv, ~yb)
    return pos.sum(0), neg.sum(0)


def headline_columns(
    evaluable: np.ndarray, n_pos_patients: np.ndarray, n_neg_patients: np.ndarray, min_positives: int
) -> tuple[np.ndarray, np.ndarray, str]:
    """Columns of the headline macro, the flagged columns, and the basis of the headline.

    A label is flagged when it is evaluable but has fewer than ``min_positives`` positive (or
    negative: the rarer class limits AUROC's precision) test patients. The headline averages the
    evaluable labels that are not flagged (basis ``"min_positives"``); when every evaluable label
    is flagged it falls back to all of them (basis ``"all_evaluated"``), so it is never empty.
    """
    ev = np.asarray(evaluable, dtype=bool)
    small = (np.asarray(n_pos_patients) < min_positives) | (np.asarray(n_neg_patients) < min_positives)
    flagged = ev & small
    cols = np.flatnonzero(ev & ~small)
    if len(cols):
        return cols, np.flatnonzero(flagged), "min_positives"
    return np.flatnonzero(ev), np.flatnonzero(flagged), "all_evaluated"


def macro_replicates(per_label: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Mean over the given label columns of each resample, ignoring NaN entries: ``(B,)``."""
    sub = per_label[:, columns]
    with np.errstate(invalid="ignore"):
        counts = np.isfinite(sub).sum(1)
        return np.where(counts > 0, np.nansum(sub, axis=1) / np.maximum(counts, 1), np.nan)


def classification_replicates(
    y: np.ndarray, scores: np.ndarray, weights: np.ndarray, thresholds: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Per-label replicates ``(B, C)`` of auroc, auprc, f1 (with thresholds) and brier."""
    auc, ap = rank_metrics(y, scores, weights)
    out = {"auroc": auc, "auprc": ap}
    if thresholds is not None:
        out["f1"] = f1_at_thresholds(y, scores, thresholds, weights)
    yb = np.asarray(y, dtype=np.float64)
    out["brier"] = (weights @ (np.asarray(scores, dtype=np.float64) - yb) ** 2) / weights.sum(
        1, keepdims=True
    )
    return out
