"""The reports as users see them: real headless Chromium and poppler."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest
from PIL import Image

from ecgprobe.report import Report
from ecgprobe.report._paginate import MIN_TAIL
from ecgprobe.report.pdf import layout_pdf


@pytest.mark.parametrize("which", ["model", "compare"])
def test_html_in_headless_chromium(computed, chromium, which, tmp_path):
    folder = computed.model_dir if which == "model" else computed.compare_dir
    html = folder / "report.html"
    found = chromium.check(html)
    assert found["errors"] == [] and found["console"] == []
    assert found["images"] >= (10 if which == "model" else 4)
    assert found["undecoded"] == []
    assert found["links"] == found["toc"] == found["sections"] and found["broken"] == []
    assert found["scripts"] == 1  # the report's own table-sorting script, nothing else
    shot = chromium.screenshot(html, tmp_path / f"{which}.png", height=1600)
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (1600, 1280) and pixels.std() > 10  # something was drawn
    # self-contained: no request can leave the file
    text = html.read_text()
    assert not re.search(r'(src|href)="(https?:)?//', text)
    # the report links its own PDF and results.json, and they resolve beside it
    files = re.findall(r'<a href="([^"#][^"]*)"', text)
    assert {"report.pdf", "results.json"} <= set(files)
    assert all((folder / f).is_file() for f in files), files
    assert 'class="provenance-line"' in text and "full provenance in the appendix" in text


@pytest.mark.parametrize("which", ["model", "compare"])
def test_pdf_pages_render_and_sections_start_where_promised(computed, poppler, which, tmp_path):
    folder = computed.model_dir if which == "model" else computed.compare_dir
    report = Report.load(folder)
    sections = report.sections()
    done = layout_pdf(report, sections)
    pdf, starts = done.pdf, done.starts
    assert pdf == (folder / "report.pdf").read_bytes()
    assert done.overflows == ()  # every page break was planned, none left to fpdf2
    assert done.short_pages == ()  # and no section ends on a near-empty page
    info = subprocess.run(
        [poppler["pdfinfo"], str(folder / "report.pdf")], capture_output=True, text=True, check=True
    )
    n_pages = int(re.search(r"Pages:\s+(\d+)", info.stdout).group(1))
    assert list(starts) == [s.id for s in sections]
    assert list(starts.values()) == sorted(starts.values()) and starts[sections[0].id] == 2
    assert n_pages >= max(starts.values())
    for i, sec in enumerate(sections, start=1):  # each section title opens its page
        page = starts[sec.id]
        text = subprocess.run(
            [poppler["pdftotext"], "-f", str(page), "-l", str(page), str(folder / "report.pdf"), "-"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert text.lstrip().startswith(f"{i} {sec.title}") or text.lstrip().startswith(
            f"{i}  {sec.title}"
        ), text[:80]
    subprocess.run(
        [poppler["pdftoppm"], "-r", "30", "-png", str(folder / "report.pdf"), str(tmp_path / "page")],
        check=True,
    )
    pages = sorted(tmp_path.glob("page-*.png"), key=lambda p: int(p.stem.split("-")[-1]))
    assert len(pages) == n_pages
    openers = set(starts.values()) | {1}
    for number, png in enumerate(pages, start=1):
        ink = np.asarray(Image.open(png).convert("L")) < 160
        assert ink.any(), f"page {number} is blank"
        if number in openers:
            continue
        # a continuation page holds real content, not a stranded row or heading: what is drawn
        # on it spans at least 2/3 of the planned minimum (measured from the top margin)
        rows = np.flatnonzero(ink.any(axis=1))
        mm = (rows[-1] - rows[0] + 1) / ink.shape[0] * 297.0
        assert mm >= MIN_TAIL * 2 / 3, (png.name, round(mm, 1))


def test_tables_sort_when_a_header_is_clicked(computed, chromium, tmp_path):
    """The report's inline sorter, driven in real Chromium: a numeric column sorts ascending,
    then descending."""
    import html as _html
    import json

    text = (computed.model_dir / "report.html").read_text()
    probe = tmp_path / "sort.html"
    click = """<script>window.addEventListener('load',function(){
var out={};var t=document.querySelectorAll('table.data')[1];var th=t.tHead.rows[0].cells[1];
var col=function(){return Array.prototype.map.call(t.tBodies[0].rows,function(r){return r.cells[1].textContent;});};
th.click();out.asc=col();th.click();out.desc=col();
var pre=document.createElement('pre');pre.id='__sort';pre.textContent=JSON.stringify(out);document.body.appendChild(pre);});
</script>"""
    probe.write_text(text.replace("</body>", click + "</body>", 1))
    r = chromium._run(["--virtual-time-budget=10000", "--dump-dom", probe.as_uri()])
    m = re.search(r'<pre id="__sort">(.*?)</pre>', r.stdout, re.S)
    assert m, r.stderr[-1500:]
    got = json.loads(_html.unescape(m.group(1)))
    first = lambda cells: [float(re.search(r"-?\d+(\.\d+)?", c.replace("−", "-")).group(0)) for c in cells]  # noqa: E731
    assert len(got["asc"]) > 1
    assert first(got["asc"]) == sorted(first(got["asc"]))
    assert first(got["desc"]) == sorted(first(got["desc"]), reverse=True)
