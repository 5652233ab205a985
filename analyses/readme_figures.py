"""The README's figures, regenerated from a demo run: one section of a report per image.

    ecgprobe demo --out ecgprobe-out/demo          # or make demo
    python analyses/readme_figures.py [--demo ecgprobe-out/demo] [--out figures]

Each figure is a section of a demo report rendered alone in headless Chromium (the report's own
stylesheet, its width at 1100 px), trimmed of the blank space below it; the PDF figure is the
first pages of a model report's PDF side by side (pdftoppm). Needs ``chromium`` and
``pdftoppm`` (``make system-deps``). ``figures/report-ptbxl-saliency.png`` comes from a report on
real PTB-XL records, not from the demo, and is left as it is.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

#: figure file -> (report folder under the demo output, section id)
SECTIONS = {
    "report-summary.png": ("openecg-codec-3lead", "summary"),
    "report-accuracy.png": ("openecg-codec-3lead", "accuracy"),
    "report-geometry.png": ("openecg-codec-3lead", "geometry"),
    "report-attribution.png": ("openecg-codec-3lead", "attribution"),
    "report-confounding.png": ("random-resnet1d", "confounding"),
    "report-subgroups.png": ("openecg-codec-3lead", "subgroups"),
    "compare-paired.png": ("openecg-codec-3lead-vs-random-resnet1d", "paired"),
    "compare-similarity.png": ("openecg-codec-3lead-vs-random-resnet1d", "similarity"),
    "scarcity-study.png": ("scarcity", "scarcity_study"),
}
PDF_FIGURE = ("report-pdf-pages.png", "openecg-codec-3lead", (1, 4, 8))  # title, accuracy, scarcity
_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars")


def section_page(report_html: str, section: str) -> str:
    """The report page with only ``section`` in its body (the head and its stylesheet kept)."""
    head = report_html[: report_html.index("<body")]
    m = re.search(rf'<section id="{re.escape(section)}" class="section">.*?</section>', report_html, re.S)
    if m is None:
        found = re.findall(r'<section id="(\w+)"', report_html)
        raise SystemExit(f"no section {section!r} in the report; sections: {found}")
    return f"{head}<body><main>{m.group(0)}</main></body></html>"


def trim(png: Path, pad: int = 16) -> None:
    """Cut the blank rows below the content (and keep ``pad`` pixels of margin)."""
    img = Image.open(png).convert("RGB")
    a = np.asarray(img)
    ink = np.flatnonzero((a < 245).any(axis=(1, 2)))
    if len(ink):
        img = img.crop((0, 0, img.width, min(img.height, int(ink[-1]) + pad)))
    img.quantize(256).save(png, optimize=True)  # a palette keeps the README light


def screenshot(chromium: str, html: Path, png: Path, height: int = 4000) -> None:
    with tempfile.TemporaryDirectory(prefix="ecgprobe-chromium-") as profile:
        subprocess.run(
            [
                chromium,
                *_FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size=1100,{height}",
                f"--screenshot={png}",
                html.as_uri(),
            ],
            capture_output=True,
            timeout=120,
            check=False,
        )
    if not png.exists():
        raise SystemExit(f"chromium wrote no screenshot of {html}")
    trim(png)


def pdf_pages(pdf: Path, png: Path, numbers: tuple[int, ...]) -> None:
    """Pages ``numbers`` of ``pdf`` side by side on a grey ground."""
    pages = []
    with tempfile.TemporaryDirectory() as d:
        for k in numbers:
            prefix = f"{d}/p{k:03d}"
            subprocess.run(
                ["pdftoppm", "-r", "45", "-png", "-singlefile", "-f", str(k), "-l", str(k), str(pdf), prefix],
                check=True,
            )
            pages.append(Image.open(f"{prefix}.png").convert("RGB"))
    gap = 12
    out = Image.new(
        "RGB",
        (sum(p.width for p in pages) + gap * (len(pages) + 1), max(p.height for p in pages) + 2 * gap),
        "#d0d4d9",
    )
    x = gap
    for p in pages:
        out.paste(p, (x, gap))
        x += p.width + gap
    out.save(png, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--demo", type=Path, default=Path("ecgprobe-out/demo"), help="the demo's output folder"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "figures")
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None or shutil.which("pdftoppm") is None:
        print("readme_figures: needs chromium and pdftoppm (make system-deps)", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for name, (report, section) in SECTIONS.items():
        src = args.demo / report / "report.html"
        if not src.exists():
            print(
                f"readme_figures: {src} missing: run `ecgprobe demo --out {args.demo}` first", file=sys.stderr
            )
            return 1
        page = src.with_name(f".section-{section}.html")  # beside the report: its relative links resolve
        page.write_text(section_page(src.read_text("utf-8"), section), "utf-8")
        try:
            screenshot(chromium, page, args.out / name)
        finally:
            page.unlink(missing_ok=True)
        print(f"{args.out / name}: {report} / {section}")
    name, report, numbers = PDF_FIGURE
    pdf_pages(args.demo / report / "report.pdf", args.out / name, numbers)
    print(f"{args.out / name}: {report} / report.pdf, pages {numbers}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
