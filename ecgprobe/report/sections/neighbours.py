"""The nearest-neighbour gallery: which training ECGs the model finds most like a test ECG."""

from __future__ import annotations

from typing import Any

from ecgprobe.analyzers.base import Result
from ecgprobe.report import plots
from ecgprobe.report.base import result_section
from ecgprobe.report.blocks import Block, Figure, Note, Paragraph, fmt, fmt_pct
from ecgprobe.report.document import Report
from ecgprobe.report.figures import render_png


@result_section(
    "neighbours",
    kind="neighbour_gallery",
    title="Nearest neighbours",
    order=55,
    lead="What does “similar” mean to this model? A few test ECGs beside their nearest training ECGs.",
)
def render(report: Report, res: Result) -> list[Block]:
    m = res.metrics
    q, k = int(m.get("n_queries", 0)), int(m.get("k", 0))

    def draw(fig: Any) -> None:
        plots.plot_gallery(res, axes=fig.subplots(q, k + 1, squeeze=False))

    return [
        Paragraph(
            f"Each row: a test record (left) and its {k} nearest training records by {m.get('metric')} distance "
            f"between embeddings, lead {m.get('lead')} in mV, first {fmt(m.get('seconds'), 1)} s. Titles give each record's positive labels; "
            f"orange: no label in common with the test record. Across the gallery {fmt_pct(m.get('share_rate'))} of the "
            f"neighbours share a label with their query (descriptive: {fmt(q)} queries)."
        ),
        Figure(
            render_png(draw, size=(1.6 * (k + 1), 1.3 * q + 0.4)),
            caption=f"Nearest training ECGs of {q} test records (distance d; {m.get('metric')}).",
            alt=f"Grid of {q} test ECGs, each followed by its {k} nearest training ECGs",
        ),
        *[Note(n) for n in res.notes],
    ]
