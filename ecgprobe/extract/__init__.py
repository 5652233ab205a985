"""Embedding extraction: batched, windowed, multi-layer, cached by content and provenance.

``ecgprobe.extract`` is both this package and the function :func:`~ecgprobe.extract.extractor.extract`:
once the package is imported, Python binds the *module* to the name ``ecgprobe.extract``, which
would hide the function of the flat public API. The module is therefore made callable, so
``ecgprobe.extract(encoder, records, ...)`` works whatever was imported first.
"""

import sys
import types
from typing import Any

from ecgprobe.extract.embeddings import Embeddings, align_to_records, load_embeddings, save_embeddings
from ecgprobe.extract.extractor import extract

__all__ = ["Embeddings", "align_to_records", "extract", "load_embeddings", "save_embeddings"]


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return extract(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
