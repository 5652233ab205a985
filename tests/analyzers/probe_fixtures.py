"""Synthetic embeddings with labels of known structure for the probe tests (no signals needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ecgprobe.data.record import ArraySource, RecordSet
from ecgprobe.extract.embeddings import Embeddings


def make_records(
    y: np.ndarray,
    split: np.ndarray,
    *,
    patients: np.ndarray | None = None,
    names: list[str] | None = None,
    task: str = "multilabel",
    meta: dict | None = None,
) -> RecordSet:
    """A RecordSet around labels/splits (1-lead dummy signals: probes never read them)."""
    n = len(y)
    ids = np.asarray([f"r{i:05d}" for i in range(n)])
    y2 = np.asarray(y).reshape(n, -1)
    return RecordSet(
        source=ArraySource(np.zeros((n, 1, 4), dtype=np.float32)),
        fs=100.0,
        leads=("I",),
        ids=ids,
        patient_ids=ids if patients is None else np.asarray(patients).astype(str),
        label_names=tuple(names or [f"L{j}" for j in range(y2.shape[1])]),
        y=y2,
        split=np.asarray(split),
        meta=pd.DataFrame(meta or {"age": np.full(n, np.nan)}),
        task=task,  # type: ignore[arg-type]
        name="probe-test",
    )


def make_problem(
    n: int = 900,
    dim: int = 24,
    n_labels: int = 4,
    *,
    signal: float = 2.0,
    seed: int = 0,
    records_per_patient: int = 1,
    prevalence: tuple[float, ...] | None = None,
) -> tuple[Embeddings, RecordSet]:
    """Embeddings = latent factors mixed into ``dim`` dims + noise; label j = noisy threshold of a
    latent factor (``signal`` sets separability). Patients hold ``records_per_patient`` records
    sharing their latent; splits 60/20/20 by patient."""
    rng = np.random.default_rng(seed)
    n_pat = n // records_per_patient
    pat = np.repeat(np.arange(n_pat), records_per_patient)[:n]
    z_pat = rng.normal(size=(n_pat, n_labels))
    z = z_pat[pat] + 0.2 * rng.normal(size=(n, n_labels))
    mix = rng.normal(size=(n_labels, dim))
    X = z @ mix + rng.normal(size=(n, dim)) * 1.5 + 3.0
    prev = prevalence or tuple(np.linspace(0.15, 0.5, n_labels))
    logit = signal * z
    thr = np.array([np.quantile(logit[:, j], 1 - prev[j]) for j in range(n_labels)])
    y = (logit - thr + rng.logistic(size=(n, n_labels)) > 0).astype(np.uint8)
    u = rng.permutation(n_pat)
    part = np.empty(n_pat, dtype=object)
    part[u[: int(0.6 * n_pat)]] = "train"
    part[u[int(0.6 * n_pat) : int(0.8 * n_pat)]] = "val"
    part[u[int(0.8 * n_pat) :]] = "test"
    records = make_records(y, part[pat], patients=np.asarray([f"p{p}" for p in pat]))
    return Embeddings(X=X.astype(np.float32), ids=records.ids), records
