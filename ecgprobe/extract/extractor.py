"""``extract``: records -> preprocessing contract -> encoder -> pooled embeddings, cached.

Records stream from the RecordSet in batches (never all signals on the device at once); the
next batch is read and preprocessed in a background thread while the model runs on the current
one. On CUDA, batches go through pinned memory with non-blocking copies, optionally under
bf16/fp16 autocast. Several layers come out of one forward pass (hooks). With a ``cache_dir``,
results are stored per layer in shards keyed by provenance, each row with its record's content
digest (:mod:`.cache`), so a re-run reads instead of computing, an interrupted run resumes from
its last complete shard, and a record whose signal changed is recomputed alone.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import torch

from ecgprobe._versions import library_versions
from ecgprobe.data.record import RecordSet
from ecgprobe.encoders.base import FINAL_LAYER, Encoder, resolve_device
from ecgprobe.exceptions import CacheError, ConfigError, DataError
from ecgprobe.extract.cache import EXTRACTION_CODE_VERSION, CacheEntry, embeddings_key
from ecgprobe.extract.embeddings import Embeddings
from ecgprobe.options import check_instance

__all__ = ["extract"]

Overwrite = Literal["missing", "always", "never"]
Window = Literal["official", "fit", "sliding"]
Precision = Literal["fp32", "bf16", "fp16"]
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
#: Libraries whose version can change the numbers (resampling, filters, the forward pass).
_NUMERIC_LIBS = ("numpy", "scipy", "torch")


def _check_args(
    records: RecordSet, batch_size: int, overwrite: str, window: str, precision: str, shard_size: int
) -> None:
    check_instance(records, RecordSet, name="records", what="a RecordSet (from ecgprobe.load_dataset)")
    if len(records) == 0:
        raise DataError(f"dataset {records.name!r} has no records to extract (an empty selection?)")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if overwrite not in ("missing", "always", "never"):
        raise ConfigError(f"overwrite must be 'missing', 'always' or 'never', got {overwrite!r}")
    if window not in ("official", "fit", "sliding"):
        raise ConfigError(
            f"window must be 'official' (the model's record-level protocol), 'fit' (crop/pad to the model's "
            f"window) or 'sliding', got {window!r}"
        )
    if precision not in ("fp32", "bf16", "fp16"):
        raise ConfigError(f"precision must be 'fp32', 'bf16' or 'fp16', got {precision!r}")
    if shard_size < 1:
        raise ConfigError(f"shard_size must be >= 1, got {shard_size}")


def _resolve_layers(encoder: Encoder, layers: str | Sequence[str] | None) -> list[str]:
    if layers is None:
        return [FINAL_LAYER]
    if isinstance(layers, str):
        return encoder.layer_names() if layers == "all" else [layers]
    wanted = list(dict.fromkeys(layers))
    if "all" in wanted:
        return encoder.layer_names()
    unknown = [name for name in wanted if name not in encoder.layer_names()]
    if unknown:
        raise ConfigError(f"{encoder.name} has no layers {unknown}; its layers are {encoder.layer_names()}")
    return wanted


def _provenance(
    encoder: Encoder, records: RecordSet, window: str, hop: int | None, precision: str
) -> dict[str, Any]:
    window = _resolve_window(encoder, window)
    return {
        "code_version": EXTRACTION_CODE_VERSION,
        "encoder": encoder.identity(),
        "dataset": records.identity,
        "window": window,
        "hop": hop if window == "sliding" else None,
        "precision": precision,
        "numerics": {lib: v for lib, v in library_versions().items() if lib in _NUMERIC_LIBS},
    }


def _resolve_window(encoder: Encoder, window: str) -> str:
    """``"official"`` for a contract whose protocol is its first window is ``"fit"`` (same numbers, same key)."""
    first = encoder.spec.crops.rule == "first" or encoder.spec.n_samples is None
    return "fit" if window == "official" and first else window


def _window_note(encoder: Encoder, records: RecordSet, window: str) -> str | None:
    """Say which windows the record-level protocol embeds, or that 'fit' leaves part of each record unused."""
    spec, win = encoder.spec, encoder.spec.window_s
    if win is None or window == "sliding":
        return None
    dur = records.duration_s
    if window == "official":
        n_win = len(
            spec.crops.starts(int(records.n_samples * spec.fs / records.fs), int(spec.n_samples or 0))
        )
        return (
            f"window='official' averages {encoder.name}'s embeddings over {n_win} window(s) of {win:g} s per "
            f"{dur:g} s record: {spec.crops.describe()} (its official evaluation; window='fit' for the first only)"
        )
    if dur > win + 1e-9:
        return (
            f"window='fit' uses the first {win:g} s of each {dur:g} s record ({100 * win / dur:.0f}% of it); "
            "window='sliding' averages the model's embeddings over the whole record"
        )
    if dur < win - 1e-9:
        return f"records are {dur:g} s long; they are zero-padded to the model's {win:g} s window"
    return None


class _Batches:
    """Reads and preprocesses batches, one ahead of the consumer, in a background thread."""

    def __init__(self, encoder: Encoder, records: RecordSet, window: str, hop: int | None) -> None:
        self.encoder, self.records, self.window, self.hop = encoder, records, window, hop
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ecgprobe-prefetch")

    def _load(self, positions: np.ndarray) -> np.ndarray:
        x = self.records.read(positions)
        return self.encoder.preprocess(
            x, self.records.fs, self.records.leads, window=self.window, hop=self.hop
        )

    def iterate(self, chunks: list[np.ndarray]):
        if not chunks:
            return
        future = self._pool.submit(self._load, chunks[0])
        for i, pos in enumerate(chunks):
            x = future.result()
            if i + 1 < len(chunks):
                future = self._pool.submit(self._load, chunks[i + 1])
            yield pos, x

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _forward(
    encoder: Encoder, x: np.ndarray, layers: list[str], device: torch.device, precision: str
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
        out = encoder.embed_layers(t, layers)
    result = {}
    for name, value in out.items():
        arr = value.float().cpu().numpy()
        if windows:
            arr = arr.reshape(x.shape[0], x.shape[1], -1).mean(axis=1)  # mean over the record's windows
        result[name] = arr
    return result


@dataclass
class _Plan:
    """Which records of which shards of which layers must be computed, and where they are cached."""

    wanted: list[str]
    shard: int
    n_shards: int
    entries: dict[str, CacheEntry]
    need: dict[str, dict[int, np.ndarray]]  # layer -> shard -> record positions to compute

    @property
    def todo(self) -> list[int]:
        return sorted(set().union(*(set(per) for per in self.need.values())))

    def rows(self, s: int, n: int) -> np.ndarray:
        """Records of shard ``s`` to compute: the union of what its layers need."""
        parts = [per[s] for per in self.need.values() if s in per]
        return np.unique(np.concatenate(parts)) if parts else np.arange(0)

    def n_changed(self) -> int:
        """Records to recompute because their content changed (their shard is cached)."""
        changed: set[int] = set()
        for layer, entry in self.entries.items():
            for s, rows in self.need[layer].items():
                if s in entry.shards:
                    changed.update(rows.tolist())
        return len(changed)


def _plan(
    encoder_name: str,
    provenance: dict[str, Any],
    wanted: list[str],
    digests: np.ndarray | None,
    n: int,
    cache_dir: str | Path | None,
    shard_size: int,
    overwrite: str,
) -> _Plan:
    """Plan the work; ``digests`` (the records' content digests) are needed with a ``cache_dir``."""
    shard = min(shard_size, n)
    entries: dict[str, CacheEntry] = {}
    if cache_dir is not None:
        if digests is None or len(digests) != n:
            raise ValueError("_plan: a cache needs one content digest per record")
        entries = {
            layer: CacheEntry.open(cache_dir, encoder_name, provenance, layer, digests, shard)
            for layer in wanted
        }
        if overwrite == "always":
            for e in entries.values():
                e.clear()
        # one shard grid for all layers: adopt that of a layer cached earlier, restart layers on another grid
        cached = [e.shard_size for e in entries.values() if e.shards]
        shard = cached[0] if cached else shard
        for e in entries.values():
            if e.shard_size != shard:
                e.clear()
                e.shard_size = shard
                e.refresh()
    n_shards = -(-n // shard)
    if cache_dir is None:
        every = {s: np.arange(s * shard, min((s + 1) * shard, n)) for s in range(n_shards)}
        need = {layer: dict(every) for layer in wanted}
    else:
        need = {layer: e.todo() for layer, e in entries.items()}
    return _Plan(wanted, shard, n_shards, entries, need)


def _complete(plan: _Plan, layer: str, s: int, rows: np.ndarray, block: np.ndarray, n: int) -> np.ndarray:
    """Shard ``s`` of ``layer`` whole: the computed ``rows`` over the cached rows where some were kept."""
    start, stop = s * plan.shard, min((s + 1) * plan.shard, n)
    if len(rows) == stop - start:
        return block
    full = plan.entries[layer].load_shard(s)
    if full is None:  # verified when planned: removed since by a concurrent writer
        raise CacheError(
            f"cache shard {plan.entries[layer].path(s)} disappeared during extraction; run again"
        )
    full = full.copy()
    full[rows - start] = block
    return full


def _compute(
    encoder: Encoder,
    records: RecordSet,
    plan: _Plan,
    dev: torch.device,
    batch_size: int,
    window: str,
    hop: int | None,
    precision: str,
    progress: bool,
    only: set[int] | None = None,
) -> tuple[dict[str, dict[int, np.ndarray]], int]:
    """Compute the planned shards (or the subset ``only``), writing each to the cache as it completes.

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
    bar = _progress(progress and bool(todo), total=n_todo, desc=encoder.name)
    per_pass = batch_size
    if window != "fit" and todo:
        n_win = encoder.preprocess(
            records.read([0]), records.fs, records.leads, window=window, hop=hop
        ).shape[1]
        per_pass = max(1, batch_size // n_win)
    loader = _Batches(encoder, records, window, hop)
    n_computed = 0
    try:
        for s in todo:
            rows = rows_of[s]
            layers_here = [layer for layer in plan.wanted if s in plan.need[layer]]
            chunks = [rows[i : i + per_pass] for i in range(0, len(rows), per_pass)]
            parts: dict[str, list[np.ndarray]] = {layer: [] for layer in layers_here}
            for pos, x in loader.iterate(chunks):
                out = _forward(encoder, x, layers_here, dev, precision)
                for layer in layers_here:
                    parts[layer].append(out[layer])
                bar.update(len(pos))
            for layer in layers_here:
                block = np.concatenate(parts[layer]).astype(np.float32, copy=False)
                _check_finite(block, records.ids[rows], encoder.name, layer, precision)
                block = _complete(plan, layer, s, rows, block, n)
                shards_out[layer][s] = block
                if layer in plan.entries:
                    plan.entries[layer].write_shard(s, block)
            n_computed += len(rows)
    finally:
        loader.close()
        bar.close()
    return shards_out, n_computed


@overload
def extract(encoder: Encoder, records: RecordSet, *, layers: str | None = None, **kw: Any) -> Embeddings: ...
@overload
def extract(
    encoder: Encoder, records: RecordSet, *, layers: Sequence[str], **kw: Any
) -> dict[str, Embeddings]: ...


def extract(
    encoder: Encoder,
    records: RecordSet,
    *,
    layers: str | Sequence[str] | None = None,
    batch_size: int = 64,
    device: str | torch.device = "auto",
    cache_dir: str | Path | None = None,
    overwrite: Overwrite = "missing",
    window: Window = "official",
    hop: int | None = None,
    precision: Precision = "fp32",
    shard_size: int = 512,
    progress: bool = True,
) -> Embeddings | dict[str, Embeddings]:
    """Embed every record of ``records`` with ``encoder``.

    Args:
        encoder: from :func:`ecgprobe.create_encoder`; its input contract drives preprocessing.
        records: the records; signals are read batch by batch (lazy datasets stream).
        layers: ``None`` for the official embedding, a layer name, ``"all"``, or a list of names
            (``encoder.layer_names()``); each layer is pooled to one vector per record.
        batch_size: records per forward pass (windows per pass under ``"sliding"``).
        device: ``"auto"`` (CUDA if available), ``"cpu"`` or ``"cuda[:N]"``.
        cache_dir: where to cache embeddings (``None``: no cache).
        overwrite: ``"missing"`` computes what the cache lacks (resuming interrupted runs);
            ``"always"`` recomputes everything; ``"never"`` only reads the cache and fails if
            anything is missing.
        window: ``"official"`` embeds the windows of the model's official record-level protocol
            (``encoder.spec.crops``: e.g. ST-MEM's three spaced crops, ECG-CPC's 2.5 s chunks) and
            averages them; for most models that is the first window, i.e. ``"fit"``. ``"fit"``
            crops (first samples) or zero-pads each record to the model's window; ``"sliding"``
            cuts the record into windows of the model's length every ``hop`` samples (default: no
            overlap; a partial tail is zero-padded) and averages their embeddings.
        hop: window step in samples at the model's rate, for ``"sliding"`` only.
        precision: ``"fp32"``, or ``"bf16"``/``"fp16"`` autocast (GPU; bf16 also runs on CPU).
        shard_size: records per cache shard (the unit of resumption).
        progress: show a progress bar with records/s and print a summary line (stderr).

    Returns:
        :class:`Embeddings` when ``layers`` is ``None`` or one name; ``{layer: Embeddings}`` for a list
        or ``"all"``.

    Raises:
        IncompatibleInputError: the records cannot honestly be converted to the encoder's contract.
        DataError: empty record set, or non-finite embeddings (naming the records).
        CacheError: unwritable or full cache directory; ``overwrite="never"`` with entries missing.
        ConfigError: invalid arguments.

    Example:
        >>> import ecgprobe
        >>> rs = ecgprobe.load_dataset("synthetic", n_records=8, fs=100.0)
        >>> enc = ecgprobe.create_encoder("tiny-test", device="cpu")
        >>> ecgprobe.extract(enc, rs, progress=False).X.shape
        (8, 16)
    """
    example = encoder if isinstance(encoder, str) else "random-resnet1d"
    what = f"an Encoder: create it first, e.g. ecgprobe.create_encoder({example!r})"
    check_instance(encoder, Encoder, name="encoder", what=what)
    _check_args(records, batch_size, overwrite, window, precision, shard_size)
    if hop is not None and window != "sliding":
        raise ConfigError(
            f"hop applies to window='sliding' only (got window={window!r}); drop hop or use 'sliding'"
        )
    window = _resolve_window(encoder, window)
    if window == "sliding" and encoder.spec.n_samples is None:
        raise ConfigError(
            f"{encoder.name} takes records of any length; window='sliding' does not apply, use 'fit'"
        )
    wanted = _resolve_layers(encoder, layers)
    dev = resolve_device(device)
    if precision == "fp16" and dev.type != "cuda":
        raise ConfigError("precision='fp16' needs a CUDA device; use 'bf16' or 'fp32' on the CPU")
    encoder.to(dev)
    t0 = time.perf_counter()
    provenance = _provenance(encoder, records, window, hop, precision)
    n = len(records)
    digests = records.content_digests() if cache_dir is not None else None
    plan = _plan(encoder.name, provenance, wanted, digests, n, cache_dir, shard_size, overwrite)
    n_changed = plan.n_changed()
    if overwrite == "never" and plan.todo:
        raise CacheError(
            f"overwrite='never' but {len(plan.todo)} of {plan.n_shards} shards are not cached (or hold "
            f"{n_changed} records whose content changed) for {encoder.name} on {records.name}; run with "
            "overwrite='missing' to compute them"
        )
    shards_out, n_computed = _compute(
        encoder, records, plan, dev, batch_size, window, hop, precision, progress
    )
    n_shards, entries = plan.n_shards, plan.entries

    # ---- assemble
    results: dict[str, Embeddings] = {}
    elapsed = time.perf_counter() - t0
    stats = {
        "records": n,
        "computed": n_computed,
        "from_cache": n - n_computed,
        "changed": n_changed,
        "seconds": round(elapsed, 3),
        "records_per_s": round(n_computed / elapsed, 2) if n_computed and elapsed > 0 else None,
        "device": str(dev),
        "batch_size": batch_size,
    }
    for layer in wanted:
        blocks = []
        for s in range(n_shards):
            block = shards_out[layer].get(s)
            if block is None:
                block = entries[layer].load_shard(s)
            if block is None:  # vanished between check and read: a concurrent writer
                raise CacheError(
                    f"cache shard {entries[layer].path(s)} disappeared during extraction; run again"
                )
            blocks.append(block)
        X = np.concatenate(blocks)
        key = embeddings_key(entries[layer].key, digests) if digests is not None else ""
        note = _window_note(encoder, records, window)
        prov = {
            **provenance,
            "extraction": stats,
            "versions": library_versions(),
            **({"note": note} if note else {}),
        }
        results[layer] = Embeddings(X=X, ids=records.ids, layer=layer, key=key, provenance=prov)
    if progress:
        _summary(encoder, records, wanted, stats, cache_dir, _window_note(encoder, records, window))
    if layers is None or (isinstance(layers, str) and layers != "all"):
        return results[wanted[0]]
    return results


def _check_finite(block: np.ndarray, ids: np.ndarray, encoder: str, layer: str, precision: str) -> None:
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


def _progress(enabled: bool, total: int, desc: str) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="rec", file=sys.stderr, dynamic_ncols=True, leave=False)


def _summary(
    encoder: Encoder,
    records: RecordSet,
    layers: list[str],
    stats: dict[str, Any],
    cache_dir: Any,
    note: str | None,
) -> None:
    where = f"; cache {cache_dir}" if cache_dir is not None else ""
    if stats["computed"] == 0:
        line = f"reused {stats['records']} cached embeddings of {encoder.name} on {records.name} ({', '.join(layers)}){where}"
    else:
        rate = stats["records_per_s"]
        changed = f" ({stats['changed']} of them changed since cached)" if stats["changed"] else ""
        line = (
            f"extracted {encoder.name} on {records.name}: {stats['computed']} records computed{changed} "
            f"({rate:g} rec/s on {stats['device']}), {stats['from_cache']} from cache, layers {', '.join(layers)}, "
            f"{stats['seconds']:.1f} s{where}"
        )
    print(line, file=sys.stderr)
    if note:
        print(f"note: {note}", file=sys.stderr)
