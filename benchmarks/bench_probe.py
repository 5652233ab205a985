"""Probe benchmarks: ecgprobe's linear probe and scarcity curve against the loop a user would write.

Workloads (synthetic, PTB-XL-like structure): N x D float32 embeddings mixing 32 latent factors
with an anisotropic noise spectrum, labels driven by the latents with prevalences log-uniform in
0.3 %..40 %, 1.4 records per patient, patient-wise 80/10/10 splits; 7 C values (1e-4..1e2).
The issue's workload is 10,000 x 384 x 20 labels; the PTB-XL-sized one 20,000 x 512 x 71.

The baseline (``user_loop``) is what a user writes with scikit-learn: ``StandardScaler`` fitted on
train, then for every label with both classes in train and every C, ``LogisticRegression(C=C,
max_iter=1000).fit``; the C with the best ``roc_auc_score`` on val is kept (first of ties; the
fitted model is reused, no refit) and scored on test with ``roc_auc_score``. Labels without both
classes in val or test are not compared. The scarcity baseline runs that loop on each patient-wise
subset that ``ScarcityCurve`` draws (the same ``nested_fraction_subsets`` calls, checked equal to
the result's ``subset_masks``); the full training set, identical for every seed, is fitted once.

ecgprobe's side is ``LinearProbe(n_resamples=1).run`` (which also computes the F1 thresholds,
calibration and interval machinery the baseline does not) and ``ScarcityCurve(n_resamples=0).run``.
Both sides run on 1 CPU thread (threadpoolctl + torch), 3 runs; each run times the baseline and
ecgprobe once and the ratio is per run, of process CPU seconds (on a shared machine wall time
measures the other users; wall seconds are recorded beside them). The baseline runs in full; with ``--naive-labels K`` it
runs on K labels spread over the prevalence range and its time is scaled by L/K (marked
``baseline_extrapolated`` in the JSON, with the check of that extrapolation against a full run).
The two sides can run separately (``--side naive`` / ``--side ours``, paired by run index); their
raw runs are kept in ``benchmarks/results/raw/`` and the result JSON is written once both exist
(``--assemble`` rewrites it from them).

Sections ``bootstrap`` and ``knn`` are the interval and kNN figures (printed only).

Usage: python benchmarks/bench_probe.py --sections probe,scarcity --n 10000 --dim 384 --labels 20
       [--runs 3] [--side both|naive|ours] [--naive-labels K] [--fractions 0.05,0.1,0.25,0.5,1]
"""

from __future__ import annotations

import argparse
import json
import platform
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
from ecgprobe.analyzers._stats.subsets import nested_fraction_subsets  # noqa: E402
from ecgprobe.analyzers.knn_probe import KNNProbe, nearest_neighbours  # noqa: E402
from ecgprobe.analyzers.linear_probe import DEFAULT_CS, LinearProbe  # noqa: E402
from ecgprobe.analyzers.scarcity import ScarcityCurve  # noqa: E402
from ecgprobe.data.record import ArraySource, RecordSet  # noqa: E402
from ecgprobe.extract.embeddings import Embeddings  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
TIMING = (
    "baseline_s / ecgprobe_s (and ratio) are process CPU seconds of the single-threaded runs: on a shared "
    "machine (load 5-8 on 2 cores) wall time mostly measures the other users; wall seconds are kept beside them"
)
BASELINE = (
    "scikit-learn user loop: StandardScaler on train; per label and C, LogisticRegression(C=C, "
    "max_iter=1000); C per label by val roc_auc_score; test roc_auc_score"
)


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


def splits(emb: Embeddings, records: RecordSet) -> tuple[dict, dict]:
    X = {s: emb.X[records.split == s] for s in ("train", "val", "test")}
    Y = {s: records.y[records.split == s] for s in ("train", "val", "test")}
    return X, Y


