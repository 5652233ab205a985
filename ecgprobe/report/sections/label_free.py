"""Label-free geometry per layer: RankMe, TwoNN and IsoScore with their half-patient ranges."""

from __future__ import annotations

from typing import Any

from ecgprobe.analyzers.base import Result
from ecgprobe.report.base import result_section
from ecgprobe.report.blocks import Block, Figure, Note, Paragraph, Table, fmt
from ecgprobe.report.document import Report
from ecgprobe.report.figures import render_png
from ecgprobe.report.glossary import explain
from ecgprobe.report.layer_plots import plot_label_free

_STATS = (("rankme", "RankMe"), ("twonn", "TwoNN"), ("isoscore", "IsoScore"))


def _cell(r: dict[str, Any], key: str) -> str:
    return f"{fmt(r[key])} ({fmt(r[f'{key}_half_low'])}–{fmt(r[f'{key}_half_high'])})"


@result_section(
    "label_free",
    kind="label_free",
    title="Label-free geometry",
    order=28,
    lead="How many directions and degrees of freedom does each layer use, without looking at a label?",
)
def render(report: Report, res: Result) -> list[Block]:
    m = res.metrics
    rows = res.tables.get("layers", [])
    blocks: list[Block] = [
        Paragraph(
            f"Per layer, on the embeddings of all {fmt(m.get('n_records'))} records ({fmt(m.get('n_patients'))} "
            "patients) with every feature standardised: RankMe, the TwoNN intrinsic dimension and IsoScore. In "
            f"brackets, the 2.5–97.5 % range over {fmt(m.get('n_subsamples'))} random halves of the patients: how "
            "stable each value is to which patients were recorded. These ranges are not confidence intervals (all "
            "three statistics depend on the number of records), and values compare across layers and encoders "
            "only at the same number of records."
        )
    ]
    if rows:

        def draw(fig: Any) -> None:
            plot_label_free(res, axes=fig.subplots(1, 3))

        blocks.append(
            Figure(
                render_png(draw, size=(9.0, 2.9)),
                caption="RankMe, TwoNN dimension and IsoScore per layer (blue: all records). Orange: the same on random "
                "halves of the patients (range and median); at half the records RankMe in particular is lower, "
                "which is why the band is a stability range at n/2, not an interval around the blue value.",
                alt="Three line plots of the label-free statistics across layers",
            )
        )
        blocks.append(
            Table(
                ("layer", "features", *(name for _, name in _STATS)),
                tuple((r["layer"], fmt(r["dim"]), *(_cell(r, k) for k, _ in _STATS)) for r in rows),
                caption="Value on all records (half-patient range).",
            )
        )
    blocks.append(explain("rankme", "twonn", "isoscore"))
    blocks += [Note(n) for n in res.notes]
    return blocks
