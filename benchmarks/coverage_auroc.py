"""Coverage of the probes' AUROC intervals (percentile vs BCa, per label and for the macro
average) and of their ECE interval (percentile vs basic).

A seeded simulation with a known answer. Each simulated test set has ``--n-neg`` negatives shared
by all labels and, for each positive count in ``--positives`` (default 7, 10, 20, 50), one label
with that many positives; scores are binormal (negatives ~ N(0, 1), positives ~ N(d, 1)), so every
label's true AUROC is ``Phi(d / sqrt 2)`` (``--auroc``, default 0.8) and so is the true macro.
The probes' own code computes everything: :func:`resample_weights` draws the records (one per
patient here), :func:`rank_metrics` evaluates all labels under the same draws, and
:func:`percentile_ci` / :func:`bca_ci` (jackknife from :func:`jackknife_weights`) make the
intervals. Coverage = share of simulated test sets whose interval contains the truth; its Monte
Carlo standard error is about ``sqrt(0.95 x 0.05 / sims)`` (0.5 % at 2000 simulations).

Printed and written to ``benchmarks/results/coverage_auroc.json``: coverage, mean width and the
misses below/above the truth per method and positive count, and for the macro over all labels
(``macro_all``) and over the labels with at least ``--min-positives`` positives (``macro_headline``,
what the reports headline).

ECE section: probabilities ``p ~ U(0, 1)``, outcomes ``y ~ Bernoulli(p^1.5)`` (overconfident), 10
equal-width bins; the true binned ECE (0.100) is computed from 4 million draws. For each test-set
size in ``--ece-records`` the percentile and the basic bootstrap intervals of
:func:`expected_calibration_error` are checked against it (``--ece-sims`` test sets).

Usage: python benchmarks/coverage_auroc.py [--sims 2000] [--resamples 1000] [--positives 7,10,20,50]
       [--n-neg 150] [--auroc 0.8] [--min-positives 10] [--seed 0] [--out benchmarks/results/coverage_auroc.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ecgprobe.analyzers._stats.bootstrap import (  # noqa: E402
    CI_METHODS,
    confidence_interval,
    jackknife_weights,
    macro_replicates,
    resample_weights,
)
from ecgprobe.analyzers._stats.metrics import expected_calibration_error, rank_metrics  # noqa: E402


def _coverage(intervals: np.ndarray, truth: float) -> dict[str, float]:
    """Share of ``(sims, 2)`` intervals holding ``truth``, mean width, and misses on either side."""
    lo, hi = intervals[:, 0], intervals[:, 1]
    return {
        "coverage": float(np.mean((lo <= truth) & (truth <= hi))),
        "width": float(np.mean(hi - lo)),
        "miss_low": float(np.mean(hi < truth)),  # interval entirely below the truth
        "miss_high": float(np.mean(lo > truth)),
    }


def simulate(
    positives: tuple[int, ...] = (7, 10, 20, 50),
    *,
    n_neg: int = 150,
    true_auroc: float = 0.8,
    sims: int = 2000,
    resamples: int = 1000,
    level: float = 0.95,
    min_positives: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """Run the coverage simulation (see the module docstring) and return its figures.

    Returns:
        ``{"settings": {...}, "coverage": {method: {target: {"coverage", "width", "miss_low",
        "miss_high"}}}}`` with targets ``"pos_<n>"``, ``"macro_all"`` and ``"macro_headline"``.
    """
    from scipy.stats import norm

    d = np.sqrt(2.0) * norm.ppf(true_auroc)
    pos = np.asarray(positives, dtype=np.int64)
    n = n_neg + int(pos.max())
    headline = np.flatnonzero(pos >= min_positives)
    targets = [f"pos_{p}" for p in pos] + ["macro_all"] + (["macro_headline"] if len(headline) else [])
    hits = {m: {t: np.zeros((sims, 2)) for t in targets} for m in CI_METHODS}  # low, high
    rng = np.random.default_rng(seed)
    ids = np.arange(n).astype(str)
    jk = jackknife_weights(ids)
    for sim in range(sims):
        # label j: its first pos[j] records (of a random order) are positive
        y = np.zeros((n, len(pos)), dtype=np.uint8)
        for j, p in enumerate(pos):
            y[rng.permutation(n)[:p], j] = 1
        scores = rng.normal(size=(n, len(pos))) + d * y
        w = resample_weights(ids, resamples, seed=seed * 100_003 + sim)
        point = rank_metrics(y, scores, ap=False)[0][0]
        reps = rank_metrics(y, scores, w, ap=False)[0]
        jack = rank_metrics(y, scores, jk, ap=False)[0]
        series = {f"pos_{p}": (reps[:, j], point[j], jack[:, j]) for j, p in enumerate(pos)}
        all_cols = np.arange(len(pos))
        series["macro_all"] = (
            macro_replicates(reps, all_cols),
            point.mean(),
            macro_replicates(jack, all_cols),
        )
        if len(headline):
            series["macro_headline"] = (
                macro_replicates(reps, headline),
                point[headline].mean(),
                macro_replicates(jack, headline),
            )
        for method in CI_METHODS:
            for t, (r, pt, jj) in series.items():
                lo, hi = confidence_interval(r, level, method=method, point=np.asarray(pt), jackknife=jj)
                hits[method][t][sim] = lo, hi
    coverage = {m: {t: _coverage(a[:, :2], true_auroc) for t, a in per.items()} for m, per in hits.items()}
    settings = {
        "positives": [int(p) for p in pos],
        "n_neg": n_neg,
        "true_auroc": true_auroc,
        "sims": sims,
        "resamples": resamples,
        "level": level,
        "min_positives": min_positives,
        "seed": seed,
        "monte_carlo_se": float(np.sqrt(level * (1 - level) / sims)),
    }
    return {"settings": settings, "coverage": coverage}


def simulate_ece(
    records: tuple[int, ...] = (45, 200, 1000),
    *,
    sims: int = 1000,
    resamples: int = 1000,
    level: float = 0.95,
    n_bins: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """Coverage of the ECE intervals (see the module docstring): ``{"true_ece", "coverage":
    {method: {"n_<records>": {"coverage", "width", "miss_low", "miss_high"}}}}``."""
    rng = np.random.default_rng(seed)
    p = rng.random(4_000_000)
    bins = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    gap = np.bincount(bins, weights=p - p**1.5, minlength=n_bins)  # per bin: sum of (p - E[y | p])
    truth = float(np.abs(gap).sum() / len(p))
    out: dict[str, dict[str, dict[str, float]]] = {"percentile": {}, "basic": {}}
    for n in records:
        got = {m: np.zeros((sims, 2)) for m in out}
        for sim in range(sims):
            q = rng.random(n)[:, None]
            y = (rng.random((n, 1)) < q**1.5).astype(np.uint8)
            w = resample_weights(np.arange(n).astype(str), resamples, seed=seed * 100_003 + sim)
            point = expected_calibration_error(y, q, n_bins=n_bins)
            reps = expected_calibration_error(y, q, n_bins=n_bins, weights=w)
            for m in out:
                got[m][sim] = confidence_interval(reps, level, method=m, point=point)[0]
        for m, a in got.items():
            out[m][f"n_{n}"] = _coverage(a, truth)
    return {
        "true_ece": truth,
        "records": list(records),
        "sims": sims,
        "resamples": resamples,
        "coverage": out,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sims", type=int, default=2000)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--positives", default="7,10,20,50")
    ap.add_argument("--n-neg", type=int, default=150)
    ap.add_argument("--auroc", type=float, default=0.8)
    ap.add_argument("--min-positives", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ece-records", default="45,200,1000")
    ap.add_argument("--ece-sims", type=int, default=1000)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "coverage_auroc.json"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    res = simulate(
        tuple(int(p) for p in args.positives.split(",")),
        n_neg=args.n_neg,
        true_auroc=args.auroc,
        sims=args.sims,
        resamples=args.resamples,
        min_positives=args.min_positives,
        seed=args.seed,
    )
    res["ece"] = simulate_ece(
        tuple(int(n) for n in args.ece_records.split(",")),
        sims=args.ece_sims,
        resamples=args.resamples,
        seed=args.seed,
    )
    res["seconds"] = round(time.perf_counter() - t0, 1)
    s = res["settings"]
    print(f"AUROC {s['true_auroc']}, {s['n_neg']} negatives, {s['sims']} simulations x {s['resamples']} resamples "
          f"(Monte Carlo SE {100 * s['monte_carlo_se']:.1f} %), {res['seconds']} s")  # fmt: skip
    print(f"{'target':<16}" + "".join(f"{m + ' cover':>18}{m + ' width':>16}" for m in CI_METHODS))
    for t in res["coverage"][CI_METHODS[0]]:
        cells = "".join(
            f"{100 * res['coverage'][m][t]['coverage']:>17.1f}%{res['coverage'][m][t]['width']:>16.3f}"
            for m in CI_METHODS
        )
        print(f"{t:<16}{cells}")
    e = res["ece"]
    print(f"ECE, true {e['true_ece']:.3f}, {e['sims']} simulations:")
    print(f"{'records':<16}" + "".join(f"{m + ' cover':>18}{m + ' width':>16}" for m in e["coverage"]))
    for t in e["coverage"]["percentile"]:
        cells = "".join(
            f"{100 * e['coverage'][m][t]['coverage']:>17.1f}%{e['coverage'][m][t]['width']:>16.3f}"
            for m in e["coverage"]
        )
        print(f"{t:<16}{cells}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
