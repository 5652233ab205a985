"""Turning a probe's test predictions into the metrics, tables and arrays of its Result.

Shared by the linear and the kNN probe so that both report the same schema (documented on
:class:`ecgprobe.analyzers.linear_probe.LinearProbeResult`), and so that a paired comparison or a report
can treat them alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ecgprobe.analyzers._stats.bootstrap import (
    DEFAULT_MIN_POSITIVES,
    bootstrap_unit,
    check_ci_method,
    check_resampling,
    class_patients,
    classification_replicates,
    confidence_interval,
    headline_columns,
    jackknife_weights,
    macro_replicates,
    resample_weights,
)
from ecgprobe.analyzers._stats.metrics import (
    best_f1_thresholds,
    expected_calibration_error,
    rank_metrics,
    regression_metrics,
    reliability,
    roc_curve,
)
from ecgprobe.analyzers._stats.probe_data import SplitData, Targets
from ecgprobe.exceptions import AnalysisError, ConfigError

__all__ = [
    "Evaluation",
    "check_common",
    "check_grid",
    "evaluate_multilabel",
    "evaluate_probe",
    "evaluate_regression",
    "interval_settings",
    "select_by_val",
    "val_auroc",
]


def evaluate_probe(
    probe: Any, targets: Targets, p_val: np.ndarray, p_test: np.ndarray, data: SplitData, val_auc: np.ndarray
) -> Evaluation:
    """:func:`evaluate_multilabel` of a classification probe with its own settings
    (``n_resamples``, ``seed``, ``ci_level``, ``n_bins``, ``min_positives``, ``ci_method``):
    metrics lead with the task and the labels fitted and skipped, and each ``per_label`` row
    gains its train/val positives and ``val_auroc`` (the chosen setting's, ``(C,)``)."""
    ev = evaluate_multilabel(
        targets.fitted,
        targets.Y["val"],
        p_val,
        targets.Y["test"],
        p_test,
        data.test_ids,
        data.test_groups,
        n_bins=int(probe.n_bins),
        min_positives=int(probe.min_positives),
        **interval_settings(probe),
    )
    for j, row in enumerate(ev.tables["per_label"]):
        row.update(
            n_train_pos=int(targets.Y["train"][:, j].sum()),
            n_val_pos=int(targets.Y["val"][:, j].sum()),
            val_auroc=float(val_auc[j]),
        )
    head = {"task": "multilabel", "labels_fitted": targets.fitted, "labels_skipped": targets.skipped}
    ev.metrics = {**head, **ev.metrics}
    if targets.skipped:
        ev.notes.append(
            f"{len(targets.skipped)} labels not fitted (a class missing in train): {', '.join(targets.skipped)}"
        )
    return ev


def check_grid(values: Any, name: str, *, allow_zero: bool = False) -> tuple[float, ...]:
    """A non-empty grid of positive (or non-negative) finite numbers, sorted and de-duplicated.

    Raises:
        ConfigError: naming the setting and its value.
    """
    try:
        grid = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a sequence of numbers, got {values!r}") from None
    bad = [v for v in grid if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero)]
    if not grid or bad:
        raise ConfigError(f"{name} must be non-empty positive finite numbers, got {list(values)}")
    return tuple(sorted(set(grid)))


def check_common(
    n_resamples: int,
    ci_level: float,
    n_bins: int,
    ci_method: str = "percentile",
    min_positives: int = DEFAULT_MIN_POSITIVES,
) -> None:
    """Validate the evaluation settings shared by the probes.

    Raises:
        ConfigError: naming the bad setting.
    """
    check_ci_method(ci_method, min_positives)
    check_resampling(n_resamples, ci_level)
    if int(n_bins) < 1:
        raise ConfigError(f"n_bins must be >= 1, got {n_bins}")


@dataclass
class Evaluation:
    """Metrics, tables, arrays and notes of a probe's test evaluation (merged into its Result)."""

    metrics: dict[str, Any]
    tables: dict[str, list[dict[str, Any]]]
    arrays: dict[str, np.ndarray]
    notes: list[str]


def _test_facts(
    test_ids: np.ndarray, test_groups: np.ndarray, n_resamples: int, ci_level: float, ci_method: str
) -> dict[str, Any]:
    """What every probe evaluation states about its test records and intervals."""
    return {
        "ci_method": ci_method,
        "n_test": len(test_ids),
        "n_test_patients": len(set(test_groups)),
        "bootstrap_unit": bootstrap_unit(test_groups, test_ids),
        "n_resamples": int(n_resamples),
        "ci_level": ci_level,
    }


