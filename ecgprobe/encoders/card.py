"""The encoder card: what a family registers about itself, typed (timm's pretrained config).

Every encoder is registered with one :class:`EncoderCard`. The command line (``ecgprobe
encoders``), the conformance test and :func:`~ecgprobe.encoders.create_encoder` read it without
instantiating the encoder, so families whose weights or optional dependencies are absent are
described too. A family spells its card as keywords of ``@ENCODERS.register``; a misspelt, unknown
or missing field is a :class:`~ecgprobe.exceptions.ConfigError` when the module is imported.

Example:
    >>> from ecgprobe.encoders import encoder_info
    >>> card = encoder_info("random-resnet1d")
    >>> card.family, card.embed_dim, card.needs_checkpoint
    ('random', 256, False)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ecgprobe.encoders.base import InputSpec
from ecgprobe.exceptions import ConfigError
from ecgprobe.registry import name_hints

__all__ = ["EncoderCard", "make_card"]

#: ``make_test_checkpoint(path, seed)``: write random weights at ``path`` in the published format.
TestCheckpointMaker = Callable[[Path, int], "str | Path"]


@dataclass(frozen=True)
class EncoderCard:
    """The registration of one encoder: its family, input contract, checkpoint and provenance.

    Attributes:
        name: the registered name (set by the registry, lower case).
        family: the model family (``"ecgfounder"``, ``"random"``, ...).
        needs_checkpoint: ``create_encoder`` refuses to run without ``checkpoint=``.
        checkpoint_format: what the published checkpoint looks like (shown when it is missing).
        embed_dim: the dimension of the final embedding, or ``None`` when only the model knows
            it (exported models: inferred from one dummy batch).
        spec: the input contract with the default options, or ``None`` when the user declares
            it through options (exported models).
        download: where the published weights are downloaded (or ``"none"``).
        licence: the licence of the weights and code.
        details: architecture, pooling and preprocessing in prose, with their sources.
        key_prefixes: distinctive state-dict key prefixes, for "looks like family X" hints on a
            checkpoint given to the wrong encoder.
        pooling: how the final embedding is pooled, when ``details`` does not say it.
        layers: the names ``layer_names()`` returns with the default options, when fixed.
        test_options: options the conformance test passes (for encoders with required options).
        make_test_checkpoint: given a fresh path and a seed, writes random weights there in the
            family's *published* format (a file, or a folder for Hugging Face layouts) and
            returns what ``create_encoder(checkpoint=...)`` accepts.
        internal: hidden from ``ecgprobe encoders`` unless ``--all`` (the test encoder).
        sequence: the token sequence the encoder exposes for the attentive probe (its layer and
            how its output is read as tokens), or ``None`` when it exposes none.
    """

    name: str
    family: str
    needs_checkpoint: bool
    checkpoint_format: str
    embed_dim: int | None
    spec: InputSpec | None
    download: str
    licence: str
    details: str
    key_prefixes: tuple[str, ...] = ()
    pooling: str | None = None
    layers: tuple[str, ...] | None = None
    test_options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    make_test_checkpoint: TestCheckpointMaker | None = None
    internal: bool = False
    sequence: str | None = None

    def __post_init__(self) -> None:
        for name in ("name", "family", "checkpoint_format", "download", "licence", "details"):
            _check(
                self, name, isinstance(getattr(self, name), str) and getattr(self, name), "a non-empty string"
            )
        for name in ("needs_checkpoint", "internal"):
            _check(self, name, isinstance(getattr(self, name), bool), "True or False")
        dim = self.embed_dim
        _check(self, "embed_dim", dim is None or (isinstance(dim, int) and dim > 0), "a positive int or None")
        _check(self, "spec", self.spec is None or isinstance(self.spec, InputSpec), "an InputSpec or None")
        _check(self, "pooling", self.pooling is None or isinstance(self.pooling, str), "a string or None")
        _check(self, "sequence", self.sequence is None or isinstance(self.sequence, str), "a string or None")
        for name in ("key_prefixes", "layers"):
            value = getattr(self, name)
            if value is None and name == "layers":
                continue
            ok = isinstance(value, (tuple, list)) and all(isinstance(v, str) and v for v in value)
            _check(self, name, ok, "a tuple of non-empty strings")
            object.__setattr__(self, name, tuple(value))
        _check(self, "test_options", isinstance(self.test_options, Mapping), "a mapping of option -> value")
        object.__setattr__(self, "test_options", MappingProxyType(dict(self.test_options)))
        maker = self.make_test_checkpoint
        _check(
            self, "make_test_checkpoint", maker is None or callable(maker), "a callable (path, seed) or None"
        )


def _check(card: EncoderCard, name: str, ok: object, expected: str) -> None:
    if not ok:
        value = getattr(card, name)
        raise ConfigError(
            f"encoder card of {card.name!r}: field {name}={value!r} must be {expected}; fix the registration"
        )


_FIELDS = tuple(f.name for f in fields(EncoderCard) if f.name != "name")
_REQUIRED = tuple(
    f.name
    for f in fields(EncoderCard)
    if f.name != "name" and f.default is MISSING and f.default_factory is MISSING
)


def make_card(name: str, card_fields: Mapping[str, Any]) -> EncoderCard:
    """Build the card of encoder ``name`` from its registration keywords, checking the field names.

    Args:
        name: the name the encoder is registered under.
        card_fields: the keywords given to ``@ENCODERS.register`` (the fields of :class:`EncoderCard`
            other than ``name``).

    Returns:
        The frozen card.

    Raises:
        ConfigError: an unknown field (with its closest valid one and the list of valid fields),
            a missing required field, or a value of the wrong type.
    """
    unknown = [k for k in card_fields if k not in _FIELDS]
    if unknown:
        raise ConfigError(
            f"encoder card of {name!r}: unknown field(s) {name_hints(unknown, _FIELDS)}; "
            f"the fields are: {', '.join(_FIELDS)}"
        )
    missing = [k for k in _REQUIRED if k not in card_fields]
    if missing:
        raise ConfigError(
            f"encoder card of {name!r}: missing required field(s) {', '.join(missing)}; "
            f"every registration gives: {', '.join(_REQUIRED)}"
        )
    return EncoderCard(name=name.lower(), **card_fields)
