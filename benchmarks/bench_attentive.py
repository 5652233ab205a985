"""Attentive-probe benchmark: fit time of ``AttentiveProbe`` against ``LinearProbe`` on the same
embeddings (the linear probe on the mean of the same tokens), on the CPU.

Workloads:

- ``ptbxl-mini``: the 488 labelled PTB-XL mini records (100 Hz, 5 superclasses; 352 train, 72
  val, 64 test), tokens of ``random-resnet1d`` (width 32: layer4, D = 256) averaged to
  ``--max-tokens`` (default 32) tokens; the extraction time is printed apart;
- ``synthetic``: ``--n`` records x ``--max-tokens`` tokens x ``--dim`` (Gaussian tokens plus a
  fixed signature per position), 20 labels whose logits read random directions of the same 3
  random tokens (one salient segment), prevalences 2-30 %, 80/10/10 record splits (one record per patient).

Both probes run with ``n_resamples=1`` (the timing is the fit, not the interval machinery) and
``compare_linear=False`` on the attentive side, so the two numbers are separate; ``--epochs``
caps the attentive training (early stopping may end it sooner: epochs run are printed). Times
are process CPU seconds and wall seconds, torch and BLAS limited to ``--threads`` threads.

Usage: python benchmarks/bench_attentive.py [--workloads ptbxl-mini,synthetic] [--threads 1]
       [--n 2000] [--dim 256] [--max-tokens 32] [--epochs 10] [--data /work/shared/data/ptbxl-mini]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import ecgprobe  # noqa: E402
from ecgprobe.analyzers.attentive_probe import AttentiveProbe  # noqa: E402
from ecgprobe.analyzers.linear_probe import LinearProbe  # noqa: E402
from ecgprobe.data.record import ArraySource, RecordSet  # noqa: E402
from ecgprobe.extract.embeddings import Embeddings  # noqa: E402


def _timed(fn):
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - c0, time.perf_counter() - w0


def _synthetic(n: int, t: int, d: int, seed: int = 0) -> tuple[Embeddings, RecordSet]:
    rng = np.random.default_rng(seed)
    # a fixed signature per position (as an encoder's positional information) lets a head tell tokens apart
    X = (rng.standard_normal((n, t, d)) + rng.standard_normal((1, t, d))).astype(np.float32)
    n_labels = 20
    where = np.broadcast_to(rng.choice(t, size=3, replace=False), (n_labels, 3))  # one salient segment
    dirs = rng.standard_normal((n_labels, 3, d)) / np.sqrt(d)
    logits = np.stack([sum(X[:, where[j, k]] @ dirs[j, k] for k in range(3)) for j in range(n_labels)], 1)
    prevalence = rng.uniform(0.02, 0.3, n_labels)
    bias = np.asarray([np.quantile(logits[:, j], 1 - prevalence[j]) for j in range(n_labels)])
    Y = (logits + 0.5 * rng.standard_normal(logits.shape) > bias).astype(np.uint8)
    ids = np.asarray([f"r{i}" for i in range(n)])
    split = np.asarray(["train"] * int(0.8 * n) + ["val"] * int(0.1 * n), dtype=object)
    split = np.concatenate([split, np.asarray(["test"] * (n - len(split)), dtype=object)])
    import pandas as pd

    records = RecordSet(
        source=ArraySource(np.zeros((n, 1, 1), dtype=np.float32)),
        fs=100.0,
        leads=("I",),
        ids=ids,
        patient_ids=ids.copy(),
        label_names=tuple(f"L{j}" for j in range(n_labels)),
        y=Y,
        split=split,
        meta=pd.DataFrame({"age": np.zeros(n)}),
        name="bench-tokens",
    )
    prov = {"tokens": {"n_tokens": t, "token_dim": d, "max_tokens": t, "layer": "synthetic"}}
    return Embeddings(X.reshape(n, -1), ids, layer="synthetic", provenance=prov), records


def _ptbxl(root: str, max_tokens: int) -> tuple[Embeddings, RecordSet]:
    records = ecgprobe.load_dataset("ptbxl", root, sampling_rate=100)
    enc = ecgprobe.create_encoder("random-resnet1d", device="cpu")
    emb, cpu, wall = _timed(
        lambda: ecgprobe.extract(enc, records, tokens=max_tokens, cache_dir=None, progress=False)
    )
    print(
        f"  extraction ({len(records)} records, random-resnet1d tokens): {cpu:.1f} s CPU, {wall:.1f} s wall"
    )
    return emb, records


def run(emb: Embeddings, records: RecordSet, epochs: int) -> None:
    n_tok, dim = emb.token_shape
    pooled = Embeddings(emb.tokens().mean(1), emb.ids, layer=emb.layer)
    lin, lc, lw = _timed(lambda: LinearProbe(n_resamples=1, device="cpu").run(pooled, records))
    att, ac, aw = _timed(
        lambda: AttentiveProbe(n_resamples=1, max_epochs=epochs, compare_linear=False, device="cpu").run(
            emb, records
        )
    )
    m = att.metrics
    print(f"  {len(records)} records, {n_tok} tokens x {dim}, {len(m['labels_fitted'])} labels")
    print(
        f"  linear probe (mean tokens): {lc:7.2f} s CPU {lw:7.2f} s wall, test macro AUROC {lin.metrics['macro_auroc']:.3f}"
    )
    print(
        f"  attentive probe:            {ac:7.2f} s CPU {aw:7.2f} s wall, test macro AUROC {m['macro_auroc']:.3f} "
        f"({m['epochs_run']} epochs, best {m['best_epoch']}, {m['n_parameters']} parameters)"
    )
    print(f"  ratio attentive / linear: {ac / lc:.1f}x CPU, {aw / lw:.1f}x wall")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", default="ptbxl-mini,synthetic")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--data", default="/work/shared/data/ptbxl-mini")
    args = ap.parse_args()
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    print(f"CPU, {args.threads} thread(s) (torch and BLAS), max_epochs={args.epochs}")
    with threadpool_limits(args.threads):
        for name in args.workloads.split(","):
            print(f"{name}:")
            if name == "ptbxl-mini":
                emb, records = _ptbxl(args.data, args.max_tokens)
            else:
                emb, records = _synthetic(args.n, args.max_tokens, args.dim)
            run(emb, records, args.epochs)


if __name__ == "__main__":
    main()
