"""Vectorised metrics for probes: AUROC, average precision, ROC points, F1 at thresholds,
calibration (Brier score, expected calibration error, reliability diagrams), regression errors.

Every function works on all labels at once: ``y`` is an ``(N, C)`` 0/1 matrix and ``scores`` an
``(N, C)`` matrix of predicted probabilities (or any scores, for the rank metrics). The rank
metrics and F1 also accept resampling *weights* ``(B, N)`` (how many times each record is drawn
in each of B bootstrap resamples), so that point estimates and bootstrap replicates come from the
same code: a point estimate is the case of one resample with all weights 1.

Conventions (they match scikit-learn's ``roc_auc_score``, ``average_precision_score``,
``f1_score``, ``brier_score_loss`` and ``calibration_curve``):

- AUROC is the Mann-Whitney probability that a positive scores above a negative, ties counting
  one half; NaN where a label has no positive or no negative.
- Average precision (AUPRC) is ``sum_t (R_t - R_{t-1}) P_t`` over the distinct score thresholds
  in decreasing order (no interpolation); NaN without positives.
- A record is predicted positive when its score is ``>=`` the threshold.
- ECE bins predicted probabilities into ``n_bins`` equal-width bins on [0, 1] (bin ``i`` holds
  ``i/n <= p < (i+1)/n``, the last bin includes 1) and is ``sum_bins (n_bin / N) |mean p - freq|``.
"""

from __future__ import annotations

import numpy as np

from ecgprobe.exceptions import ConfigError

__all__ = [
    "auroc",
    "average_precision",
    "best_f1_thresholds",
    "brier_score",
    "expected_calibration_error",
    "f1_at_thresholds",
    "rank_metrics",
    "regression_metrics",
    "reliability",
    "roc_curve",
]

# Resamples processed together in the rank metrics: bounds memory to ~ chunk x N float64 arrays.
_CHUNK_ELEMENTS = 2_000_000