def interval_settings(probe: Any) -> dict[str, Any]:
    """A probe's settings of its test intervals (``n_resamples``, ``seed``, ``ci_level``,
    ``ci_method``), as keywords of :func:`evaluate_multilabel` / :func:`evaluate_regression`."""
    return {
        "n_resamples": int(probe.n_resamples),
        "seed": int(probe.seed),
        "ci_level": float(probe.ci_level),
        "ci_method": probe.ci_method,
    }


def _ci_fields(name: str, point: float, ci: np.ndarray) -> dict[str, float]:
    return {name: point, f"{name}_ci_low": float(ci[0]), f"{name}_ci_high": float(ci[1])}


class _Intervals:
    """Replicates (bootstrap, and the jackknife for BCa) of per-label metrics and their intervals."""

    def __init__(
        self,
        compute: Any,
        groups: np.ndarray,
        *,
        n_resamples: int,
        seed: int,
        ci_level: float,
        ci_method: str,
    ) -> None:
        self.point = compute(None)
        self.reps = compute(resample_weights(groups, n_resamples, seed))
        self.jack = compute(jackknife_weights(groups, seed=seed)) if ci_method == "bca" else None
        self.level, self.method = ci_level, ci_method

    def _method(self, key: str) -> str:
        return "basic" if key == "ece" else self.method  # ECE: see confidence_interval

    def per_label(self, key: str) -> np.ndarray:
        """``(C, 2)`` intervals of every label."""
        return confidence_interval(
            self.reps[key],
            self.level,
            method=self._method(key),
            point=self.point[key],
            jackknife=None if self.jack is None else self.jack[key],
        )

    def macro(self, key: str, cols: np.ndarray) -> tuple[float, list[float], np.ndarray]:
        """Macro point estimate over ``cols``, its interval, and its bootstrap replicates."""
        point = float(np.nanmean(self.point[key][cols])) if len(cols) else float("nan")
        reps = macro_replicates(self.reps[key], cols)
        jack = None if self.jack is None else macro_replicates(self.jack[key], cols)
        ci = confidence_interval(
            reps, self.level, method=self._method(key), point=np.asarray(point), jackknife=jack
        )
        return point, ci.tolist(), reps


