"""Embedding extraction: batched, windowed, multi-layer, cached by content and provenance.

``ecgprobe.extract`` is both this package and the function :func:`~ecgprobe.extract.extractor.extract`:
once the package is imported, Python binds the *module* to the name ``ecgprobe.extract``, which
would hide the function of the flat public API. The module is therefore made callable, so
``ecgprobe.extract(encoder, records, ...)`` works whatever was imported first. The extractor (and
with it torch) is imported on first use: a cached re-run served by the request memo
(:mod:`ecgprobe.extract._reuse`) never imports it.
"""

import sys
import types
from typing import Any

from ecgprobe.extract.embeddings import Embeddings, align_to_records, load_embeddings, save_embeddings

__all__ = ["Embeddings", "align_to_records", "extract", "load_embeddings", "save_embeddings"]


def __getattr__(name: str) -> Any:
    if name == "extract":
        from ecgprobe.extract.extractor import extract

        globals()["extract"] = extract
        return extract
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from ecgprobe.extract.extractor import extract

        return extract(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
