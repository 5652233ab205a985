"""The house's picture holds: imports only point down the layers (shared/DESIGN.md), none
from a lower layer to a higher one, function-level imports included."""

from __future__ import annotations

import ast
from pathlib import Path

import ecgprobe

#: Bottom to top; the leaf modules at the package root are below everything.
LAYERS = ("data", "encoders", "extract", "analyzers", "report", "workflows", "cli")
ROOT = Path(ecgprobe.__file__).parent


def _layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "ecgprobe" or parts[1] not in LAYERS:
        return -1  # ecgprobe itself, exceptions, registry, options, settings, outputs, _io, ...
    return LAYERS.index(parts[1])


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return [(line, m) for line, m in found if m.startswith("ecgprobe")]


def test_imports_point_down_the_layers():
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        module = ".".join(rel.parts).removesuffix(".__init__")
        if module == "ecgprobe" or module == "ecgprobe.__main__":
            continue  # the public API and the entry point sit above every layer
        mine = _layer(module)
        for line, target in _imports(path):
            if target == "ecgprobe":
                if mine >= 0 and module.split(".")[1] != "cli":
                    wrong.append(f"{rel}.py:{line} imports the top-level ecgprobe package")
                continue
            if _layer(target) > mine:
                wrong.append(f"{rel}.py:{line} ({module}) imports {target}")
    assert not wrong, "imports pointing up the layers:\n" + "\n".join(wrong)


def test_no_module_is_over_500_lines():
    long = {
        str(p.relative_to(ROOT.parent)): n
        for p in ROOT.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 500
    }
    assert not long, long
