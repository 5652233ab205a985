"""The report as one self-contained HTML file.

Jinja2 renders the sections with autoescaping on for everything (label names, dataset
options, file names and notes are user-controlled: ``<script>`` in a label name shows as text).
The stylesheet is inlined and figures are embedded as base64 PNG, so the file needs no network
and no other file; the print stylesheet starts each section on a new page.
"""

from __future__ import annotations

import base64
import struct
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from ecgprobe._version import __version__
from ecgprobe.report.blocks import Section

if TYPE_CHECKING:
    from ecgprobe.report.document import Report

__all__ = ["MODE_LABELS", "provenance_line", "render_html", "subtitle"]

MODE_LABELS = {
    "model": "model report",
    "compare": "encoder comparison",
    "scarcity": "data-scarcity study",
    "benchmark": "multi-model benchmark",
}


def _png_size(png: bytes) -> tuple[int, int]:
    # Width and height live at fixed offsets of the IHDR chunk, which always comes first.
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("figure is not a PNG image")
    return struct.unpack(">II", png[16:24])


@lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("ecgprobe.report", "templates"),
        autoescape=True,  # everything: the template is HTML whatever its file name ends in
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["block_kind"] = lambda b: type(b).__name__
    env.filters["b64"] = lambda data: base64.b64encode(data).decode("ascii")
    env.filters["png_size"] = _png_size
    return env


def subtitle(report: Report) -> str:
    """One line under the title: dataset, records and encoders."""
    ds = report.context.get("dataset", {})
    parts = []
    if ds.get("dataset"):
        parts.append(f"dataset {ds['dataset']}")
    if ds.get("n_records"):
        parts.append(f"{ds['n_records']:,} records")
    if report.subjects:
        parts.append(("encoder " if len(report.subjects) == 1 else "encoders ") + ", ".join(report.subjects))
    return " · ".join(parts)


#: The report's only script (ours, inline, no network): click a data-table header to sort by it.
#: Cells sort by their first number when every cell of the column has one, else as text.
SORT_SCRIPT = (
    "document.querySelectorAll('table.data thead th').forEach(function(th){"
    "th.style.cursor='pointer';th.title='sort';th.addEventListener('click',function(){"
    "var t=th.closest('table'),b=t.tBodies[0],i=Array.prototype.indexOf.call(th.parentNode.children,th),"
    "rows=Array.prototype.slice.call(b.rows),num=function(r){var m=(r.cells[i]||{}).textContent.match(/[-\u2212]?\\d+(\\.\\d+)?/);"
    "return m?parseFloat(m[0].replace('\u2212','-')):NaN;},n=rows.every(function(r){return !isNaN(num(r));}),"
    "d=th.dataset.dir==='asc'?-1:1;th.dataset.dir=d>0?'asc':'desc';"
    "rows.sort(function(x,y){return n?d*(num(x)-num(y)):d*x.cells[i].textContent.localeCompare(y.cells[i].textContent);});"
    "rows.forEach(function(r){b.appendChild(r);});});});"
)


def provenance_line(report: Report) -> str:
    """One line of provenance under the title (the full record is the appendix): ecgprobe
    version, creation time, seed, and short hashes of the weights and of the record ids."""
    parts = [f"ecgprobe {__version__}"]
    created = str(report.context.get("created", ""))[:16].replace("T", " ")
    if created:
        parts.append(f"created {created} UTC")
    seed = report.context.get("run", {}).get("seed")
    if seed is not None:
        parts.append(f"seed {seed}")
    for subject, enc in (report.context.get("encoders") or {}).items():
        sha = enc.get("weights_sha256") if isinstance(enc, dict) else None
        if sha:
            parts.append(f"{subject} weights {str(sha)[:12]}")
    ids = (report.context.get("dataset") or {}).get("ids_sha256")
    if ids:
        parts.append(f"record ids {str(ids)[:12]}")
    return " · ".join(parts) + " — full provenance in the appendix"


def render_html(report: Report, sections: list[Section], with_pdf: bool = True) -> str:
    """The HTML document for ``sections`` of ``report`` (deterministic for the same input);
    its header links the report's own ``results.json`` and, ``with_pdf``, its PDF."""
    from markupsafe import Markup

    env = _environment()
    # The stylesheet is ours (package data), not user input: it must not be HTML-escaped, since
    # entities are not decoded inside <style> and quoted font names would break.
    css = resources.files("ecgprobe.report").joinpath("templates", "report.css").read_text("utf-8")
    return env.get_template("report.html.j2").render(
        title=report.title,
        subtitle=subtitle(report),
        provenance=provenance_line(report),
        sort_script=Markup(SORT_SCRIPT),
        files=[("PDF", "report.pdf")] * with_pdf + [("results.json", "results.json")],
        mode_label=MODE_LABELS[report.mode],
        sections=sections,
        css=Markup(css),
        version=__version__,
        created=report.context.get("created", ""),
    )