def user_loop(X: dict, Y: dict, cols: np.ndarray, Cs=DEFAULT_CS) -> dict:
    """The baseline of the module docstring on label columns ``cols``: per-label test AUROC and
    chosen C (NaN where a label lacks a class in train, val or test) and per-label seconds."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    t0, c0 = time.perf_counter(), time.process_time()
    scaler = StandardScaler().fit(X["train"])
    Xs = {s: scaler.transform(x) for s, x in X.items()}
    t_scale = time.perf_counter() - t0
    L = Y["train"].shape[1]
    auc, chosen, seconds = np.full(L, np.nan), np.full(L, np.nan), np.zeros(L)
    for j in cols:
        t0 = time.perf_counter()
        y_tr, y_va, y_te = Y["train"][:, j], Y["val"][:, j], Y["test"][:, j]
        if 0 < y_tr.sum() < len(y_tr):
            best, best_auc, best_C = None, -np.inf, np.nan
            for C in Cs:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    model = LogisticRegression(C=C, max_iter=1000).fit(Xs["train"], y_tr)
                if 0 < y_va.sum() < len(y_va):
                    a = roc_auc_score(y_va, model.decision_function(Xs["val"]))
                    if a > best_auc:
                        best, best_auc, best_C = model, a, C
            if best is not None and 0 < y_te.sum() < len(y_te):
                auc[j] = roc_auc_score(y_te, best.decision_function(Xs["test"]))
                chosen[j] = best_C
        seconds[j] = time.perf_counter() - t0
    cpu = time.process_time() - c0
    return {
        "auroc": auc,
        "C": chosen,
        "label_s": seconds,
        "seconds": float(t_scale + seconds.sum()),
        "cpu_s": cpu,
    }


def label_sample(y_train: np.ndarray, k: int) -> np.ndarray:
    """k label columns spread evenly over the prevalence order (all when k >= L)."""
    order = np.argsort(y_train.mean(0), kind="stable")
    if k >= len(order):
        return np.sort(order)
    return np.sort(order[np.linspace(0, len(order) - 1, k).round().astype(int)])


def scarcity_masks(records: RecordSet, grid: np.ndarray, seeds: list[int]) -> np.ndarray:
    """``(F, S, n_train)`` the subsets ``ScarcityCurve`` draws (same calls, same seeds)."""
    train = records.split == "train"
    y, groups = records.y[train].astype(np.uint8), records.patient_ids[train]
    return np.stack([np.stack(nested_fraction_subsets(y, groups, grid, seed=s)) for s in seeds], axis=1)


def naive_run(section: str, emb: Embeddings, records: RecordSet, args: argparse.Namespace) -> dict:
    """One timed run of the baseline (per-label AUROC; for scarcity ``(F, S, L)``)."""
    X, Y = splits(emb, records)
    cols = label_sample(Y["train"], args.naive_labels or records.y.shape[1])
    if section == "probe":
        out = user_loop(X, Y, cols)
        return {"seconds": out["seconds"], "cpu_s": out["cpu_s"], "auroc": out["auroc"].tolist(), "C": out["C"].tolist(),
                "label_s": out["label_s"].tolist(), "labels_run": cols.tolist(),
                "prevalence_order": np.argsort(Y["train"].mean(0), kind="stable").tolist()}  # fmt: skip
    grid, seeds = np.asarray(args.fractions), list(range(args.seeds))
    masks = scarcity_masks(records, grid, seeds)
    F, S, L = len(grid), len(seeds), records.y.shape[1]
    auc, label_s, seconds, cpu, done = np.full((F, S, L), np.nan), np.zeros(L), 0.0, 0.0, {}
    for fi in range(F):
        for si in range(S):
            key = masks[fi, si].tobytes()
            if key not in done:  # the full training set is the same subset for every seed
                m = masks[fi, si]
                sub = {"train": X["train"][m], "val": X["val"], "test": X["test"]}
                ysub = {"train": Y["train"][m], "val": Y["val"], "test": Y["test"]}
                out = user_loop(sub, ysub, cols)
                done[key] = out["auroc"]
                seconds += out["seconds"]
                cpu += out["cpu_s"]
                label_s += out["label_s"]
            auc[fi, si] = done[key]
    return {"seconds": seconds, "cpu_s": cpu, "auroc": auc.tolist(), "label_s": label_s.tolist(), "labels_run": cols.tolist(),
            "distinct_subsets": len(done), "prevalence_order": np.argsort(Y["train"].mean(0), kind="stable").tolist()}  # fmt: skip


def ours_run(section: str, emb: Embeddings, records: RecordSet, args: argparse.Namespace) -> dict:
    """One timed run of ecgprobe's analyzer."""
    t0, c0 = time.perf_counter(), time.process_time()
    if section == "probe":
        res = LinearProbe(n_resamples=1, device="cpu").run(emb, records)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        fitted = list(res.metrics["labels_fitted"])
        auc, C = np.full(records.y.shape[1], np.nan), np.full(records.y.shape[1], np.nan)
        for row in res.tables["per_label"]:
            j = list(records.label_names).index(row["label"])
            auc[j], C[j] = row["auroc"], row["C"]
        return {
            "seconds": seconds,
            "cpu_s": cpu,
            "auroc": auc.tolist(),
            "C": C.tolist(),
            "labels_fitted": len(fitted),
        }
    fracs = tuple(f for f in args.fractions if f < 1)
    res = ScarcityCurve(fractions=fracs, n_seeds=args.seeds, n_resamples=0, device="cpu").run(emb, records)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    grid, seeds = np.asarray(res.metrics["grid"]), list(range(args.seeds))
    if not np.array_equal(res.arrays["subset_masks"], scarcity_masks(records, grid, seeds)):
        raise RuntimeError(
            "the benchmark's subsets differ from ScarcityCurve's: the comparison would be unfair"
        )
    return {"seconds": seconds, "cpu_s": cpu, "auroc": res.arrays["per_label_auroc"].tolist(),
            "curve": [r["macro_auroc_mean"] for r in res.tables["curve"]]}  # fmt: skip


