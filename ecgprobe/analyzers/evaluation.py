"""Turning a probe's test predictions into the metrics, tables and arrays of its Result.

Shared by the linear and the kNN probe so that both report the same schema (documented on
:class:`ecgprobe.analyzers.probe.LinearProbeResult`), and so that a paired comparison or a report
can treat them alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ecgprobe.analyzers.bootstrap import (
    bootstrap_unit,
    classification_replicates,
    macro_replicates,
    percentile_ci,
    resample_weights,
)
from ecgprobe.analyzers.metrics import (
    best_f1_thresholds,
    expected_calibration_error,
    rank_metrics,
    regression_metrics,
    reliability,
    roc_curve,
)
from ecgprobe.data.record import RecordSet
from ecgprobe.exceptions import AnalysisError, ConfigError

__all__ = [
    "Evaluation",
    "SplitData",
    "check_common",
    "check_grid",
    "evaluate_multilabel",
    "evaluate_regression",
    "fit_scaler",
    "fittable_labels",
    "select_by_val",
    "split_data",
    "val_auroc",
]


@dataclass
class SplitData:
    """Embeddings and targets of the three splits, with test ids and patients."""

    X: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    test_ids: np.ndarray
    test_groups: np.ndarray
    notes: list[str] = field(default_factory=list)


def split_data(X: np.ndarray, records: RecordSet) -> SplitData:
    """Cut aligned embeddings and labels by the records' split; regression rows with NaN targets go.

    Raises:
        AnalysisError: a split is empty (naming the split sizes and how to get all three).
    """
    y = records.y
    keep = np.ones(len(records), dtype=bool)
    notes: list[str] = []
    if records.task == "regression":
        keep = np.isfinite(y).all(axis=1)
        for s in ("train", "val", "test"):
            dropped = int(np.sum(~keep & (records.split == s)))
            if dropped:
                notes.append(
                    f"{dropped} {s} records without a target value ({', '.join(records.label_names)}) were dropped"
                )
    masks = {s: keep & (records.split == s) for s in ("train", "val", "test")}
    empty = [s for s, m in masks.items() if not m.any()]
    if empty:
        raise AnalysisError(
            f"the {'/'.join(empty)} split is empty (split sizes with targets: "
            f"{ {s: int(m.sum()) for s, m in masks.items()} }); probes need train, val and test records: "
            "use a dataset with predefined splits or a loader option that creates them"
        )
    return SplitData(
        X={s: X[m] for s, m in masks.items()},
        y={s: y[m] for s, m in masks.items()},
        test_ids=np.asarray(records.ids[masks["test"]], dtype=str),
        test_groups=np.asarray(records.patient_ids[masks["test"]], dtype=str),
        notes=notes,
    )


def fit_scaler(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean and scale of each column in float64 (scale 1 where a column is constant), and the
    number of constant columns."""
    mean = X.mean(0, dtype=np.float64)
    scale = X.std(0, dtype=np.float64)
    constant = ~(scale > 1e-12 * np.maximum(np.abs(mean), 1.0))
    scale[constant] = 1.0
    return mean, scale, int(constant.sum())


def fittable_labels(names: Sequence[str], y_train: np.ndarray) -> tuple[np.ndarray, dict[str, str]]:
    """Columns with both classes in train, and ``{label: reason}`` for the others.

    Raises:
        AnalysisError: no label has both classes.
    """
    n_pos = np.asarray(y_train).astype(bool).sum(0)
    ok = (n_pos > 0) & (n_pos < len(y_train))
    if not ok.any():
        raise AnalysisError(
            f"no label has both classes in the train split ({len(y_train)} records); nothing to fit"
        )
    skipped = {
        names[j]: ("no positive" if n_pos[j] == 0 else "no negative") + " in the train split"
        for j in np.flatnonzero(~ok)
    }
    return np.flatnonzero(ok), skipped


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


def check_common(n_resamples: int, ci_level: float, n_bins: int) -> None:
    """Validate the evaluation settings shared by the probes.

    Raises:
        ConfigError: naming the bad setting.
    """
    if int(n_resamples) < 1:
        raise ConfigError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0 < float(ci_level) < 1:
        raise ConfigError(f"ci_level must be in (0, 1), got {ci_level}")
    if int(n_bins) < 1:
        raise ConfigError(f"n_bins must be >= 1, got {n_bins}")


