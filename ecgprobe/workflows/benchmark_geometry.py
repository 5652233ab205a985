"""Does a label-free number predict the benchmark's ranking? (issue 16, part 5)

For each in-dataset task of a benchmark: RankMe, TwoNN and IsoScore of every encoder's embedding
of that dataset (:mod:`ecgprobe.analyzers._stats.label_free`, standardised, all records — no
label is used; at most :data:`MAX_RECORDS`, a seeded subsample beyond, the same records for every
encoder), then Spearman's ρ across encoders between each statistic and the task's macro AUROC,
with the Fisher-z interval of :func:`~ecgprobe.analyzers._stats.rank_correlation.spearman_interval`.
A verdict is given only when the interval excludes 0; with fewer than 4 encoders there is no
interval and the row says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ecgprobe.analyzers._stats.label_free import isoscore, rankme, standardise, twonn
from ecgprobe.analyzers._stats.rank_correlation import spearman_interval

__all__ = ["MAX_RECORDS", "label_free_correlation"]

#: Records per dataset the label-free statistics are computed on (a seeded subsample beyond).
MAX_RECORDS = 5000
_STATS = {"rankme": rankme, "twonn": twonn, "isoscore": isoscore}


def label_free_correlation(
    sets: Mapping[str, Any],
    encoders: Sequence[str],
    cells: Sequence[Mapping[str, Any]],
    task_meta: Sequence[Mapping[str, Any]],
    *,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per-encoder label-free values and their rank correlation with each in-dataset task's AUROC.

    Returns:
        ``(values, correlations)``: rows (encoder, task, n_records, rankme, twonn, isoscore) and
        rows (task, statistic, n_encoders, rho, ci_low, ci_high, verdict).
    """
    auroc = {(c["encoder"], c["task"]): c["macro_auroc"] for c in cells}
    values: list[dict[str, Any]] = []
    correlations: list[dict[str, Any]] = []
    for meta in task_meta:
        if meta.get("kind") != "in_dataset" or meta["name"] not in sets:
            continue
        task, entry = meta["name"], sets[meta["name"]]
        n = len(entry.records)
        rows = np.arange(n)
        if n > MAX_RECORDS:
            rows = np.sort(np.random.default_rng(seed).choice(n, MAX_RECORDS, replace=False))
        per: dict[str, dict[str, float]] = {}
        for enc in encoders:
            emb = entry.embeddings.get(enc)
            if emb is None:
                continue
            Z = standardise(np.asarray(emb.X, dtype=np.float64)[rows])
            per[enc] = {
                k: float(f(Z)) if Z.shape[1] >= 2 or k != "isoscore" else float("nan")
                for k, f in _STATS.items()
            }
            values.append({"encoder": enc, "task": task, "n_records": len(rows), **per[enc]})
        names = [e for e in encoders if e in per and (e, task) in auroc]
        y = [auroc[(e, task)] for e in names]
        for stat in _STATS:
            rho, lo, hi, k, why = spearman_interval([per[e][stat] for e in names], y, level)
            if why:
                verdict = f"inconclusive: {why}"
            elif lo > 0:
                verdict = "higher goes with a higher AUROC"
            elif hi < 0:
                verdict = "higher goes with a lower AUROC"
            else:
                verdict = f"inconclusive at n = {k} encoders (interval includes 0)"
            correlations.append(
                {
                    "task": task,
                    "statistic": stat,
                    "n_encoders": k,
                    "rho": rho,
                    "ci_low": lo,
                    "ci_high": hi,
                    "verdict": verdict,
                }
            )
    return values, correlations
