"""The encoder registry: ``create_encoder``, ``list_encoders`` and every encoder's card.

A family registers a factory ``(checkpoint, **options) -> Encoder`` with the fields of its
:class:`~ecgprobe.encoders.card.EncoderCard` as keywords::

    @ENCODERS.register(
        "ecgfounder",
        family="ecgfounder",
        needs_checkpoint=True,
        checkpoint_format=".pth dict with 'state_dict' (keys first_conv., stage_list.N.block_list.M., dense.)",
        embed_dim=1024,
        spec=SPEC,                      # the InputSpec with the default options
        key_prefixes=("first_conv.", "stage_list."),  # distinctive keys, for "looks like" hints
        download="https://huggingface.co/PKUDigitalHealth/ECGFounder",
        licence="see the model card",
        details="Architecture, input contract, pooling, with their sources ...",
        make_test_checkpoint=make_ecgfounder_checkpoint,  # random weights in the published format
    )
    def create_ecgfounder(checkpoint, *, variant="12lead"): ...

The keywords are checked when the module is imported: a misspelt or missing field is a
:class:`~ecgprobe.exceptions.ConfigError` that names it. :func:`encoder_info` returns the card;
the CLI (``ecgprobe encoders``) and the conformance test read it without instantiating anything.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from ecgprobe.encoders import checkpoint as _ckpt
from ecgprobe.encoders.base import Encoder
from ecgprobe.encoders.card import EncoderCard, make_card
from ecgprobe.exceptions import CheckpointError, ConfigError
from ecgprobe.registry import Registry

__all__ = [
    "ENCODERS",
    "EncoderRegistry",
    "create_encoder",
    "encoder_info",
    "list_encoders",
    "sequence_encoders",
]

Factory = Callable[..., Encoder]


class EncoderRegistry(Registry[Factory]):
    """The registry of encoder factories, each with its :class:`EncoderCard`."""

    def add(self, name: str, obj: Factory, *, aliases: tuple[str, ...] = (), **card_fields: Any) -> None:
        """Register factory ``obj`` under ``name`` with the card built from ``card_fields``.

        Raises:
            ConfigError: a misspelt, unknown or missing card field (:func:`make_card`), or a name
                registered twice.
        """
        super().add(name, obj, aliases=aliases, card=make_card(name, card_fields))

    def card(self, name: str) -> EncoderCard:
        """The card of encoder ``name`` (case-insensitive).

        Raises:
            UnknownNameError: with close matches when the name is not registered.
        """
        return self.entry(name).info["card"]

    def cards(self) -> list[EncoderCard]:
        """Every registered card, sorted by name."""
        return [entry.info["card"] for entry in self]


#: Registered encoder factories.
ENCODERS = EncoderRegistry("encoder")


def list_encoders(pattern: str | None = None) -> list[str]:
    """Names of the registered encoders (optionally filtered by a glob pattern)."""
    return ENCODERS.list(pattern)


def sequence_encoders() -> list[str]:
    """Names of the encoders that expose a token sequence (card field ``sequence``), sorted.

    Example:
        >>> "tiny-test" in sequence_encoders()
        True
    """
    return sorted(card.name for card in ENCODERS.cards() if card.sequence)


def encoder_info(name: str) -> EncoderCard:
    """The card of encoder ``name``: family, checkpoint format, input contract, details.

    Raises:
        UnknownNameError: with close matches when the name is not registered.

    Example:
        >>> encoder_info("random-resnet1d").embed_dim
        256
    """
    return ENCODERS.card(name)


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
    factory, card = entry.obj, ENCODERS.card(name)
    options = ENCODERS.check_options(name, options, reserved=("checkpoint",))
    params = inspect.signature(factory).parameters
    if card.needs_checkpoint and checkpoint is None:
        raise CheckpointError(
            f"encoder {entry.name!r} needs its published weights: pass checkpoint=PATH (CLI: --checkpoint PATH). "
            f"Expected format: {card.checkpoint_format}. Download: {card.download}"
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
    for card in ENCODERS.cards():
        prefixes = card.key_prefixes
        if not prefixes:
            continue
        hits = sum(any(k.startswith(p) for k in keys) for p in prefixes) / len(prefixes)
        if hits > best_score:
            best, best_score = card.name, hits
    return best if best_score >= 0.5 else None


_ckpt.family_guesser = _guess_family
