"""``paired_bootstrap``: two encoders' probes on the same test patients, their difference with a
paired interval (:func:`paired_bootstrap`, on the patient-bootstrap helpers of
:mod:`ecgprobe.analyzers._stats.bootstrap`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from ecgprobe.analyzers._stats.bootstrap import (
    DEFAULT_MIN_POSITIVES,
    bootstrap_unit,
    check_ci_method,
    check_resampling,
    class_patients,
    confidence_interval,
    headline_columns,
    jackknife_weights,
    macro_replicates,
    resample_weights,
)
from ecgprobe.analyzers._stats.metrics import rank_metrics, regression_metrics
from ecgprobe.analyzers.base import ANALYZERS, PairwiseAnalyzer, Result, analyzer_settings
from ecgprobe.data.record import RecordSet
from ecgprobe.exceptions import ConfigError, DataError
from ecgprobe.extract.embeddings import Embeddings

__all__ = ["PairedBootstrap", "PairedBootstrapResult", "paired_bootstrap"]


class PairedBootstrapResult(Result):
    """The paired-bootstrap comparison of two probe results on the same test records.

    Schema:
        metrics: ``metric`` (``"auroc"``, ``"auprc"``, ``"mae"``, ``"rmse"`` or ``"r2"``),
            ``value_a``, ``value_b`` (macro over ``labels_compared``: the labels evaluable in both
            with at least ``min_positives`` positive and negative test patients, or all evaluable
            ones when none has, ``headline_basis`` says which; ``labels_flagged`` lists those left
            out), ``difference`` (a - b), ``ci_method``,
            ``difference_ci`` [low, high], ``p_value`` (two-sided bootstrap p of no difference:
            ``2 min(P*(d <= 0), P*(d >= 0))``, capped at 1), ``n_resamples``, ``ci_level``,
            ``bootstrap_unit``, ``labels_compared``, ``encoder_a``, ``encoder_b``, ``n_test``.
        tables: ``per_label``: label, a, b, difference, ci_low, ci_high, flagged.
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
    ci_method: str = "percentile",
    min_positives: int | None = None,
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
        ci_method: ``"percentile"`` or ``"bca"`` (the jackknife deletes patients from both).
        min_positives: classification labels with fewer positive (or negative) test patients
            are left out of the compared macro (listed in ``labels_flagged``); default: result
            A's setting, else :data:`DEFAULT_MIN_POSITIVES`.

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
    if min_positives is None:
        min_positives = int(result_a.metrics.get("min_positives", DEFAULT_MIN_POSITIVES))
    check_ci_method(ci_method, min_positives)
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
    evaluable = np.isfinite(point_a) & np.isfinite(point_b)
    if not evaluable.any():
        raise DataError(
            f"no label can be evaluated on the test records (each needs both classes for {metric})"
        )
    flagged = np.zeros(0, dtype=np.int64)
    basis = "all_evaluated"
    if a["regression"]:
        cols = np.flatnonzero(evaluable)
    else:
        cols, flagged, basis = headline_columns(
            evaluable, *class_patients(ya, a["groups"]), int(min_positives)
        )
    rep_a, rep_b = per_label(pa, weights), per_label(pb, weights)
    diff_lab = rep_a - rep_b
    diff = macro_replicates(rep_a, cols) - macro_replicates(rep_b, cols)
    finite = diff[np.isfinite(diff)]
    p_value = min(1.0, 2 * min(np.mean(finite <= 0), np.mean(finite >= 0))) if len(finite) else float("nan")
    value_a, value_b = float(np.mean(point_a[cols])), float(np.mean(point_b[cols]))
    jack_lab = jack_diff = None
    if ci_method == "bca":
        jw = jackknife_weights(a["groups"], seed=seed)
        ja, jb = per_label(pa, jw), per_label(pb, jw)
        jack_lab, jack_diff = ja - jb, macro_replicates(ja, cols) - macro_replicates(jb, cols)
    lab_ci = confidence_interval(
        diff_lab, ci_level, method=ci_method, point=point_a - point_b, jackknife=jack_lab
    )
    diff_ci = confidence_interval(
        diff, ci_level, method=ci_method, point=np.asarray(value_a - value_b), jackknife=jack_diff
    )
    table = [
        {
            "label": labels[j],
            "a": point_a[j],
            "b": point_b[j],
            "difference": point_a[j] - point_b[j],
            "ci_low": lab_ci[j, 0],
            "ci_high": lab_ci[j, 1],
            "flagged": bool(j in set(flagged.tolist())),
        }
        for j in range(len(labels))
    ]
    enc = [r.provenance.get("embeddings", {}).get("encoder", {}) for r in (result_a, result_b)]
    return PairedBootstrapResult(
        kind=PairedBootstrapResult.KIND,
        metrics={
            "metric": metric,
            "value_a": value_a,
            "value_b": value_b,
            "difference": value_a - value_b,
            "difference_ci": diff_ci.tolist(),
            "p_value": p_value,
            "n_resamples": int(n_resamples),
            "ci_level": ci_level,
            "bootstrap_unit": bootstrap_unit(a["groups"], a["ids"]),
            "labels_compared": [labels[j] for j in cols],
            "labels_flagged": [labels[j] for j in flagged],
            "headline_basis": basis,
            "min_positives": int(min_positives),
            "ci_method": ci_method,
            "encoder_a": enc[0].get("encoder", result_a.kind) if isinstance(enc[0], dict) else str(enc[0]),
            "encoder_b": enc[1].get("encoder", result_b.kind) if isinstance(enc[1], dict) else str(enc[1]),
            "n_test": len(ya),
        },
        tables={"per_label": table},
        arrays={"difference_replicates": diff.astype(np.float64)},
        params={
            "metric": metric,
            "n_resamples": n_resamples,
            "seed": seed,
            "ci_level": ci_level,
            "ci_method": ci_method,
            "min_positives": int(min_positives),
        },
        seed=seed,
        provenance={"a": result_a.provenance, "b": result_b.provenance},
    )


