"""Subgroup gaps: AUROC by sex and age band, each compared with the rest of the test set."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ecgprobe.report import plots
from ecgprobe.report.base import Finding, finding, section
from ecgprobe.report.blocks import Block, Figure, Note, Paragraph, Table, fmt, fmt_ci
from ecgprobe.report.document import Report
from ecgprobe.report.figures import render_png
from ecgprobe.report.subgroups import describe


def _gap_excludes_zero(r: dict[str, Any]) -> bool:
    lo, hi = r.get("gap_ci_low"), r.get("gap_ci_high")
    return lo is not None and hi is not None and (lo > 0 or hi < 0)


@section(
    "subgroups",
    title="Subgroup gaps",
    order=70,
    kinds=("subgroups",),
    lead="Does the probe work equally well for women and men, young and old?",
)
def render(report: Report) -> list[Block]:
    res = report.get("subgroups")
    assert res is not None
    rows = res.tables.get("groups", [])
    m = res.metrics
    blocks: list[Block] = [
        Paragraph(
            f"Macro test AUROC of the {m.get('probe', 'linear_probe').replace('_', ' ')} within each group, and its gap to the "
            f"rest of the test set on the labels evaluable in both, with {fmt(m.get('n_resamples'))} paired "
            f"{m.get('bootstrap_unit', 'patient')}-bootstrap resamples (one set of draws shared by all groups). "
            f"Groups with fewer than {fmt(m.get('min_records'))} test records are not analysed."
        )
    ]
    if rows:
        names = [describe(r) for r in rows]
        colors = [plots.PALETTE[1] if _gap_excludes_zero(r) else plots.PALETTE[0] for r in rows]

        def draw(fig: Any) -> None:
            ax = fig.subplots()
            plots.plot_forest(
                names,
                [r["macro_auroc"] for r in rows],
                [r["ci_low"] for r in rows],
                [r["ci_high"] for r in rows],
                ax=ax,
                reference=m.get("overall_macro_auroc"),
                xlabel="macro AUROC (95% CI)",
                colors=colors,
            )

        blocks.append(
            Figure(
                render_png(draw, size=(6.5, 1.0 + 0.38 * len(rows))),
                caption="Macro AUROC per group; dashed: the whole test set; orange: the gap to the rest excludes 0.",
                alt="Forest plot of macro AUROC by sex and age band",
                width=0.85,
            )
        )
        blocks.append(
            Table(
                (
                    "group",
                    "records",
                    "patients",
                    "labels",
                    "macro AUROC (95% CI)",
                    "gap to the rest (95% CI)",
                ),
                tuple(
                    (
                        describe(r),
                        fmt(r["n_records"]),
                        fmt(r["n_patients"]),
                        fmt(r["n_labels"]),
                        fmt_ci(r.get("macro_auroc"), r.get("ci_low"), r.get("ci_high")),
                        fmt_ci(r.get("gap"), r.get("gap_ci_low"), r.get("gap_ci_high")),
                    )
                    for r in rows
                ),
            )
        )
    blocks += [Note(n) for n in res.notes]
    return blocks


@finding("subgroup_gaps", kinds=("subgroups",), order=70)
def rule_gaps(report: Report) -> Iterator[Finding]:
    res = report.get("subgroups")
    assert res is not None
    rows = [r for r in res.tables.get("groups", []) if r.get("gap") is not None]
    if not rows:
        return
    flagged = [r for r in rows if _gap_excludes_zero(r)]
    for r in flagged:
        side = "lower" if r["gap"] < 0 else "higher"
        yield Finding(
            f"AUROC is {side} for {describe(r)} ({fmt(r['macro_auroc'])}) than for the rest of the test set: gap "
            f"{fmt_ci(r['gap'], r['gap_ci_low'], r['gap_ci_high'])}.",
            "bad" if r["gap"] < 0 else "info",
            "subgroup_gaps",
            "subgroups.tables.groups",
        )
    if not flagged:
        yield Finding(
            f"No subgroup gap: for all {len(rows)} groups (sex, age bands) the interval of the gap to the rest includes 0.",
            "good",
            "subgroup_gaps",
            "subgroups.tables.groups",
        )
