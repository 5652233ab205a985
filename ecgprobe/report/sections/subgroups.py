"""Subgroup gaps: AUROC by sex, age band and site, each compared with the rest of the test set."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ecgprobe.analyzers.base import Result
from ecgprobe.report import plots
from ecgprobe.report.base import Finding, result_finding, result_section
from ecgprobe.report.blocks import Block, Figure, Note, Paragraph, Table, fmt, fmt_ci
from ecgprobe.report.claims import (
    EQUIVALENCE_MARGIN,
    MIN_PATIENTS,
    ci_label,
    enough,
    equivalent,
    level_of,
    n_phrase,
    side,
)
from ecgprobe.report.document import Report
from ecgprobe.report.figures import render_png
from ecgprobe.report.glossary import explain


@result_section(
    "subgroups",
    kind="subgroups",
    title="Subgroup gaps",
    order=70,
    lead="Does the probe work equally well for women and men, young and old, at every site?",
)
def render(report: Report, res: Result) -> list[Block]:
    rows = res.tables.get("groups", [])
    m = res.metrics
    cil = ci_label(level_of(m, res.params))
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
        colors = [
            plots.PALETTE[1]
            if side(r.get("gap_ci_low"), r.get("gap_ci_high"), threshold=0.0) != "inconclusive"
            else plots.PALETTE[0]
            for r in rows
        ]

        def draw(fig: Any) -> None:
            ax = fig.subplots()
            plots.plot_forest(
                names,
                [r["macro_auroc"] for r in rows],
                [r["ci_low"] for r in rows],
                [r["ci_high"] for r in rows],
                ax=ax,
                reference=m.get("overall_macro_auroc"),
                xlabel=f"macro AUROC ({cil})",
                colors=colors,
            )

        blocks.append(
            Figure(
                render_png(draw, size=(6.5, 1.0 + 0.38 * len(rows))),
                caption="Macro AUROC per group; dashed: the whole test set; orange: the gap to the rest excludes 0.",
                alt="Forest plot of macro AUROC by group (sex, age band, site)",
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
                    f"macro AUROC ({cil})",
                    f"gap to the rest ({cil})",
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
    blocks.append(explain("gap"))
    blocks += [Note(n) for n in res.notes]
    return blocks


@result_finding("subgroup_gaps", kind="subgroups", order=70)
def rule_gaps(report: Report, res: Result) -> Iterator[Finding]:
    """A gap is claimed only with a decisive interval on enough patients; "no gap" only as
    equivalence within the margin; everything else is inconclusive, with the interval and n."""
    rows = [r for r in res.tables.get("groups", []) if r.get("gap") is not None]
    if not rows:
        return
    src = "subgroups.tables.groups"

    def where(r: dict[str, Any]) -> str:
        return f"{describe(r)}: {fmt_ci(r['gap'], r.get('gap_ci_low'), r.get('gap_ci_high'))} ({n_phrase(r.get('n_patients'))})"

    decided, unsure = [], []
    for r in rows:
        lies = side(r.get("gap_ci_low"), r.get("gap_ci_high"), threshold=0.0)
        (decided if lies != "inconclusive" and enough(r.get("n_patients")) else unsure).append(r)
    for r in decided:
        lower = r["gap"] < 0
        yield Finding(
            f"AUROC is {'lower' if lower else 'higher'} for {describe(r)} ({fmt(r['macro_auroc'])}) than for the rest "
            f"of the test set: gap {fmt_ci(r['gap'], r['gap_ci_low'], r['gap_ci_high'])}, {n_phrase(r.get('n_patients'))}.",
            "bad" if lower else "info",
            "subgroup_gaps",
            src,
        )
    same = [
        r
        for r in unsure
        if equivalent(r.get("gap_ci_low"), r.get("gap_ci_high")) and enough(r.get("n_patients"))
    ]
    if same:
        yield Finding(
            f"No subgroup gap beyond ±{EQUIVALENCE_MARGIN} AUROC (the whole interval inside the margin) for "
            + "; ".join(where(r) for r in same)
            + ".",
            "good",
            "subgroup_gaps",
            src,
        )
    rest = [r for r in unsure if r not in same]
    if rest:
        yield Finding(
            f"Subgroup gaps not decided at this sample size (interval includes 0 or reaches beyond ±{EQUIVALENCE_MARGIN}, "
            f"or fewer than {MIN_PATIENTS} patients): " + "; ".join(where(r) for r in rest) + ".",
            "inconclusive",
            "subgroup_gaps",
            src,
        )


def describe(row: dict[str, Any]) -> str:
    """``sex female`` / ``age 60–79``."""
    return f"age {row['group']}" if row["attribute"] == "age" else f"{row['attribute']} {row['group']}"
