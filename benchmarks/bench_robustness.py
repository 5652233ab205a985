"""The robustness card of one encoder, and what it costs against bare extractions.

Workload: PTB-XL mini at 500 Hz (superclass labels; the probe fitted on the clean train split),
the card's 4 noise types x 6 NST SNR levels (24 ... -6 dB) + the lead sets 6 limb / I, II, V2 / I:
27 conditions on the 64 test records. Baseline: one bare extraction of the clean test records
(``ecgprobe.extract``, no cache) per condition, i.e. 27 x that time (the mean of one bare extraction
measured before and one after the card, as the machine may be shared). ecgprobe: the card's loop over
the conditions (perturbing, extracting through the cache, scoring with the clean probe's head,
bootstrap intervals), with the clean embeddings and probe already cached (they are shared with
``ecgprobe report``). Goal: ratio <= 1.2 (perturbing costs little; nothing is computed twice).

Also checked: a second card with the same cache calls the encoder zero times, and the measured
NST SNR of every perturbed test record and lead equals its level.

Writes ``benchmarks/results/robustness.json``.

Usage: python benchmarks/bench_robustness.py [--encoder random-resnet1d] [--runs 3] [--root DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import ecgprobe  # noqa: E402
from ecgprobe.data.noise import NOISE_KINDS, NST_LEVELS_DB, snr_db  # noqa: E402
from ecgprobe.data.perturb import Perturbation, PerturbMemo, perturbed_view  # noqa: E402
from ecgprobe.settings import RunSettings  # noqa: E402
from ecgprobe.workflows.robustness import robustness_card  # noqa: E402

PERTURBATIONS = [*NOISE_KINDS, "leads"]


def counting(enc) -> dict:
    calls = {"n": 0}
    forward = enc._forward

    def wrapped(x):
        calls["n"] += 1
        return forward(x)

    enc._forward = wrapped
    return calls


def bare_extraction(enc, test) -> float:
    t0 = time.perf_counter()
    ecgprobe.extract(enc, test, device="cpu", progress=False)
    return time.perf_counter() - t0


def card(enc, records, cache: Path, n_resamples: int):
    settings = RunSettings(device="cpu", cache_dir=cache, n_resamples=n_resamples, progress=False)
    t0 = time.perf_counter()
    res, _ = robustness_card(enc, records, settings=settings, perturbations=PERTURBATIONS)
    return res, time.perf_counter() - t0


def print_card(res) -> None:
    print(f"{'condition':24s} {'handling':12s} {'macro AUROC [95% CI]':28s} {'drop [95% CI]':28s}")
    for r in res.tables["conditions"]:
        if r["status"] != "ok":
            print(f"{r['label']:24s} {r['status']}")
            continue
        auc = f"{r['macro_auroc']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
        drop = f"{r['drop']:+.3f} [{r['drop_ci_low']:+.3f}, {r['drop_ci_high']:+.3f}]"
        print(f"{r['label']:24s} {(r['handling'] or '-').split(' ')[0]:12s} {auc:28s} {drop:28s}")


def snr_error(test) -> float:
    """The largest |measured NST SNR - level| over every noise condition, test record and lead."""
    memo, clean, worst = PerturbMemo(), test.signals, 0.0
    for kind in NOISE_KINDS:
        for level in NST_LEVELS_DB:
            noisy = perturbed_view(test, Perturbation(kind, level), memo=memo).signals
            err = np.abs(snr_db(clean, noisy, test.fs) - level)
            worst = max(worst, float(np.nanmax(err)))
    return worst


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--encoder", default="random-resnet1d")
    ap.add_argument("--root", type=Path, default=ROOT.parent / "shared" / "data" / "ptbxl-mini")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--n-resamples", type=int, default=1000)
    args = ap.parse_args()
    threads = torch.get_num_threads()
    records = ecgprobe.load_dataset("ptbxl", args.root, sampling_rate=500)
    test = records.by_split("test")
    enc = ecgprobe.create_encoder(args.encoder, device="cpu")
    calls = counting(enc)
    n_cond = len(NOISE_KINDS) * len(NST_LEVELS_DB) + 3
    workload = (
        f"{args.encoder} on PTB-XL mini 500 Hz ({len(records)} records, {len(test)} test): {n_cond} conditions "
        f"(4 noises x 6 SNR levels + 3 lead sets), {args.n_resamples} bootstrap resamples"
    )
    baseline = f"{n_cond} x one bare ecgprobe.extract of the {len(test)} clean test records (no cache)"
    print(
        f"workload: {workload}\nthreads:  {threads} (torch), OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"
    )
    print(f"baseline: {baseline}")
    warm = Path(tempfile.mkdtemp(prefix="ecgprobe-bench-rob-"))
    ecgprobe.extract(enc, test.subset(range(8)), device="cpu", progress=False)  # warm-up
    first, _ = card(enc, records, warm, args.n_resamples)  # clean embeddings + probe cached here
    print_card(first)
    runs = []
    for i in range(args.runs):
        run_cache = Path(tempfile.mkdtemp(prefix="ecgprobe-bench-run-"))
        shutil.rmtree(run_cache)
        shutil.copytree(warm, run_cache)  # the clean entries only...
        for entry in (run_cache / enc.name).iterdir():  # ...minus the perturbed ones
            manifest = json.loads((entry / "manifest.json").read_text())
            if "perturbation" in manifest["provenance"]["dataset"]["params"]:
                shutil.rmtree(entry)
        bare = bare_extraction(enc, test)
        res, _ = card(enc, records, run_cache, args.n_resamples)
        bare = (bare + bare_extraction(enc, test)) / 2 * n_cond  # before and after: the machine is shared
        loop = res.metrics["perturbed_extraction_s"]
        runs.append(
            {"baseline_s": round(bare, 3), "ecgprobe_s": round(loop, 3), "ratio": round(loop / bare, 3)}
        )
        print(f"run {i + 1}: baseline {bare:.1f} s, card conditions {loop:.1f} s, ratio {loop / bare:.3f}")
        shutil.rmtree(run_cache, ignore_errors=True)
    before = calls["n"]
    again, _ = card(enc, records, warm, args.n_resamples)
    rerun_calls = calls["n"] - before
    worst = snr_error(test)
    shutil.rmtree(warm, ignore_errors=True)
    rows = {r["label"]: r for r in first.tables["conditions"]}
    accuracy = {
        "clean_macro_auroc": first.metrics["clean_macro_auroc"],
        "drop_at_minus6db": {k: rows[f"{k.replace('_', ' ')} -6 dB"]["drop"] for k in NOISE_KINDS},
        "drop_lead_I": rows["leads I"]["drop"],
        "max_snr_error_db": worst,
        "rerun_encoder_calls": rerun_calls,
        "rerun_identical": [r["macro_auroc"] for r in again.tables["conditions"]]
        == [r["macro_auroc"] for r in first.tables["conditions"]],
    }
    ratios = [r["ratio"] for r in runs]
    doc = {
        "name": "robustness",
        "workload": workload,
        "threads": threads,
        "baseline": baseline,
        "runs": runs,
        "ratio_range": [min(ratios), max(ratios)],
        "target": "<= 1.2x the bare extractions",
        "accuracy": accuracy,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}",
    }
    print(json.dumps(accuracy, indent=1))
    print(
        f"ratio range {min(ratios):.3f}-{max(ratios):.3f} (goal <= 1.2); encoder calls on a cached re-run: {rerun_calls}"
    )
    out = ROOT / "benchmarks" / "results" / "robustness.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
