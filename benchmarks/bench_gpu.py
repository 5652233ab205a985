"""GPU check and figures, as one short script (issue 18, part 4). Without CUDA it says so and exits 0.

On a machine with a CUDA device it measures, in a few minutes:

1. **equality**: embeddings of ``--records`` synthetic 10 s, 500 Hz, 12-lead ECGs through
   ``ecgprobe.extract`` on CUDA against the CPU fp32 reference, in fp32 (TF32 off: the check is
   of our code path, not of TF32's rounding; tolerance: per-record relative L2 error <= 1e-4) and
   under bf16 autocast (tolerance: relative L2 error <= 3e-2 and cosine >= 0.999 per record —
   bf16 keeps 8 significand bits, eps 2^-8 = 3.9e-3, and the error grows over 12 blocks;
   the same bounds are checked on the CPU's bf16 autocast by ``--cpu-check``);
2. **throughput** of a ViT-B-sized encoder (default ``ecg-jepa``: 12 blocks x 768, 16 heads, 400
   tokens; random weights in its published checkpoint format) in ECG/s, fp32 and bf16, batches of
   ``--batch-size``, model-ready inputs on the device; its FLOPs per ECG (``FlopCounterMode``, a
   multiply-add = 2 FLOPs) turn that into achieved TFLOP/s, against the FLOP limit *measured*
   on the same device: the best of square matmuls (n = 4096, 8192) in the same precision (a
   dense-GEMM ceiling no transformer exceeds);
3. **probe and scarcity** on CUDA vs the CPU (the solver's ``device``): the linear probe and a
   5-fraction x 3-seed scarcity curve on synthetic 10,000 x 384 embeddings with 20 labels (the
   workload of ``bench_probe.py``), time and |delta macro AUROC|.

Writes ``benchmarks/results/gpu.json`` (the schema of ``_results.py``: ratio = CPU time / GPU
time) with the GPU named. ``--cpu-check`` runs steps 1-3 with the CPU in the device's place at
tiny sizes (``tiny-test`` encoder), to test this script on a machine without a GPU; it writes
nothing unless ``--json`` is given.

Usage: python benchmarks/bench_gpu.py [--encoder ecg-jepa] [--records 64] [--batch-size 64]
       [--seconds 5] [--json PATH] [--cpu-check]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

FP32_RTOL = 1e-4
BF16_RTOL = 3e-2
BF16_MIN_COS = 0.999


def _errors(ref: np.ndarray, got: np.ndarray) -> dict[str, float]:
    """Per-record relative L2 error and cosine similarity (worst record)."""
    ref = ref.astype(np.float64)
    got = got.astype(np.float64)
    norm = np.linalg.norm(ref, axis=1)
    rel = np.linalg.norm(got - ref, axis=1) / np.maximum(norm, 1e-12)
    cos = (ref * got).sum(1) / np.maximum(norm * np.linalg.norm(got, axis=1), 1e-12)
    return {"max_rel_l2": float(rel.max()), "min_cosine": float(cos.min())}


def equality(enc: Any, records: Any, device: str) -> dict[str, Any]:
    """CUDA (or ``device``) embeddings vs the CPU fp32 reference, fp32 and bf16."""
    import torch

    import ecgprobe

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    ref = ecgprobe.extract(enc, records, device="cpu", precision="fp32", progress=False).X
    out: dict[str, Any] = {}
    for precision, rtol in (("fp32", FP32_RTOL), ("bf16", BF16_RTOL)):
        got = ecgprobe.extract(enc, records, device=device, precision=precision, progress=False).X
        err = _errors(ref, got)
        ok = err["max_rel_l2"] <= rtol and (precision == "fp32" or err["min_cosine"] >= BF16_MIN_COS)
        out[precision] = {**err, "rtol": rtol, "ok": bool(ok)}
        print(
            f"[equality] {device} {precision} vs cpu fp32: max rel L2 {err['max_rel_l2']:.2e} "
            f"(tolerance {rtol:g}), min cosine {err['min_cosine']:.6f} -> {'ok' if ok else 'FAILED'}"
        )
    return out


def matmul_tflops(device: str, dtype: Any, seconds: float) -> float:
    """The best dense square-matmul throughput (TFLOP/s) on ``device`` in ``dtype``."""
    import torch
    from bench_zoo import rate

    best = 0.0
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for n in (4096, 8192) if device == "cuda" else (512,):
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        per_s = rate(lambda a=a, b=b: a @ b, 1, seconds / 2, sync)
        best = max(best, per_s * 2 * n**3 / 1e12)
    return best


def throughput(enc: Any, records: Any, device: str, batch_size: int, seconds: float) -> dict[str, Any]:
    """ECG/s in fp32 and bf16 on ``device`` against the measured matmul ceiling."""
    import torch
    from bench_zoo import gflops_per_ecg, rate

    x = torch.from_numpy(enc.preprocess(records.signals[:batch_size], records.fs, records.leads))
    gflops = gflops_per_ecg(enc, x)
    enc.to(device)
    xd = x.to(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    out: dict[str, Any] = {"gflops_per_ecg": gflops, "batch_size": int(x.shape[0])}
    with torch.inference_mode():
        torch.backends.cuda.matmul.allow_tf32 = False
        out["fp32_ecg_s"] = rate(lambda: enc.embed(xd), len(xd), seconds, sync)
        with torch.autocast(device, dtype=torch.bfloat16):
            out["bf16_ecg_s"] = rate(lambda: enc.embed(xd), len(xd), seconds, sync)
    enc.to("cpu")
    out["fp32_limit_tflops"] = matmul_tflops(device, torch.float32, seconds)
    out["bf16_limit_tflops"] = matmul_tflops(device, torch.bfloat16, seconds)
    for p in ("fp32", "bf16"):
        achieved = out[f"{p}_ecg_s"] * gflops / 1e3
        out[f"{p}_achieved_tflops"] = achieved
        out[f"{p}_share_of_limit"] = achieved / out[f"{p}_limit_tflops"]
        print(
            f"[throughput] {enc.name} {p}: {out[f'{p}_ecg_s']:.1f} ECG/s x {gflops:.2f} GFLOP = {achieved:.2f} TFLOP/s, "
            f"{100 * out[f'{p}_share_of_limit']:.0f} % of the measured {p} matmul limit "
            f"{out[f'{p}_limit_tflops']:.1f} TFLOP/s"
        )
    return out


def probes(device: str, n: int, dim: int, n_labels: int) -> dict[str, Any]:
    """Linear probe and scarcity curve: CUDA vs CPU solver, time and macro AUROC."""
    from bench_probe import workload

    from ecgprobe.analyzers import ANALYZERS

    emb, records = workload(n, dim, n_labels)
    out: dict[str, Any] = {}
    jobs = {
        "linear_probe": {"n_resamples": 200},
        "scarcity": {"fractions": (0.05, 0.1, 0.25, 0.5, 1.0), "n_seeds": 3, "n_resamples": 50},
    }
    for name, opts in jobs.items():
        row: dict[str, Any] = {}
        for dev in ("cpu", device):
            t0 = time.perf_counter()
            res = ANALYZERS.get(name)(device=dev, seed=0, **opts).run(emb, records)
            row[f"{dev}_s"] = time.perf_counter() - t0
            row[f"{dev}_auroc"] = _macro(res)
        row["delta_auroc"] = abs(row[f"{device}_auroc"] - row["cpu_auroc"])
        row["cpu_over_device"] = row["cpu_s"] / row[f"{device}_s"]
        out[name] = row
        print(
            f"[{name}] {n} x {dim}, {n_labels} labels: cpu {row['cpu_s']:.2f} s, {device} {row[f'{device}_s']:.2f} s "
            f"({row['cpu_over_device']:.1f}x), |delta macro AUROC| {row['delta_auroc']:.1e}"
        )
    return out


def _macro(res: Any) -> float:
    m = res.metrics
    if "macro_auroc" in m:
        return float(m["macro_auroc"])
    curve = res.tables["curve"]  # scarcity: the mean over fractions of the mean macro AUROC
    return float(np.mean([r["macro_auroc_mean"] for r in curve]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="ecg-jepa", help="a ViT-B-sized zoo encoder (default ecg-jepa)")
    parser.add_argument("--records", type=int, default=64, help="records of the equality check")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0, help="minimum timing per throughput figure")
    parser.add_argument(
        "--json", type=Path, default=None, help="where to write (default results/gpu.json on CUDA)"
    )
    parser.add_argument(
        "--cpu-check", action="store_true", help="run every step with the CPU as the device, tiny sizes"
    )
    args = parser.parse_args(argv)

    import torch

    if not args.cpu_check and not torch.cuda.is_available():
        print("bench_gpu: no CUDA device here (torch.cuda.is_available() is False): nothing measured")
        return 0
    import ecgprobe
    from ecgprobe.encoders.registry import encoder_info

    device = "cpu" if args.cpu_check else "cuda"
    name = "tiny-test" if args.cpu_check else args.encoder
    n, dim, n_labels = (600, 32, 4) if args.cpu_check else (10_000, 384, 20)
    seconds = 0.2 if args.cpu_check else args.seconds
    gpu = "cpu (--cpu-check)" if args.cpu_check else torch.cuda.get_device_name(0)
    print(f"bench_gpu on {gpu}; torch {torch.__version__}; encoder {name}")
    records = ecgprobe.load_dataset(
        "synthetic", n_records=max(args.records, args.batch_size), fs=500.0, seed=0
    )
    with tempfile.TemporaryDirectory() as d:
        make = encoder_info(name).make_test_checkpoint
        ckpt = make(Path(d) / "checkpoint", 0) if make is not None else None
        enc = ecgprobe.create_encoder(name, checkpoint=ckpt, device="cpu")
        eq = equality(enc, records.subset(range(args.records)), device)
        tp = throughput(enc, records, device, args.batch_size, seconds)
    pr = probes(device, n, dim, n_labels)
    runs = [
        {
            "what": k,
            "baseline_s": v["cpu_s"],
            "ecgprobe_s": v[f"{device}_s"],
            "ratio": v["cpu_over_device"],
            **v,
        }
        for k, v in pr.items()
    ]
    from _results import figure

    doc = figure(
        "gpu",
        f"{gpu}: {name} on {args.records} synthetic 500 Hz ECGs (equality), batches of {args.batch_size} "
        f"(throughput); probe and scarcity on {n} x {dim}, {n_labels} labels",
        torch.get_num_threads(),
        "the CPU: fp32 embeddings (equality), the CPU solver (probe and scarcity)",
        runs,
        gpu=gpu,
        equality=eq,
        throughput=tp,
        accuracy={k: v["delta_auroc"] for k, v in pr.items()},
    )
    path = args.json or (None if args.cpu_check else ROOT / "benchmarks" / "results" / "gpu.json")
    if path is not None:
        path.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"  -> {path}")
    ok = all(v["ok"] for v in eq.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
