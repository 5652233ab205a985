"""CKA speed and memory, measured against the naive ways in the same run.

1. Linear CKA at n = 20,000, d = 512: ecgprobe's feature-space computation
   (``||ỸᵀX̃||²_F / (||X̃ᵀX̃||_F ||ỸᵀỸ||_F)``, float64 centring, float32 or float64 products) against
   the Gram-matrix way (``K = XXᵀ``, ``L = YYᵀ`` in float64, centred, ``<Kc, Lc>``): wall time,
   peak memory (tracemalloc: NumPy reports its buffers to it) and agreement (feature-space
   times: median of 5 calls; the Gram way: one call, timed separately from its memory
   measurement, i.e. it runs twice). Optionally the
   float32 Gram way, to show why it is not used.
2. Layer-by-layer linear CKA, 12 × 12 layers, n = 20,000, d = 768 (the ``CKA`` analyzer on dicts
   of layers): time without and (``--with-ci``) with the delete-a-group jackknife CI.

Run: ``python benchmarks/bench_cka.py [--n 20000] [--d 512] [--float32-gram] [--with-ci] [--threads 1]``.
On a machine shared with other busy processes the short products of the feature-space way
suffer more from two-thread synchronisation than the long Gram products do; ``--threads 1``
gives ratios that reflect the work done.
The Gram way needs ~6.5 GB of RAM at n = 20,000.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ecgprobe.analyzers.cka import CKA, linear_cka
from ecgprobe.extract.embeddings import Embeddings


def related(n: int, d1: int, d2: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two float32 representations sharing a 32-dim latent, with offsets and noise."""
    z = rng.standard_normal((n, 32)).astype(np.float32)
    X = z @ rng.standard_normal((32, d1)).astype(np.float32) + rng.standard_normal((n, d1)).astype(np.float32)
    Y = np.tanh(z @ rng.standard_normal((32, d2)).astype(np.float32)) + 0.5 * rng.standard_normal(
        (n, d2)
    ).astype(np.float32)
    return X + 3.0, Y - 1.0


def gram_cka(X: np.ndarray, Y: np.ndarray, dtype: type = np.float64) -> float:
    """The Gram-matrix way (Kornblith et al.'s reference form), centring in place."""

    def centred_gram(M: np.ndarray) -> np.ndarray:
        M = M.astype(dtype)
        # an explicit gemm: numpy's syrk path for ``M @ M.T`` (numpy 2.4 + scipy-openblas 0.3.31)
        # segfaults once the float64 output exceeds 2 GiB (n > ~16,400)
        K = M @ np.ascontiguousarray(M.T)
        K -= K.mean(axis=0, keepdims=True)
        K -= K.mean(axis=1, keepdims=True)
        return K

    K = centred_gram(X)
    L = centred_gram(Y)
    return float(np.vdot(K, L) / np.sqrt(np.vdot(K, K) * np.vdot(L, L)))


