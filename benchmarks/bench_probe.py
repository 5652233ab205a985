"""Probe benchmarks: the figures the probing analyzers promise, measured in one run.

Workload (PTB-XL-sized, synthetic with realistic structure): N x D float32 embeddings (default
20,000 x 512) mixing 32 latent factors with an anisotropic noise spectrum, 71 labels driven by the
latents with prevalences log-uniform in 0.3 %..40 %, 1.4 records per patient, patient-wise
80/10/10 splits; 7 C values (1e-4..1e2).

1. LinearProbe vs the naive scikit-learn loop (for each C, one-vs-rest ``LogisticRegression(C)``
   with lbfgs refit from scratch, C chosen per label on val by AUROC, then test): time ratio
   (target >= 3x) at equal macro AUROC (+-0.002).
2. ScarcityCurve (7 fractions x 5 seeds) vs the same naive loop on the same subsets: time ratio
   (target >= 5x) at equal mean AUROC (+-0.005).
3. Bootstrap CIs, 1000 resamples x 71 labels x 4,000 test records, AUROC+AUPRC+F1+Brier
   (target < 10 s), and the naive loop (scikit-learn ``roc_auc_score`` per label per resample).
4. kNN: KNNProbe (7 k values, cosine) vs scikit-learn ``KNeighborsClassifier`` refit per k, and
   one exact k=100 neighbour search vs ``NearestNeighbors(algorithm="brute")`` (target >= 1x).

The naive loops are slow (hours at full size). ``--naive-labels K`` (probe, default all) and
``--scarcity-naive-labels K`` (default 8) run them on K of the labels (spread over the prevalence
range) and scale their time by 71/K (one-vs-rest fits are independent, so their cost adds up per
label); AUROC is then compared on those K labels. The figures printed say which was done. Both
sides run with ``--threads`` CPU threads (default 1, so that a busy shared machine does not turn
thread contention into the result).

Usage: python benchmarks/bench_probe.py [--n 20000] [--dim 512] [--labels 71] [--naive-labels 71]
       [--sections probe,scarcity,bootstrap,knn] [--seeds 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ecgprobe.analyzers._stats.bootstrap import classification_replicates, resample_weights  # noqa: E402
from ecgprobe.analyzers._stats.evaluation import evaluate_multilabel  # noqa: E402
from ecgprobe.analyzers._stats.metrics import auroc  # noqa: E402
from ecgprobe.analyzers._stats.probe_data import fit_scaler  # noqa: E402
from ecgprobe.analyzers.knn_probe import KNNProbe, nearest_neighbours  # noqa: E402
from ecgprobe.analyzers.linear_probe import DEFAULT_CS, LinearProbe  # noqa: E402
from ecgprobe.analyzers.scarcity import ScarcityCurve  # noqa: E402
from ecgprobe.data.record import ArraySource, RecordSet  # noqa: E402
from ecgprobe.extract.embeddings import Embeddings  # noqa: E402


def workload(n: int, dim: int, n_labels: int, seed: int = 0) -> tuple[Embeddings, RecordSet]:
    """Synthetic embeddings and labels with PTB-XL-like structure (see the module docstring)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    n_pat = int(n / 1.4)
    pat = np.sort(rng.integers(0, n_pat, n))
    r = 32
    z = rng.normal(size=(n_pat, r))[pat] + 0.3 * rng.normal(size=(n, r))
    spectrum = 1.0 / np.arange(1, dim + 1) ** 0.7
    X = z @ (rng.normal(size=(r, dim)) * 0.5) + rng.normal(size=(n, dim)) * spectrum * 3 + 2.0
    prev = np.exp(rng.uniform(np.log(0.003), np.log(0.4), n_labels))
    logit = z @ (rng.normal(size=(r, n_labels)) * rng.uniform(0.05, 0.4, n_labels))
    offset = np.array([np.quantile(logit[:, j], 1 - prev[j]) for j in range(n_labels)])
    y = (logit - offset + rng.logistic(size=(n, n_labels)) > 0).astype(np.uint8)
    split = np.where(pat % 10 < 8, "train", np.where(pat % 10 == 8, "val", "test"))
    ids = np.asarray([f"r{i}" for i in range(n)])
    records = RecordSet(
        source=ArraySource(np.zeros((n, 1, 1), dtype=np.float32)),
        fs=100.0,
        leads=("I",),
        ids=ids,
        patient_ids=pat.astype(str),
        label_names=tuple(f"label{j:02d}" for j in range(n_labels)),
        y=y,
        split=split,
        meta=pd.DataFrame({"age": np.zeros(n)}),
        name="bench",
    )
    return Embeddings(X=X.astype(np.float32), ids=ids), records