def accuracy(section: str, naive: list[dict], ours: list[dict]) -> dict:
    """AUROC agreement on the labels (and subsets) both sides evaluated."""
    a, b = np.asarray(naive[0]["auroc"], dtype=float), np.asarray(ours[0]["auroc"], dtype=float)
    both = np.isfinite(a) & np.isfinite(b)
    out = {
        "compared": int(both.sum()),
        "naive_mean_auroc": float(a[both].mean()),
        "ecgprobe_mean_auroc": float(b[both].mean()),
        "delta_mean_auroc": float(b[both].mean() - a[both].mean()),
        "max_abs_label_delta": float(np.abs(b - a)[both].max()),
    }
    if section == "probe":
        Ca, Cb = np.asarray(naive[0]["C"], dtype=float), np.asarray(ours[0]["C"], dtype=float)
        out["same_C_share"] = float(np.mean(Ca[both] == Cb[both]))
    else:  # per fraction: the mean over seeds and labels evaluated by both
        out["delta_per_fraction"] = [
            float(b[f][both[f]].mean() - a[f][both[f]].mean()) for f in range(len(a))
        ]
        out["max_abs_fraction_delta"] = float(np.max(np.abs(out["delta_per_fraction"])))
    return out


def extrapolation_check(section: str, k: int) -> dict | None:
    """How well a K-label sample's scaled time predicts a full baseline run, from the per-label
    CPU-share of every full baseline run recorded for this section (any workload)."""
    if k <= 0:
        return None
    out = {"labels": k, "runs": []}
    for path in sorted((RESULTS / "raw").glob(f"{section}_*_naive.json")):
        for run in load_runs(path):
            label_s, order = np.asarray(run["label_s"]), np.asarray(run["prevalence_order"])
            if len(run["labels_run"]) < len(label_s) or k >= len(label_s):
                continue
            sample = order[np.linspace(0, len(order) - 1, k).round().astype(int)]
            error = float(label_s[sample].sum() * len(label_s) / k / label_s.sum() - 1)
            out["runs"].append({"workload": path.name.split("_")[1], "relative_error": error})
    if not out["runs"]:
        return None
    out["max_abs_relative_error"] = max(abs(r["relative_error"]) for r in out["runs"])
    return out


def raw_path(section: str, args: argparse.Namespace, side: str) -> Path:
    return RESULTS / "raw" / f"{section}_{args.n}x{args.dim}x{args.labels}_{side}.json"


def load_runs(path: Path) -> list[dict]:
    return json.loads(path.read_text())["runs"] if path.exists() else []


def machine() -> str:
    import os

    with open("/proc/cpuinfo") as fh:
        cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), "")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{platform.machine()} {cpu}, {os.cpu_count()} cores, load {load:.1f} at start; {platform.python_version()}"


