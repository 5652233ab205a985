"""Repeated splits: how far the probe's number moves when other patients are in train and test."""

from __future__ import annotations

from ecgprobe.analyzers.base import Result
from ecgprobe.report.base import result_section
from ecgprobe.report.blocks import Block, Note, Paragraph, Table, fmt, fmt_ci
from ecgprobe.report.claims import ci_label, level_of
from ecgprobe.report.document import Report


@result_section(
    "repeated_splits",
    kind="repeated_splits",
    title="Repeated splits",
    order=22,
    lead="How much does the headline move when another fold is the test set?",
)
def render(report: Report, res: Result) -> list[Block]:
    m = res.metrics
    name = "macro AUROC" if m.get("metric") == "macro_auroc" else "R²"
    source = (
        "the dataset's own strat_fold"
        if m.get("folds_source") == "strat_fold"
        else "seeded patient-wise folds"
    )
    common = m.get("labels_common", [])
    cil = ci_label(level_of(m, res.params))
    rows = tuple(
        (
            fmt(r["test_fold"]),
            fmt(r["val_fold"]),
            fmt(r["n_train"]),
            fmt(r["n_test"]),
            fmt(r["value"]),
            fmt_ci(r["macro"], r["ci_low"], r["ci_high"]),
            fmt(r.get("n_labels_headline")),
        )
        for r in res.tables.get("folds", [])
    )
    lo, hi = m.get("reference_macro_ci") or (None, None)
    return [
        Paragraph(
            f"The linear probe on each of {fmt(m.get('n_rotations'))} rotations of {fmt(m.get('k'))} folds ({source}): "
            "each fold is the test set once, the fold before it chooses C, the rest trains. On the "
            f"{len(common)} labels evaluated in every rotation the {name} is {fmt(m.get('mean'))} ± "
            f"{fmt(m.get('sd'))} (mean ± sd, range {fmt(m.get('min'))}–{fmt(m.get('max'))}). The sd is a spread, "
            "not a confidence interval (rotations share training patients, so no unbiased variance estimate "
            f"exists); the interval is the reference rotation's (test fold {fmt(m.get('reference_fold'))}): "
            f"{fmt_ci(m.get('reference_macro'), lo, hi)} over {fmt(m.get('reference_n_labels_headline'))} "
            "headline labels."
        ),
        Table(
            (
                "test fold",
                "val fold",
                "train",
                "test",
                f"{name}, common labels",
                f"probe headline ({cil})",
                "labels",
            ),
            rows,
            caption=f"One row per rotation; the common labels: {', '.join(map(str, common))}.",
        ),
        *[Note(n) for n in res.notes],
    ]
