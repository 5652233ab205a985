"""The encoder registry: ``create_encoder`` and ``list_encoders``.

A family registers a factory ``(checkpoint, **options) -> Encoder`` with descriptive metadata::

    @ENCODERS.register(
        "ecgfounder",
        family="ecgfounder",
        needs_checkpoint=True,
        checkpoint_format=".pth dict with 'state_dict' (keys first_conv., stage_list.N.block_list.M., dense.)",
        embed_dim=1024,
        spec=SPEC,                      # the InputSpec (or a callable of the options)
        key_prefixes=("first_conv.", "stage_list."),  # distinctive keys, for "looks like" hints
        details="Where to download, licence, input contract, pooling ...",
    )
    def create_ecgfounder(checkpoint, *, variant="12lead"): ...

Registration keys read by the CLI (``ecgprobe encoders``) and the conformance test, none of which
instantiate the encoder: ``family``, ``needs_checkpoint``, ``checkpoint_format``, ``embed_dim``,
``spec``, ``key_prefixes``, ``download``, ``licence``, ``details``; optional ``pooling``, ``layers``,
``test_options`` (options the conformance test passes, for encoders with required options such as
``torchscript``) and ``make_test_checkpoint(path, seed) -> Path``: given a fresh path, write random
weights there in the family's *published* format (a file, or a folder for Hugging Face layouts) and
return what ``create_encoder(checkpoint=...)`` accepts.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from ecgprobe.encoders import checkpoint as _ckpt
from ecgprobe.encoders.base import Encoder
from ecgprobe.exceptions import CheckpointError, ConfigError
from ecgprobe.registry import Registry

__all__ = ["ENCODERS", "create_encoder", "encoder_info", "list_encoders"]

Factory = Callable[..., Encoder]
#: Registered encoder factories.
ENCODERS: Registry[Factory] = Registry("encoder")


def list_encoders(pattern: str | None = None) -> list[str]:
    """Names of the registered encoders (optionally filtered by a glob pattern)."""
    return ENCODERS.list(pattern)


def encoder_info(name: str) -> dict[str, Any]:
    """The registration metadata of encoder ``name`` (family, checkpoint format, spec, details)."""
    entry = ENCODERS.entry(name)
    return {"name": entry.name, **entry.info}


def create_encoder(
    name: str,
    checkpoint: str | Path | None = None,
    device: str | torch.device = "auto",
    *,
    sha256: str | None = None,
    **options: Any,
) -> Encoder:
    """Create a registered encoder, load its weights and move it to ``device``.

    Args:
        name: encoder name (``ecgprobe encoders`` lists them).
        checkpoint: the published checkpoint file or folder, for encoders that need one.
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda[:N]"``.
        sha256: the published sha256 of the checkpoint (or the ``weights_sha256`` an earlier
            run's provenance recorded); the file is refused unless it matches. Zip CRCs and
            safetensors layouts are always checked; only this proves every byte intact.
        **options: family options (e.g. ``seed=`` for random baselines, ``variant=``).

    Raises:
        UnknownNameError: unknown encoder (with close matches).
        ConfigError: unknown options.
        CheckpointError: missing/unreadable/corrupt/mismatching checkpoint, a sha256 that
            differs from ``sha256``, or a checkpoint given to an encoder that takes none.

    Example:
        >>> import ecgprobe
        >>> enc = ecgprobe.create_encoder("random-resnet1d", seed=0, device="cpu")
        >>> enc.spec.fs, enc.embed_dim
        (500.0, 256)
    """
    entry = ENCODERS.entry(name)
    factory = entry.obj
    options = ENCODERS.check_options(name, options, reserved=("checkpoint",))
    params = inspect.signature(factory).parameters
    needs = entry.info.get("needs_checkpoint", False)
    if needs and checkpoint is None:
        where = entry.info.get("download", "the authors' release")
        raise CheckpointError(
            f"encoder {entry.name!r} needs its published weights: pass checkpoint=PATH (CLI: --checkpoint PATH). "
            f"Expected format: {entry.info.get('checkpoint_format', '?')}. Download: {where}"
        )
    if "checkpoint" not in params and checkpoint is not None:
        raise CheckpointError(f"encoder {entry.name!r} takes no checkpoint (got {checkpoint})")
    if sha256 is not None:
        if checkpoint is None:
            raise ConfigError(
                f"sha256= verifies a checkpoint file, but no checkpoint was given for {entry.name!r}"
            )
        _ckpt.check_sha256(checkpoint, sha256, who=f"{entry.name} checkpoint")
    encoder = factory(checkpoint, **options) if "checkpoint" in params else factory(**options)
    return encoder.to(device)


def _guess_family(keys: Iterable[str]) -> str | None:
    """The registered family whose distinctive key prefixes best cover ``keys``."""
    keys = list(keys)
    best, best_score = None, 0.0
    for entry in ENCODERS:
        prefixes = entry.info.get("key_prefixes") or ()
        if not prefixes:
            continue
        hits = sum(any(k.startswith(p) for k in keys) for p in prefixes) / len(prefixes)
        if hits > best_score:
            best, best_score = entry.name, hits
    return best if best_score >= 0.5 else None


_ckpt.family_guesser = _guess_family
