"""The forward passes of an extraction: batches read and preprocessed one ahead in a thread,
pinned-memory copies and autocast on the device, several layers per pass, windows averaged per
record, every completed shard checked for non-finite values and written to the cache.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch

from ecgprobe.data.record import RecordSet
from ecgprobe.encoders._tokens import pool_tokens
from ecgprobe.encoders.base import Encoder
from ecgprobe.exceptions import DataError
from ecgprobe.extract._plan import Plan, complete_shard

__all__ = ["Batches", "check_finite", "compute", "forward_batch", "progress_bar"]

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Batches:
    """Reads and preprocesses batches, one ahead of the consumer, in a background thread."""

    def __init__(self, encoder: Encoder, records: RecordSet, window: str, hop: int | None) -> None:
        self.encoder, self.records, self.window, self.hop = encoder, records, window, hop
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ecgprobe-prefetch")

    def _load(self, positions: np.ndarray) -> np.ndarray:
        x = self.records.read(positions)
        return self.encoder.preprocess(
            x, self.records.fs, self.records.leads, window=self.window, hop=self.hop
        )

    def iterate(self, chunks: list[np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(positions, model input)`` per chunk of record positions, the next one loading meanwhile."""
        if not chunks:
            return
        future = self._pool.submit(self._load, chunks[0])
        for i, pos in enumerate(chunks):
            x = future.result()
            if i + 1 < len(chunks):
                future = self._pool.submit(self._load, chunks[i + 1])
            yield pos, x

    def close(self) -> None:
        """Stop the prefetch thread (pending loads are cancelled)."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def forward_batch(
    encoder: Encoder,
    x: np.ndarray,
    layers: list[str],
    device: torch.device,
    precision: str,
    max_tokens: int | None = None,
) -> dict[str, np.ndarray]:
    windows = x.ndim == 4  # (B, W, L, n) under window="sliding" or "official"
    flat = x.reshape(-1, *x.shape[-2:]) if windows else x
    t = torch.from_numpy(np.ascontiguousarray(flat))
    if device.type == "cuda":
        t = t.pin_memory().to(device, non_blocking=True)
    else:
        t = t.to(device)
    autocast = (
        torch.autocast(device_type=device.type, dtype=_DTYPES[precision])
        if precision != "fp32"
        else nullcontext()
    )
    with torch.inference_mode(), autocast:
        # only token extractions pass max_tokens: families overriding embed_layers need not know it
        tok = {} if max_tokens is None else {"max_tokens": max_tokens}
        out = encoder.embed_layers(t, layers, **tok)
    result = {}
    for name, value in out.items():
        arr = value.float().cpu().numpy()
        if windows and max_tokens is None:
            arr = arr.reshape(x.shape[0], x.shape[1], -1).mean(axis=1)  # mean over the record's windows
        elif windows:  # the windows' tokens in time order make the record's sequence, bounded again
            seq = torch.from_numpy(arr.reshape(x.shape[0], -1, encoder._token_dim[name]))
            arr = pool_tokens(seq, max_tokens).reshape(x.shape[0], -1).numpy()
        result[name] = arr
    return result


def compute(
    encoder: Encoder,
    records: RecordSet,
    plan: Plan,
    dev: torch.device,
    batch_size: int,
    window: str,
    hop: int | None,
    precision: str,
    progress: bool,
    only: set[int] | None = None,
    max_tokens: int | None = None,
) -> tuple[dict[str, dict[int, np.ndarray]], int]:
    """Compute the planned shards (or the subset ``only``), writing each to the cache as it completes;
    with ``max_tokens``, rows are flattened token sequences (:meth:`Encoder.embed_layers`).

    Only the planned records of a shard go through the encoder; a shard with some changed
    records is completed from its cached rows before it is written back."""
    n = len(records)
    todo = [s for s in plan.todo if only is None or s in only]
    rows_of = {s: plan.rows(s, n) for s in todo}
    if todo:  # refuse incompatible data before any work: preprocess one record
        first = rows_of[todo[0]][:1]
        encoder.preprocess(records.read(first), records.fs, records.leads, window=window, hop=hop)
    shards_out: dict[str, dict[int, np.ndarray]] = {layer: {} for layer in plan.wanted}
    n_todo = sum(len(r) for r in rows_of.values())
    bar = progress_bar(progress and bool(todo), total=n_todo, desc=encoder.name)
    per_pass = batch_size
    if window != "fit" and todo:
        n_win = encoder.preprocess(
            records.read([0]), records.fs, records.leads, window=window, hop=hop
        ).shape[1]
        per_pass = max(1, batch_size // n_win)
    loader = Batches(encoder, records, window, hop)
    n_computed = 0
    try:
        for s in todo:
            rows = rows_of[s]
            layers_here = [layer for layer in plan.wanted if s in plan.need[layer]]
            chunks = [rows[i : i + per_pass] for i in range(0, len(rows), per_pass)]
            parts: dict[str, list[np.ndarray]] = {layer: [] for layer in layers_here}
            for pos, x in loader.iterate(chunks):
                out = forward_batch(encoder, x, layers_here, dev, precision, max_tokens)
                for layer in layers_here:
                    parts[layer].append(out[layer])
                bar.update(len(pos))
            for layer in layers_here:
                block = np.concatenate(parts[layer]).astype(np.float32, copy=False)
                check_finite(block, records.ids[rows], encoder.name, layer, precision)
                block = complete_shard(plan, layer, s, rows, block, n)
                shards_out[layer][s] = block
                if layer in plan.entries:
                    if max_tokens is not None:
                        plan.entries[layer].token_dim = encoder._token_dim[layer]
                    plan.entries[layer].write_shard(s, block)
            n_computed += len(rows)
    finally:
        loader.close()
        bar.close()
    return shards_out, n_computed


def check_finite(block: np.ndarray, ids: np.ndarray, encoder: str, layer: str, precision: str) -> None:
    bad = ~np.isfinite(block).all(axis=1)
    if bad.any():
        hint = (
            " (try precision='fp32')"
            if precision != "fp32"
            else " (check these records' signals: flat lines, clipping)"
        )
        raise DataError(
            f"{encoder} produced non-finite {layer!r} embeddings for {int(bad.sum())} record(s): "
            f"{[str(i) for i in ids[bad][:10]]}{hint}; already completed shards stay cached"
        )


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(enabled: bool, total: int, desc: str) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="rec", file=sys.stderr, dynamic_ncols=True, leave=False)
