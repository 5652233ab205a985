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

import numpy as np
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
#: How token sequences are stored (part of their provenance, so of their cache key).
TOKEN_FORMAT = {
    "pooling": (
        "adaptive average along time to min(T, max_tokens) tokens; with several windows per record "
        "their tokens are concatenated in time order and averaged to max_tokens again"
    ),
    "layout": "rows of T' * D float32, token-major (reshape to (N, T', D))",
}
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


def _token_layers(encoder: Encoder, layers: str | Sequence[str] | None) -> list[str]:
    """The layers of a token-sequence extraction (default: the encoder's sequence layer).

    Raises:
        ConfigError: the encoder exposes no sequence (naming those that do), or the pooled
            final embedding asked for.
    """
    from ecgprobe.encoders.registry import sequence_encoders

    seq = encoder.sequence_layer()
    if seq is None:
        raise ConfigError(
            f"encoder {encoder.name!r} exposes no token sequence, so token extraction (tokens=, "
            f"`probe --kind attentive`) cannot run on it; encoders that expose one: "
            f"{', '.join(sequence_encoders())}. Use the linear probe on its pooled embedding instead"
        )
    wanted = [seq] if layers is None else _resolve_layers(encoder, layers)
    if FINAL_LAYER in wanted:
        raise ConfigError(
            f"the {FINAL_LAYER!r} layer of {encoder.name} is pooled; token sequences come from a named "
            f"layer (its sequence layer is {seq!r})"
        )
    return wanted


def _provenance(
    encoder: Encoder,
    records: RecordSet,
    window: str,
    hop: int | None,
    precision: str,
    tokens: int | None = None,
) -> dict[str, Any]:
    window = _resolve_window(encoder, window)
    extra = {} if tokens is None else {"tokens": {"max_tokens": int(tokens), **TOKEN_FORMAT}}
    return {
        "code_version": EXTRACTION_CODE_VERSION,
        "encoder": encoder.identity(),
        "dataset": records.identity,
        "window": window,
        "hop": hop if window == "sliding" else None,
        "precision": precision,
        "numerics": {lib: v for lib, v in library_versions().items() if lib in _NUMERIC_LIBS},
        **extra,
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
    tokens: int | None = None,
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
        tokens: extract token sequences instead of pooled vectors, averaged along time to at
            most this many tokens (:func:`~ecgprobe.encoders.base.pool_tokens`); the layers
            default to the encoder's :meth:`~ecgprobe.encoders.base.Encoder.sequence_layer`;
            with several windows per record (``"sliding"``, or an official protocol of several
            crops) the windows' tokens are concatenated in time order and averaged to
            ``tokens`` again (overlapping sliding windows repeat their shared time). Each row is the sequence
            flattened to ``T' * D`` float32 (``Embeddings.tokens()`` reshapes it; the shape is
            in ``provenance["tokens"]``), so the cache holds ``N * T' * D * 4`` bytes per layer
            (e.g. 21,799 PTB-XL records x 32 tokens x 768 = 2.1 GB). The setting is part of
            the cache key.

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
    if tokens is not None and (isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1):
        raise ConfigError(f"tokens (max tokens per record) must be a positive integer, got {tokens!r}")
    if window == "sliding" and encoder.spec.n_samples is None:
        raise ConfigError(
            f"{encoder.name} takes records of any length; window='sliding' does not apply, use 'fit'"
        )
    wanted = _resolve_layers(encoder, layers) if tokens is None else _token_layers(encoder, layers)
    dev = resolve_device(device)
    if precision == "fp16" and dev.type != "cuda":
        raise ConfigError("precision='fp16' needs a CUDA device; use 'bf16' or 'fp32' on the CPU")
    encoder.to(dev)
    t0 = time.perf_counter()
    provenance = _provenance(encoder, records, window, hop, precision, tokens)
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
        encoder, records, plan, dev, batch_size, window, hop, precision, progress, max_tokens=tokens
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
    if tokens is not None:
        for layer, emb in results.items():
            emb.provenance["tokens"] = _token_shape(encoder, plan.entries.get(layer), layer, emb.X, tokens)
    if progress:
        summary(encoder.name, records, wanted, stats, cache_dir, note)
    if layers is None or (isinstance(layers, str) and layers != "all"):
        return results[wanted[0]]
    return results


def _token_shape(encoder: Encoder, entry: Any, layer: str, X: np.ndarray, tokens: int) -> dict[str, Any]:
    """``provenance["tokens"]`` of a token extraction: the setting, the format and ``(T', D)``
    (D from this run's forward pass, else from the cache entry that stored it)."""
    dim = encoder._token_dim.get(layer) or (entry.token_dim if entry is not None else None)
    if not dim or X.shape[1] % dim:
        raise CacheError(
            f"the cached token sequences of {encoder.name} layer {layer!r} do not record their token width; "
            "re-extract them with overwrite='always'"
        )
    return {
        "max_tokens": int(tokens),
        **TOKEN_FORMAT,
        "layer": layer,
        "n_tokens": int(X.shape[1] // dim),
        "token_dim": int(dim),
        "dtype": "float32",
        "bytes_per_record": int(X.shape[1] * 4),
    }
