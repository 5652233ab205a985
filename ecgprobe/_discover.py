"""Import every module of a package so that their ``@register`` decorators run.

A new model family, analyzer, report section or command is then one new file: nothing else
names it.
"""

from __future__ import annotations

import importlib
import pkgutil

__all__ = ["import_submodules"]


def import_submodules(package: str, *, skip: tuple[str, ...] = ()) -> list[str]:
    """Import ``package.<module>`` for each non-private module in the package, sorted by name."""
    pkg = importlib.import_module(package)
    names = sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_"))
    for name in names:
        if name not in skip:
            importlib.import_module(f"{package}.{name}")
    return names
