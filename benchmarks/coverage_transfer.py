"""Coverage of the transfer gap interval (in-dataset minus out-of-dataset macro AUROC), seeded,
with known answers.

Design: one label; two independent test sets of different patients (the source's test split and
a target), each patient with ``--records`` records that share a patient effect (intra-patient
correlation ``--rho``) and the patient's label. Scores are binormal: positives shifted by
``d_in`` in the source and ``d_out`` in the target, unit variance, so the true AUROCs are
``Phi(d / sqrt 2)`` and the true gap is known. The interval is :func:`ecgprobe.workflows.
transfer_stats.compare`'s: each set resampled by patient, independently (own seeds), percentile
interval of the differences of the replicates. The baseline is the same computation resampling
records instead of patients (what ignoring the patients would give), with its coverage beside.

Usage: python benchmarks/coverage_transfer.py [--sims 1000] [--resamples 1000] [--seed 0]
Writes benchmarks/results/coverage_transfer.json (3 runs with seeds seed, seed+1, seed+2).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import norm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ecgprobe.workflows.transfer_stats import Scored, compare, derive_seeds  # noqa: E402

#: (positive patients, negative patients) of the source test set and of the target.
SIZES = {"in": (30, 120), "out": (25, 100)}
D_IN, D_OUT = 1.5, 1.0


def _draw(
    rng: np.random.Generator, n_pos: int, n_neg: int, d: float, records: int, rho: float, tag: str
) -> Scored:
    n = n_pos + n_neg
    y_pat = np.r_[np.ones(n_pos), np.zeros(n_neg)]
    u = rng.normal(size=n)
    y = np.repeat(y_pat, records)
    z = np.sqrt(rho) * np.repeat(u, records) + np.sqrt(1 - rho) * rng.normal(size=n * records)
    groups = np.repeat([f"{tag}{i}" for i in range(n)], records)
    return Scored(y[:, None].astype(np.uint8), (z + d * y)[:, None], groups)


def simulate(
    sims: int, resamples: int, seed: int, records: int = 2, rho: float = 0.5, *, baseline: bool = True
) -> dict[str, Any]:
    """Coverage and mean width of the 95 % gap interval, patient-wise and (``baseline``) record-wise."""
    truth = float(norm.cdf(D_IN / np.sqrt(2)) - norm.cdf(D_OUT / np.sqrt(2)))
    rng = np.random.default_rng(seed)
    hits = {"patient": 0, "record": 0}
    widths: dict[str, list[float]] = {"patient": [], "record": []}
    secs = {"patient": 0.0, "record": 0.0}
    for s in range(sims):
        a = _draw(rng, *SIZES["in"], D_IN, records, rho, "a")
        b = _draw(rng, *SIZES["out"], D_OUT, records, rho, "b")
        seeds = tuple(derive_seeds(seed * 100_003 + s, 2))
        for unit in ("patient", "record") if baseline else ("patient",):
            if unit == "record":  # each record its own patient: the naive bootstrap
                a = Scored(a.y, a.scores, np.arange(len(a.y)).astype(str))
                b = Scored(b.y, b.scores, np.arange(len(b.y)).astype(str))
            t = time.perf_counter()
            out = compare(a, b, ["x"], n_resamples=resamples, seeds=seeds, level=0.95, min_positives=0)
            secs[unit] += time.perf_counter() - t
            lo, hi = out["metrics"]["gap_ci"]
            hits[unit] += lo <= truth <= hi
            widths[unit].append(hi - lo)
    return {
        "truth": truth,
        "coverage": hits["patient"] / sims,
        "width": float(np.mean(widths["patient"])),
        "baseline_coverage": hits["record"] / sims if baseline else None,
        "baseline_width": float(np.mean(widths["record"])) if baseline else None,
        "ecgprobe_s": secs["patient"],
        "baseline_s": secs["record"],
        "mc_se": float(np.sqrt(0.95 * 0.05 / sims)),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sims", type=int, default=1000)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "coverage_transfer.json")
    args = ap.parse_args()
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    workload = (
        f"{args.sims} simulated source/target test-set pairs ({SIZES['in']} and {SIZES['out']} positive/negative "
        f"patients, 2 records each, rho 0.5; true AUROC {norm.cdf(D_IN / np.sqrt(2)):.3f} vs "
        f"{norm.cdf(D_OUT / np.sqrt(2)):.3f}), {args.resamples} resamples each, 95 % interval"
    )
    baseline = "record-wise bootstrap of the same gap (ignores that records of a patient are correlated)"
    print(f"workload: {workload}\nthreads: OMP_NUM_THREADS={threads}\nbaseline: {baseline}")
    runs = []
    for k in range(3):
        r = simulate(args.sims, args.resamples, args.seed + k)
        r["ratio"] = r["ecgprobe_s"] / r["baseline_s"]
        runs.append(r)
        print(
            f"run {k}: coverage {r['coverage']:.3f} (width {r['width']:.3f}); record-wise {r['baseline_coverage']:.3f} "
            f"(width {r['baseline_width']:.3f}); {r['ecgprobe_s']:.1f} s vs {r['baseline_s']:.1f} s"
        )
    cov = [r["coverage"] for r in runs]
    out = {
        "name": "coverage_transfer",
        "workload": workload,
        "threads": threads,
        "baseline": baseline,
        "runs": [{k: r[k] for k in ("baseline_s", "ecgprobe_s", "ratio")} for r in runs],
        "ratio_range": [min(r["ratio"] for r in runs), max(r["ratio"] for r in runs)],
        "accuracy": {
            "truth_gap": runs[0]["truth"],
            "coverage": cov,
            "coverage_mean": float(np.mean(cov)),
            "width_mean": float(np.mean([r["width"] for r in runs])),
            "baseline_coverage": [r["baseline_coverage"] for r in runs],
            "baseline_width_mean": float(np.mean([r["baseline_width"] for r in runs])),
            "mc_se_per_run": runs[0]["mc_se"],
        },
        "settings": {"sims": args.sims, "resamples": args.resamples, "seed": args.seed, "level": 0.95},
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, {platform.python_version()}",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
