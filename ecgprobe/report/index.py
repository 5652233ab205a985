"""The index page of a multi-report run (the demo, ``ecgprobe run``): one row per report with its
headline numbers and links to its HTML, PDF, results.json and CSV files.

Headlines are read from the reports' stored results, never recomputed, so the index agrees with
the reports it lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path

from ecgprobe.report.blocks import fmt, fmt_ci
from ecgprobe.report.document import Report
from ecgprobe.report.sections.probe_rows import ci

__all__ = ["headline", "render_index"]

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,Arial,"DejaVu Sans",sans-serif;max-width:1100px;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#1d2330}}
a{{color:#2457a6}} code{{background:#f5f7fa;padding:0 .2rem}} table{{border-collapse:collapse;width:100%;margin:1rem 0}}
th,td{{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #d9dde5;vertical-align:top}} th{{background:#f5f7fa}}
.files a{{margin-right:.6rem;white-space:nowrap}}</style></head>
<body><h1>{title}</h1><p>{intro}</p>
<table><thead><tr><th scope="col">report</th><th scope="col">headline</th><th scope="col">files</th></tr></thead><tbody>
{rows}
</tbody></table>
<p>Re-render any report from its saved numbers: <code>ecgprobe report --from FOLDER --force</code>.</p></body></html>
"""


def headline(report: Report) -> str:
    """The one-line headline of a report, from its stored results."""
    if report.mode == "model":
        lp = report.get("linear_probe")
        return f"linear-probe macro AUROC {ci(lp.metrics, 'macro_auroc')}" if lp is not None else "–"
    if report.mode == "benchmark":
        bm = report.get("benchmark")
        rows = (bm.metrics.get("aggregate") or {}).get("rows", []) if bm is not None else []
        top = [r["name"] for r in rows if r.get("top_group")]
        return f"top group by mean macro AUROC: {', '.join(top)}" if top else "–"
    if report.mode == "compare":
        pb = report.get("paired_bootstrap")
        a, b = [*report.subjects, "a", "b"][:2]
        if pb is not None:
            m = pb.metrics
            lo, hi = (m.get("difference_ci") or [None, None])[:2]
            return f"macro AUROC difference {a} − {b}: {fmt_ci(m.get('difference'), lo, hi)}"
    parts = []
    for subject in report.subjects:
        res = report.get("linear_probe", subject)
        if res is not None:
            parts.append(f"{subject} {ci(res.metrics, 'macro_auroc')}")
            continue
        sc = report.get("scarcity", subject)
        if sc is not None:
            parts.append(f"{subject} full-data macro AUROC {fmt(sc.metrics.get('full_macro_auroc'))}")
    return "; ".join(parts) or "–"


def render_index(title: str, intro: str, entries: Sequence[tuple[str, Path, Report]], root: Path) -> str:
    """The index HTML for ``entries`` (``(title, report folder, the report written there)``) in
    ``root``; links are relative to ``root`` and only to files that exist in the folder.
    """
    rows = []
    for name, folder, report in entries:
        rel = folder.relative_to(root).as_posix()
        files = [p for p in ("report.html", "report.pdf", "results.json") if (folder / p).is_file()]
        files += sorted(p.name for p in folder.glob("*.csv"))
        links = " ".join(f'<a href="{escape(rel)}/{escape(f)}">{escape(f)}</a>' for f in files)
        main = (
            f'<a href="{escape(rel)}/report.html">{escape(name)}</a>'
            if "report.html" in files
            else escape(name)
        )
        rows.append(
            f"<tr><td>{main}<br><small>{escape(report.title)}</small></td>"
            f'<td>{escape(headline(report))}</td><td class="files">{links}</td></tr>'
        )
    return _PAGE.format(title=escape(title), intro=escape(intro), rows="\n".join(rows))
