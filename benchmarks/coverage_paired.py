"""Coverage of the paired AUROC-difference interval (compare reports, subgroup gaps use the same
method) and of the operating-point rates (sensitivity, specificity) — seeded, with known answers.

Paired difference: one label, ``--n-pos`` positives and ``--n-neg`` negatives; two encoders'
scores share a latent per record (correlation ``--rho``), positives shifted by ``d_a`` and
``d_b``; the true AUROCs are ``Phi(d / sqrt 2)`` so the true difference is known. The interval is
the reports' own: :func:`resample_weights` (patients; one record each here), :func:`rank_metrics`
under the same weights for both encoders, :func:`percentile_ci` of the differences.

Operating points: scores binormal, a fixed threshold; the true sensitivity and specificity are
normal tail probabilities. The interval is :class:`OperatingPoints`'s: weighted confusion counts
under the same patient bootstrap, percentile interval.

Usage: python benchmarks/coverage_paired.py [--sims 1000] [--resamples 1000] [--seed 0]
Writes benchmarks/results/coverage_paired.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import norm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ecgprobe.analyzers._stats.bootstrap import percentile_ci, resample_weights  # noqa: E402
from ecgprobe.analyzers._stats.metrics import rank_metrics  # noqa: E402


def paired_difference(
    sims: int, resamples: int, seed: int, n_pos: int = 40, n_neg: int = 160, rho: float = 0.6
) -> dict[str, Any]:
    """Coverage and width of the paired percentile interval of AUROC(a) − AUROC(b)."""
    d_a, d_b = 1.2, 0.9
    truth = float(norm.cdf(d_a / np.sqrt(2)) - norm.cdf(d_b / np.sqrt(2)))
    rng = np.random.default_rng(seed)
    hit, widths, contains = 0, [], 0
    for s in range(sims):
        n = n_pos + n_neg
        y = np.r_[np.ones(n_pos), np.zeros(n_neg)][:, None]
        z = rng.normal(size=n)
        ea = np.sqrt(rho) * z + np.sqrt(1 - rho) * rng.normal(size=n)
        eb = np.sqrt(rho) * z + np.sqrt(1 - rho) * rng.normal(size=n)
        sa, sb = (ea + d_a * y[:, 0])[:, None], (eb + d_b * y[:, 0])[:, None]
        w = resample_weights(np.arange(n).astype(str), resamples, seed + s)
        ra, rb = rank_metrics(y, sa, w, ap=False)[0][:, 0], rank_metrics(y, sb, w, ap=False)[0][:, 0]
        est = float(rank_metrics(y, sa, ap=False)[0][0, 0] - rank_metrics(y, sb, ap=False)[0][0, 0])
        lo, hi = percentile_ci(ra - rb, 0.95)
        hit += lo <= truth <= hi
        contains += lo <= est <= hi
        widths.append(hi - lo)
    return {
        "truth": truth,
        "n_pos": n_pos,
        "n_neg": n_neg,
        "rho": rho,
        "coverage": hit / sims,
        "contains_estimate": contains / sims,
        "width": float(np.mean(widths)),
    }


def operating_point(
    sims: int, resamples: int, seed: int, n_pos: int = 40, n_neg: int = 160
) -> dict[str, Any]:
    """Coverage of the percentile intervals of sensitivity and specificity at a fixed threshold."""
    d, t = 1.5, 0.8
    truth = {"sensitivity": float(1 - norm.cdf(t - d)), "specificity": float(norm.cdf(t))}
    rng = np.random.default_rng(seed)
    hits = {k: 0 for k in truth}
    widths: dict[str, list[float]] = {k: [] for k in truth}
    for s in range(sims):
        y = np.r_[np.ones(n_pos, bool), np.zeros(n_neg, bool)]
        score = rng.normal(size=len(y)) + d * y
        pred = score >= t
        w = resample_weights(np.arange(len(y)).astype(str), resamples, seed + s).astype(np.float64)
        tp, fn = w @ (y & pred), w @ (y & ~pred)
        tn, fp = w @ (~y & ~pred), w @ (~y & pred)
        reps = {"sensitivity": tp / (tp + fn), "specificity": tn / (tn + fp)}
        for k, r in reps.items():
            lo, hi = percentile_ci(r[np.isfinite(r)], 0.95)
            hits[k] += lo <= truth[k] <= hi
            widths[k].append(hi - lo)
    return {
        k: {"truth": truth[k], "coverage": hits[k] / sims, "width": float(np.mean(widths[k]))} for k in truth
    } | {"n_pos": n_pos, "n_neg": n_neg}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sims", type=int, default=1000)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "coverage_paired.json")
    args = ap.parse_args()
    t0 = time.perf_counter()
    out = {
        "settings": {"sims": args.sims, "resamples": args.resamples, "seed": args.seed, "level": 0.95},
        "paired_difference": paired_difference(args.sims, args.resamples, args.seed),
        "operating_point": operating_point(args.sims, args.resamples, args.seed),
    }
    out["seconds"] = round(time.perf_counter() - t0, 1)
    pdiff = out["paired_difference"]
    print(
        f"paired AUROC difference (truth {pdiff['truth']:.3f}): coverage {pdiff['coverage']:.3f}, "
        f"width {pdiff['width']:.3f}, contains estimate {pdiff['contains_estimate']:.3f}"
    )
    for k in ("sensitivity", "specificity"):
        r = out["operating_point"][k]
        print(f"{k} (truth {r['truth']:.3f}): coverage {r['coverage']:.3f}, width {r['width']:.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
