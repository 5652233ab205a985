"""Layer by layer: what each layer encodes (the physiology atlas) and whether an intermediate
layer beats the final embedding."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ecgprobe.analyzers.base import Result
from ecgprobe.report.base import Finding, result_finding, result_section
from ecgprobe.report.blocks import Block, Note, Paragraph, Table, fmt, fmt_ci
from ecgprobe.report.claims import MIN_PATIENTS, ci_of, enough, n_phrase, side
from ecgprobe.report.document import Report
from ecgprobe.report.figures import plot_figure
from ecgprobe.report.layer_plots import plot_layer_atlas


def _delta(c: dict[str, Any]) -> str:
    return fmt_ci(c.get("difference"), c.get("ci_low"), c.get("ci_high"))


@result_section(
    "layers",
    kind="layer_probe",
    title="Layer by layer",
    order=27,
    lead="What does each layer encode: the labels and the physiology (heart rate, intervals, axis)?",
)
def render(report: Report, res: Result) -> list[Block]:
    m = res.metrics
    layers, rows = list(m.get("layers", [])), list(m.get("rows", []))
    blocks: list[Block] = [
        Paragraph(
            f"A linear probe on each of {len(layers)} layers, evaluated on {fmt(m.get('n_test'))} test records: "
            "macro AUROC on the labels, ridge R² on each physiology quantity "
            f"({m.get('physiology_source') or 'not measured'}). The framed cell is each row's best layer; the "
            "comparison picks the intermediate layer with the best validation score and sets it against the "
            f"final layer ({m.get('final_layer')}) by a paired patient bootstrap ({ci_of(res)})."
        )
    ]
    if len(layers) == 1:
        blocks.append(
            Note(
                "Only one layer was probed (the embeddings given hold the official one only). `ecgprobe report "
                "--analyses layer_probe,...` and `ecgprobe probe --layers all` extract every layer for the "
                "layer-by-layer atlas and the comparison."
            )
        )
    if layers and rows:
        blocks.append(
            plot_figure(
                plot_layer_atlas,
                res,
                size=(1.6 + 0.9 * len(layers), 0.9 + 0.45 * len(rows)),
                caption="The physiology atlas: R² per layer and quantity (top row: macro AUROC on the labels); "
                "colour from chance (0) to perfect (1); framed: best layer.",
                alt="Heatmap of probe performance by layer and quantity",
            )
        )
    table = tuple(
        (
            c["row"],
            c["metric"],
            fmt(m.get("best_layer", {}).get(c["row"])),
            fmt(c.get("intermediate_layer")),
            fmt(c.get("value_intermediate")),
            fmt(c.get("value_final")),
            _delta(c) if c.get("intermediate_layer") else "–",
            c["verdict"],
        )
        for c in res.tables.get("comparison", [])
    )
    if table:
        blocks.append(
            Table(
                (
                    "quantity",
                    "metric",
                    "best layer",
                    "intermediate (val)",
                    "its value",
                    "final",
                    "difference",
                    "verdict",
                ),
                table,
                caption=f"Best intermediate layer (chosen on validation) minus the final layer ({ci_of(res)})",
            )
        )
    for q, why in (m.get("quantities_skipped") or {}).items():
        blocks.append(Note(f"{q} not probed: {why}"))
    blocks += [Note(n) for n in res.notes]
    return blocks


@result_finding("layer_vs_final", kind="layer_probe", order=27)
def rule_layers(report: Report, res: Result) -> Iterator[Finding]:
    """An intermediate layer is claimed better (or worse) than the final one only with a decisive
    paired interval on at least MIN_PATIENTS test records; otherwise inconclusive, with the n."""
    src = "layer_probe.tables.comparison"
    unsure = []
    for c in res.tables.get("comparison", []):
        if not c.get("intermediate_layer"):
            continue
        lies = side(c.get("ci_low"), c.get("ci_high"), threshold=0.0)
        if lies == "inconclusive" or not enough(c.get("n_test")):
            unsure.append(c)
            continue
        better = lies == "above"
        yield Finding(
            f"For {c['row']}, the intermediate layer {c['intermediate_layer']} is {'better' if better else 'worse'} "
            f"than the final layer: {c['metric']} difference {_delta(c)}, {n_phrase(c.get('n_test'), 'test records')}.",
            "info",
            "layer_vs_final",
            src,
        )
    if unsure:
        yield Finding(
            "Intermediate vs final layer not decided (interval includes 0, or fewer than "
            f"{MIN_PATIENTS} test records): "
            + "; ".join(
                f"{c['row']} ({c['intermediate_layer']}: {_delta(c)}, {n_phrase(c.get('n_test'), 'test records')})"
                for c in unsure
            )
            + ".",
            "inconclusive",
            "layer_vs_final",
            src,
        )
