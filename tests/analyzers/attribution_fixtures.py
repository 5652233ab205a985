"""Shared objects for the attribution tests: embeddings of a real encoder and a probe result
with the ``LinearProbe`` contract (coef in standardised space, scaler, labels_fitted)."""

from __future__ import annotations

import numpy as np

import ecgprobe
from ecgprobe.analyzers.base import Result
from ecgprobe.extract.embeddings import Embeddings


def embed(encoder, records) -> Embeddings:
    """Embeddings of ``records`` by ``encoder``, through the real extractor (no cache)."""
    return ecgprobe.extract(encoder, records, cache_dir=None, device="cpu", progress=False)


def sklearn_probe(emb: Embeddings, records, *, C: float = 1.0) -> Result:
    """A probe result fitted like LinearProbe: standardise on train, one logistic model per label."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    train = records.split == "train"
    scaler = StandardScaler().fit(emb.X[train])
    Z = scaler.transform(emb.X[train])
    coef, intercept, labels = [], [], []
    for c, label in enumerate(records.label_names):
        y = records.y[train, c]
        if y.min() == y.max():
            continue
        lr = LogisticRegression(C=C, max_iter=2000).fit(Z, y)
        coef.append(lr.coef_[0])
        intercept.append(lr.intercept_[0])
        labels.append(label)
    return Result(
        kind="linear_probe",
        metrics={"labels_fitted": labels},
        arrays={
            "coef": np.asarray(coef),
            "intercept": np.asarray(intercept),
            "scaler_mean": scaler.mean_,
            "scaler_scale": scaler.scale_,
        },
        provenance={"embeddings": {"key": emb.key, "layer": emb.layer, **emb.provenance}},
        seed=0,
    )
