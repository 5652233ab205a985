"""Versions of the libraries a result depends on (recorded in every result and manifest)."""

from __future__ import annotations

import platform
import sys
from functools import lru_cache
from importlib import metadata

__all__ = ["library_versions"]

_LIBS = (
    "ecgprobe",
    "numpy",
    "scipy",
    "scikit-learn",
    "torch",
    "pandas",
    "umap-learn",
    "shap",
    "captum",
    "numba",
)


@lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    """``{package: version}`` for ecgprobe's scientific stack, plus Python and the platform."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _LIBS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    if "ecgprobe" not in out:
        from ecgprobe._version import __version__

        out["ecgprobe"] = __version__
    return out
