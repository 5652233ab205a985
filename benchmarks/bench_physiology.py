"""Physiology measurement throughput: ``ecgprobe.data.physiology.measure`` against NeuroKit2
called naively per record (``nk.ecg_process`` on lead II: cleaning, R peaks, rate, quality and its
default DWT delineation, whose wave columns hold the intervals), on PTB-XL mini at 500 Hz.

Both measure the same records from memory (signals read once beforehand); the cache is off for
ecgprobe (``cache_dir=None`` and the process memory cleared before every run), so the ratio is
the measurement itself. Accuracy: heart-rate agreement between the two (|difference| <= 5 bpm),
and ecgprobe's QRS median (PTB-XL's published 12SL median on the full set is about 90 ms).

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_physiology.py [--n 40] [--fs 500]``; writes
``benchmarks/results/physiology.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np

import ecgprobe
from ecgprobe.data import physiology
from ecgprobe.data.record import ArraySource

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ptbxl-mini"


def naive(signals: np.ndarray, fs: float, lead: int) -> np.ndarray:
    """NeuroKit2 per record, as its documentation shows: ``ecg_process`` (delineation included)."""
    import neurokit2 as nk

    hr = np.full(len(signals), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, x in enumerate(signals):
            try:
                sig, _ = nk.ecg_process(x[lead], sampling_rate=int(fs))
                hr[i] = float(sig["ECG_Rate"].mean())
            except (ValueError, IndexError):
                continue
    return hr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40, help="records (default 40)")
    ap.add_argument("--fs", type=int, default=500, choices=(100, 500))
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    rs = ecgprobe.load_dataset("ptbxl", DATA, sampling_rate=args.fs).subset(np.arange(args.n))
    signals = rs.read(np.arange(len(rs)))
    mem = dataclasses.replace(rs, source=ArraySource(signals), name="ptbxl-mini-in-memory")
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    workload = f"PTB-XL mini, {args.n} records x 12 leads x 10 s at {args.fs} Hz"
    baseline = "neurokit2 per record: nk.ecg_process(lead II) (clean, peaks, rate, quality, dwt delineation)"
    print(f"workload: {workload}\nthreads: OMP_NUM_THREADS={threads}\nbaseline: {baseline}")
    import neurokit2  # noqa: F401  (import time is not part of either measurement)

    physiology.measure(mem.subset(np.arange(2)))  # warm-up
    naive(signals[:2], rs.fs, rs.leads.index("II"))
    runs, table, hr_naive = [], None, None
    for k in range(args.runs):
        physiology.clear_memory()
        t0 = time.perf_counter()
        table = physiology.measure(mem)
        ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        hr_naive = naive(signals, rs.fs, rs.leads.index("II"))
        base = time.perf_counter() - t0
        runs.append(
            {"baseline_s": round(base, 3), "ecgprobe_s": round(ours, 3), "ratio": round(base / ours, 2)}
        )
        print(
            f"run {k + 1}: neurokit2 naive {base:.2f} s ({args.n / base:.1f} records/s), "
            f"ecgprobe {ours:.2f} s ({args.n / ours:.1f} records/s), ratio {base / ours:.2f}x"
        )
    agree = np.abs(table["heart_rate"].to_numpy() - hr_naive) <= 5.0
    ok = table["quality"] == "ok"
    accuracy = {
        "heart_rate_within_5bpm_of_naive": round(float(np.mean(agree)), 3),
        "quality_ok_share": round(float(ok.mean()), 3),
        "qrs_median_ms": round(float(table.loc[ok, "qrs"].median()), 1),
        "qt_median_ms": round(float(table.loc[ok, "qt"].median()), 1),
        "pr_median_ms": round(float(table.loc[ok, "pr"].median()), 1),
    }
    print("accuracy:", accuracy)
    ratios = [r["ratio"] for r in runs]
    doc = {
        "name": "physiology",
        "workload": workload,
        "threads": threads,
        "baseline": baseline,
        "runs": runs,
        "ratio_range": [min(ratios), max(ratios)],
        "records_per_s": {
            "ecgprobe": round(args.n / float(np.median([r["ecgprobe_s"] for r in runs])), 2),
            "neurokit2_naive": round(args.n / float(np.median([r["baseline_s"] for r in runs])), 2),
        },
        "accuracy": accuracy,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
    }
    out = Path(__file__).resolve().parent / "results" / "physiology.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
