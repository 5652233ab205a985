"""Throughput of the reference encoders on CPU, measured in one run.

1. ``handcrafted``: the batch-vectorised feature computation vs the same function called record
   by record (the naive way), on the same records, with a check that both give the same values.
   (Each call is already vectorised over leads and time, so batching gains a modest factor; the
   figure that matters is the absolute rate: thousands of records in a minute or two.)
2. Records/s of each baseline (``random-resnet1d``, ``handcrafted``, ``openecg-codec``):
   preprocessing alone, the encoder alone on preprocessed batches, and ``ecgprobe.extract``
   end to end (which overlaps preprocessing with the model).

Timings are the best of ``--repeat`` runs (the machine may be shared).

Usage: python benchmarks/bench_handcrafted.py [--n 256] [--repeat 3] [--skip-openecg]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import ecgprobe  # noqa: E402
from ecgprobe.encoders.handcrafted import compute_features  # noqa: E402


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def vectorised_vs_loop(n: int, repeat: int, batch: int = 64) -> None:
    enc = ecgprobe.create_encoder("handcrafted", device="cpu")
    rs = ecgprobe.load_dataset("synthetic", n_records=n, fs=500.0, seed=0)
    x = enc.preprocess(rs.signals, rs.fs, rs.leads)

    def vectorised() -> None:
        for i in range(0, n, batch):
            compute_features(x[i : i + batch], 500.0)

    def per_record() -> None:
        for i in range(n):
            compute_features(x[i : i + 1], 500.0)

    t_vec, t_loop = best(vectorised, repeat), best(per_record, repeat)
    same = all(
        np.array_equal(compute_features(x[:batch], 500.0)[g][i], compute_features(x[i : i + 1], 500.0)[g][0])
        for g in ("amplitude", "rhythm", "morphology")
        for i in (0, batch // 2)
    )
    print(f"handcrafted features, {n} records (10 s, 12 leads, 500 Hz):")
    print(f"  vectorised (batches of {batch}): {n / t_vec:7.1f} records/s")
    print(f"  record by record:              {n / t_loop:7.1f} records/s")
    print(f"  speed-up: {t_loop / t_vec:.1f}x  (same values per record: {same})")


def throughput(name: str, n: int, repeat: int, batch: int, **options: object) -> None:
    enc = ecgprobe.create_encoder(name, device="cpu", **options)
    rs = ecgprobe.load_dataset("synthetic", n_records=n, fs=500.0, seed=1)
    x = enc.preprocess(rs.signals, rs.fs, rs.leads)

    def model() -> None:
        with torch.inference_mode():
            for i in range(0, n, batch):
                enc.embed(torch.from_numpy(x[i : i + batch]))

    t_pre = best(lambda: enc.preprocess(rs.signals, rs.fs, rs.leads), repeat)
    t_model = best(model, repeat)
    t_extract = best(
        lambda: ecgprobe.extract(enc, rs, batch_size=batch, device="cpu", progress=False), repeat
    )
    label = name + (f" {options}" if options else "")
    print(
        f"{label:<34} preprocess {n / t_pre:7.1f}  encoder {n / t_model:7.1f}  "
        f"extract (end to end) {n / t_extract:7.1f}  records/s  (n={n}, batch {batch})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256, help="records for the handcrafted figures")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-openecg", action="store_true")
    args = ap.parse_args()
    print(f"torch threads: {torch.get_num_threads()}\n")
    vectorised_vs_loop(args.n, args.repeat)
    print("\nrecords/s on CPU (10 s, 12-lead, 500 Hz synthetic records):")
    throughput("handcrafted", args.n, args.repeat, 64)
    throughput("random-resnet1d", max(args.n // 2, 16), args.repeat, 32)
    if not args.skip_openecg:
        try:
            throughput("openecg-codec", 16, max(args.repeat - 1, 1), 8)
            throughput("openecg-codec", 32, max(args.repeat - 1, 1), 16, leads="II")
        except ecgprobe.EcgprobeError as exc:
            print(f"openecg-codec skipped: {exc}")


if __name__ == "__main__":
    main()
