"""The statistics of a transfer evaluation: AUROC in and out of the source dataset, their gap,
and how well embeddings reveal the dataset a record came from (site predictability).

Intervals reuse the patient bootstrap of :mod:`ecgprobe.analyzers._stats.bootstrap`. The
in-dataset test set and a target are different patients, so they are resampled
*independently* (each with its own seed): replicate ``b`` of the gap is
``macro_in[b] - macro_out[b]`` with the two resamples drawn independently, which is the
bootstrap distribution of a difference of independent estimates; its percentile interval is the
gap's. Coverage of the 95 % gap interval, measured by ``benchmarks/coverage_transfer.py``
(binormal scores, true AUROC 0.856 in-dataset vs 0.760 on the target, 30/120 and 25/100
positive/negative patients with two correlated records each (rho 0.5), 3 x 1000 simulated pairs,
500 resamples; ``benchmarks/results/coverage_transfer.json``; Monte Carlo SE 0.7 % per run)::

    patient bootstrap (this)   93.7 / 94.3 / 94.0 %   width 0.215
    record-wise bootstrap      87.7 / 88.8 / 89.1 %   width 0.178

slightly below nominal, as percentile intervals of AUROC are with a few dozen positives
(:mod:`ecgprobe.analyzers._stats.bootstrap`); ignoring the patients would undercover by 6 points.
A small version of the simulation runs in ``tests/workflows/test_transfer.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ecgprobe.analyzers._stats.bootstrap import (
    class_patients,
    headline_columns,
    percentile_ci,
    resample_weights,
)
from ecgprobe.analyzers._stats.evaluation import macro_replicates
from ecgprobe.analyzers._stats.metrics import rank_metrics

__all__ = [
    "Scored",
    "auroc_replicates",
    "compare",
    "derive_seeds",
    "macro_with_interval",
    "sigmoid",
    "site_predictability",
]


def derive_seeds(seed: int, n: int) -> list[int]:
    """``n`` independent bootstrap seeds from the run's ``seed`` (recorded in the results).

    Example:
        >>> derive_seeds(0, 2) == derive_seeds(0, 2) and len(set(derive_seeds(0, 3))) == 3
        True
    """
    return [int(s) for s in np.random.SeedSequence(int(seed)).generate_state(n, dtype=np.uint32)]


@dataclass(frozen=True)
class Scored:
    """A probe's scores on one evaluation set: labels ``(N, C)``, scores ``(N, C)`` (any
    monotone score: logits or probabilities), patient per record."""

    y: np.ndarray
    scores: np.ndarray
    groups: np.ndarray

    def columns(self, cols: Sequence[int]) -> Scored:
        """The same records with label columns ``cols``."""
        c = np.asarray(cols, dtype=np.int64)
        return Scored(self.y[:, c], self.scores[:, c], self.groups)


def auroc_replicates(s: Scored, n_resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Point AUROC per label ``(C,)`` and its patient-bootstrap replicates ``(B, C)``."""
    point = rank_metrics(s.y, s.scores, ap=False)[0][0]
    reps = rank_metrics(s.y, s.scores, resample_weights(s.groups, n_resamples, seed), ap=False)[0]
    return point, reps


def macro_with_interval(
    point: np.ndarray, reps: np.ndarray, cols: np.ndarray, level: float
) -> tuple[float, list[float], np.ndarray]:
    """Macro over ``cols`` of per-label points and replicates: (point, [low, high], replicates)."""
    m = float(np.nanmean(point[cols])) if len(cols) else float("nan")
    r = macro_replicates(reps, cols)
    return m, percentile_ci(r, level).tolist(), r


