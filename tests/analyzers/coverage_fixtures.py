"""Loads a ``benchmarks/coverage_*.py`` simulation (default ``coverage_similarity.py``) so that
the tests run a small version of the same seeded coverage simulation."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def coverage_module(name: str = "coverage_similarity") -> ModuleType:
    """The simulation module ``benchmarks/<name>.py`` (imported once)."""
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[2] / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod  # dataclasses look their module up there
        spec.loader.exec_module(mod)
    return sys.modules[name]
