"""Data scarcity: how the linear probe's AUROC grows with labelled training data (``scarcity``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ecgprobe.analyzers.base import Result
from ecgprobe.report import plots
from ecgprobe.report.base import Finding, result_finding, result_section
from ecgprobe.report.blocks import Block, Figure, KeyValues, Note, Paragraph, Table, fmt, fmt_ci, fmt_pct
from ecgprobe.report.claims import ci_of
from ecgprobe.report.document import Report
from ecgprobe.report.figures import plot_figure
from ecgprobe.report.sections.probe_rows import FLAG

#: Label-efficiency rule thresholds: share of the train split needed for 95% of the full AUROC.
EFFICIENT, INEFFICIENT = 0.10, 0.50


def x_label(res: Result, x: float | None) -> str:
    """A grid value as the reader knows it: ``10%`` of the train split, or ``50 / label``."""
    if x is None:
        return "not reached"
    return (
        fmt_pct(x, 1 if x < 0.1 else 0)
        if res.metrics.get("mode", "fraction") == "fraction"
        else f"{x:.0f} per label"
    )


def efficiency(res: Result) -> tuple[float | None, float | None]:
    """(x needed for 95% of the full macro AUROC, the same above chance)."""
    m = res.metrics
    if m.get("mode", "fraction") == "fraction":
        return m.get("fraction_for_95pct"), m.get("fraction_for_95pct_above_chance")
    return m.get("samples_for_95pct"), m.get("samples_for_95pct_above_chance")


def curve_table(res: Result, caption: str = "") -> Table:
    """The curve: x, training records, macro AUROC (seed mean, sd, CI), the labels it averages,
    and the raw macro over whatever labels each subset could fit."""
    rows = tuple(
        (
            x_label(res, r["x"]),
            fmt(r.get("n_train_mean"), 0),
            fmt_ci(r.get("macro_auroc_mean"), r.get("macro_auroc_ci_low"), r.get("macro_auroc_ci_high")),
            fmt(r.get("macro_auroc_sd")),
            fmt(r.get("n_labels", r.get("n_labels_min"))),
            fmt(r.get("macro_auroc_all_mean")),
            fmt(r.get("n_labels_min")),
        )
        for r in res.tables.get("curve", [])
    )
    return Table(
        (
            "training data",
            "records (mean)",
            f"macro AUROC ({ci_of(res)})",
            "sd over seeds",
            "labels",
            "raw macro (labels fitted there)",
            "fitted (min)",
        ),
        rows,
        caption=caption,
    )


def headline_text(res: Result) -> str:
    """Which labels the curve's macro averages, in words (older results: not recorded)."""
    m = res.metrics
    basis, labels = m.get("headline_basis"), m.get("labels_headline")
    if basis is None or labels is None:
        return "not recorded (result saved before the like-with-like rule)"
    if basis == "varying":
        return "different labels at each point (no label is fitted in every subset: descriptive)"
    text = f"{len(labels)}, the same at every point: {', '.join(labels)}"
    return text + (" (all flagged: descriptive)" if basis == "all_evaluated" else "")


def label_table(res: Result) -> Table | None:
    """Per label: positive test patients, flag, whether the headline averages it, full-data AUROC."""
    m = res.metrics
    full = max((r["x"] for r in res.tables.get("per_label", [])), default=None)
    rows = tuple(
        (
            f"{r['label']} {FLAG}" if r.get("flagged") else str(r["label"]),
            fmt(r.get("n_test_pos_patients")),
            fmt(r.get("in_headline")),
            fmt_ci(r.get("auroc_mean"), r.get("auroc_ci_low"), r.get("auroc_ci_high")),
        )
        for r in res.tables.get("per_label", [])
        if r["x"] == full and "in_headline" in r
    )
    if not rows:
        return None
    return Table(
        ("label", "positive test patients", "in the macro", "AUROC with all training data"),
        rows,
        caption=f"Labels ({FLAG}: fewer than {m.get('min_positives')} positive or negative test patients)",
    )


