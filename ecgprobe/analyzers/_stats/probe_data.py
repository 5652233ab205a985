"""A probe's data: embeddings and targets cut by split, the standardisation fitted on train,
and the labels that can be fitted (both classes in train).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ecgprobe.data.record import RecordSet
from ecgprobe.exceptions import AnalysisError

__all__ = ["SplitData", "Targets", "fit_scaler", "fittable_labels", "fittable_targets", "split_data"]


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


@dataclass(frozen=True)
class Targets:
    """The labels a probe fits (both classes in train) and their 0/1 columns per split."""

    fitted: list[str]
    skipped: dict[str, str]
    Y: dict[str, np.ndarray]


def fittable_targets(names: Sequence[str], y: dict[str, np.ndarray]) -> Targets:
    """The labels of ``names`` with both classes in ``y["train"]`` (see :func:`fittable_labels`)."""
    cols, skipped = fittable_labels(names, y["train"])
    return Targets([names[j] for j in cols], skipped, {s: y[s][:, cols].astype(np.uint8) for s in y})
