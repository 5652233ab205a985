"""Accuracy and calibration: the linear and kNN probes (``linear_probe``, ``knn_probe``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ecgprobe.analyzers.base import Result
from ecgprobe.report import plots
from ecgprobe.report.base import Finding, finding, section
from ecgprobe.report.blocks import Block, Figure, Note, Paragraph, Table, fmt, fmt_ci
from ecgprobe.report.claims import ci_of, enough, n_phrase, side
from ecgprobe.report.document import Report
from ecgprobe.report.figures import render_png
from ecgprobe.report.glossary import explain

PROBES = ("linear_probe", "knn_probe")
_NAMES = {"linear_probe": "linear probe", "knn_probe": "kNN probe"}
#: Calibration rule thresholds (macro expected calibration error).
ECE_GOOD, ECE_BAD = 0.05, 0.10
#: Per-label claim thresholds: a strength needs the whole AUROC interval above AUROC_STRONG, a
#: weakness below AUROC_WEAK, and at least MIN_POSITIVES positive test records (patients where stored).
AUROC_STRONG, AUROC_WEAK, MIN_POSITIVES = 0.90, 0.70, 10
N_ROC_LABELS = 6
#: Marks a label with too few positive (or negative) test patients for a reliable interval.
FLAG = "†"


def ci(metrics: dict[str, Any], key: str, digits: int = 3) -> str:
    """``metrics[key]`` with ``metrics[key + "_ci"]``, formatted."""
    lohi = metrics.get(f"{key}_ci") or [None, None]
    return fmt_ci(metrics.get(key), lohi[0], lohi[1], digits)


def row_ci(row: dict[str, Any], key: str, digits: int = 3) -> str:
    """A table row's ``key`` with ``key_ci_low``/``key_ci_high``, formatted."""
    return fmt_ci(row.get(key), row.get(f"{key}_ci_low"), row.get(f"{key}_ci_high"), digits)


def evaluated_rows(result: Result) -> list[dict[str, Any]]:
    """Per-label rows of the labels evaluated on test (both classes present)."""
    return [
        r for r in result.tables.get("per_label", []) if r.get("evaluated") and r.get("auroc") is not None
    ]


def flagged(row: dict[str, Any]) -> bool:
    """Whether a label has too few test patients for the headline (False in older results)."""
    return bool(row.get("flagged", False))


def label_cell(row: dict[str, Any]) -> str:
    """The label's name, with :data:`FLAG` when it is flagged."""
    return f"{row['label']} {FLAG}" if flagged(row) else str(row["label"])


def headline_kind(m: dict[str, Any]) -> str:
    """What the headline macros average, in words (results without the fields: every label)."""
    n_all = m.get("n_labels_evaluated", len(m.get("labels_evaluated", [])))
    n_head = m.get("n_labels_headline", n_all)
    k = m.get("min_positives")
    if k is None:
        return f"{n_all} labels"
    if m.get("headline_basis") == "all_evaluated":
        return f"all {n_all} labels (descriptive: none has {k} positive and {k} negative test patients)"
    return f"{n_head} labels with at least {k} positive and {k} negative test patients"


def flag_legend(res: Result) -> Note | None:
    """The note explaining :data:`FLAG`, when some label of ``res`` carries it."""
    rows = [r for r in evaluated_rows(res) if flagged(r)]
    if not rows:
        return None
    k = res.metrics.get("min_positives")
    return Note(
        f"{FLAG} fewer than {k} positive (or negative) test patients: shown, but left out of the headline "
        f"macro averages, and its interval undercovers (a coverage simulation in benchmarks/coverage_auroc.py): "
        + ", ".join(f"{r['label']} ({fmt(r.get('n_test_pos_patients'))})" for r in rows)
        + "."
    )


def _protocol(report: Report) -> str:
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


def _headline(report: Report) -> Table:
    rows = []
    for kind in PROBES:
        res = report.get(kind)
        if res is None:
            continue
        m = res.metrics
        n_all = m.get("n_labels_evaluated", len(m.get("labels_evaluated", [])))
        fallback = m.get("headline_basis") == "all_evaluated"
        head = f"{_NAMES[kind]} (all labels, descriptive)" if fallback else _NAMES[kind]
        rows.append((head, *_macro_cells(m, ""), f"{m.get('n_labels_headline', n_all)} of {n_all}"))
        if m.get("labels_flagged") and not fallback and "macro_auroc_all" in m:
            rows.append((f"{_NAMES[kind]}, all labels (incl. {FLAG})", *_macro_cells(m, "_all"), f"{n_all}"))
    return Table(
        ("probe", "macro AUROC", "macro AUPRC", "macro F1", "macro Brier", "macro ECE", "labels"),
        tuple(rows),
        caption=f"Macro averages over the labels evaluated on test ({ci_of(report.get('linear_probe') or report.get('knn_probe'))})",
    )


def _macro_cells(m: dict[str, Any], suffix: str) -> tuple[str, ...]:
    keys = ("macro_auroc", "macro_auprc", "macro_f1", "macro_brier", "macro_ece")
    return tuple(ci(m, key + suffix) for key in keys)


def _label_table(report: Report) -> Table:
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


def _auroc_figure(report: Report) -> Figure:
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