def efficiency_rows(res: Result) -> list[tuple[str, str]]:
    """The label-efficiency summary of one curve."""
    m = res.metrics
    x95, x95c = efficiency(res)
    return [
        ("macro AUROC with all training data", fmt(m.get("full_macro_auroc"))),
        (
            "data for 95% of it",
            x_label(res, x95) + (" (the smallest grid value)" if m.get("reached_at_smallest") else ""),
        ),
        ("data for 95% of it above chance", x_label(res, x95c)),
        ("normalised area under the curve", fmt(m.get("normalised_auc"))),
        ("  … above chance", fmt(m.get("normalised_auc_above_chance"))),
        ("seeds × grid", f"{fmt(m.get('n_seeds'))} × {len(m.get('grid', []))}"),
        ("labels in the macro", headline_text(res)),
        ("  … raw macro with all data (every fitted label)", fmt(m.get("full_macro_auroc_all"))),
    ]


@result_section(
    "scarcity",
    kind="scarcity",
    title="Data scarcity",
    order=40,
    lead="How much labelled data does the encoder need? The linear probe refitted on nested subsets of the training split.",
)
def render(report: Report, res: Result) -> list[Block]:
    blocks: list[Block] = [
        Paragraph(
            "For each seed, nested patient-wise stratified subsets of the training split are drawn; the linear probe is "
            "refitted on each (C chosen on the full validation split) and evaluated on the fixed test split. The band is "
            "a two-stage bootstrap over test patients and seeds. 95% of the full-data AUROC is interpolated in log scale."
        ),
        plot_figure(
            plots.plot_scarcity,
            res,
            size=(6.5, 3.8),
            caption=f"Test macro AUROC against the training data used (mean over seeds, {band(res)}).",
            alt="Line chart of macro AUROC against the share of training data.",
        ),
        KeyValues(tuple(efficiency_rows(res)), caption="Label efficiency"),
        curve_table(res, "The curve"),
    ]
    labels = label_table(res)
    if labels is not None:
        blocks.append(labels)
    blocks += [Note(n) for n in res.notes]
    return blocks


@result_finding("label_efficiency", kind="scarcity", order=40)
def rule_efficiency(report: Report, res: Result) -> Iterator[Finding]:
    yield from efficiency_findings(res, "")


def efficiency_findings(res: Result, who: str) -> Iterator[Finding]:
    """One sentence on label efficiency (``who``: an encoder name, or empty for the report's model)."""
    x95, _ = efficiency(res)
    subject = f"{who}: the" if who else "The"
    full = fmt(res.metrics.get("full_macro_auroc"))
    src = "scarcity.metrics." + (
        "fraction_for_95pct" if res.metrics.get("mode", "fraction") == "fraction" else "samples_for_95pct"
    )
    if x95 is None:
        yield Finding(
            f"{subject} probe does not reach 95% of its full-data macro AUROC ({full}) on any smaller training set.",
            "info",
            "label_efficiency",
            src,
        )
        return
    text = f"{subject} probe reaches 95% of its full-data macro AUROC ({full}) with {x_label(res, x95)} of the training data"
    # the crossing point is read off the mean curve and carries no interval of its own, so it
    # is reported as a description, never claimed as a strength or weakness
    if res.metrics.get("mode", "fraction") == "fraction" and x95 <= EFFICIENT:
        text += " (label-efficient by the mean curve; descriptive, no interval on the crossing point)"
    elif res.metrics.get("mode", "fraction") == "fraction" and x95 > INEFFICIENT:
        text += (
            " (it needs most of the labels by the mean curve; descriptive, no interval on the crossing point)"
        )
    if res.metrics.get("headline_basis") == "varying":
        text += "; no label is fitted in every subset, so the points average different labels"
    yield Finding(text + ".", "info", "label_efficiency", src)


def band(res: Result | None) -> str:
    """``"95% band"``, at the level the curve was computed at."""
    return ci_of(res).replace("CI", "band")


def overlay_figure(results: Mapping[str, Any], caption: str) -> Figure:
    """Curves of several encoders on one chart."""
    return plot_figure(
        plots.plot_scarcity,
        results,
        size=(6.5, 4.0),
        caption=caption,
        alt="Overlaid data-scarcity curves of " + ", ".join(results),
    )
