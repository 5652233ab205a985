"""The data-scarcity study across encoders (``scarcity`` reports)."""

from __future__ import annotations

from collections.abc import Mapping

from ecgprobe.analyzers.base import Result
from ecgprobe.report.base import subjects_section
from ecgprobe.report.blocks import Block, Heading, Note, Paragraph
from ecgprobe.report.document import Report
from ecgprobe.report.sections.compare import efficiency_table
from ecgprobe.report.sections.scarcity import band, curve_table, overlay_figure


@subjects_section(
    "scarcity_study",
    kind="scarcity",
    title="Data scarcity",
    order=20,
    modes=("scarcity",),
    lead="How much labelled data does each encoder need? The same nested training subsets for every encoder.",
)
def render(report: Report, curves: Mapping[str, Result]) -> list[Block]:
    blocks: list[Block] = [
        Paragraph(
            "For each seed, nested patient-wise stratified subsets of the training split are drawn (the same subsets for every "
            "encoder: they depend only on the records and the seed); the linear probe is refitted on each and evaluated on the "
            "fixed test split. Bands: two-stage bootstrap over test patients and seeds. The curves are also in scarcity.csv."
        ),
        overlay_figure(
            curves,
            f"Test macro AUROC against training data, per encoder (mean over seeds, {band(next(iter(curves.values())))}).",
        ),
        efficiency_table(curves),
    ]
    for subject, res in curves.items():
        blocks.append(Heading(subject))
        blocks.append(curve_table(res))
        blocks += [Note(n) for n in res.notes]
    return blocks
