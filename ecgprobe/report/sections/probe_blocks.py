"""The tables and figures of the accuracy and calibration sections (linear and kNN probes)."""

from __future__ import annotations

from typing import Any

from ecgprobe.analyzers.base import Result
from ecgprobe.report import plots
from ecgprobe.report.blocks import Block, Figure, Table, fmt
from ecgprobe.report.claims import ci_of
from ecgprobe.report.document import Report
from ecgprobe.report.figures import plot_figure, render_png
from ecgprobe.report.sections.probe_rows import (
    FLAG,
    NAMES,
    PROBES,
    ci,
    evaluated_rows,
    headline_kind,
    label_cell,
    row_ci,
)

#: ROC curves are drawn for this many of the most frequent test labels.
N_ROC_LABELS = 6


def protocol(report: Report) -> str:
    """What the probes are and how they were evaluated, in a paragraph."""
    parts = []
    lp, kp = report.get("linear_probe"), report.get("knn_probe")
    ref = lp or kp
    m = ref.metrics if ref else {}
    if lp:
        sel = (
            "per label"
            if lp.metrics.get("c_selection", lp.params.get("c_selection")) == "per_label"
            else "shared"
        )
        parts.append(
            f"Linear probe: one L2 logistic regression per label on standardised frozen embeddings, C chosen {sel} on the validation split."
        )
    if kp:
        parts.append(
            f"kNN probe: the share of the k nearest training records carrying each label "
            f"(k = {fmt(kp.metrics.get('k'))}, {kp.metrics.get('metric', kp.params.get('metric', ''))} similarity, chosen on validation)."
        )
    parts.append(
        f"Both are evaluated once on the test split ({fmt(m.get('n_test'))} records, {fmt(m.get('n_test_patients'))} patients); "
        f"intervals are {fmt(100 * float(m.get('ci_level', 0.95)), 0)}% "
        f"{'BCa' if m.get('ci_method') == 'bca' else 'percentile'} intervals over {fmt(m.get('n_resamples'))} "
        f"{m.get('bootstrap_unit', 'patient')}-level bootstrap resamples (ECE: the bias-correcting basic interval, "
        "approximate with few records)."
    )
    if m.get("min_positives") is not None:
        parts.append(
            f"Headline macro averages use {headline_kind(m)}; labels with fewer ({FLAG}) are listed, "
            "but their intervals undercover."
        )
    return " ".join(parts)


def headline_table(report: Report) -> Table:
    """The probes' macro averages, with the all-labels row where labels are flagged."""
    rows = []
    for kind in PROBES:
        res = report.get(kind)
        if res is None:
            continue
        m = res.metrics
        n_all = m.get("n_labels_evaluated", len(m.get("labels_evaluated", [])))
        fallback = m.get("headline_basis") == "all_evaluated"
        head = f"{NAMES[kind]} (all labels, descriptive)" if fallback else NAMES[kind]
        rows.append((head, *_macro_cells(m, ""), f"{m.get('n_labels_headline', n_all)} of {n_all}"))
        if m.get("labels_flagged") and not fallback and "macro_auroc_all" in m:
            rows.append((f"{NAMES[kind]}, all labels (incl. {FLAG})", *_macro_cells(m, "_all"), f"{n_all}"))
    return Table(
        ("probe", "macro AUROC", "macro AUPRC", "macro F1", "macro Brier", "macro ECE", "labels"),
        tuple(rows),
        caption=f"Macro averages over the labels evaluated on test ({ci_of(report.get('linear_probe') or report.get('knn_probe'))})",
    )


def _macro_cells(m: dict[str, Any], suffix: str) -> tuple[str, ...]:
    keys = ("macro_auroc", "macro_auprc", "macro_f1", "macro_brier", "macro_ece")
    return tuple(ci(m, key + suffix) for key in keys)