def evaluate_multilabel(
    label_names: Sequence[str],
    y_val: np.ndarray,
    p_val: np.ndarray,
    y_test: np.ndarray,
    p_test: np.ndarray,
    test_ids: np.ndarray,
    test_groups: np.ndarray,
    *,
    n_resamples: int,
    seed: int,
    ci_level: float,
    n_bins: int,
    min_positives: int = DEFAULT_MIN_POSITIVES,
    ci_method: str = "percentile",
) -> Evaluation:
    """Evaluate probabilities ``p_test`` of the fitted labels (thresholds for F1 chosen on val).

    Headline macros (``macro_<metric>``) average the labels with at least ``min_positives``
    positive and negative test patients; ``macro_<metric>_all`` average every evaluated label
    (see :func:`ecgprobe.analyzers._stats.bootstrap.headline_columns`).
    """
    names = list(label_names)
    thresholds = best_f1_thresholds(y_val, p_val)
    notes = []
    no_val_pos = [names[j] for j in np.flatnonzero(np.asarray(y_val).sum(0) == 0)]
    if no_val_pos:
        notes.append(f"F1 threshold 0.5 (no validation positive) for: {', '.join(no_val_pos)}")
    n_pos = np.asarray(y_test).sum(0)
    evaluable = (n_pos > 0) & (n_pos < len(y_test))
    all_cols = np.flatnonzero(evaluable)
    not_evaluated = {
        names[j]: ("no positive" if n_pos[j] == 0 else "no negative") + " in the test split"
        for j in np.flatnonzero(~evaluable)
    }
    if not_evaluated:
        notes.append(
            f"{len(not_evaluated)} labels not evaluated (a class missing in test): "
            + ", ".join(not_evaluated)
        )
    if not len(all_cols):
        raise AnalysisError(
            f"no fitted label has both classes in the test split ({len(y_test)} records); "
            "AUROC is undefined — use a larger test split"
        )
    pos_pat, neg_pat = class_patients(y_test, test_groups)
    cols, flagged, basis = headline_columns(evaluable, pos_pat, neg_pat, int(min_positives))

    def compute(w: np.ndarray | None) -> dict[str, np.ndarray]:
        ww = np.ones((1, len(y_test))) if w is None else w
        out = classification_replicates(y_test, p_test, ww, thresholds)
        out["ece"] = expected_calibration_error(y_test, p_test, n_bins=n_bins, weights=ww)
        return {k: v[0] for k, v in out.items()} if w is None else out

    iv = _Intervals(
        compute, test_groups, n_resamples=n_resamples, seed=seed, ci_level=ci_level, ci_method=ci_method
    )
    point = iv.point
    label_ci = {k: iv.per_label(k) for k in point}
    metrics: dict[str, Any] = {}
    macro_reps = {}
    for key in ("auroc", "auprc", "f1", "brier", "ece"):
        metrics[f"macro_{key}"], metrics[f"macro_{key}_ci"], macro_reps[key] = iv.macro(key, cols)
        metrics[f"macro_{key}_all"], metrics[f"macro_{key}_all_ci"], _ = iv.macro(key, all_cols)
    metrics.update(
        labels_evaluated=[names[j] for j in all_cols],
        labels_not_evaluated=not_evaluated,
        labels_headline=[names[j] for j in cols],
        labels_flagged=[names[j] for j in flagged],
        n_labels_headline=len(cols),
        n_labels_evaluated=len(all_cols),
        headline_basis=basis,
        min_positives=int(min_positives),
        **_test_facts(test_ids, test_groups, n_resamples, ci_level, ci_method),
        ece_bins=n_bins,
    )
    notes += _flag_notes(names, flagged, pos_pat, neg_pat, basis, metrics)
    rows = []
    for j, name in enumerate(names):
        row: dict[str, Any] = {
            "label": name,
            "n_test_pos": int(n_pos[j]),
            "n_test_pos_patients": int(pos_pat[j]),
            "n_test_neg_patients": int(neg_pat[j]),
            "evaluated": bool(evaluable[j]),
            "flagged": bool(j in set(flagged.tolist())),
        }
        for key in ("auroc", "auprc", "f1", "brier", "ece"):
            row.update(_ci_fields(key, float(point[key][j]), label_ci[key][j]))
        row["threshold"] = float(thresholds[j])
        rows.append(row)
    mean_pred, frac_pos, count = reliability(y_test, p_test, n_bins=n_bins)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    pooled = reliability(np.ravel(y_test[:, cols]), np.ravel(p_test[:, cols]), n_bins=n_bins)
    rel_rows = [
        {
            "bin": i,
            "bin_low": edges[i],
            "bin_high": edges[i + 1],
            "mean_predicted": pooled[0][0, i],
            "observed_frequency": pooled[1][0, i],
            "count": int(pooled[2][0, i]),
        }
        for i in range(n_bins)
    ]
    fpr, tpr, thr, offsets = [], [], [], [0]
    for j in range(len(names)):
        if evaluable[j]:
            f, t, h = roc_curve(y_test[:, j], p_test[:, j])
            fpr.append(f), tpr.append(t), thr.append(h)
        offsets.append(offsets[-1] + (len(fpr[-1]) if evaluable[j] else 0))
    arrays = {
        "test_ids": np.asarray(test_ids, dtype=str),
        "test_patient_ids": np.asarray(test_groups, dtype=str),
        "test_y": np.asarray(y_test, dtype=np.uint8),
        "test_scores": np.asarray(p_test, dtype=np.float32),
        "val_thresholds": thresholds,
        "reliability_bin_edges": edges,
        "reliability_mean_predicted": mean_pred,
        "reliability_observed_frequency": frac_pos,
        "reliability_count": count,
        "roc_fpr": np.concatenate(fpr) if fpr else np.zeros(0),
        "roc_tpr": np.concatenate(tpr) if tpr else np.zeros(0),
        "roc_thresholds": np.concatenate(thr) if thr else np.zeros(0),
        "roc_offsets": np.asarray(offsets, dtype=np.int64),
        "macro_auroc_replicates": macro_reps["auroc"],
    }
    return Evaluation(metrics, {"per_label": rows, "reliability": rel_rows}, arrays, notes)


