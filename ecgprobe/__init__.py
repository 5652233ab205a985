"""ecgprobe: what has an ECG foundation model really learned?

The public API is flat::

    import ecgprobe
    records = ecgprobe.load_dataset("ptbxl", "/data/ptb-xl", sampling_rate=500)
    encoder = ecgprobe.create_encoder("random-resnet1d", seed=0)
    emb = ecgprobe.extract(encoder, records, cache_dir="~/.cache/ecgprobe")
    result = ecgprobe.analyzers.ANALYZERS.get("linear_probe")().run(emb, records)

Every name but the version and the exceptions is imported on first use (the data layer pulls
in NumPy and pandas, the rest torch), so ``import ecgprobe`` and the light commands
(``ecgprobe --help``, ``ecgprobe datasets``) start fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from ecgprobe._version import __version__
from ecgprobe.exceptions import (
    ArgumentTypeError,
    CacheError,
    CheckpointError,
    ConfigError,
    DataError,
    EcgprobeError,
    IncompatibleInputError,
)

_LAZY = {
    "RecordSet": ("ecgprobe.data", "RecordSet"),
    "list_datasets": ("ecgprobe.data", "list_datasets"),
    "load_dataset": ("ecgprobe.data", "load_dataset"),
    "create_encoder": ("ecgprobe.encoders", "create_encoder"),
    "list_encoders": ("ecgprobe.encoders", "list_encoders"),
    "InputSpec": ("ecgprobe.encoders", "InputSpec"),
    "Encoder": ("ecgprobe.encoders", "Encoder"),
    "extract": ("ecgprobe.extract", "extract"),
    "Embeddings": ("ecgprobe.extract", "Embeddings"),
    "load_embeddings": ("ecgprobe.extract", "load_embeddings"),
    "save_embeddings": ("ecgprobe.extract", "save_embeddings"),
    "analyzers": ("ecgprobe.analyzers", None),
    "Result": ("ecgprobe.analyzers", "Result"),
    "Report": ("ecgprobe.report", "Report"),
}

#: Subpackages reachable as attributes (``ecgprobe.data.LEADS_12``) after a bare ``import ecgprobe``.
_SUBPACKAGES = ("data", "encoders", "extract", "analyzers", "report", "workflows", "settings", "cli")

__all__ = [
    "ArgumentTypeError",
    "CacheError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "EcgprobeError",
    "IncompatibleInputError",
    "__version__",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        mod = importlib.import_module(module)
        value = mod if attr is None else getattr(mod, attr)
        globals()[name] = value
        return value
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'ecgprobe' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
