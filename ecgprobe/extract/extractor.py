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

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, overload

import torch

from ecgprobe._versions import library_versions
from ecgprobe.data.record import RecordSet
from ecgprobe.encoders.base import FINAL_LAYER, Encoder, resolve_device
from ecgprobe.exceptions import CacheError, ConfigError, DataError
from ecgprobe.extract._compute import compute
from ecgprobe.extract._plan import plan_work
from ecgprobe.extract._reuse import assemble, summary
from ecgprobe.extract.cache import EXTRACTION_CODE_VERSION, remembered_digests
from ecgprobe.extract.embeddings import Embeddings
from ecgprobe.options import check_instance

__all__ = ["extract"]

Overwrite = Literal["missing", "always", "never"]
Window = Literal["official", "fit", "sliding"]
Precision = Literal["fp32", "bf16", "fp16"]
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
    digests = None
    if cache_dir is not None:  # unchanged record files are not read again (see cache.remembered_digests)
        with remembered_digests(cache_dir, records.fingerprint):
            digests = records.content_digests()
    plan = plan_work(encoder.name, provenance, wanted, digests, n, cache_dir, shard_size, overwrite)
    n_changed = plan.n_changed()
    if overwrite == "never" and plan.todo:
        raise CacheError(
            f"overwrite='never' but {len(plan.todo)} of {plan.n_shards} shards are not cached (or hold "
            f"{n_changed} records whose content changed) for {encoder.name} on {records.name}; run with "
            "overwrite='missing' to compute them"
        )
    shards_out, n_computed = compute(
        encoder, records, plan, dev, batch_size, window, hop, precision, progress
    )

    # ---- assemble
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
    note = _window_note(encoder, records, window)
    results = assemble(plan, shards_out, wanted, records, digests, provenance, stats, note)
    if progress:
        summary(encoder.name, records, wanted, stats, cache_dir, note)
    if layers is None or (isinstance(layers, str) and layers != "all"):
        return results[wanted[0]]
    return results