def assemble(section: str, args: argparse.Namespace) -> dict | None:
    """The result JSON of one section and workload, from the raw runs of both sides (paired by index)."""
    naive, ours = load_runs(raw_path(section, args, "naive")), load_runs(raw_path(section, args, "ours"))
    n = min(len(naive), len(ours))
    if not n:
        return None
    extrapolated = any(len(r["labels_run"]) < len(r["label_s"]) for r in naive[:n])
    runs = []
    for r_naive, r_ours in zip(naive[:n], ours[:n]):
        scale = len(r_naive["label_s"]) / len(r_naive["labels_run"]) if extrapolated else 1.0
        base, wall = r_naive["cpu_s"] * scale, r_naive["seconds"] * scale
        runs.append({"baseline_s": base, "ecgprobe_s": r_ours["cpu_s"], "ratio": base / r_ours["cpu_s"],
                     "baseline_wall_s": wall, "ecgprobe_wall_s": r_ours["seconds"],
                     "wall_ratio": wall / r_ours["seconds"]})  # fmt: skip
    ratios = [r["ratio"] for r in runs]
    what = (
        "linear probe, 7 C, C per label on val"
        if section == "probe"
        else (
            f"scarcity curve, fractions {list(args.fractions)} x {args.seeds} seeds, 7 C, C per label on val"
        )
    )
    return {
        "name": section,
        "workload": f"{what}; synthetic {args.n} x {args.dim} float32 embeddings, {args.labels} labels "
        "(prevalence 0.3-40 %, 1.4 records/patient, 80/10/10 patient-wise splits)",
        "threads": args.threads,
        "baseline": BASELINE
        + (" (scarcity: on each distinct subset ScarcityCurve draws)" if section != "probe" else ""),
        "baseline_extrapolated": extrapolated,
        "target": ">= 10x (issue 18), AUROC within 0.002",
        "runs": runs,
        "ratio_range": [min(ratios), max(ratios)],
        "timing": TIMING,
        "wall_ratio_range": [min(r["wall_ratio"] for r in runs), max(r["wall_ratio"] for r in runs)],
        "accuracy": accuracy(section, naive[:n], ours[:n]),
        "extrapolation_check": extrapolation_check(
            section, len(naive[0]["labels_run"]) if extrapolated else 0
        ),
        "machine": json.loads(raw_path(section, args, "ours").read_text())["machine"],
    }


def write_result(section: str, args: argparse.Namespace) -> None:
    """Merge this workload's result into ``benchmarks/results/<section>.json`` (top level: the first
    workload measured; every workload under ``workloads``)."""
    res = assemble(section, args)
    if res is None:
        return
    path = RESULTS / f"{section}.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    workloads = {**old.get("workloads", {}), f"{args.n}x{args.dim}x{args.labels}": res}
    primary = next(iter(workloads.values()))
    path.write_text(json.dumps({**primary, "workloads": workloads}, indent=1) + "\n")
    acc = res["accuracy"]
    print(f"{section} {args.n}x{args.dim}x{args.labels}: baseline {[round(r['baseline_s'], 1) for r in res['runs']]} CPU s, "
          f"ecgprobe {[round(r['ecgprobe_s'], 2) for r in res['runs']]} s -> ratio {res['ratio_range'][0]:.1f}-"
          f"{res['ratio_range'][1]:.1f}x; mean AUROC delta {acc['delta_mean_auroc']:+.4f} "
          f"(max label {acc['max_abs_label_delta']:.4f}) -> {path}", flush=True)  # fmt: skip


def run_side(section: str, side: str, emb: Embeddings, records: RecordSet, args: argparse.Namespace) -> None:
    path = raw_path(section, args, side)
    path.parent.mkdir(parents=True, exist_ok=True)
    runs = load_runs(path) if args.append else []
    for i in range(args.runs):
        fn = naive_run if side == "naive" else ours_run
        r = fn(section, emb, records, args)
        runs.append(r)
        print(
            f"{section} {side} run {i + 1}/{args.runs}: {r['seconds']:.2f} s ({r['cpu_s']:.2f} s CPU)",
            flush=True,
        )
        path.write_text(json.dumps({"machine": machine(), "threads": args.threads, "runs": runs}) + "\n")


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
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--labels", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--side", choices=("both", "naive", "ours"), default="both")
    ap.add_argument("--append", action="store_true", help="add to the raw runs already recorded")
    ap.add_argument("--assemble", action="store_true", help="only write the result JSON from the raw runs")
    ap.add_argument("--naive-labels", type=int, default=0, help="run the baseline on K labels (0: all)")
    ap.add_argument("--check-labels", type=int, default=8, help="K of the extrapolation check")
    ap.add_argument(
        "--fractions", type=lambda s: [float(v) for v in s.split(",")], default=[0.05, 0.1, 0.25, 0.5, 1.0]
    )
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for torch and BLAS, both sides")
    ap.add_argument("--sections", default="probe,scarcity")
    args = ap.parse_args()
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    sections = args.sections.split(",")
    emb, records = workload(args.n, args.dim, args.labels)
    print(f"workload: {args.n} x {args.dim}, {args.labels} labels, splits {records.split_sizes()}; "
          f"{args.threads} CPU thread(s); baseline: {BASELINE}", flush=True)  # fmt: skip
    if "bootstrap" in sections:
        print(json.dumps(bench_bootstrap(), default=float), flush=True)
    if "knn" in sections:
        print(json.dumps(bench_knn(emb, records), default=float), flush=True)
    for section in ("probe", "scarcity"):
        if section not in sections:
            continue
        for side in () if args.assemble else ("naive", "ours") if args.side == "both" else (args.side,):
            run_side(section, side, emb, records, args)
        write_result(section, args)


if __name__ == "__main__":
    main()
