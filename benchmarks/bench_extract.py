"""Extraction benchmarks: the figures the extractor promises, measured in one run.

1. Pipeline overhead: ``ecgprobe.extract`` throughput vs a bare forward loop over the same
   pre-loaded, pre-processed tensors (target: >= 0.9x — the data path is not the bottleneck).
2. Cache: a re-run vs the first run (target: >= 100x faster, zero encoder calls).
3. Memory: peak RSS extracting N_big records vs N_small (lazy, generated on demand), relative to
   N_small's peak plus the output matrix (target: <= 1.3x — records stream, nothing accumulates).
4. With CUDA: bf16 autocast vs fp32 throughput.

Overhead and cache are measured ``--runs`` times (default 3) and written to
``benchmarks/results/extract_overhead.json`` and ``extract_cache.json`` (the schema
``benchmarks/make_table.py`` reads); memory and CUDA are printed.

Usage: python benchmarks/bench_extract.py [--encoder random-resnet1d] [--n 2000] [--n-big 20000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import ecgprobe  # noqa: E402
from benchmarks._results import figure, save  # noqa: E402


def bare_loop(enc, x: np.ndarray, batch_size: int) -> float:
    """Seconds for a plain forward loop over pre-loaded, pre-processed tensors."""
    t0 = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(x), batch_size):
            enc.embed(torch.from_numpy(x[i : i + batch_size]))
    return time.perf_counter() - t0


def overhead(name: str, n: int, batch_size: int) -> dict:
    enc = ecgprobe.create_encoder(name, device="cpu")
    rs = ecgprobe.load_dataset("synthetic", n_records=n, fs=enc.spec.fs, seed=0)
    x = enc.preprocess(rs.signals, rs.fs, rs.leads)
    bare_loop(enc, x[: 2 * batch_size], batch_size)  # warm-up (allocator, kernels)
    t_bare = bare_loop(enc, x, batch_size)
    t0 = time.perf_counter()
    ecgprobe.extract(enc, rs, batch_size=batch_size, device="cpu", progress=False)
    t_pipe = time.perf_counter() - t0
    return {
        "encoder": name,
        "n": n,
        "bare_rec_s": n / t_bare,
        "pipeline_rec_s": n / t_pipe,
        "ratio": t_bare / t_pipe,
    }


def cache(name: str, n: int, batch_size: int) -> dict:
    enc = ecgprobe.create_encoder(name, device="cpu")
    rs = ecgprobe.load_dataset("synthetic", n_records=n, fs=enc.spec.fs, seed=0)
    calls = {"n": 0}
    forward = enc._forward

    def counting(x):
        calls["n"] += 1
        return forward(x)

    enc._forward = counting
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        ecgprobe.extract(enc, rs, batch_size=batch_size, cache_dir=d, progress=False)
        t_first = time.perf_counter() - t0
        first_calls = calls["n"]
        t0 = time.perf_counter()
        ecgprobe.extract(enc, rs, batch_size=batch_size, cache_dir=d, progress=False)
        t_again = time.perf_counter() - t0
    return {"first_s": t_first, "rerun_s": t_again, "speedup": t_first / t_again, "first_calls": first_calls,
            "rerun_calls": calls["n"] - first_calls}  # fmt: skip


_CHILD = """
import resource, sys, json, time
sys.path.insert(0, {root!r})
import ecgprobe
enc = ecgprobe.create_encoder({name!r}, device="cpu")
rs = ecgprobe.load_dataset("synthetic", n_records={n}, fs=enc.spec.fs, seed=0, lazy=True)
t0 = time.perf_counter()
emb = ecgprobe.extract(enc, rs, batch_size=64, progress=False)
print(json.dumps({{"maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "out_mb": emb.X.nbytes / 2**20, "s": time.perf_counter() - t0}}))
"""


def memory(name: str, n_small: int, n_big: int) -> dict:
    def run(n: int) -> dict:
        code = _CHILD.format(root=str(ROOT), name=name, n=n)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    small, big = run(n_small), run(n_big)
    bound = small["maxrss_mb"] + big["out_mb"]
    return {"small": small, "big": big, "ratio_vs_small_plus_output": big["maxrss_mb"] / bound}


def precision(name: str, n: int, batch_size: int) -> dict | None:
    if not torch.cuda.is_available():
        return None
    enc = ecgprobe.create_encoder(name, device="cuda")
    rs = ecgprobe.load_dataset("synthetic", n_records=n, fs=enc.spec.fs, seed=0)
    out = {}
    for p in ("fp32", "bf16"):
        ecgprobe.extract(enc, rs.subset(range(batch_size)), precision=p, progress=False)  # warm-up
        t0 = time.perf_counter()
        ecgprobe.extract(enc, rs, batch_size=batch_size, precision=p, progress=False)
        torch.cuda.synchronize()
        out[p] = n / (time.perf_counter() - t0)
    out["bf16_over_fp32"] = out["bf16"] / out["fp32"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encoder", default="random-resnet1d")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument(
        "--memory-encoder", default="tiny-test", help="a fast encoder: the memory test is about streaming"
    )
    ap.add_argument("--n-small", type=int, default=2000)
    ap.add_argument("--n-big", type=int, default=20000)
    ap.add_argument("--skip", default="", help="comma list of parts to skip: overhead,cache,memory")
    ap.add_argument("--runs", type=int, default=3, help="repetitions of the overhead and cache figures")
    args = ap.parse_args()
    skip = set(args.skip.split(","))
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, threads {threads}, cuda {torch.cuda.is_available()}")
    if "overhead" not in skip:
        runs = []
        for _ in range(args.runs):
            r = overhead(args.encoder, args.n, args.batch_size)
            print(f"[overhead] {r['encoder']} on {r['n']} synthetic 10 s records: bare loop {r['bare_rec_s']:.1f} rec/s, "
                  f"extract {r['pipeline_rec_s']:.1f} rec/s -> ratio {r['ratio']:.3f} (target >= 0.9)")  # fmt: skip
            runs.append({"baseline_s": round(args.n / r["bare_rec_s"], 3),
                         "ecgprobe_s": round(args.n / r["pipeline_rec_s"], 3), "ratio": round(r["ratio"], 3)})  # fmt: skip
        doc = figure(
            "extraction vs a bare forward loop (throughput)",
            f"{args.n} synthetic 10 s 12-lead records at the encoder's rate, `{args.encoder}`, batch {args.batch_size}, cpu",
            threads,
            "a plain `encoder.embed` loop over the same records, pre-loaded and pre-processed",
            runs,
            target=">= 0.9x",
            accuracy={},
        )
        save(doc, "extract_overhead.json")
    if "cache" not in skip:
        runs = []
        for _ in range(args.runs):
            r = cache(args.encoder, args.n, args.batch_size)
            print(f"[cache] first run {r['first_s']:.2f} s ({r['first_calls']} encoder calls), re-run {r['rerun_s']:.3f} s "
                  f"({r['rerun_calls']} calls) -> {r['speedup']:.0f}x faster (target >= 100x, 0 calls)")  # fmt: skip
            runs.append({"baseline_s": round(r["first_s"], 3), "ecgprobe_s": round(r["rerun_s"], 4),
                         "ratio": round(r["speedup"], 1), "rerun_encoder_calls": r["rerun_calls"]})  # fmt: skip
        doc = figure(
            "cached `ecgprobe.extract` re-run vs the first run, in one process",
            f"{args.n} synthetic records in memory, `{args.encoder}`, batch {args.batch_size}, cpu; "
            "the re-run checks every record's content digest",
            threads,
            "the first `ecgprobe.extract` call into an empty cache",
            runs,
            target=">= 100x",
            accuracy={"rerun_encoder_calls": max(x["rerun_encoder_calls"] for x in runs)},
        )
        save(doc, "extract_cache.json")
    if "memory" not in skip:
        r = memory(args.memory_encoder, args.n_small, args.n_big)
        s, b = r["small"], r["big"]
        print(f"[memory] {args.memory_encoder}, lazy synthetic: peak RSS {s['maxrss_mb']:.0f} MB for {args.n_small} records, "
              f"{b['maxrss_mb']:.0f} MB for {args.n_big} (output {b['out_mb']:.1f} MB) -> "
              f"{r['ratio_vs_small_plus_output']:.3f} of small+output (target <= 1.3)")  # fmt: skip
    r = precision(args.encoder, args.n, args.batch_size)
    if r:
        print(
            f"[cuda] fp32 {r['fp32']:.0f} rec/s, bf16 {r['bf16']:.0f} rec/s -> bf16/fp32 {r['bf16_over_fp32']:.2f}x"
        )
    else:
        print("[cuda] not available here: bf16 vs fp32 not measured")


if __name__ == "__main__":
    main()