def naive_probe(X: dict, Y: dict, cols: np.ndarray, Cs=DEFAULT_CS) -> tuple[np.ndarray, float]:
    """The naive loop: per C, one-vs-rest lbfgs from scratch; C per label by val AUROC; test AUROC."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    t0 = time.perf_counter()
    mean, scale, _ = fit_scaler(X["train"])
    Xs = {s: (x - mean) / scale for s, x in X.items()}
    val_auc = np.full((len(Cs), len(cols)), np.nan)
    test_scores = np.zeros((len(Cs), len(Xs["test"]), len(cols)))
    for k, C in enumerate(Cs):
        for i, j in enumerate(cols):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                clf = LogisticRegression(C=C).fit(Xs["train"], Y["train"][:, j])
            val_auc[k, i] = auroc(Y["val"][:, [j]], clf.decision_function(Xs["val"])[:, None])[0]
            test_scores[k, :, i] = clf.decision_function(Xs["test"])
    ok = np.isfinite(val_auc).all(0)
    shared = int(np.argmax(val_auc[:, ok].mean(1)))
    best = np.where(ok, np.argmax(np.nan_to_num(val_auc, nan=-1), axis=0), shared)
    chosen = test_scores[best, :, np.arange(len(cols))].T
    return auroc(Y["test"][:, cols], chosen), time.perf_counter() - t0


def label_sample(y_train: np.ndarray, k: int) -> np.ndarray:
    """k label columns spread evenly over the prevalence order (all when k >= C)."""
    order = np.argsort(y_train.mean(0))
    if k >= len(order):
        return np.sort(order)
    return np.sort(order[np.linspace(0, len(order) - 1, k).round().astype(int)])


def splits(emb: Embeddings, records: RecordSet) -> tuple[dict, dict]:
    X = {s: emb.X[records.split == s] for s in ("train", "val", "test")}
    Y = {s: records.y[records.split == s] for s in ("train", "val", "test")}
    return X, Y


def bench_probe(emb: Embeddings, records: RecordSet, naive_labels: int) -> dict:
    X, Y = splits(emb, records)
    t0 = time.perf_counter()
    res = LinearProbe(n_resamples=1, device="auto").run(emb, records)
    t_ours = time.perf_counter() - t0
    cols = label_sample(Y["train"], naive_labels)
    naive_auc, t_naive = naive_probe(X, Y, cols)
    ours_auc = np.array([r["auroc"] for r in res.tables["per_label"]])[cols]
    scale = records.y.shape[1] / len(cols)
    return {
        "ours_s": t_ours,
        "naive_s": t_naive * scale,
        "naive_measured_s": t_naive,
        "naive_labels": len(cols),
        "speedup": t_naive * scale / t_ours,
        "ours_macro_auroc": float(np.nanmean(ours_auc)),
        "naive_macro_auroc": float(np.nanmean(naive_auc)),
        "auroc_diff": float(np.nanmean(ours_auc) - np.nanmean(naive_auc)),
        "ours_macro_auroc_all_labels": res.metrics["macro_auroc"],
        "device": res.metrics["device"],
    }


def bench_scarcity(emb: Embeddings, records: RecordSet, naive_labels: int, seeds: int) -> dict:
    X, Y = splits(emb, records)
    t0 = time.perf_counter()
    res = ScarcityCurve(n_seeds=seeds, n_resamples=0, device="auto").run(emb, records)
    t_ours = time.perf_counter() - t0
    cols = label_sample(Y["train"], naive_labels)
    masks = res.arrays["subset_masks"]
    ours = res.arrays["per_label_auroc"][..., cols]  # (F, S, K)
    naive = np.full_like(ours, np.nan)
    t_naive = 0.0
    for fi in range(masks.shape[0]):
        for si in range(masks.shape[1]):
            m = masks[fi, si]
            usable = [i for i, j in enumerate(cols) if 0 < Y["train"][m, j].sum() < m.sum()]
            if not usable:
                continue
            Xf = {"train": X["train"][m], "val": X["val"], "test": X["test"]}
            Yf = {"train": Y["train"][m], "val": Y["val"], "test": Y["test"]}
            auc, t = naive_probe(Xf, Yf, cols[usable])
            naive[fi, si, usable] = auc
            t_naive += t
    scale = records.y.shape[1] / len(cols)
    both = np.isfinite(ours) & np.isfinite(naive)
    per_fraction = [
        float(np.mean(ours[f][both[f]]) - np.mean(naive[f][both[f]]))
        for f in range(len(ours))
        if both[f].any()
    ]
    return {
        "ours_s": t_ours,
        "naive_s": t_naive * scale,
        "naive_measured_s": t_naive,
        "naive_labels": len(cols),
        "speedup": t_naive * scale / t_ours,
        "mean_auroc_diff": float(np.mean(ours[both]) - np.mean(naive[both])),
        "max_abs_fraction_auroc_diff": float(np.max(np.abs(per_fraction))),
        "fractions": res.metrics["grid"],
        "seeds": seeds,
        "curve": [round(r["macro_auroc_mean"], 4) for r in res.tables["curve"]],
    }


def bench_bootstrap(n_test: int = 4000, n_labels: int = 71, n_resamples: int = 1000) -> dict:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    prev = np.exp(rng.uniform(np.log(0.005), np.log(0.4), n_labels))
    y = (rng.random((n_test, n_labels)) < prev).astype(np.uint8)
    y[:3] = 1  # every label has a positive
    scores = 1 / (1 + np.exp(-(rng.normal(size=y.shape) + 1.5 * y - 2)))
    groups = (np.arange(n_test) // 1.4).astype(int).astype(str)
    ids = np.arange(n_test).astype(str)
    t0 = time.perf_counter()
    evaluate_multilabel(
        [str(j) for j in range(n_labels)], y, scores, y, scores, ids, groups,
        n_resamples=n_resamples, seed=0, ci_level=0.95, n_bins=10,
    )  # fmt: skip
    t_full = time.perf_counter() - t0
    w = resample_weights(groups, n_resamples, seed=0)
    t0 = time.perf_counter()
    reps = classification_replicates(y, scores, w)["auroc"]
    t_auc = time.perf_counter() - t0
    # naive: resample indices, roc_auc_score per label (measured on 20 resamples, scaled)
    _, inv = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inv == g) for g in range(inv.max() + 1)]
    t0 = time.perf_counter()
    naive = []
    for _ in range(20):
        draw = rng.integers(0, len(members), len(members))
        idx = np.concatenate([members[g] for g in draw])
        naive.append([roc_auc_score(y[idx, j], scores[idx, j]) for j in range(n_labels)])
    t_naive = (time.perf_counter() - t0) * n_resamples / 20
    return {
        "n_test": n_test,
        "labels": n_labels,
        "resamples": n_resamples,
        "full_evaluation_s": t_full,
        "auroc_replicates_s": t_auc,
        "naive_auroc_s": t_naive,
        "speedup_auroc": t_naive / t_auc,
        "replicate_sd": float(np.nanstd(reps, axis=0).mean()),
        "naive_sd": float(np.std(np.asarray(naive), axis=0).mean()),
    }


def bench_knn(emb: Embeddings, records: RecordSet) -> dict:
    from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

    X, Y = splits(emb, records)
    ks = (1, 3, 5, 10, 20, 50, 100)
    t0 = time.perf_counter()
    res = KNNProbe(ks=ks, n_resamples=1, device="cpu").run(emb, records)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    best, best_auc = None, -1.0
    for k in ks:
        clf = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute").fit(
            X["train"], Y["train"]
        )
        proba = np.stack(
            [p[:, -1] if p.shape[1] > 1 else np.zeros(len(p)) for p in clf.predict_proba(X["val"])], 1
        )
        a = np.nanmean(auroc(Y["val"], proba))
        if a > best_auc:
            best, best_auc = clf, a
    proba = np.stack([p[:, -1] for p in best.predict_proba(X["test"])], 1)
    sk_auc = float(np.nanmean(auroc(Y["test"], proba)))
    t_sk = time.perf_counter() - t0
    t0 = time.perf_counter()
    nearest_neighbours(X["test"], X["train"], 100, metric="cosine")
    t_nn = time.perf_counter() - t0
    t0 = time.perf_counter()
    NearestNeighbors(n_neighbors=100, metric="cosine", algorithm="brute").fit(X["train"]).kneighbors(
        X["test"]
    )
    t_sk_nn = time.perf_counter() - t0
    chunk = max(1, (64 * 2**20) // (4 * len(X["train"])))
    return {
        "ours_probe_s": t_ours,
        "sklearn_probe_s": t_sk,
        "speedup_probe": t_sk / t_ours,
        "ours_macro_auroc": res.metrics["macro_auroc"],
        "sklearn_macro_auroc_all_labels_with_test_positives": sk_auc,
        "ours_kneighbors_s": t_nn,
        "sklearn_kneighbors_s": t_sk_nn,
        "speedup_kneighbors": t_sk_nn / t_nn,
        "similarity_chunk_rows": chunk,
        "similarity_chunk_mib": chunk * 4 * len(X["train"]) / 2**20,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--labels", type=int, default=71)
    ap.add_argument(
        "--naive-labels", type=int, default=71, help="labels the naive probe loop runs on (time scaled)"
    )
    ap.add_argument(
        "--scarcity-naive-labels",
        type=int,
        default=8,
        help="labels the naive scarcity loop runs on (time scaled)",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads for torch and BLAS, both sides (default 1: a shared machine)",
    )
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--sections", default="probe,scarcity,bootstrap,knn")
    args = ap.parse_args()
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    sections = set(args.sections.split(","))
    t0 = time.perf_counter()
    emb, records = workload(args.n, args.dim, args.labels)
    print(f"workload: {args.n} x {args.dim}, {args.labels} labels, splits {records.split_sizes()} "
          f"({time.perf_counter() - t0:.1f} s to generate); {args.threads} CPU thread(s)", flush=True)  # fmt: skip
    out = {}
    if "bootstrap" in sections:
        out["bootstrap"] = r = bench_bootstrap()
        print(f"bootstrap CIs ({r['resamples']} x {r['labels']} labels x {r['n_test']} records): full evaluation "
              f"{r['full_evaluation_s']:.2f} s (target < 10 s); AUROC replicates {r['auroc_replicates_s']:.2f} s "
              f"vs naive {r['naive_auroc_s']:.0f} s -> {r['speedup_auroc']:.0f}x", flush=True)  # fmt: skip
    if "knn" in sections:
        out["knn"] = r = bench_knn(emb, records)
        print(f"kNN probe (7 k, cosine): ours {r['ours_probe_s']:.1f} s vs sklearn {r['sklearn_probe_s']:.1f} s -> "
              f"{r['speedup_probe']:.2f}x; k=100 search {r['speedup_kneighbors']:.2f}x; similarity chunk "
              f"{r['similarity_chunk_mib']:.0f} MiB", flush=True)  # fmt: skip
    if "probe" in sections:
        out["probe"] = r = bench_probe(emb, records, args.naive_labels)
        print(f"linear probe (7 C): ours {r['ours_s']:.1f} s [{r['device']}] vs naive {r['naive_s']:.0f} s "
              f"({r['naive_labels']} labels measured in {r['naive_measured_s']:.0f} s) -> {r['speedup']:.1f}x "
              f"(target >= 3x); macro AUROC ours {r['ours_macro_auroc']:.4f} naive {r['naive_macro_auroc']:.4f} "
              f"(diff {r['auroc_diff']:+.4f}, target +-0.002)", flush=True)  # fmt: skip
    if "scarcity" in sections:
        out["scarcity"] = r = bench_scarcity(emb, records, args.scarcity_naive_labels, args.seeds)
        print(f"scarcity (7 fractions x {r['seeds']} seeds): ours {r['ours_s']:.0f} s vs naive {r['naive_s']:.0f} s "
              f"({r['naive_labels']} labels measured in {r['naive_measured_s']:.0f} s) -> {r['speedup']:.1f}x "
              f"(target >= 5x); AUROC diff mean {r['mean_auroc_diff']:+.4f}, worst fraction "
              f"{r['max_abs_fraction_auroc_diff']:.4f} (target +-0.005); curve {r['curve']}", flush=True)  # fmt: skip
    print(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