def _roc_figure(report: Report, res: Result) -> Figure | None:
    rows = sorted(evaluated_rows(res), key=lambda r: (-(r.get("n_test_pos") or 0), r["label"]))[:N_ROC_LABELS]
    if not rows or "roc_offsets" not in res.arrays:
        return None
    labels = [r["label"] for r in rows]
    png = render_png(lambda fig: plots.plot_roc(res, labels=labels, ax=fig.subplots()), size=(5.2, 5.0))
    return Figure(
        png,
        caption=f"ROC curves of the {len(labels)} most frequent test labels ({_NAMES[res.kind]}).",
        alt="ROC curves: " + ", ".join(labels),
        width=0.62,
    )


def _regression(res: Result) -> list[Block]:
    rows = tuple(
        (r["target"], row_ci(r, "mae"), row_ci(r, "rmse"), row_ci(r, "r2"))
        for r in res.tables.get("per_target", [])
    )
    return [
        Table(("target", "MAE", "RMSE", "R²"), rows, caption=f"{_NAMES[res.kind]}: test error ({ci_of(res)})")
    ]


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
                blocks += _regression(res)
        return blocks
    blocks = [Paragraph(_protocol(report)), _headline(report), _auroc_figure(report)]
    roc = _roc_figure(report, ref)
    if roc is not None:
        blocks.append(roc)
    blocks.append(_label_table(report))
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
                Note(f"{_NAMES[kind]}: not evaluated — " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
            )
        blocks += [Note(f"{_NAMES[kind]}: {n}") for n in res.notes]
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
            plots.plot_reliability(
                res, ax=ax, color=plots.PALETTE[i], label=_NAMES[res.kind], diagonal=i == 0
            )

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
    rows = []
    for res in probes:
        worst = sorted(evaluated_rows(res), key=lambda r: -(r.get("ece") or 0))[:3]
        rows.append(
            (
                _NAMES[res.kind],
                ci(res.metrics, "macro_ece"),
                ci(res.metrics, "macro_brier"),
                ", ".join(f"{label_cell(r)} ({fmt(r.get('ece'))})" for r in worst),
            )
        )
    blocks.append(
        Table(("probe", "macro ECE", f"macro Brier ({ci_of(probes[0])})", "largest ECE"), tuple(rows))
    )
    blocks.append(explain("ece", "brier"))
    return blocks


# ----------------------------------------------------------------------------- summary rules
def _lp(report: Report) -> Result:
    res = report.get("linear_probe")
    assert res is not None
    return res


@finding("probe_macro", kinds=("linear_probe",), order=20)
def rule_macro(report: Report) -> Iterator[Finding]:
    res = _lp(report)
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


@finding("probe_best_worst", kinds=("linear_probe",), order=21)
def rule_best_worst(report: Report) -> Iterator[Finding]:
    """Strengths/weaknesses per label need the whole AUROC interval above :data:`AUROC_STRONG`
    (below :data:`AUROC_WEAK`) and enough positives; the ranking itself is descriptive."""
    every = sorted(evaluated_rows(_lp(report)), key=lambda r: -r["auroc"])
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


@finding("probe_chance", kinds=("linear_probe",), order=22)
def rule_chance(report: Report) -> Iterator[Finding]:
    """Above chance is a strength only when every interval excludes 0.5; an interval that
    includes 0.5 cannot tell the label from chance at this n (inconclusive, not a weakness)."""
    res = _lp(report)
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
    lp, kp = _lp(report), report.get("knn_probe")
    assert kp is not None
    if lp.metrics.get("task") == "regression":
        return
    yield Finding(
        f"Nearest neighbours (k = {fmt(kp.metrics.get('k'))}) reach a macro AUROC of {ci(kp.metrics, 'macro_auroc')}, "
        f"the linear probe {ci(lp.metrics, 'macro_auroc')}.",
        "info",
        "knn_vs_linear",
        "knn_probe.metrics.macro_auroc",
    )


@finding("calibration", kinds=("linear_probe",), order=30)
def rule_calibration(report: Report) -> Iterator[Finding]:
    """Calibration is a strength/weakness only when the ECE interval lies wholly below
    :data:`ECE_GOOD` / above :data:`ECE_BAD`; without an interval the value is descriptive."""
    m = _lp(report).metrics
    ece = m.get("macro_ece")
    if ece is None:
        return
    src = "linear_probe.metrics.macro_ece"
    lo, hi = (m.get("macro_ece_ci") or [None, None])[:2]
    if lo is None or hi is None:
        yield Finding(
            f"The linear probe's macro ECE is {fmt(ece)} (descriptive: no interval stored).",
            "info",
            "calibration",
            src,
        )
        return
    text = ci(m, "macro_ece")
    if side(lo, hi, threshold=ECE_GOOD) == "below":
        yield Finding(
            f"The linear probe is well calibrated (macro ECE {text}, wholly below {ECE_GOOD}).",
            "good",
            "calibration",
            src,
        )
    elif side(lo, hi, threshold=ECE_BAD) == "above":
        yield Finding(
            f"The linear probe is poorly calibrated (macro ECE {text}, wholly above {ECE_BAD}).",
            "bad",
            "calibration",
            src,
        )
    else:
        yield Finding(
            f"The linear probe's calibration is not decided at this n: macro ECE {text} spans the {ECE_GOOD}–{ECE_BAD} "
            f"thresholds ({n_phrase(m.get('n_test_patients'))}).",
            "inconclusive",
            "calibration",
            src,
        )