@dataclass
class Evaluation:
    """Metrics, tables, arrays and notes of a probe's test evaluation (merged into its Result)."""

    metrics: dict[str, Any]
    tables: dict[str, list[dict[str, Any]]]
    arrays: dict[str, np.ndarray]
    notes: list[str]


def _ci_fields(name: str, point: float, ci: np.ndarray) -> dict[str, float]:
    return {name: point, f"{name}_ci_low": float(ci[0]), f"{name}_ci_high": float(ci[1])}


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
) -> Evaluation:
    """Evaluate probabilities ``p_test`` of the fitted labels (thresholds for F1 chosen on val)."""
    names = list(label_names)
    thresholds = best_f1_thresholds(y_val, p_val)
    notes = []
    no_val_pos = [names[j] for j in np.flatnonzero(np.asarray(y_val).sum(0) == 0)]
    if no_val_pos:
        notes.append(f"F1 threshold 0.5 (no validation positive) for: {', '.join(no_val_pos)}")
    n_pos = np.asarray(y_test).sum(0)
    evaluable = (n_pos > 0) & (n_pos < len(y_test))
    cols = np.flatnonzero(evaluable)
    not_evaluated = {
        names[j]: ("no positive" if n_pos[j] == 0 else "no negative") + " in the test split"
        for j in np.flatnonzero(~evaluable)
    }
    if not_evaluated:
        notes.append(
            f"{len(not_evaluated)} labels not evaluated (a class missing in test): "
            + ", ".join(not_evaluated)
        )
    if not len(cols):
        raise AnalysisError(
            f"no fitted label has both classes in the test split ({len(y_test)} records); "
            "AUROC is undefined — use a larger test split"
        )
    ones = np.ones((1, len(y_test)))
    point = {k: v[0] for k, v in classification_replicates(y_test, p_test, ones, thresholds).items()}
    ece = expected_calibration_error(y_test, p_test, n_bins=n_bins)
    weights = resample_weights(test_groups, n_resamples, seed)
    reps = classification_replicates(y_test, p_test, weights, thresholds)
    del weights
    metrics: dict[str, Any] = {}
    label_ci = {k: percentile_ci(v, ci_level) for k, v in reps.items()}
    macro_reps = {}
    for key in ("auroc", "auprc", "f1", "brier"):
        macro_reps[key] = macro_replicates(reps[key], cols)
        metrics[f"macro_{key}"] = float(np.nanmean(point[key][cols]))
        metrics[f"macro_{key}_ci"] = percentile_ci(macro_reps[key], ci_level).tolist()
    metrics["macro_ece"] = float(np.mean(ece[cols]))
    metrics.update(
        labels_evaluated=[names[j] for j in cols],
        labels_not_evaluated=not_evaluated,
        n_test=len(y_test),
        n_test_patients=len(set(test_groups)),
        bootstrap_unit=bootstrap_unit(test_groups, test_ids),
        n_resamples=int(n_resamples),
        ci_level=ci_level,
        ece_bins=n_bins,
    )
    rows = []
    for j, name in enumerate(names):
        row: dict[str, Any] = {"label": name, "n_test_pos": int(n_pos[j]), "evaluated": bool(evaluable[j])}
        for key in ("auroc", "auprc", "f1", "brier"):
            row.update(_ci_fields(key, float(point[key][j]), label_ci[key][j]))
        row.update(threshold=float(thresholds[j]), ece=float(ece[j]))
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
) -> Evaluation:
    """MAE, RMSE and R² per target with patient-bootstrap CIs; headline = mean over targets."""
    names = list(target_names)
    point = {k: v[0] for k, v in regression_metrics(y_test, pred_test).items()}
    weights = resample_weights(test_groups, n_resamples, seed)
    reps = regression_metrics(y_test, pred_test, weights)
    metrics: dict[str, Any] = {}
    for key in ("mae", "rmse", "r2"):
        metrics[key] = float(np.mean(point[key]))
        metrics[f"{key}_ci"] = percentile_ci(reps[key].mean(1), ci_level).tolist()
    metrics.update(
        n_test=len(y_test),
        n_test_patients=len(set(test_groups)),
        bootstrap_unit=bootstrap_unit(test_groups, test_ids),
        n_resamples=int(n_resamples),
        ci_level=ci_level,
    )
    ci = {k: percentile_ci(v, ci_level) for k, v in reps.items()}
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
