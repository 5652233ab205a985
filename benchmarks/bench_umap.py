"""UMAP projection at n = 20,000, d = 512: cold process vs warm, exact kNN vs umap's own search,
and PCA-50 pre-projection with its trustworthiness difference.

Everything runs in one fresh child process (so "cold" really is cold: imports and numba JIT
compilation of umap's functions included), in this order:

1. cold: ``Projection(seed=0).run`` — the first UMAP fit of the process;
2. warm: the same again (compiled functions reused; the layout must be identical);
3. kNN graph: ecgprobe's exact batched kNN vs pynndescent (umap's search, first call compiles
   it; second call warm), with pynndescent's recall against the exact graph;
4. ``pca_dims=50``: the pre-projection's time and the trustworthiness difference (both
   measured against neighbourhoods in the original 512-d space, same query records).

Run: ``python benchmarks/bench_umap.py [--n 20000] [--d 512]``.
"""

from __future__ import annotations

import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def make_data(n: int, d: int, seed: int = 0):
    """Clusters on a curved 8-d manifold embedded nonlinearly in ``d`` dims, plus noise; labels =
    clusters (12, unequal sizes) as a RecordSet without signals."""
    import numpy as np
    import pandas as pd

    from ecgprobe.data.record import ArraySource, RecordSet
    from ecgprobe.extract.embeddings import Embeddings

    rng = np.random.default_rng(seed)
    k = 12
    sizes = rng.dirichlet(np.full(k, 2.0))
    lab = rng.choice(k, size=n, p=sizes)
    centres = rng.normal(0, 2.5, (k, 8))
    z = centres[lab] + rng.standard_normal((n, 8))
    W1, W2 = rng.standard_normal((8, 64)), rng.standard_normal((64, d)) / 8
    X = (np.tanh(z @ W1) @ W2 + 0.3 * rng.standard_normal((n, d))).astype(np.float32)
    ids = np.array([f"r{i:06d}" for i in range(n)])
    rs = RecordSet(
        source=ArraySource(np.zeros((n, 1, 2), np.float32)),
        fs=100.0,
        leads=("I",),
        ids=ids,
        patient_ids=ids,
        label_names=tuple(f"c{j}" for j in range(k)),
        y=np.eye(k, dtype=np.uint8)[lab],
        split=np.array(["train"] * n),
        meta=pd.DataFrame(index=ids),
        name="bench",
    )
    return Embeddings(X=X, ids=ids), rs


def child(n: int, d: int) -> None:
    t_import0 = time.perf_counter()
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from ecgprobe.analyzers._stats.neighbors import exact_knn
    from ecgprobe.analyzers.projection import Projection

    emb, rs = make_data(n, d)
    t_data = time.perf_counter()
    out: dict = {"process_start_to_data_s": t_data - T_START, "imports_and_data_s": t_data - t_import0}

    def run(**kw):
        t0 = time.perf_counter()
        res = Projection(seed=0, **kw).run(emb, rs)
        m = res.metrics
        return res, {
            "total_s": time.perf_counter() - t0,
            "knn_s": res.provenance["timings"]["knn_s"],
            "umap_fit_s": res.provenance["timings"]["fit_s"],
            "trustworthiness": m["trustworthiness"],
        }

    cold, out["cold"] = run()
    out["cold"]["since_process_start_s"] = time.perf_counter() - T_START
    warm, out["warm"] = run()
    out["warm"]["identical_layout"] = bool(np.array_equal(cold.coords, warm.coords))
    pca, out["pca50"] = run(pca_dims=50)
    out["pca50"]["retained_variance"] = pca.metrics["pca_retained_variance"]
    out["pca50"]["trust_diff_vs_full"] = pca.metrics["trustworthiness"] - warm.metrics["trustworthiness"]

    t0 = time.perf_counter()
    idx, _ = exact_knn(emb.X, 15, include_self=True)
    out["knn_exact_s"] = time.perf_counter() - t0
    from pynndescent import NNDescent

    for label in ("pynndescent_cold_s", "pynndescent_warm_s"):
        t0 = time.perf_counter()
        nnd = NNDescent(emb.X, n_neighbors=15, random_state=0, n_jobs=1, low_memory=True)
        approx, _ = nnd.neighbor_graph
        out[label] = time.perf_counter() - t0
    out["pynndescent_recall"] = float(np.mean([len(set(a) & set(b)) / 15 for a, b in zip(approx, idx)]))
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.n, args.d)
        return
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()}")
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", "--n", str(args.n), "--d", str(args.d)],
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - t0
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    c, w, p = r["cold"], r["warm"], r["pca50"]
    print(f"UMAP projection, n={args.n}, d={args.d} (seed 0, one UMAP thread, exact kNN graph):")
    print(f"  cold process: {c['since_process_start_s']:.1f} s from interpreter start to the first result")
    print(
        f"     of which imports + data {r['imports_and_data_s']:.1f} s, kNN {c['knn_s']:.1f} s, "
        f"UMAP fit {c['umap_fit_s']:.1f} s (incl. numba JIT), run total {c['total_s']:.1f} s"
    )
    print(
        f"  warm (same process): run total {w['total_s']:.1f} s, kNN {w['knn_s']:.1f} s, UMAP fit {w['umap_fit_s']:.1f} s; "
        f"so ~{c['umap_fit_s'] - w['umap_fit_s']:.0f} s of the cold fit is compilation; identical layout: {w['identical_layout']}"
    )
    print(f"  trustworthiness (k=10, 2,000 queries): {w['trustworthiness']:.4f}")
    print(
        f"  PCA-50 pre-projection ({p['retained_variance']:.1%} variance): run total {p['total_s']:.1f} s "
        f"(kNN {p['knn_s']:.1f} s, fit {p['umap_fit_s']:.1f} s), trustworthiness {p['trustworthiness']:.4f}, "
        f"difference {p['trust_diff_vs_full']:+.4f} (keep it when |diff| <= 0.01)"
    )
    print(
        f"  kNN graph (k=15): exact batched {r['knn_exact_s']:.1f} s vs pynndescent {r['pynndescent_cold_s']:.1f} s cold / "
        f"{r['pynndescent_warm_s']:.1f} s warm (recall {r['pynndescent_recall']:.3f})"
    )
    print(f"  benchmark wall time {wall:.0f} s; load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
