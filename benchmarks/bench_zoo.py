"""Model-zoo benchmarks: every registered family that can write a test checkpoint, measured in one run.

For each encoder whose registration has ``make_test_checkpoint`` (random full-size weights in the
published format), the script writes that checkpoint, loads it through ``ecgprobe.create_encoder``
and reports:

- parameters (M) and FLOPs per ECG (GFLOPs, ``torch.utils.flop_counter.FlopCounterMode``, one
  model-ready record through ``embed``; a multiply-add counts 2);
- preprocessing throughput (raw 10 s, 500 Hz, 12-lead records -> model-ready, records/s);
- CPU embeddings/s one record at a time (the naive way) and in batches, and their ratio;
- with CUDA: embeddings/s in fp32 and under bf16 autocast, and their ratio.

Usage: python benchmarks/bench_zoo.py [--families ecgfounder,merl] [--batch-size 16] [--seconds 3]
       [--threads N] [--json out.json]
(On a shared, oversubscribed machine, ``--threads 1`` gives steadier figures: OpenMP barriers of
several threads stall when other processes hold the cores.)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import ecgprobe  # noqa: E402
from ecgprobe.encoders.registry import ENCODERS, encoder_info  # noqa: E402


def zoo_families() -> list[str]:
    """Registered encoders that can write a random checkpoint in their published format."""
    return [card.name for card in ENCODERS.cards() if card.make_test_checkpoint is not None]


def rate(
    fn: Callable[[], object], items: int, seconds: float, sync: Callable[[], None] = lambda: None
) -> float:
    """Items per second of ``fn`` (one warm-up call, then repeated for at least ``seconds``, >= 2 calls)."""
    fn()
    sync()
    calls, t0 = 0, time.perf_counter()
    while calls < 2 or time.perf_counter() - t0 < seconds:
        fn()
        calls += 1
    sync()
    return calls * items / (time.perf_counter() - t0)


def gflops_per_ecg(enc, x: torch.Tensor) -> float:
    # no_grad, not inference_mode: FlopCounterMode cannot see weight-norm parametrizations under inference_mode
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        enc.embed(x[:1])
    return counter.get_total_flops() / 1e9


def bench_family(name: str, batch_size: int, seconds: float, workdir: Path) -> dict:
    make = encoder_info(name).make_test_checkpoint
    if make is None:
        raise SystemExit(f"{name} registers no make_test_checkpoint; pick one of {', '.join(zoo_families())}")
    out: dict = {"encoder": name}
    t0 = time.perf_counter()
    path = make(workdir / name / "checkpoint", 0)
    out["write_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    enc = ecgprobe.create_encoder(name, checkpoint=path, device="cpu")
    out["load_s"] = time.perf_counter() - t0
    module = getattr(enc, "module", None)
    out["params_m"] = (
        sum(p.numel() for p in module.parameters()) / 1e6 if module is not None else float("nan")
    )

    raw = ecgprobe.load_dataset("synthetic", n_records=batch_size, fs=500.0, seed=0)
    out["preprocess_rec_s"] = rate(
        lambda: enc.preprocess(raw.signals, raw.fs, raw.leads), batch_size, seconds
    )
    x = torch.from_numpy(enc.preprocess(raw.signals, raw.fs, raw.leads))
    out["input"] = "x".join(map(str, x.shape[1:]))
    out["gflops_per_ecg"] = gflops_per_ecg(enc, x)

    with torch.inference_mode():
        one = x[:1]
        out["cpu_b1_emb_s"] = rate(lambda: enc.embed(one), 1, seconds)
        out[f"cpu_b{batch_size}_emb_s"] = rate(lambda: enc.embed(x), batch_size, seconds)
    out["batch_vs_single"] = out[f"cpu_b{batch_size}_emb_s"] / out["cpu_b1_emb_s"]

    if torch.cuda.is_available():
        enc.to("cuda")
        xc = x.to("cuda")
        sync = torch.cuda.synchronize
        with torch.inference_mode():
            out["cuda_fp32_emb_s"] = rate(lambda: enc.embed(xc), batch_size, seconds, sync)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                out["cuda_bf16_emb_s"] = rate(lambda: enc.embed(xc), batch_size, seconds, sync)
        out["bf16_vs_fp32"] = out["cuda_bf16_emb_s"] / out["cuda_fp32_emb_s"]
        enc.to("cpu")
    shutil.rmtree(workdir / name, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--families", default="", help="comma-separated encoder names (default: every zoo family)"
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=3.0, help="minimum timing per measurement")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    names = [n for n in args.families.split(",") if n] or zoo_families()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, CUDA: {torch.cuda.is_available()}"
    )
    print(f"families: {', '.join(names)}\n")
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for name in names:
            row = bench_family(name, args.batch_size, args.seconds, Path(d))
            rows.append(row)
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}))

    b = args.batch_size
    cols = ["encoder", "input", "params_m", "gflops_per_ecg", "preprocess_rec_s", "cpu_b1_emb_s", f"cpu_b{b}_emb_s",
            "batch_vs_single"]  # fmt: skip
    if torch.cuda.is_available():
        cols += ["cuda_fp32_emb_s", "cuda_bf16_emb_s", "bf16_vs_fp32"]
    print("\n" + " | ".join(cols))
    for row in rows:
        print(" | ".join(f"{row[c]:.3g}" if isinstance(row[c], float) else str(row[c]) for c in cols))
    if args.json:
        args.json.write_text(
            json.dumps(rows, indent=1, default=lambda v: float(v) if np.isscalar(v) else str(v))
        )


if __name__ == "__main__":
    main()
