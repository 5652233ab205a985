"""The light commands start without the heavy libraries: ``import ecgprobe``, building the parser,
``ecgprobe --help`` and ``ecgprobe datasets`` import none of them (NumPy only for ``datasets``,
whose loaders are NumPy code), each checked in a fresh interpreter. The start-up times
themselves are measured by ``benchmarks/bench_startup.py``, not asserted here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Never imported by the light commands (top-level package names).
HEAVY = (
    "torch",
    "scipy",
    "matplotlib",
    "sklearn",
    "umap",
    "shap",
    "captum",
    "pandas",
    "numba",
    "wfdb",
    "jinja2",
    "fpdf",
    "h5py",
    "onnxruntime",
    "ray",
    "neurokit2",
)

_PROBE = textwrap.dedent(
    """
    import contextlib, io, json, sys
    HEAVY = {heavy!r}

    def loaded():
        return sorted({{m.split(".")[0] for m in sys.modules}} & set(HEAVY + ("numpy",)))

    stages = {{}}
    import ecgprobe
    stages["import ecgprobe"] = loaded()
    from ecgprobe.cli import build_parser, main
    build_parser()
    stages["build_parser"] = loaded()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            main(["--help"])
        except SystemExit:
            pass
    stages["--help"] = loaded()
    with contextlib.redirect_stdout(out):
        code = main(["datasets"])
    stages["datasets"] = loaded()
    print(json.dumps({{"stages": stages, "code": code, "listed": "ptbxl:" in out.getvalue()}}))
    """
)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )


def test_light_commands_import_no_heavy_library():
    proc = _run("-c", _PROBE.format(heavy=HEAVY))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    stages = doc["stages"]
    assert doc["code"] == 0 and doc["listed"], doc
    assert stages["import ecgprobe"] == [], stages
    assert stages["build_parser"] == [], stages
    assert stages["--help"] == [], stages
    assert stages["datasets"] == ["numpy"], stages  # the loaders' module-level code is NumPy


def test_python_m_ecgprobe_help_imports_no_heavy_library():
    """The real entry point (``python -m ecgprobe``), read from the interpreter's import log."""
    proc = _run("-X", "importtime", "-m", "ecgprobe", "--help")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage: ecgprobe" in proc.stdout
    imported = {
        line.rsplit("|", 1)[-1].strip().split(".")[0]
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "ecgprobe" in imported  # the log is what we think it is
    assert not imported & {*HEAVY, "numpy"}, sorted(imported & {*HEAVY, "numpy"})


def test_lazy_public_names_and_subpackages_still_resolve():
    code = (
        "import ecgprobe, sys; assert 'ecgprobe.data' not in sys.modules; "
        "print(ecgprobe.data.LEADS_12[0], ecgprobe.load_dataset.__name__, ecgprobe.RecordSet.__name__, "
        "'load_dataset' in dir(ecgprobe))"
    )
    proc = _run("-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["I", "load_dataset", "RecordSet", "True"]