def measure(fn, *args, repeat: int = 1, **kw) -> tuple[float, float, float]:
    """(result, median seconds over ``repeat`` calls, peak MiB of NumPy/Python allocations
    during one call). Timing runs without tracemalloc (its hooks slow allocation-heavy code)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    out = fn(*args, **kw)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(*args, **kw)
        times.append(time.perf_counter() - t0)
    return out, float(np.median(times)), peak


def bench_linear(n: int, d: int, float32_gram: bool) -> None:
    rng = np.random.default_rng(0)
    X, Y = related(n, d, d, rng)
    print(f"\n== linear CKA, n={n}, d={d} (inputs float32, {X.nbytes / 2**20:.0f} MiB each) ==")
    linear_cka(X[:500], Y[:500])  # warm BLAS threads
    mixed, t_mixed, m_mixed = measure(linear_cka, X, Y, precision="mixed", repeat=5)
    f64, t_f64, m_f64 = measure(linear_cka, X, Y, precision="float64", repeat=5)
    deb, t_deb, _ = measure(linear_cka, X, Y, debiased=True, repeat=5)
    ref, t_gram, m_gram = measure(gram_cka, X, Y)
    print(f"{'method':34s} {'CKA':>12s} {'time s':>8s} {'peak MiB':>9s} {'|diff| vs Gram64':>17s}")
    print(f"{'Gram matrices, float64':34s} {ref:12.9f} {t_gram:8.2f} {m_gram:9.0f} {'—':>17s}")
    print(
        f"{'feature space, mixed (default)':34s} {mixed:12.9f} {t_mixed:8.3f} {m_mixed:9.0f} {abs(mixed - ref):17.2e}"
    )
    print(f"{'feature space, float64':34s} {f64:12.9f} {t_f64:8.3f} {m_f64:9.0f} {abs(f64 - ref):17.2e}")
    print(
        f"{'feature space, debiased (mixed)':34s} {deb:12.9f} {t_deb:8.3f} {'':9s} {'(other estimator)':>17s}"
    )
    if float32_gram:
        g32, t32, m32 = measure(gram_cka, X, Y, np.float32)
        print(f"{'Gram matrices, float32':34s} {g32:12.9f} {t32:8.2f} {m32:9.0f} {abs(g32 - ref):17.2e}")
    print(
        f"speed-up vs Gram64: mixed {t_gram / t_mixed:.0f}x, float64 {t_gram / t_f64:.0f}x; "
        f"memory: mixed {m_gram / m_mixed:.0f}x less, float64 {m_gram / m_f64:.0f}x less; "
        f"agreement: mixed {abs(mixed - ref):.1e}, float64 {abs(f64 - ref):.1e} (target <= 1e-5)"
    )


def bench_layers(n: int, d: int, p: int, with_ci: bool) -> None:
    rng = np.random.default_rng(1)
    ids = np.array([f"r{i:06d}" for i in range(n)])
    z = rng.standard_normal((n, 64)).astype(np.float32)

    def side(tag: str) -> dict[str, Embeddings]:
        out = {}
        for k in range(p):
            X = z @ rng.standard_normal((64, d)).astype(np.float32) + (1 + k) * rng.standard_normal(
                (n, d)
            ).astype(np.float32)
            out[f"{tag}{k}"] = Embeddings(X=X, ids=ids, layer=f"{tag}{k}")
        return out

    a, b = side("a"), side("b")
    print(f"\n== layer-by-layer linear CKA, {p} x {p} layers, n={n}, d={d} ==")
    t0 = time.perf_counter()
    res = CKA(n_resamples=0).run(a, b)
    t_point = time.perf_counter() - t0
    print(
        f"CKA matrix (no CI): {t_point:.1f} s  (target < 60 s); CKA[0, :3] = {np.round(res.arrays['cka'][0, :3], 4)}"
    )
    spot = linear_cka(a["a3"].X, b["b7"].X, debiased=True, precision="float64")  # the analyzer's default
    print(f"spot check a3/b7 vs float64 single pair: |diff| = {abs(spot - res.arrays['cka'][3, 7]):.1e}")
    if with_ci:
        t0 = time.perf_counter()
        ci = CKA(n_resamples=200).run(a, b)
        t_ci = time.perf_counter() - t0
        w = ci.arrays["ci_high"] - ci.arrays["ci_low"]
        print(
            f"CKA matrix with the jackknife CI ({ci.params['n_blocks_used']} groups): {t_ci:.1f} s; "
            f"median CI width {np.median(w):.4f}; point estimates agree to "
            f"{np.abs(ci.arrays['cka'] - res.arrays['cka']).max():.1e}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--layer-d", type=int, default=768)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--float32-gram", action="store_true", help="also time the (inaccurate) float32 Gram way")
    ap.add_argument("--with-ci", action="store_true", help="also time the layer matrix with a bootstrap CI")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="limit BLAS threads (e.g. 1: ratios robust to other processes competing for the cores)",
    )
    ap.add_argument("--skip-linear", action="store_true")
    ap.add_argument("--skip-layers", action="store_true")
    args = ap.parse_args()
    from threadpoolctl import threadpool_info, threadpool_limits

    with threadpool_limits(args.threads):
        blas = [f"{i['internal_api']} {i['version']} x{i['num_threads']}" for i in threadpool_info()]
        print(f"cores: {os.cpu_count()}, BLAS: {blas}, load average: {os.getloadavg()}")
        if not args.skip_linear:
            bench_linear(args.n, args.d, args.float32_gram)
        if not args.skip_layers:
            bench_layers(args.n, args.layer_d, args.layers, args.with_ci)
    print(f"\nload average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
