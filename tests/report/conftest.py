"""Fixtures of the report tests: real headless Chromium and poppler (skipped, with the reason,
when they cannot be found or installed)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

_CHROME_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_CHROME_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)

# Injected into a copy of the report: collects errors while loading, then, once every image
# has loaded (or failed to), writes what it found into <pre id="__check"> for --dump-dom.
_PROBE_HEAD = """<script>window.__errors=[];
window.addEventListener('error',function(e){window.__errors.push(String(e.message||('failed to load '+((e.target&&(e.target.src||e.target.href))||'?').slice(0,60))));},true);
</script>"""
_PROBE_TAIL = """<script>window.addEventListener('load',function(){
var imgs=Array.prototype.slice.call(document.images);
var ok=imgs.map(function(i){return i.complete&&i.naturalWidth>0&&i.naturalHeight>0;});
var links=Array.prototype.slice.call(document.querySelectorAll('a[href^="#"]'));
var broken=links.filter(function(a){return !document.getElementById(decodeURIComponent(a.getAttribute('href').slice(1)));}).map(function(a){return a.getAttribute('href');});
var out=document.createElement('pre');out.id='__check';
out.textContent=JSON.stringify({images:imgs.length,undecoded:imgs.filter(function(_,k){return !ok[k];}).map(function(i){return i.alt;}),
links:links.length,broken:broken,errors:window.__errors,toc:document.querySelectorAll('nav.toc a').length,
sections:document.querySelectorAll('main section').length,scripts:document.scripts.length-2,title:document.title});
document.body.appendChild(out);});
</script>"""


def _which_chromium() -> str | None:
    for name in _CHROME_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _try_install(packages: list[str]) -> str:
    """Install Debian packages when we are root with apt-get; returns why not otherwise."""
    if not shutil.which("apt-get"):
        return "apt-get is not available"
    if os.geteuid() != 0:
        return "not running as root (run `make system-deps` or apt-get install as root)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        r = subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"apt-get install failed: {exc}"
    return (
        "" if r.returncode == 0 else f"apt-get install {' '.join(packages)} failed: {r.stderr.strip()[-300:]}"
    )


@dataclass
class Chromium:
    """Headless Chromium driven through its command line."""

    path: str

    def _run(self, args: list[str], timeout: float = 90) -> subprocess.CompletedProcess[str]:
        profile = tempfile.mkdtemp(prefix="ecgprobe-chromium-")
        try:
            return subprocess.run(
                [self.path, *_CHROME_FLAGS, f"--user-data-dir={profile}", *args],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        finally:
            shutil.rmtree(profile, ignore_errors=True)

    def check(self, html: Path) -> dict:
        """Load a copy of ``html`` with the probe script; returns what it found plus console lines."""
        text = html.read_text("utf-8")
        probe = html.with_name(html.stem + ".probe.html")
        probe.write_text(
            text.replace("<head>", "<head>" + _PROBE_HEAD, 1).replace("</body>", _PROBE_TAIL + "</body>", 1)
        )
        r = self._run(
            ["--enable-logging=stderr", "--v=0", "--virtual-time-budget=20000", "--dump-dom", probe.as_uri()]
        )
        m = re.search(r'<pre id="__check">(.*?)</pre>', r.stdout, re.S)
        if not m:
            raise AssertionError(
                f"the probe did not report (exit {r.returncode}); stderr: {r.stderr[-2000:]}"
            )
        import html as _html

        found = json.loads(_html.unescape(m.group(1)))
        found["console"] = [line for line in r.stderr.splitlines() if "CONSOLE" in line]
        return found

    def screenshot(self, html: Path, png: Path, width: int = 1280, height: int = 2400) -> Path:
        r = self._run([f"--window-size={width},{height}", f"--screenshot={png}", html.as_uri()])
        if not png.exists():
            raise AssertionError(f"no screenshot written (exit {r.returncode}): {r.stderr[-1500:]}")
        return png


@pytest.fixture(scope="session")
def chromium() -> Chromium:
    """Real headless Chromium (installed with apt-get when missing and possible)."""
    path = _which_chromium()
    if path is None:
        why = _try_install(["chromium"])
        path = _which_chromium()
        if path is None:
            pytest.skip(
                f"headless Chromium not found and not installable here ({why}); `make system-deps` installs it"
            )
    return Chromium(path)


@pytest.fixture(scope="session")
def poppler() -> dict[str, str]:
    """``pdftoppm``, ``pdfinfo`` and ``pdftotext`` (poppler-utils)."""
    tools = {t: shutil.which(t) for t in ("pdftoppm", "pdfinfo", "pdftotext")}
    if not all(tools.values()):
        why = _try_install(["poppler-utils"])
        tools = {t: shutil.which(t) for t in tools}
        if not all(tools.values()):
            pytest.skip(
                f"poppler-utils (pdftoppm) not found and not installable here ({why}); `make system-deps` installs it"
            )
    return tools  # type: ignore[return-value]


# ------------------------------------------------------------------- one small computed study
@dataclass
class Computed:
    """A real model report and a comparison, computed once per session on synthetic data."""

    records: object
    layers: dict
    encoder: object
    report: object
    model_dir: Path
    compare: object
    compare_dir: Path
    cache: Path


def need_analyzers(*names: str) -> None:
    """Skip when analyzers this test needs are not part of this checkout."""
    from ecgprobe.analyzers import ANALYZERS

    missing = [n for n in names if n not in ANALYZERS]
    if missing:
        pytest.skip(f"analyzers {missing} are not in this checkout")


@pytest.fixture(scope="session")
def synthetic_300():
    """300 synthetic records at 100 Hz (enough test records per sex for subgroup gaps)."""
    import ecgprobe

    return ecgprobe.load_dataset("synthetic", n_records=300, fs=100.0, seed=3)


@pytest.fixture(scope="session")
def computed(synthetic_300, tmp_path_factory) -> Computed:
    """Every model analysis (quick profile) with the tiny-test encoder, plus a comparison with a
    second seed of it; written once and shared by the report tests."""
    need_analyzers(
        "linear_probe",
        "knn_probe",
        "scarcity",
        "projection",
        "probe_shap",
        "input_attribution",
        "cka",
        "alignment",
    )
    import ecgprobe
    from ecgprobe.settings import RunSettings
    from ecgprobe.workflows import compare_report, model_report

    root = tmp_path_factory.mktemp("report")
    cache = root / "cache"
    encs = [ecgprobe.create_encoder("tiny-test", seed=s, dim=24, device="cpu") for s in (0, 1)]
    layers = [ecgprobe.extract(e, synthetic_300, layers="all", cache_dir=cache, progress=False) for e in encs]
    report = model_report(
        layers[0]["embedding"],
        synthetic_300,
        encoder=encs[0],
        settings=RunSettings(profile="quick", cache_dir=cache, progress=False),
        analyses={
            "linear_probe": {},
            "knn_probe": {},
            "scarcity": {},
            "projection": {"n_epochs": 60},
            "probe_shap": {},
            "input_attribution": {"max_labels": 2, "n_examples": 2},
            "subgroups": {"min_records": 10},
        },
    )
    report.write(root / "model")
    cmp = compare_report(
        layers[0],
        layers[1],
        synthetic_300,
        names=("tiny-a", "tiny-b"),
        settings=RunSettings(profile="quick", cache_dir=cache, progress=False),
        analyses={
            "linear_probe": {},
            "scarcity": {},
            "projection": {"n_epochs": 60},
            "paired_bootstrap": {},
            "cka": {},
            "alignment": {},
        },
    )
    cmp.write(root / "compare")
    return Computed(synthetic_300, layers, encs[0], report, root / "model", cmp, root / "compare", cache)
