"""Speed and fidelity of the attribution mathematics, against shap's model-agnostic explainers.

1. Exact linear SHAP of a probe (``linear_shap``: φ = W (x − μ)) for 1,000 records × 71 labels,
   against ``shap.KernelExplainer`` on the same linear model. KernelExplainer is timed on a few
   records and extrapolated linearly to 1,000 (its cost is the same for every record: it draws
   ``nsamples`` coalitions per record and evaluates the model on each coalition × background row),
   and also checked for agreement with the exact values on those records. ``shap.LinearExplainer``
   (shap's own closed form) is timed on all 1,000 records for reference.
2. Exact Shapley values over 12 lead occlusions (4096 coalitions) of a real encoder + head,
   against ``KernelExplainer`` on the same 12-player game with shap's defaults and with the
   settings the analyzers document (nsamples = 2·12 + 2048, ``l1_reg=False``).

Run: ``python benchmarks/bench_shap.py [--dim 256] [--kernel-records 3]`` (prints figures; CPU).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


def _timed(fn, repeat: int = 1):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench_linear(n_records: int, n_labels: int, dim: int, n_background: int, kernel_records: int) -> None:
    import shap

    from ecgprobe.analyzers.probe_shap import linear_shap

    rng = np.random.default_rng(0)
    W = rng.normal(size=(n_labels, dim)) / np.sqrt(dim)
    b = rng.normal(size=n_labels)
    train = rng.normal(size=(5 * n_records, dim))
    X = rng.normal(size=(n_records, dim))
    mu = train.mean(axis=0)

    t_exact, phi = _timed(lambda: linear_shap(W, X, mu), repeat=3)
    print(
        f"[1] exact linear SHAP, {n_records} records x {n_labels} labels x {dim} dims: {t_exact * 1e3:.1f} ms"
    )

    def model(Z: np.ndarray) -> np.ndarray:
        return Z @ W.T + b

    background = shap.sample(train, n_background, random_state=0)
    explainer = shap.KernelExplainer(model, background)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_kernel, values = _timed(lambda: explainer.shap_values(X[:kernel_records], silent=True))
    values = np.stack(values, axis=1) if isinstance(values, list) else np.moveaxis(values, -1, 1)
    per_record = t_kernel / kernel_records
    extrapolated = per_record * n_records
    # KernelExplainer's reference is its background's mean, not the train mean: compare like with like
    ref = linear_shap(W, X[:kernel_records], background.mean(axis=0))
    r = np.corrcoef(values.ravel(), ref.ravel())[0, 1]
    err = np.abs(values - ref).max()
    print(
        f"    shap.KernelExplainer (background {n_background}, default nsamples = 2*{dim}+2048): "
        f"{per_record:.2f} s/record on {kernel_records} records -> {extrapolated:.0f} s for {n_records} "
        f"(extrapolated x{n_records}/{kernel_records})"
    )
    print(f"    KernelExplainer vs exact on those records: Pearson r = {r:.4f}, max |error| = {err:.3g}")
    print(f"    speed-up exact vs KernelExplainer: {extrapolated / t_exact:,.0f}x")

    masker = shap.maskers.Independent(train, max_samples=len(train))

    def shap_linear() -> np.ndarray:
        return np.stack(
            [shap.LinearExplainer((W[c], b[c]), masker).shap_values(X) for c in range(n_labels)], 1
        )

    t_lin, lin = _timed(shap_linear)
    print(
        f"    shap.LinearExplainer (closed form, per label): {t_lin:.2f} s; max |diff| vs ours "
        f"{np.abs(lin - phi).max():.2g}; ours is {t_lin / t_exact:.1f}x faster"
    )


def bench_leads(n_records: int) -> None:
    import shap
    import torch

    import ecgprobe
    from ecgprobe.analyzers._stats import attribution_methods as am

    rs = ecgprobe.load_dataset("synthetic", n_records=max(n_records, 8), fs=100.0, seed=0)
    enc = ecgprobe.create_encoder("tiny-test", device="cpu")
    W = np.random.default_rng(1).normal(size=(3, enc.embed_dim))
    x = enc.preprocess(rs.signals[:n_records], rs.fs, rs.leads)
    base = am.make_baseline(x, "zeros", enc.spec.fs, 1.0)

    def value(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return enc.embed(batch).numpy().astype(np.float64) @ W.T

    rows = []
    t_exact = 0.0
    for i in range(n_records):
        t0 = time.perf_counter()
        v = am.lead_coalition_values(value, x[i], base[i], 512)
        phi = am.shapley_from_values(v, 12)
        t_exact += time.perf_counter() - t0

        def game(masks: np.ndarray, i: int = i) -> np.ndarray:
            keep = masks.astype(bool)[:, :, None]
            return value(np.where(keep, x[i][None], base[i][None]).astype(np.float32))

        explainer = shap.KernelExplainer(game, np.zeros((1, 12)))
        res = {}
        for name, kw in (
            ("default (nsamples=2*12+2048, l1_reg='auto')", {}),
            ("nsamples=200, l1_reg='auto'", {"nsamples": 200}),
            ("nsamples=200, l1_reg='num_features(10)'", {"nsamples": 200, "l1_reg": "num_features(10)"}),
            ("nsamples=2*12+2048, l1_reg=False", {"nsamples": 2 * 12 + 2048, "l1_reg": False}),
        ):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sv = explainer.shap_values(np.ones((1, 12)), silent=True, **kw)
            sv = np.asarray(sv).reshape(12, -1)  # shap >= 0.45: (records, features, outputs)
            res[name] = np.corrcoef(sv.ravel(), phi.ravel())[0, 1]
        rows.append(res)
        gap = np.abs(phi.sum(axis=0) - (v[-1] - v[0])).max()
    print(
        f"[2] exact 12-lead Shapley (4096 coalitions), tiny-test + 3-label head: "
        f"{t_exact / n_records:.2f} s/record; efficiency gap {gap:.1e}"
    )
    for name in rows[0]:
        print(f"    KernelExplainer {name}: Pearson r vs exact = {np.mean([r[name] for r in rows]):.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=1000)
    p.add_argument("--labels", type=int, default=71)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--background", type=int, default=50)
    p.add_argument("--kernel-records", type=int, default=3)
    p.add_argument("--lead-records", type=int, default=2)
    args = p.parse_args()
    bench_linear(args.records, args.labels, args.dim, args.background, args.kernel_records)
    bench_leads(args.lead_records)


if __name__ == "__main__":
    main()
