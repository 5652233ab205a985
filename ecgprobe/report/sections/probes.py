"""Accuracy and calibration: the linear and kNN probes (``linear_probe``, ``knn_probe``), their
sections and summary rules (cells in :mod:`.probe_rows`, tables and figures in :mod:`.probe_blocks`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ecgprobe.analyzers.base import Result
from ecgprobe.report import plots
from ecgprobe.report.base import Finding, finding, result_finding, section
from ecgprobe.report.blocks import Block, Figure, Note, Paragraph, fmt
from ecgprobe.report.claims import enough, n_phrase, side
from ecgprobe.report.document import Report
from ecgprobe.report.figures import render_png
from ecgprobe.report.glossary import explain
from ecgprobe.report.sections import probe_blocks as pb
from ecgprobe.report.sections.probe_rows import (
    FLAG,
    NAMES,
    PROBES,
    ci,
    evaluated_rows,
    flag_legend,
    flagged,
    headline_kind,
    label_cell,
    row_ci,
)

#: Calibration rule thresholds (macro expected calibration error).
ECE_GOOD, ECE_BAD = 0.05, 0.10
#: Per-label claim thresholds: a strength needs the whole AUROC interval above AUROC_STRONG, a
#: weakness below AUROC_WEAK, and at least MIN_POSITIVES positive test records (patients where stored).
AUROC_STRONG, AUROC_WEAK, MIN_POSITIVES = 0.90, 0.70, 10


@section(
    "accuracy",
    title="Accuracy",
    order=20,
    kinds=PROBES,
    lead="How well can the labels be read out of the frozen embeddings, linearly and by nearest neighbours?",
)
def render_accuracy(report: Report) -> list[Block]:
    ref = report.get("linear_probe") or report.get("knn_probe")
    assert ref is not None  # the section only runs when a probe result exists
    if ref.metrics.get("task") == "regression":
        blocks: list[Block] = []
        for kind in PROBES:
            res = report.get(kind)
            if res is not None:
                blocks += pb.regression_tables(res)
        return blocks
    blocks = [Paragraph(pb.protocol(report)), pb.headline_table(report), pb.auroc_figure(report)]
    roc = pb.roc_figure(report, ref)
    if roc is not None:
        blocks.append(roc)
    blocks.append(pb.label_table(report))
    blocks.append(explain("auroc", "auprc", "f1"))
    legend = flag_legend(ref)
    if legend is not None:
        blocks.append(legend)
    for kind in PROBES:
        res = report.get(kind)
        if res is None:
            continue
        skipped = {**res.metrics.get("labels_skipped", {}), **res.metrics.get("labels_not_evaluated", {})}
        if skipped:
            blocks.append(
                Note(f"{NAMES[kind]}: not evaluated — " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
            )
        blocks += [Note(f"{NAMES[kind]}: {n}") for n in res.notes]
    return blocks


@section(
    "calibration",
    title="Calibration",
    order=30,
    kinds=PROBES,
    lead="Do the probes' predicted probabilities match how often the labels occur?",
)
def render_calibration(report: Report) -> list[Block] | None:
    probes = [r for r in (report.get(k) for k in PROBES) if r is not None and r.tables.get("reliability")]
    if not probes:
        return None

    def draw(fig: Any) -> None:
        ax = fig.subplots()
        for i, res in enumerate(probes):
            plots.plot_reliability(res, ax=ax, color=plots.PALETTE[i], label=NAMES[res.kind], diagonal=i == 0)

    m0 = probes[0].metrics
    blocks: list[Block] = [
        Paragraph(
            f"Predicted probabilities of every evaluated label and test record are pooled into {fmt(m0.get('ece_bins'))} "
            "equal-width bins; a calibrated probe lies on the diagonal. The expected calibration error (ECE) is the "
            "count-weighted mean gap between predicted and observed frequency, per label, averaged over the headline "
            "labels, with a patient-bootstrap interval (ECE is biased upwards when bins hold few records; the basic "
            "interval corrects for that and can lie below the estimate)."
        ),
        Figure(
            render_png(draw, size=(5.0, 5.0)),
            caption="Reliability diagram pooled over labels (bars: records per bin, log scale).",
            alt="Reliability diagram: observed frequency against mean predicted probability.",
            width=0.6,
        ),
    ]
    blocks.append(pb.calibration_table(probes))
    blocks.append(explain("ece", "brier"))
    return blocks


# ----------------------------------------------------------------------------- summary rules
@result_finding("probe_macro", kind="linear_probe", order=20)
def rule_macro(report: Report, res: Result) -> Iterator[Finding]:
    m = res.metrics
    if m.get("task") == "regression":
        yield Finding(
            f"The linear probe predicts {', '.join(m.get('labels_fitted', []))} with MAE {ci(m, 'mae', 2)}.",
            "info",
            "probe_macro",
            "linear_probe.metrics.mae",
        )
        return
    raw = ""
    if m.get("labels_flagged") and m.get("headline_basis") != "all_evaluated" and "macro_auroc_all" in m:
        raw = f" (over all {m.get('n_labels_evaluated')} evaluated labels, {FLAG} included: {ci(m, 'macro_auroc_all')})"
    yield Finding(
        f"The linear probe reaches a macro AUROC of {ci(m, 'macro_auroc')} over {headline_kind(m)} "
        f"on {fmt(m.get('n_test'))} test records{raw}.",
        "info",
        "probe_macro",
        "linear_probe.metrics.macro_auroc",
    )


def _names(rows: list[dict[str, Any]], limit: int = 8) -> str:
    shown = ", ".join(
        f"{label_cell(r)} ({row_ci(r, 'auroc')}, {fmt(r.get('n_test_pos_patients', r.get('n_test_pos')))} positives)"
        for r in rows[:limit]
    )
    return shown + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def _count(n: int, one: str = "is", many: str = "are") -> str:
    """``"1 label is"`` / ``"3 labels are"``."""
    return f"{n} label {one}" if n == 1 else f"{n} labels {many}"


def _few_positives(r: dict[str, Any]) -> bool:
    """A label with too few test patients for a claim (the probe's own flag where stored)."""
    if "flagged" in r:
        return flagged(r)
    n = r.get("n_test_pos_patients", r.get("n_test_pos"))
    return n is None or n < MIN_POSITIVES


@result_finding("probe_best_worst", kind="linear_probe", order=21)
def rule_best_worst(report: Report, res: Result) -> Iterator[Finding]:
    """Strengths/weaknesses per label need the whole AUROC interval above :data:`AUROC_STRONG`
    (below :data:`AUROC_WEAK`) and enough positives; the ranking itself is descriptive."""
    every = sorted(evaluated_rows(res), key=lambda r: -r["auroc"])
    reliable = [r for r in every if not flagged(r)]  # a flagged label's ranking is mostly noise
    rows = reliable if len(reliable) >= 2 else every
    if len(rows) < 2:
        return
    src = "linear_probe.tables.per_label"
    k = min(3, len(rows) // 2)
    yield Finding(
        f"Ranked by point estimate (descriptive), the best-predicted labels are {_names(rows[:k])}; "
        f"the weakest {_names(rows[::-1][:k])}.",
        "info",
        "probe_best_worst",
        src,
    )
    enough_rows = [r for r in rows if not _few_positives(r)]
    strong = [
        r
        for r in enough_rows
        if side(r.get("auroc_ci_low"), r.get("auroc_ci_high"), threshold=AUROC_STRONG) == "above"
    ]
    weak = [
        r
        for r in enough_rows
        if side(r.get("auroc_ci_low"), r.get("auroc_ci_high"), threshold=AUROC_WEAK) == "below"
    ]
    if strong:
        yield Finding(
            f"{_count(len(strong))} predicted well (whole AUROC interval above {AUROC_STRONG}): {_names(strong)}.",
            "good",
            "probe_best_worst",
            src,
        )
    if weak:
        yield Finding(
            f"{_count(len(weak))} predicted poorly (whole AUROC interval below {AUROC_WEAK}): {_names(weak)}.",
            "bad",
            "probe_best_worst",
            src,
        )
    few = [r for r in every if _few_positives(r)]
    if few:
        yield Finding(
            f"{_count(len(few), 'has', 'have')} too few positive or negative test patients for a claim (marked {FLAG}): {_names(few)}.",
            "inconclusive",
            "probe_best_worst",
            src,
        )


@result_finding("probe_chance", kind="linear_probe", order=22)
def rule_chance(report: Report, res: Result) -> Iterator[Finding]:
    """Above chance is a strength only when every interval excludes 0.5; an interval that
    includes 0.5 cannot tell the label from chance at this n (inconclusive, not a weakness)."""
    rows = evaluated_rows(res)
    if not rows:
        return
    src = "linear_probe.tables.per_label"
    near = [
        r
        for r in rows
        if side(r.get("auroc_ci_low"), r.get("auroc_ci_high"), threshold=0.5) == "inconclusive"
    ]
    below = [r for r in rows if side(r.get("auroc_ci_low"), r.get("auroc_ci_high"), threshold=0.5) == "below"]
    n = res.metrics.get("n_test_patients")
    if near:
        yield Finding(
            f"{len(near)} of {len(rows)} labels cannot be told from chance at this n (their AUROC interval includes 0.5; "
            f"{n_phrase(n)}): {_names(near, 10)}.",
            "inconclusive",
            "probe_chance",
            src,
        )
    if below:
        yield Finding(
            f"{_count(len(below))} predicted below chance (whole interval under 0.5): {_names(below)}.",
            "bad",
            "probe_chance",
            src,
        )
    if not near and not below:
        yield Finding(
            f"All {len(rows)} evaluated labels are predicted above chance (every AUROC interval excludes 0.5; {n_phrase(n)}).",
            "good" if enough(n) else "inconclusive",
            "probe_chance",
            src,
        )


@finding("knn_vs_linear", kinds=("linear_probe", "knn_probe"), order=23)
def rule_knn(report: Report) -> Iterator[Finding]:
    lp, kp = report.require("linear_probe"), report.require("knn_probe")
    if lp.metrics.get("task") == "regression":
        return
    yield Finding(
        f"Nearest neighbours (k = {fmt(kp.metrics.get('k'))}) reach a macro AUROC of {ci(kp.metrics, 'macro_auroc')}, "
        f"the linear probe {ci(lp.metrics, 'macro_auroc')}.",
        "info",
        "knn_vs_linear",
        "knn_probe.metrics.macro_auroc",
    )


@result_finding("calibration", kind="linear_probe", order=30)
def rule_calibration(report: Report, res: Result) -> Iterator[Finding]:
    """Calibration is a strength/weakness only when the ECE interval lies wholly below
    :data:`ECE_GOOD` / above :data:`ECE_BAD`; without an interval the value is descriptive."""
    m = res.metrics
    ece = m.get("macro_ece")
    if ece is None:
        return
    lo, hi = (m.get("macro_ece_ci") or [None, None])[:2]
    text = ci(m, "macro_ece")
    why = ""
    if hi is not None and ece > hi:  # the basic bootstrap's bias correction moved it (see bootstrap.py)
        why = (
            " The ECE interval is the bias-corrected (basic) bootstrap's: it lies below the estimate because "
            "ECE is biased upwards in small samples."
        )
    if lo is None or hi is None:
        sentence, tone = (
            f"The linear probe's macro ECE is {fmt(ece)} (descriptive: no interval stored).",
            "info",
        )
    elif side(lo, hi, threshold=ECE_GOOD) == "below":
        sentence, tone = (
            f"The linear probe is well calibrated (macro ECE {text}, wholly below {ECE_GOOD}).",
            "good",
        )
    elif side(lo, hi, threshold=ECE_BAD) == "above":
        sentence, tone = (
            f"The linear probe is poorly calibrated (macro ECE {text}, wholly above {ECE_BAD}).",
            "bad",
        )
    else:
        sentence, tone = (
            f"The linear probe's calibration is not decided at this n: macro ECE {text} spans the {ECE_GOOD}–{ECE_BAD} "
            f"thresholds ({n_phrase(m.get('n_test_patients'))}).",
            "inconclusive",
        )
    yield Finding(sentence + why, tone, "calibration", "linear_probe.metrics.macro_ece")
