"""Percentile-bootstrap confidence intervals that resample patients, and the paired bootstrap
that compares two encoders on the same test records.

Records of one patient are not independent, so the resampling unit is the patient (a cluster
bootstrap): each resample draws as many patients as the test split holds, with replacement, and
every record of a drawn patient enters with the patient's draw count as its weight. Where a
dataset has no patient ids (each record is its own patient) this is the ordinary record-wise
bootstrap. Metrics are computed for all resamples at once from the weights
(:func:`ecgprobe.analyzers.metrics.rank_metrics`), and intervals are the ``(1 - level) / 2`` and
``(1 + level) / 2`` percentiles of the replicates. A resample in which a label lacks a class
gives no value for that label: its interval uses the other resamples, and the macro average of
that resample averages the labels it has.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from ecgprobe.analyzers.base import Result
from ecgprobe.analyzers.metrics import f1_at_thresholds, rank_metrics, regression_metrics
from ecgprobe.exceptions import ConfigError, DataError

__all__ = [
    "PairedBootstrapResult",
    "bootstrap_unit",
    "paired_bootstrap",
    "percentile_ci",
    "resample_weights",
]


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


class PairedBootstrapResult(Result):
    """The paired-bootstrap comparison of two probe results on the same test records.

    Schema:
        metrics: ``metric`` (``"auroc"``, ``"auprc"``, ``"mae"``, ``"rmse"`` or ``"r2"``),
            ``value_a``, ``value_b`` (macro over ``labels_compared``), ``difference`` (a - b),
            ``difference_ci`` [low, high], ``p_value`` (two-sided bootstrap p of no difference:
            ``2 min(P*(d <= 0), P*(d >= 0))``, capped at 1), ``n_resamples``, ``ci_level``,
            ``bootstrap_unit``, ``labels_compared``, ``encoder_a``, ``encoder_b``, ``n_test``.
        tables: ``per_label``: label, a, b, difference, ci_low, ci_high.
        arrays: ``difference_replicates`` (B,): macro difference per resample.
    """

    KIND: ClassVar[str] = "paired_bootstrap"


_CLASSIFICATION_METRICS = ("auroc", "auprc")
_REGRESSION_METRICS = ("mae", "rmse", "r2")


def _test_arrays(result: Result, side: str) -> dict[str, Any]:
    needed = ["test_ids", "test_patient_ids", "test_y"]
    pred_key = "test_scores" if "test_scores" in result.arrays else "test_pred"
    missing = [k for k in [*needed, pred_key] if k not in result.arrays]
    if missing:
        raise DataError(
            f"result {side} ({result.kind!r}) lacks the per-record test arrays {missing}; "
            "compare results of linear_probe or knn_probe (saved with their .npz)"
        )
    return {
        "ids": np.asarray(result.arrays["test_ids"], dtype=str),
        "groups": np.asarray(result.arrays["test_patient_ids"], dtype=str),
        "y": np.asarray(result.arrays["test_y"]),
        "pred": np.asarray(result.arrays[pred_key], dtype=np.float64),
        "labels": list(result.metrics.get("labels_fitted", [])),
        "regression": pred_key == "test_pred",
    }


def paired_bootstrap(
    result_a: Result,
    result_b: Result,
    *,
    metric: str | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    ci_level: float = 0.95,
) -> PairedBootstrapResult:
    """Compare two probe results on the same test records by a paired (patient) bootstrap.

    Each resample draws patients once and evaluates both encoders on exactly those records, so
    the interval of the difference reflects only how the encoders differ, not which records
    happened to be drawn.

    Args:
        result_a: a ``linear_probe`` or ``knn_probe`` result (kept arrays ``test_ids``, ...).
        result_b: another, on the same dataset (same test ids, labels and targets).
        metric: ``"auroc"`` (default) or ``"auprc"`` for classification; ``"mae"`` (default),
            ``"rmse"`` or ``"r2"`` for regression.
        n_resamples: bootstrap resamples.
        seed: seed of the resampling.
        ci_level: confidence level of the interval.

    Returns:
        A :class:`PairedBootstrapResult`.

    Raises:
        DataError: the results do not cover the same test records, labels or label values.
        ConfigError: an unknown metric.

    Example:
        >>> cmp = paired_bootstrap(probe_a, probe_b)  # doctest: +SKIP
        >>> cmp.metrics["difference"], cmp.metrics["difference_ci"]  # doctest: +SKIP
    """
    a, b = _test_arrays(result_a, "A"), _test_arrays(result_b, "B")
    if a["regression"] != b["regression"]:
        raise DataError("cannot compare a classification result with a regression result")
    allowed = _REGRESSION_METRICS if a["regression"] else _CLASSIFICATION_METRICS
    metric = metric or allowed[0]
    if metric not in allowed:
        raise ConfigError(f"metric {metric!r} does not apply here; use one of {list(allowed)}")
    if set(a["ids"]) != set(b["ids"]) or len(a["ids"]) != len(b["ids"]):
        only_a, only_b = sorted(set(a["ids"]) - set(b["ids"])), sorted(set(b["ids"]) - set(a["ids"]))
        raise DataError(
            f"the two results were tested on different records: {len(only_a)} only in A (e.g. {only_a[:5]}), "
            f"{len(only_b)} only in B (e.g. {only_b[:5]}); run both probes on the same dataset and splits"
        )
    pos_b = {rid: i for i, rid in enumerate(b["ids"])}
    order = np.fromiter((pos_b[r] for r in a["ids"]), dtype=np.int64, count=len(a["ids"]))
    labels = [lab for lab in a["labels"] if lab in set(b["labels"])]
    if not labels:
        raise DataError(f"the results share no label (A: {a['labels']}, B: {b['labels']})")
    ia = [a["labels"].index(lab) for lab in labels]
    ib = [b["labels"].index(lab) for lab in labels]
    ya, yb = a["y"][:, ia], b["y"][order][:, ib]
    if not np.array_equal(ya, yb):
        raise DataError("the two results hold different label values for the same records; same dataset?")
    pa, pb = a["pred"][:, ia], b["pred"][order][:, ib]
    weights = resample_weights(a["groups"], n_resamples, seed)
    ones = np.ones((1, len(ya)))

    def per_label(pred: np.ndarray, w: np.ndarray) -> np.ndarray:
        if a["regression"]:
            return regression_metrics(ya, pred, w)[metric]
        auc, ap = rank_metrics(ya, pred, w, ap=metric == "auprc")
        return auc if metric == "auroc" else ap  # type: ignore[return-value]

    point_a, point_b = per_label(pa, ones)[0], per_label(pb, ones)[0]
    cols = np.flatnonzero(np.isfinite(point_a) & np.isfinite(point_b))
    if not len(cols):
        raise DataError(
            f"no label can be evaluated on the test records (each needs both classes for {metric})"
        )
    rep_a, rep_b = per_label(pa, weights), per_label(pb, weights)
    diff_lab = rep_a - rep_b
    diff = macro_replicates(rep_a, cols) - macro_replicates(rep_b, cols)
    finite = diff[np.isfinite(diff)]
    p_value = min(1.0, 2 * min(np.mean(finite <= 0), np.mean(finite >= 0))) if len(finite) else float("nan")
    lab_ci = percentile_ci(diff_lab, ci_level)
    table = [
        {
            "label": labels[j],
            "a": point_a[j],
            "b": point_b[j],
            "difference": point_a[j] - point_b[j],
            "ci_low": lab_ci[j, 0],
            "ci_high": lab_ci[j, 1],
        }
        for j in range(len(labels))
    ]
    value_a, value_b = float(np.mean(point_a[cols])), float(np.mean(point_b[cols]))
    enc = [r.provenance.get("embeddings", {}).get("encoder", {}) for r in (result_a, result_b)]
    return PairedBootstrapResult(
        kind=PairedBootstrapResult.KIND,
        metrics={
            "metric": metric,
            "value_a": value_a,
            "value_b": value_b,
            "difference": value_a - value_b,
            "difference_ci": percentile_ci(diff, ci_level).tolist(),
            "p_value": p_value,
            "n_resamples": int(n_resamples),
            "ci_level": ci_level,
            "bootstrap_unit": bootstrap_unit(a["groups"], a["ids"]),
            "labels_compared": [labels[j] for j in cols],
            "encoder_a": enc[0].get("encoder", result_a.kind) if isinstance(enc[0], dict) else str(enc[0]),
            "encoder_b": enc[1].get("encoder", result_b.kind) if isinstance(enc[1], dict) else str(enc[1]),
            "n_test": len(ya),
        },
        tables={"per_label": table},
        arrays={"difference_replicates": diff.astype(np.float64)},
        params={"metric": metric, "n_resamples": n_resamples, "seed": seed, "ci_level": ci_level},
        seed=seed,
        provenance={"a": result_a.provenance, "b": result_b.provenance},
    )