def _flag_notes(
    names: list[str],
    flagged: np.ndarray,
    pos_pat: np.ndarray,
    neg_pat: np.ndarray,
    basis: str,
    metrics: dict[str, Any],
) -> list[str]:
    """The notes that say which labels are flagged and what the headline macros average."""
    if not len(flagged):
        return []
    k = metrics["min_positives"]
    counts = ", ".join(f"{names[j]} ({int(pos_pat[j])}+/{int(neg_pat[j])}-)" for j in flagged)
    lo, hi = metrics["macro_auroc_all_ci"]
    raw = f"macro AUROC over all {metrics['n_labels_evaluated']} evaluated labels {metrics['macro_auroc_all']:.3f} [{lo:.3f}, {hi:.3f}]"
    if basis == "all_evaluated":
        return [
            f"no evaluated label has {k} positive and {k} negative test patients (min_positives={k}): the macro "
            f"averages use all of them and are descriptive, their intervals undercover ({raw}); "
            f"positive/negative test patients: {counts}"
        ]
    return [
        f"{len(flagged)} labels with fewer than {k} positive (or negative) test patients are flagged and left out "
        f"of the headline macro averages (min_positives={k}; their intervals undercover): {counts}; {raw}"
    ]


def evaluate_regression(
    target_names: Sequence[str],
    y_test: np.ndarray,
    pred_test: np.ndarray,
    test_ids: np.ndarray,
    test_groups: np.ndarray,
    *,
    n_resamples: int,
    seed: int,
    ci_level: float,
    ci_method: str = "percentile",
) -> Evaluation:
    """MAE, RMSE and R² per target with patient-bootstrap CIs; headline = mean over targets."""
    names = list(target_names)

    def compute(w: np.ndarray | None) -> dict[str, np.ndarray]:
        out = regression_metrics(y_test, pred_test, w)
        return {k: v[0] for k, v in out.items()} if w is None else out

    iv = _Intervals(
        compute, test_groups, n_resamples=n_resamples, seed=seed, ci_level=ci_level, ci_method=ci_method
    )
    point, everything = iv.point, np.arange(len(names))
    metrics: dict[str, Any] = {}
    for key in ("mae", "rmse", "r2"):
        metrics[key], metrics[f"{key}_ci"], _ = iv.macro(key, everything)
    metrics.update(_test_facts(test_ids, test_groups, n_resamples, ci_level, ci_method))
    ci = {k: iv.per_label(k) for k in point}
    rows = []
    for j, name in enumerate(names):
        row: dict[str, Any] = {"target": name}
        for key in ("mae", "rmse", "r2"):
            row.update(_ci_fields(key, float(point[key][j]), ci[key][j]))
        rows.append(row)
    arrays = {
        "test_ids": np.asarray(test_ids, dtype=str),
        "test_patient_ids": np.asarray(test_groups, dtype=str),
        "test_y": np.asarray(y_test, dtype=np.float32),
        "test_pred": np.asarray(pred_test, dtype=np.float32),
    }
    return Evaluation(metrics, {"per_target": rows}, arrays, [])


def val_auroc(y_val: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Validation AUROC ``(K, C)`` of ``K`` candidate score matrices ``(K, N, C)``."""
    return np.stack([rank_metrics(y_val, s, ap=False)[0][0] for s in scores])


def select_by_val(val_auc: np.ndarray, *, per_label: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """Pick a grid index per label from validation AUROC ``(K, C)``.

    The shared choice maximises the mean AUROC over labels with both classes in val; per-label
    choices maximise each label's AUROC, and labels without both classes in val take the shared
    choice. Ties go to the first grid value (the strongest regularisation / smallest k first).

    Returns:
        ``(index per label, whether it was the label's own choice, shared index)``.

    Raises:
        AnalysisError: no label has both classes in the validation split.
    """
    ok = np.isfinite(val_auc).all(axis=0)
    if not ok.any():
        raise AnalysisError(
            "no label has both classes in the validation split, so nothing can be tuned on it; "
            "use a larger validation split"
        )
    shared = int(np.argmax(val_auc[:, ok].mean(1)))
    idx = np.full(val_auc.shape[1], shared)
    own = ok & per_label
    if per_label and own.any():
        idx[own] = np.argmax(val_auc[:, own], axis=0)
    return idx, own, shared
