"""The attentive probe (``attentive_probe``): its accuracy beside the linear probe on the mean of
the same tokens, the paired difference per label, and the summary sentence that claims a gap
only on a decisive interval (:mod:`ecgprobe.report.claims`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ecgprobe.analyzers.base import Result
from ecgprobe.report.base import Finding, result_finding, result_section
from ecgprobe.report.blocks import Block, Note, Paragraph, Table, fmt, fmt_ci
from ecgprobe.report.claims import ci_of, enough, n_phrase, side
from ecgprobe.report.document import Report


def _ci(m: dict[str, Any], key: str) -> str:
    lo, hi = m.get(f"{key}_ci") or (None, None)
    return fmt_ci(m.get(key), lo, hi)


@result_section(
    "attentive_probe",
    kind="attentive_probe",
    title="Attentive probe",
    order=22,
    lead="Does attending over the encoder's tokens read out more than a linear probe of their mean?",
)
def render(report: Report, res: Result) -> list[Block]:
    m = res.metrics
    tokens = (
        f"{fmt(m.get('n_tokens'))} tokens of {fmt(m.get('token_dim'))} dimensions from layer "
        f"{m.get('token_layer')!s} (averaged along time to at most {fmt(m.get('max_tokens'))})"
        if m.get("sequence")
        else "one token per record (pooled embeddings: the attention has nothing to choose)"
    )
    blocks: list[Block] = [
        Paragraph(
            f"One learned query attends over {tokens}; one cross-attention block, LayerNorm and a linear "
            f"classifier are trained on the train split, the epoch chosen on validation macro AUROC "
            f"(epoch {fmt(m.get('best_epoch'))} of {fmt(m.get('epochs_run'))} run), and test evaluated once "
            f"({fmt(m.get('n_test'))} records, {fmt(m.get('n_test_patients'))} patients)."
        )
    ]
    rows = [("attentive probe", _ci(m, "macro_auroc"))]
    if "linear_macro_auroc" in m:
        rows.append(("linear probe on the mean tokens", _ci(m, "linear_macro_auroc")))
        rows.append(("difference (attentive - linear, paired)", _ci(m, "difference_vs_linear")))
    blocks.append(Table(("", "macro AUROC"), tuple(rows), caption=f"Test macro AUROC ({ci_of(res)})"))
    per = res.tables.get("vs_linear") or []
    if per:
        blocks.append(
            Table(
                ("label", "attentive", "linear", "difference"),
                tuple(
                    (
                        r["label"] + (" *" if r.get("flagged") else ""),
                        fmt(r.get("attentive")),
                        fmt(r.get("linear")),
                        fmt_ci(r.get("difference"), r.get("ci_low"), r.get("ci_high")),
                    )
                    for r in per
                ),
                caption=f"Test AUROC per label, paired difference ({ci_of(res)}); * few test positives",
            )
        )
    blocks += [Note(n) for n in res.notes]
    return blocks


@result_finding("attentive_vs_linear", kind="attentive_probe", order=24)
def rule_vs_linear(report: Report, res: Result) -> Iterator[Finding]:
    m = res.metrics
    if "difference_vs_linear" not in m:
        return
    lo, hi = m.get("difference_vs_linear_ci") or (None, None)
    where = side(lo, hi, threshold=0.0)
    n = m.get("n_test_patients")
    diff = _ci(m, "difference_vs_linear")
    if where == "inconclusive" or not enough(n):
        yield Finding(
            f"Attentive vs linear probe: inconclusive, macro AUROC difference {diff} ({n_phrase(n)}).",
            "inconclusive",
            "attentive_vs_linear",
            "attentive_probe.metrics.difference_vs_linear",
        )
        return
    better = "more" if where == "above" else "less"
    yield Finding(
        f"Attending over the tokens reads out {better} than a linear probe of their mean: macro AUROC "
        f"difference {diff} ({n_phrase(n)}).",
        "info",
        "attentive_vs_linear",
        "attentive_probe.metrics.difference_vs_linear",
    )
