"""Coverage of the confounding check's intervals: pooled minus within-site AUROC, seeded, with a
known answer.

Design: two sites; patients (1-3 records each, a shared per-patient score effect) belong to site
A or B; the label's prevalence is ``--prev-a`` at A and ``--prev-b`` at B; a record's score is
``d * y + c * [site B] + patient effect + noise``. With ``c = 0`` the scores do not depend on the
site beyond the label and the truth is a difference of 0; with ``c > 0`` the pooled AUROC exceeds
the within-site one. The true pooled and within-site AUROCs are computed once on a very large
sample of the same design (exact rank AUROCs, no bootstrap). Each simulated test set is then
analysed exactly as reports do (:func:`ecgprobe.analyzers.confounding.site_confounding`, the
patient bootstrap shared by all AUROCs, percentile intervals), and we count how often the 95 %
interval of the difference (and of the pooled and within-site AUROCs) contains its truth.

Usage: python benchmarks/coverage_confounding.py [--sims 1000] [--resamples 1000] [--seed 0]
Writes benchmarks/results/coverage_confounding.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ecgprobe.analyzers._stats.metrics import rank_metrics  # noqa: E402
from ecgprobe.analyzers.base import Result  # noqa: E402
from ecgprobe.analyzers.confounding import site_confounding, within_auroc  # noqa: E402
from ecgprobe.data.record import ArraySource, RecordSet  # noqa: E402


def draw(
    rng: np.random.Generator,
    n_patients: int,
    *,
    prev: tuple[float, float] = (0.1, 0.35),
    d: float = 1.2,
    c: float = 0.8,
    patient_sd: float = 0.5,
) -> dict[str, np.ndarray]:
    """One test set of the design: patient ids, site per record, labels and scores."""
    site_p = rng.random(n_patients) < 0.5  # True: site B
    n_rec = rng.integers(1, 4, size=n_patients)
    patient = np.repeat(np.arange(n_patients), n_rec)
    b = site_p[patient]
    y = (rng.random(len(patient)) < np.where(b, prev[1], prev[0])).astype(np.uint8)
    effect = rng.normal(scale=patient_sd, size=n_patients)[patient]
    score = d * y + c * b + effect + rng.normal(size=len(patient))
    return {"patient": patient, "site_b": b, "y": y, "score": score}


def truth(
    prev: tuple[float, float], d: float, c: float, n: int = 400_000, seed: int = 12345
) -> dict[str, float]:
    """Pooled and within-site AUROC (and their difference) of the design, from one huge sample."""
    x = draw(np.random.default_rng(seed), n // 2, prev=prev, d=d, c=c)
    y, s, b = x["y"][:, None], x["score"][:, None], x["site_b"]
    pooled = float(rank_metrics(y, s, ap=False)[0][0, 0])
    per = [rank_metrics(y[m], s[m], ap=False)[0][0, 0] for m in (~b, b)]
    pairs = [float(y[m].sum() * (1 - y[m]).sum()) for m in (~b, b)]
    within = float(within_auroc(np.array(per), np.array(pairs)))
    return {"pooled": pooled, "within": within, "difference": pooled - within}


def as_inputs(x: dict[str, np.ndarray]) -> tuple[Result, RecordSet]:
    """The draw as a RecordSet (site in the metadata; patients with an even id form the train
    split, which gives the site prevalences of the site-alone score, the others the test split)
    and a probe result holding the test records' arrays."""
    n = len(x["y"])
    ids = np.asarray([f"r{i}" for i in range(n)])
    pids = np.asarray([f"p{p}" for p in x["patient"]])
    test = x["patient"] % 2 == 1
    probe = Result(
        kind="linear_probe",
        metrics={"task": "multilabel", "labels_fitted": ["label"]},
        arrays={
            "test_ids": ids[test],
            "test_patient_ids": pids[test],
            "test_y": x["y"][test, None],
            "test_scores": x["score"][test, None],
        },
    )
    records = RecordSet(
        source=ArraySource(np.zeros((n, 1, 1), dtype=np.float32)),
        fs=100.0,
        leads=("I",),
        ids=ids,
        patient_ids=pids,
        label_names=("label",),
        y=x["y"][:, None],
        split=np.where(test, "test", "train"),
        meta=pd.DataFrame({"site": np.where(x["site_b"], "B", "A")}),
    )
    return probe, records


def coverage(
    sims: int,
    resamples: int,
    seed: int,
    *,
    n_patients: int = 200,
    prev: tuple[float, float] = (0.1, 0.35),
    d: float = 1.2,
    c: float = 0.8,
) -> dict[str, Any]:
    """Coverage and mean width of the 95 % intervals of pooled, within-site and their difference
    (``n_patients`` test patients per simulated test set, as many in train)."""
    true = truth(prev, d, c)
    rng = np.random.default_rng(seed)
    hits = {k: 0 for k in true}
    widths: dict[str, list[float]] = {k: [] for k in true}
    decided = 0
    done = 0
    for s in range(sims):
        probe, records = as_inputs(draw(rng, 2 * n_patients, prev=prev, d=d, c=c))
        try:
            res = site_confounding(probe, records, min_records=5, n_resamples=resamples, seed=seed + s)
        except Exception:  # a draw without both classes at a site: not a test set we could analyse
            continue
        row = res.tables["labels"][0]
        done += 1
        for key, col in (("pooled", "pooled"), ("within", "within"), ("difference", "difference")):
            lo, hi = row[f"{col}_ci_low"], row[f"{col}_ci_high"]
            hits[key] += int(lo <= true[key] <= hi)
            widths[key].append(hi - lo)
        decided += int(row["difference_ci_low"] > 0)
    return {
        "design": {"n_patients": n_patients, "prevalence_a_b": list(prev), "d": d, "c": c},
        "truth": true,
        "sims": done,
        "resamples": resamples,
        "coverage": {k: hits[k] / max(done, 1) for k in hits},
        "mean_width": {k: float(np.mean(v)) if v else None for k, v in widths.items()},
        "share_called_confounded": decided / max(done, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sims", type=int, default=1000)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "coverage_confounding.json")
    args = ap.parse_args()
    t0 = time.perf_counter()
    out: dict[str, Any] = {
        "name": "coverage_confounding",
        "machine": f"{platform.machine()}, {platform.processor()}",
    }
    for name, c in (("no_confounding", 0.0), ("confounded", 0.8)):
        r = coverage(args.sims, args.resamples, args.seed, c=c)
        out[name] = r
        print(
            f"{name:15s} truth diff {r['truth']['difference']:+.4f}; coverage pooled {r['coverage']['pooled']:.3f}, "
            f"within {r['coverage']['within']:.3f}, difference {r['coverage']['difference']:.3f} "
            f"(width {r['mean_width']['difference']:.3f}); called confounded {r['share_called_confounded']:.3f} "
            f"({r['sims']} sims x {args.resamples} resamples)",
            flush=True,
        )
    out["seconds"] = round(time.perf_counter() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out} in {out['seconds']} s")


if __name__ == "__main__":
    main()
