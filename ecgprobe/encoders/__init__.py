"""Encoders: the input-contract API, safe checkpoint loading, and every registered family.

Each module of this package (other than the API modules) defines one family and registers it
with ``@ENCODERS.register`` and its :class:`EncoderCard`; they are imported here, so adding a family is adding one file.
"""

from ecgprobe._discover import import_submodules
from ecgprobe.encoders.base import FINAL_LAYER, Encoder, InputSpec, TorchEncoder, resolve_device
from ecgprobe.encoders.card import EncoderCard
from ecgprobe.encoders.registry import ENCODERS, create_encoder, encoder_info, list_encoders

import_submodules(__name__, skip=("base", "card", "checkpoint", "registry"))

__all__ = [
    "ENCODERS",
    "FINAL_LAYER",
    "Encoder",
    "EncoderCard",
    "InputSpec",
    "TorchEncoder",
    "create_encoder",
    "encoder_info",
    "list_encoders",
    "resolve_device",
]
