"""The facts a report states that are not analyzer results: the dataset, the encoders, the run."""

from __future__ import annotations

import datetime as _dt
from typing import Any

import numpy as np
import pandas as pd

from ecgprobe.data.record import SPLITS, RecordSet

__all__ = ["dataset_context", "now_iso"]


def now_iso() -> str:
    """The current UTC time, to the second (the report's ``created``)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def dataset_context(records: RecordSet) -> dict[str, Any]:
    """Identity, split sizes, label counts per split and age/sex summaries of ``records``.

    Example:
        >>> ctx = dataset_context(load_dataset("synthetic", n_records=50))  # doctest: +SKIP
        >>> ctx["split_sizes"]  # doctest: +SKIP
        {'train': 35, 'val': 7, 'test': 8}
    """
    ctx: dict[str, Any] = dict(records.identity)
    ctx["n_patients"] = len(set(records.patient_ids))
    ctx["split_sizes"] = records.split_sizes()
    ctx["task"] = records.task
    if records.task == "multilabel" and len(records.label_names):
        counts = records.label_counts()
        ctx["label_counts"] = [
            {
                "label": str(lab),
                **{s: int(counts.loc[lab, s]) for s in SPLITS},
                "prevalence": float(counts.loc[lab, "prevalence"]),
            }
            for lab in counts.index
        ]
    if "age" in records.meta:
        age = pd.to_numeric(records.meta["age"], errors="coerce")
        ctx["age"] = {
            "median": None if age.isna().all() else float(np.nanmedian(age)),
            "missing": int(age.isna().sum()),
        }
    if "sex" in records.meta:
        ctx["sex"] = {
            str(k): int(v) for k, v in records.meta["sex"].astype(str).value_counts().sort_index().items()
        }
    ctx["notes"] = [str(n) for n in records.notes]
    return ctx