@ANALYZERS.register(
    "paired_bootstrap",
    pairwise=True,
    summary="difference of two encoders' probe AUROC per label and macro, paired patient bootstrap",
)
@analyzer_settings
class PairedBootstrap(PairwiseAnalyzer):
    """The difference between two encoders' linear probes, resampling the same patients for both.

    Args:
        probes: the two ``linear_probe`` (or ``knn_probe``) results, side A's then side B's;
            ``None`` fits a linear probe with default settings on each side.
        metric: ``"auroc"`` (default) or ``"auprc"``; ``"mae"``, ``"rmse"`` or ``"r2"`` for
            regression (default ``"mae"``).
        n_resamples: bootstrap resamples.
        ci_level: confidence level.
        ci_method: ``"percentile"`` or ``"bca"``.
        min_positives: labels with fewer positive (or negative) test patients are left out of the
            compared macro (default: the probes' own setting).
        seed: seed of the resampling.

    Example:
        >>> res = PairedBootstrap(probes=(probe_a, probe_b)).run(emb_a, emb_b, records)  # doctest: +SKIP
        >>> res.metrics["difference"], res.metrics["difference_ci"]  # doctest: +SKIP
    """

    name = "paired_bootstrap"
    requires: ClassVar[Mapping[str, str]] = {"probes": "linear_probe"}

    probes: tuple[Result, Result] | None = None
    metric: str | None = None
    n_resamples: int = 1000
    ci_level: float = 0.95
    ci_method: str = "percentile"
    min_positives: int | None = None
    seed: int = 0

    def _validate(self) -> None:
        if self.probes is not None and (
            len(self.probes) != 2 or not all(isinstance(p, Result) for p in self.probes)
        ):
            raise ConfigError("probes must be two probe results (side A's, side B's) or None")
        check_resampling(self.n_resamples, self.ci_level)
        check_ci_method(self.ci_method, 1 if self.min_positives is None else self.min_positives)

    def _run(self, a: Embeddings, b: Embeddings, records: RecordSet | None) -> PairedBootstrapResult:
        probes: Any = self.probes
        if probes is None:
            if records is None:
                raise ConfigError("paired_bootstrap without probes= needs the records, to fit them")
            from ecgprobe.analyzers.linear_probe import LinearProbe

            probes = tuple(LinearProbe(seed=self.seed).run(e, records) for e in (a, b))
        return paired_bootstrap(
            probes[0],
            probes[1],
            metric=self.metric,
            n_resamples=self.n_resamples,
            seed=self.seed,
            ci_level=self.ci_level,
            ci_method=self.ci_method,
            min_positives=self.min_positives,
        )