def _as_2d(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ConfigError(f"{name} must be (records,) or (records, labels), got shape {a.shape}")
    return a


def _check_pair(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y2, s2 = _as_2d(y, "y"), _as_2d(scores, "scores")
    if y2.shape != s2.shape:
        raise ConfigError(f"y {y2.shape} and scores {s2.shape} must have the same shape")
    return y2.astype(bool), s2.astype(np.float64)


def _check_weights(weights: np.ndarray | None, n: int) -> np.ndarray:
    if weights is None:
        return np.ones((1, n))
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim == 1:
        w = w[None, :]
    if w.ndim != 2 or w.shape[1] != n:
        raise ConfigError(f"weights must be (resamples, {n}), got shape {w.shape}")
    return w


def rank_metrics(
    y: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None, *, ap: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """AUROC and average precision of every label under every resampling weight vector.

    Per label, negatives and positives are sorted once and each positive's place among the
    negatives is found by binary search. A resample's AUROC numerator is then
    ``sum_pos w_i (W_neg below s_i + W_neg tied with s_i / 2)``, read from the cumulative sums of
    its negative weights at those places, and average precision uses the cumulative sums of the
    positive weights likewise: ``O(B N)`` work per label, no ``N x N`` matrix. Many resamples of
    integer weights (bootstrap counts) are summed in float32, which is exact for integers below
    2**24 (checked: float64 is used when ``2 W_pos W_neg`` could exceed it); the precision ratios
    of average precision then carry float32 rounding (~1e-7). Point estimates use float64.

    Args:
        y: ``(N, C)`` 0/1 labels.
        scores: ``(N, C)`` scores (higher = more likely positive).
        weights: ``(B, N)`` non-negative record weights (bootstrap counts); None = all ones.
        ap: also compute average precision.

    Returns:
        ``auroc (B, C)`` and ``ap (B, C)`` (or None); NaN where a resample of a label lacks a class.

    Raises:
        ConfigError: mismatched shapes.

    Example:
        >>> auc, ap = rank_metrics(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
        >>> float(auc[0, 0]), round(float(ap[0, 0]), 4)
        (0.75, 0.8333)
    """
    yb, s = _check_pair(y, scores)
    n, c = yb.shape
    w = _check_weights(weights, n)
    # float32 holds integers exactly below 2**24; the largest sum formed is 2 W_pos W_neg <= W^2 / 2.
    wmax = float(w.sum(1).max()) if len(w) else 0.0
    fast = len(w) > 16 and wmax**2 / 2 < 2**24 and bool(np.all(w == np.round(w)))
    dtype = np.float32 if fast else np.float64
    w = w.astype(dtype, copy=False)
    b = len(w)
    out_auc = np.full((b, c), np.nan)
    out_ap = np.full((b, c), np.nan) if ap else None
    chunk = max(1, _CHUNK_ELEMENTS // max(n, 1))
    for j in range(c):
        pos_idx = np.flatnonzero(yb[:, j])
        neg_idx = np.flatnonzero(~yb[:, j])
        if not len(pos_idx):
            continue
        pos_idx = pos_idx[np.argsort(s[pos_idx, j], kind="mergesort")]
        neg_idx = neg_idx[np.argsort(s[neg_idx, j], kind="mergesort")]
        sp, sn = s[pos_idx, j], s[neg_idx, j]
        below = np.searchsorted(sn, sp, side="left")  # negatives strictly below each positive
        upto = np.searchsorted(sn, sp, side="right")  # ... at or below (ties)
        tied = bool(np.any(upto != below))
        first = np.searchsorted(sp, sp, side="left")  # first positive of each tie group
        for lo in range(0, b, chunk):
            wb = w[lo : lo + chunk]
            wp = wb[:, pos_idx]
            cneg = np.zeros((len(wb), len(neg_idx) + 1), dtype=dtype)
            np.cumsum(wb[:, neg_idx], axis=1, out=cneg[:, 1:])
            n_neg = cneg[:, -1].astype(np.float64)
            n_pos = wp.sum(1, dtype=np.float64)
            lt = cneg[:, below]
            twice = lt + cneg[:, upto] if tied else 2 * lt
            num = np.einsum("bi,bi->b", wp, twice).astype(np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                out_auc[lo : lo + chunk, j] = np.where(
                    (n_pos > 0) & (n_neg > 0), num / (2.0 * n_pos * n_neg), np.nan
                )
                if out_ap is not None:
                    cpos = np.zeros((len(wb), len(pos_idx) + 1), dtype=dtype)
                    np.cumsum(wp, axis=1, out=cpos[:, 1:])
                    tp = n_pos[:, None].astype(dtype) - cpos[:, first]  # positives scoring >= s_i
                    fp = n_neg[:, None].astype(dtype) - lt  # negatives scoring >= s_i
                    prec = tp / np.maximum(tp + fp, 1e-30)
                    out_ap[lo : lo + chunk, j] = np.where(
                        n_pos > 0, np.einsum("bi,bi->b", wp, prec, dtype=np.float64) / n_pos, np.nan
                    )
    return out_auc, out_ap


def auroc(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per-label AUROC ``(C,)`` (NaN for labels without both classes); see :func:`rank_metrics`.

    Example:
        >>> auroc(np.array([[0], [1], [1]]), np.array([[0.2], [0.9], [0.2]])).tolist()
        [0.75]
    """
    return rank_metrics(y, scores, ap=False)[0][0]


def average_precision(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per-label average precision ``(C,)`` (NaN without positives); see :func:`rank_metrics`."""
    return rank_metrics(y, scores)[1][0]  # type: ignore[index]


def roc_curve(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC points of one label: ``fpr, tpr, thresholds`` (thresholds decreasing, first ``+inf``).

    Points on a straight segment between two others are dropped (they change nothing drawn).
    Tied scores form one point, so identical scores give the chance diagonal ``(0, 0), (1, 1)``.

    Raises:
        ConfigError: ``y`` without both classes, or mismatched shapes.

    Example:
        >>> fpr, tpr, _ = roc_curve(np.array([0, 1, 0, 1]), np.full(4, 0.5))
        >>> fpr.tolist(), tpr.tolist()
        ([0.0, 1.0], [0.0, 1.0])
    """
    yb, s = _check_pair(np.ravel(y), np.ravel(scores))
    yb, s = yb[:, 0], s[:, 0]
    n_pos = int(yb.sum())
    if n_pos == 0 or n_pos == len(yb):
        raise ConfigError("a ROC curve needs both positive and negative records")
    order = np.argsort(-s, kind="mergesort")
    ss, yy = s[order], yb[order]
    last = np.r_[np.flatnonzero(ss[1:] != ss[:-1]), len(ss) - 1]  # last index of each tie group
    tps = np.cumsum(yy)[last].astype(np.float64)
    fps = (last + 1) - tps
    # A point is dropped only when it lies between two others: one or two distinct scores (all
    # scores tied, e.g. kNN fractions of a rare label) keep every point.
    inner = np.logical_or(np.diff(fps, 2) != 0, np.diff(tps, 2) != 0)
    keep = np.r_[True, inner, True] if len(last) > 2 else np.ones(len(last), dtype=bool)
    fpr = np.r_[0.0, fps[keep] / fps[-1]]
    tpr = np.r_[0.0, tps[keep] / n_pos]
    return fpr, tpr, np.r_[np.inf, ss[last][keep]]


def best_f1_thresholds(y: np.ndarray, scores: np.ndarray, *, default: float = 0.5) -> np.ndarray:
    """Per-label threshold maximising F1 on ``(y, scores)`` (to be chosen on validation data).

    The candidates are the observed scores (predict positive when ``score >= threshold``); among
    equal F1 the highest threshold wins. Labels without a positive get ``default``.
    """
    yb, s = _check_pair(y, scores)
    thr = np.full(yb.shape[1], float(default))
    for j in range(yb.shape[1]):
        n_pos = int(yb[:, j].sum())
        if n_pos == 0:
            continue
        order = np.argsort(-s[:, j], kind="mergesort")
        ss, yy = s[order, j], yb[order, j]
        last = np.r_[np.flatnonzero(ss[1:] != ss[:-1]), len(ss) - 1]
        tp = np.cumsum(yy)[last]
        f1 = 2.0 * tp / ((last + 1) + n_pos)
        thr[j] = ss[last[int(np.argmax(f1))]]
    return thr


def f1_at_thresholds(
    y: np.ndarray, scores: np.ndarray, thresholds: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """F1 ``(B, C)`` of predictions ``scores >= thresholds`` under each weight vector.

    NaN where a label has neither a positive nor a predicted positive (F1 undefined).
    """
    yb, s = _check_pair(y, scores)
    w = _check_weights(weights, len(yb))
    pred = s >= np.asarray(thresholds, dtype=np.float64)[None, :]
    tp = w @ (yb & pred).astype(np.float64)
    fp = w @ (~yb & pred).astype(np.float64)
    fn = w @ (yb & ~pred).astype(np.float64)
    denom = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * tp / denom, np.nan)


def brier_score(y: np.ndarray, probs: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Mean squared error of the probabilities, ``(B, C)`` (``(1, C)`` without weights)."""
    yb, p = _check_pair(y, probs)
    w = _check_weights(weights, len(yb))
    return (w @ (p - yb) ** 2) / w.sum(1, keepdims=True)


def reliability(
    y: np.ndarray, probs: np.ndarray, *, n_bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reliability-diagram data per label: ``mean_pred, frac_pos, count``, each ``(C, n_bins)``.

    Equal-width bins on [0, 1] (see the module docstring); empty bins hold NaN means and count 0.
    """
    if n_bins < 1:
        raise ConfigError(f"n_bins must be >= 1, got {n_bins}")
    yb, p = _check_pair(y, probs)
    if np.any((p < 0) | (p > 1)):
        raise ConfigError("calibration needs probabilities in [0, 1]")
    bins = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)  # (N, C); p = 1 -> last bin
    c = yb.shape[1]
    flat = bins + n_bins * np.arange(c)[None, :]
    count = np.bincount(flat.ravel(), minlength=c * n_bins).reshape(c, n_bins)
    sum_p = np.bincount(flat.ravel(), weights=p.ravel(), minlength=c * n_bins).reshape(c, n_bins)
    sum_y = np.bincount(flat.ravel(), weights=yb.ravel().astype(np.float64), minlength=c * n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_pred = np.where(count > 0, sum_p / count, np.nan)
        frac_pos = np.where(count > 0, sum_y.reshape(c, n_bins) / count, np.nan)
    return mean_pred, frac_pos, count


def expected_calibration_error(
    y: np.ndarray, probs: np.ndarray, *, n_bins: int = 10, weights: np.ndarray | None = None
) -> np.ndarray:
    """Per-label ECE with ``n_bins`` equal-width bins (see the module docstring).

    ``sum_bins (n_bin / N) |mean p - freq|`` equals ``sum_bins |sum_bin (p - y)| / N``, which is
    how the weighted (bootstrap) version is computed: one ``(B, N) @ (N, C)`` product per bin.

    Args:
        y: ``(N, C)`` 0/1 labels.
        probs: ``(N, C)`` probabilities in [0, 1].
        n_bins: number of bins.
        weights: ``(B, N)`` record weights (bootstrap counts); None: the point estimate.

    Returns:
        ``(C,)`` without weights, ``(B, C)`` with weights.

    Raises:
        ConfigError: probabilities outside [0, 1], ``n_bins < 1`` or mismatched shapes.
    """
    if weights is None:
        mean_pred, frac_pos, count = reliability(y, probs, n_bins=n_bins)
        gap = np.where(count > 0, np.abs(mean_pred - frac_pos), 0.0)
        return (gap * count).sum(1) / np.maximum(count.sum(1), 1)
    if n_bins < 1:
        raise ConfigError(f"n_bins must be >= 1, got {n_bins}")
    yb, p = _check_pair(y, probs)
    if np.any((p < 0) | (p > 1)):
        raise ConfigError("calibration needs probabilities in [0, 1]")
    w = _check_weights(weights, len(yb))
    bins = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    diff = p - yb
    total = np.zeros((len(w), yb.shape[1]))
    for k in range(n_bins):
        total += np.abs(w @ np.where(bins == k, diff, 0.0))
    return total / np.maximum(w.sum(1, keepdims=True), 1e-300)


def regression_metrics(
    y: np.ndarray, pred: np.ndarray, weights: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """MAE, RMSE and R² per target, ``(B, T)`` each, under each weight vector.

    R² is ``1 - SSE / SST`` with SST around the (weighted) mean of ``y`` in the same resample.

    Raises:
        ConfigError: mismatched shapes or non-finite values.
    """
    yy, pp = _as_2d(y, "y").astype(np.float64), _as_2d(pred, "pred").astype(np.float64)
    if yy.shape != pp.shape:
        raise ConfigError(f"y {yy.shape} and pred {pp.shape} must have the same shape")
    if not (np.isfinite(yy).all() and np.isfinite(pp).all()):
        raise ConfigError("regression metrics need finite targets and predictions (drop NaN targets first)")
    w = _check_weights(weights, len(yy))
    tot = w.sum(1, keepdims=True)
    err = pp - yy
    mae = (w @ np.abs(err)) / tot
    mse = (w @ err**2) / tot
    mean_y = (w @ yy) / tot
    sst = (w @ yy**2) / tot - mean_y**2
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.where(sst > 1e-12 * np.maximum((w @ yy**2) / tot, 1e-300), 1.0 - mse / sst, np.nan)
    return {"mae": mae, "rmse": np.sqrt(mse), "r2": r2}