def label_table(report: Report) -> Table:
    """Per-label metrics of both probes, by decreasing AUROC of the reference probe."""
    lp, kp = report.get("linear_probe"), report.get("knn_probe")
    ref = lp or kp
    knn = {r["label"]: r for r in (evaluated_rows(kp) if kp else [])}
    rows = []
    for r in sorted(evaluated_rows(ref), key=lambda r: -r["auroc"]):
        cells = [label_cell(r), fmt(r.get("n_test_pos")), fmt(r.get("n_test_pos_patients"))]
        if lp:
            cells += [row_ci(r, "auroc"), row_ci(r, "auprc"), row_ci(r, "f1")]
        if kp:
            k = knn.get(r["label"], {})
            cells.append(row_ci(k, "auroc") if k else "–")
        rows.append(tuple(cells))
    cols = ["label", "test positives", "positive patients"]
    if lp:
        cols += ["linear AUROC", "linear AUPRC", "linear F1"]
    if kp:
        cols.append("kNN AUROC")
    return Table(tuple(cols), tuple(rows), caption=f"Per label, by decreasing AUROC ({ci_of(ref)})")


def auroc_figure(report: Report) -> Figure:
    """The per-label AUROC dot plot of both probes."""
    lp, kp = report.get("linear_probe"), report.get("knn_probe")
    ref = lp or kp
    order = [r["label"] for r in sorted(evaluated_rows(ref), key=lambda r: -r["auroc"])]
    height = 1.2 + 0.2 * len(order)

    def draw(fig: Any) -> None:
        ax = fig.subplots()
        if lp:
            plots.plot_label_metric(
                lp,
                order=order,
                ax=ax,
                color=plots.PALETTE[0],
                offset=-0.15 if kp else 0.0,
                label="linear probe",
            )
        if kp:
            plots.plot_label_metric(
                kp, order=order, ax=ax, color=plots.PALETTE[1], offset=0.15 if lp else 0.0, label="kNN probe"
            )
        if lp and kp:
            fig.legend(loc="outside upper right", ncol=2)

    return Figure(
        render_png(draw, size=(7.0, height)),
        caption=f"Test AUROC per label with bootstrap intervals ({ci_of(ref)}); dashed line: chance (0.5).",
        alt=f"Dot plot of the test AUROC of {len(order)} labels with confidence whiskers.",
    )


def roc_figure(report: Report, res: Result) -> Figure | None:
    """ROC curves of the most frequent test labels (``None`` without stored curves)."""
    rows = sorted(evaluated_rows(res), key=lambda r: (-(r.get("n_test_pos") or 0), r["label"]))[:N_ROC_LABELS]
    if not rows or "roc_offsets" not in res.arrays:
        return None
    labels = [r["label"] for r in rows]
    return plot_figure(
        plots.plot_roc,
        res,
        labels=labels,
        size=(5.2, 5.0),
        caption=f"ROC curves of the {len(labels)} most frequent test labels ({NAMES[res.kind]}).",
        alt="ROC curves: " + ", ".join(labels),
        width=0.62,
    )


def regression_tables(res: Result) -> list[Block]:
    """The test error table of a regression probe."""
    rows = tuple(
        (r["target"], row_ci(r, "mae"), row_ci(r, "rmse"), row_ci(r, "r2"))
        for r in res.tables.get("per_target", [])
    )
    return [
        Table(("target", "MAE", "RMSE", "R²"), rows, caption=f"{NAMES[res.kind]}: test error ({ci_of(res)})")
    ]


def calibration_table(probes: list[Result]) -> Table:
    """Macro ECE and Brier score of each probe, with its three labels of largest ECE."""
    rows = []
    for res in probes:
        worst = sorted(evaluated_rows(res), key=lambda r: -(r.get("ece") or 0))[:3]
        rows.append(
            (
                NAMES[res.kind],
                ci(res.metrics, "macro_ece"),
                ci(res.metrics, "macro_brier"),
                ", ".join(f"{label_cell(r)} ({fmt(r.get('ece'))})" for r in worst),
            )
        )
    return Table(("probe", "macro ECE", f"macro Brier ({ci_of(probes[0])})", "largest ECE"), tuple(rows))
