"""Coverage of the benchmark's new intervals and error rate of its top group — seeded, known answers.

Design: ``--models`` encoders on four one-label tasks, two per dataset (tasks of one dataset share
its patients, one record each, with different labels; the datasets have ``--n`` patients each and
a positive rate of 0.25). Encoder m's score on a record is a latent shared by all encoders
(correlation ``--rho``: the encoders see the same ECG) plus its own noise, shifted by ``d[m, t]``
on positives, so its true AUROC on task t is ``Phi(d / sqrt 2)``. The intervals are the
benchmark's own: one patient resample per dataset shared by every encoder and both tasks of it
(:func:`resample_weights` with the dataset's seed), :func:`rank_metrics` under those weights, then
:func:`ranking.rank_table` and :func:`ranking.aggregate`.

Measured (``alternative``: distinct true AUROCs; ``null``: every encoder equal):

- ``aggregate_coverage``: share of simulations whose aggregate mean-AUROC interval holds the true
  mean AUROC (per encoder, pooled);
- ``rank_coverage``: share whose per-task rank interval holds the true rank (alternative);
- ``fwer``: under the null, the share of simulations in which a task's top group leaves out an
  encoder (each task counted: the family is one task's M - 1 comparisons); nominal ``<= alpha``.
- ``adjacent_false``: under the null, the share of adjacent pairs called significant.

Usage: python benchmarks/coverage_benchmark.py [--sims 1000] [--resamples 1000] [--seed 0]
Writes benchmarks/results/coverage_benchmark.json.
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

from ecgprobe.analyzers._stats.bootstrap import resample_weights  # noqa: E402
from ecgprobe.analyzers._stats.metrics import rank_metrics  # noqa: E402
from ecgprobe.analyzers._stats.ranking import aggregate, rank_rows, rank_table  # noqa: E402

#: Shifts d[m, t] of the alternative: encoder 0 best on every task, encoders 1 and 2 close.
ALTERNATIVE = np.array(
    [[1.3, 1.1, 1.4, 1.2], [1.1, 1.0, 1.3, 1.1], [1.0, 0.8, 1.0, 1.0], [0.6, 0.5, 0.7, 0.6]]
)


def _one(rng: np.random.Generator, d: np.ndarray, n: int, rho: float, resamples: int, seed: int) -> tuple:
    """Point ``(T, M)`` and replicates ``(B, T, M)`` of one simulated benchmark."""
    n_models, n_tasks = d.shape
    points, reps = np.zeros((n_tasks, n_models)), np.zeros((resamples, n_tasks, n_models))
    for ds in range(n_tasks // 2):
        w = resample_weights(np.arange(n).astype(str), resamples, seed * 101 + ds)  # one draw per dataset
        for t in (2 * ds, 2 * ds + 1):
            y = (rng.random(n) < 0.25).astype(np.uint8)
            z = rng.normal(size=n)
            s = (
                np.sqrt(rho) * z[:, None]
                + np.sqrt(1 - rho) * rng.normal(size=(n, n_models))
                + d[:, t] * y[:, None]
            )
            ys = np.repeat(y[:, None], n_models, axis=1)
            points[t] = rank_metrics(ys, s, ap=False)[0][0]
            reps[:, t] = rank_metrics(ys, s, w, ap=False)[0]
    return points, reps


def simulate(
    sims: int, resamples: int, seed: int, *, n: int = 200, rho: float = 0.5, models: int = 4
) -> dict[str, Any]:
    """Coverage of the aggregate and rank intervals, and the null error rates (module docstring)."""
    rng = np.random.default_rng(seed)
    d_alt = ALTERNATIVE[:models]
    d_null = np.full_like(d_alt, 1.1)
    truth = norm.cdf(d_alt / np.sqrt(2))  # (M, T)
    true_mean, true_rank = truth.mean(1), rank_rows(truth.T)  # (M,), (T, M)
    names = [f"m{j}" for j in range(models)]
    agg_hit = rank_hit = rank_n = fw = adj_false = adj_n = 0
    width = []
    for s in range(sims):
        pts, reps = _one(rng, d_alt, n, rho, resamples, seed + 2 * s)
        agg = aggregate(pts, reps, names)
        for r in agg["rows"]:
            lo, hi = r["mean_ci"]
            agg_hit += lo <= true_mean[int(r["name"][1:])] <= hi
            width.append(hi - lo)
        for t in range(pts.shape[0]):
            for r in rank_table(pts[t], reps[:, t], names)["rows"]:
                lo, hi = r["rank_ci"]
                rank_hit += lo <= true_rank[t, int(r["name"][1:])] <= hi
                rank_n += 1
        pts, reps = _one(rng, d_null, n, rho, resamples, seed + 2 * s + 1)
        for t in range(pts.shape[0]):
            tab = rank_table(pts[t], reps[:, t], names)
            fw += tab["n_top"] < models
            adj_false += tab["n_adjacent_significant"]
            adj_n += len(tab["adjacent"])
    n_tasks = d_alt.shape[1]
    return {
        "sims": sims,
        "resamples": resamples,
        "n_patients": n,
        "rho": rho,
        "models": models,
        "level": 0.95,
        "aggregate_coverage": agg_hit / (sims * models),
        "aggregate_width": float(np.mean(width)),
        "rank_coverage": rank_hit / rank_n,
        "fwer": fw / (sims * n_tasks),
        "adjacent_false": adj_false / adj_n,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sims", type=int, default=1000)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--n", type=int, nargs="+", default=[200, 800], help="patients per dataset (one run each)"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "coverage_benchmark.json")
    args = ap.parse_args()
    t0 = time.perf_counter()
    runs = [simulate(args.sims, args.resamples, args.seed, n=n) for n in args.n]
    out = {"seed": args.seed, "wall_s": round(time.perf_counter() - t0, 1), "runs": runs}
    for r in runs:
        print("  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