def compare(
    inside: Scored,
    outside: Scored,
    labels: Sequence[str],
    *,
    n_resamples: int,
    seeds: tuple[int, int],
    level: float,
    min_positives: int,
) -> dict[str, Any]:
    """In-dataset vs out-of-dataset AUROC on the same labels, and the gap with its interval.

    Args:
        inside: the source's test set, scored by the probe (columns ``labels``).
        outside: the target set, scored by the same probe (columns ``labels``).
        labels: the shared label names.
        n_resamples: bootstrap resamples of each set.
        seeds: (inside, outside) bootstrap seeds: independent draws.
        level: confidence level.
        min_positives: labels with fewer positive (or negative) patients in either set are
            flagged and left out of the headline macro (as in the probes).

    Returns:
        ``metrics`` (macro in/out/gap with intervals over the headline labels, and over all
        evaluated labels), ``rows`` (one per label) and ``arrays`` (macro replicates).
    """
    n_in, n_out = inside.y.sum(0), outside.y.sum(0)
    ok = (n_in > 0) & (n_in < len(inside.y)) & (n_out > 0) & (n_out < len(outside.y))
    pin, nin = class_patients(inside.y, inside.groups)
    pout, nout = class_patients(outside.y, outside.groups)
    cols, flagged, basis = headline_columns(
        ok, np.minimum(pin, pout), np.minimum(nin, nout), int(min_positives)
    )
    a_in, r_in = auroc_replicates(inside, n_resamples, seeds[0])
    a_out, r_out = auroc_replicates(outside, n_resamples, seeds[1])
    ci_in, ci_out = percentile_ci(r_in, level), percentile_ci(r_out, level)
    ci_gap = percentile_ci(r_in - r_out, level)
    metrics: dict[str, Any] = {"headline_basis": basis, "n_labels_headline": len(cols)}
    arrays = {}
    every = np.flatnonzero(ok)
    for suffix, cc in (("", cols), ("_all", every)):
        m_in, c_in, rep_in = macro_with_interval(a_in, r_in, cc, level)
        m_out, c_out, rep_out = macro_with_interval(a_out, r_out, cc, level)
        metrics[f"macro_auroc_in{suffix}"], metrics[f"macro_auroc_in{suffix}_ci"] = m_in, c_in
        metrics[f"macro_auroc_out{suffix}"], metrics[f"macro_auroc_out{suffix}_ci"] = m_out, c_out
        metrics[f"gap{suffix}"] = m_in - m_out
        metrics[f"gap{suffix}_ci"] = percentile_ci(rep_in - rep_out, level).tolist()
        if not suffix:
            arrays = {"macro_in_replicates": rep_in, "macro_out_replicates": rep_out}
    metrics["labels_evaluated"] = [labels[j] for j in every]
    metrics["labels_headline"] = [labels[j] for j in cols]
    metrics["labels_flagged"] = [labels[j] for j in flagged]
    metrics["labels_not_evaluated"] = [labels[j] for j in np.flatnonzero(~ok)]
    flag = set(flagged.tolist())
    rows = [
        {
            "label": name,
            "n_pos_in": int(n_in[j]),
            "n_pos_out": int(n_out[j]),
            "n_pos_patients_in": int(pin[j]),
            "n_pos_patients_out": int(pout[j]),
            "evaluated": bool(ok[j]),
            "flagged": j in flag,
            "auroc_in": float(a_in[j]),
            "auroc_in_ci_low": float(ci_in[j, 0]),
            "auroc_in_ci_high": float(ci_in[j, 1]),
            "auroc_out": float(a_out[j]),
            "auroc_out_ci_low": float(ci_out[j, 0]),
            "auroc_out_ci_high": float(ci_out[j, 1]),
            "gap": float(a_in[j] - a_out[j]),
            "gap_ci_low": float(ci_gap[j, 0]),
            "gap_ci_high": float(ci_gap[j, 1]),
        }
        for j, name in enumerate(labels)
    ]
    return {"metrics": metrics, "rows": rows, "arrays": arrays}


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function of logits (clipped so that no overflow warning is raised)."""
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


def site_predictability(
    X: Sequence[np.ndarray],
    groups: Sequence[np.ndarray],
    y: Sequence[np.ndarray],
    *,
    sources: Sequence[str],
    labels: Sequence[str],
    probe: Any,
    n_per_source: int,
    n_resamples: int,
    seed: int,
    level: float,
) -> dict[str, Any]:
    """How well a linear probe tells the sources apart from their embeddings.

    Each source contributes the same number of records (``min(n_per_source, smallest source)``,
    drawn with ``seed``), so that chance is AUROC 0.5 whatever the sources' sizes. The pooled
    records are split patient-wise (60/20/20, stratified by source); the probe's protocol is the
    linear probe's (train-split standardisation, C per source chosen on validation AUROC, one
    logistic regression per source against the rest), and the test AUROC of each source is
    bootstrapped over test patients. Within each label, the same probe's AUROC is computed on
    the test records positive for that label: whether records with the same diagnosis are still
    told apart by their site.

    Args:
        X, groups, y: per source its embeddings ``(N_i, D)``, patient ids (namespaced) and its
            labels ``(N_i, L)`` in the order of ``labels``.
        sources: the source names.
        labels: the shared label names.
        probe: a :class:`~ecgprobe.analyzers.linear_probe.LinearProbe` (its grid and solver).
        n_per_source: records drawn per source at most.
        n_resamples, seed, level: the bootstrap.

    Returns:
        ``metrics`` (macro AUROC over sources with its interval, sizes), ``rows`` (scope
        ``overall`` and one per label).
    """
    from ecgprobe.analyzers._stats.evaluation import select_by_val, val_auroc
    from ecgprobe.analyzers._stats.probe_data import fit_scaler
    from ecgprobe.data.splits import stratified_patient_split

    rng = np.random.default_rng(seed)
    n = int(min(n_per_source, *(len(x) for x in X)))
    picks = [np.sort(rng.choice(len(x), size=n, replace=False)) for x in X]
    Xp = np.concatenate([x[p] for x, p in zip(X, picks)]).astype(np.float32)
    gp = np.concatenate([np.asarray(g, dtype=str)[p] for g, p in zip(groups, picks)])
    yp = np.concatenate([np.asarray(v)[p] for v, p in zip(y, picks)])
    S = np.repeat(np.eye(len(X), dtype=np.uint8), n, axis=0)
    split = stratified_patient_split(S, gp, fractions=(0.6, 0.2, 0.2), seed=seed)
    m = {s: split == s for s in ("train", "val", "test")}
    mean, scale, _ = fit_scaler(Xp[m["train"]])
    Xs = ((Xp - mean) / scale).astype(np.float32)
    path = probe.fit_path(Xs[m["train"]], S[m["train"]])
    idx, _, _ = select_by_val(val_auroc(S[m["val"]], path.decision_function(Xs[m["val"]])), per_label=True)
    cols = np.arange(len(X))
    logits = Xs[m["test"]] @ path.coef[idx, cols].T + path.intercept[idx, cols]
    test = Scored(S[m["test"]], logits, gp[m["test"]])
    rows = []
    point, reps = auroc_replicates(test, n_resamples, seed)
    every = np.flatnonzero(np.isfinite(point))
    macro, ci, _ = macro_with_interval(point, reps, every, level)
    rows.append({"scope": "overall", "label": "", "n_test": int(m["test"].sum()), "auroc": macro,
                 "ci_low": ci[0], "ci_high": ci[1]})  # fmt: skip
    y_test = yp[m["test"]]
    for j, name in enumerate(labels):
        pos = y_test[:, j] > 0
        sub = Scored(test.y[pos], test.scores[pos], test.groups[pos])
        present = (sub.y.sum(0) > 0) & (sub.y.sum(0) < len(sub.y))
        if not present.any():
            rows.append({"scope": "label", "label": name, "n_test": int(pos.sum()), "auroc": None,
                         "ci_low": None, "ci_high": None})  # fmt: skip
            continue
        pt, rp = auroc_replicates(sub, n_resamples, seed)
        mm, cc, _ = macro_with_interval(pt, rp, np.flatnonzero(present), level)
        rows.append({"scope": "label", "label": name, "n_test": int(pos.sum()), "auroc": mm,
                     "ci_low": cc[0], "ci_high": cc[1]})  # fmt: skip
    per_source = {s: float(point[k]) for k, s in enumerate(sources)}
    metrics = {"macro_auroc": macro, "macro_auroc_ci": ci, "n_per_source": n, "per_source_auroc": per_source,
               "n_test": int(m["test"].sum()), "n_test_patients": len(set(test.groups))}  # fmt: skip
    return {"metrics": metrics, "rows": rows}
