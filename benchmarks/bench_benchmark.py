"""Multi-model benchmark from cached embeddings: whole-study time and probe fits per second,
locally and with 1 vs 2 Ray workers (issue 15, part 6).

Workload: ``--encoders`` encoders x ``--tasks`` in-dataset tasks. Each task is a synthetic
PTB-XL-like dataset (``benchmarks/bench_probe.py``'s ``workload``: ``--n`` records, 1.4 records
per patient, 80/10/10 patient-wise splits, ``--labels`` labels of prevalence 0.3-40 %,
``--dim``-d embeddings); encoder e sees the task's embedding through its own random rotation
plus noise of scale 0.5 e (so the encoders differ). The study is :func:`benchmark` with the
default linear probe (7 C values, C per label on val) and ``--resamples`` paired bootstrap
resamples: one probe fit per encoder and task, then the rank statistics.

Measured, all single-threaded (``OMP_NUM_THREADS=1``, each Ray worker one CPU):

- ``study_s``: the whole local benchmark (fits, scoring, bootstrap, ranks, aggregate);
  ``study_5_seeds_s``: the same with 5 seeds, each probe on a 50 % train subsample (5x the fits);
- per Ray worker count (1, 2): the fit stage's wall seconds locally (``baseline_s``) and under Ray
  (``ecgprobe_s``: a second run on warm workers; ``ray_cold_s``: the first, which also starts the
  workers; Ray itself is started before either clock), fits per second of each, and whether the
  leaderboard equals the local one.

Usage: OMP_NUM_THREADS=1 python benchmarks/bench_benchmark.py [--encoders 4] [--tasks 6]
Writes benchmarks/results/benchmark.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _results import figure, save  # noqa: E402
from bench_probe import workload  # noqa: E402

from ecgprobe.extract.embeddings import Embeddings  # noqa: E402
from ecgprobe.settings import RunSettings  # noqa: E402
from ecgprobe.workflows.benchmark import BenchmarkSet, benchmark  # noqa: E402


def build(n_enc: int, n_tasks: int, n: int, dim: int, labels: int) -> dict[str, BenchmarkSet]:
    """The synthetic tasks, each with every encoder's embeddings (see the module docstring)."""
    sets = {}
    for t in range(n_tasks):
        emb, records = workload(n, dim, labels, seed=t)
        rng = np.random.default_rng(100 + t)
        per = {}
        for e in range(n_enc):
            q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
            X = emb.X @ q + 0.5 * e * rng.normal(size=emb.X.shape)
            per[f"enc{e}"] = Embeddings(X=X.astype(np.float32), ids=emb.ids)
        name = f"task{t}"
        sets[name] = BenchmarkSet(name, name, records, per)
    return sets


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--encoders", type=int, default=4)
    ap.add_argument("--tasks", type=int, default=6)
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--labels", type=int, default=10)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--out", default="benchmark.json")
    args = ap.parse_args()
    sets = build(args.encoders, args.tasks, args.n, args.dim, args.labels)
    encoders = [f"enc{e}" for e in range(args.encoders)]
    settings = RunSettings(device="cpu", n_resamples=args.resamples, seed=0, progress=False)

    def run(**kw):
        t0, c0 = time.perf_counter(), time.process_time()
        res = benchmark(sets, encoders, settings=settings, **kw)
        return res, time.perf_counter() - t0, time.process_time() - c0

    local, study_s, study_cpu = run()
    print(f"local study: {study_s:.1f} s wall ({study_cpu:.1f} s CPU), {local.metrics['n_fits']} fits "
          f"in {local.metrics['fit_s']:.1f} s")  # fmt: skip
    seeded, seeded_s, seeded_cpu = run(seeds=list(range(5)), train_fraction=0.5)
    print(
        f"local study, 5 seeds on 50 % train subsamples: {seeded_s:.1f} s wall, {seeded.metrics['n_fits']} fits"
    )
    runs = []
    import ray

    for workers in (1, 2):
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}})  # fmt: skip
        try:
            cold, _, _ = run(ray=True)  # the first fits also start the workers (import ecgprobe)
            remote, _, _ = run(ray=True)
        finally:
            ray.shutdown()
        same = remote.tables["cells"] == local.tables["cells"]
        fits = local.metrics["n_fits"]
        row = {
            "workers": workers,
            "baseline_s": local.metrics["fit_s"],
            "ecgprobe_s": remote.metrics["fit_s"],
            "ray_cold_s": cold.metrics["fit_s"],
            "ratio": local.metrics["fit_s"] / remote.metrics["fit_s"],
            "fits": fits,
            "fits_per_s_local": fits / local.metrics["fit_s"],
            "fits_per_s_ray": fits / remote.metrics["fit_s"],
            "identical_to_local": same,
        }
        print(row)
        runs.append(row)
    top = [r["encoder"] for r in local.tables["leaderboard"] if r["top_group"]]
    doc = figure(
        "benchmark",
        f"multi-model benchmark from cached synthetic embeddings: {args.encoders} encoders x {args.tasks} tasks "
        f"({args.n} records, {args.dim}-d, {args.labels} labels each; default linear probe, 7 C), "
        f"{args.resamples} paired bootstrap resamples; ratio = local fit time / Ray fit time with 1 or 2 workers",
        1,
        "local run of the same fits (no Ray)",
        runs,
        study_s=round(study_s, 2),
        study_cpu_s=round(study_cpu, 2),
        study_5_seeds_s=round(seeded_s, 2),
        study_5_seeds_cpu_s=round(seeded_cpu, 2),
        study_5_seeds_fits=seeded.metrics["n_fits"],
        accuracy={"ray_identical_to_local": all(r["identical_to_local"] for r in runs), "top_group": top},
        omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
    )
    save(doc, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
