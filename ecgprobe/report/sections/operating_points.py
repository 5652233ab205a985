"""Operating points: sensitivity, specificity, PPV and NPV per label, as a clinician reads them."""

from __future__ import annotations

from typing import Any

from ecgprobe.analyzers.base import Result
from ecgprobe.report.base import result_section
from ecgprobe.report.blocks import Block, Note, Paragraph, Table, fmt, fmt_ci, fmt_pct
from ecgprobe.report.claims import ci_of
from ecgprobe.report.document import Report


def _rate(r: dict[str, Any], key: str) -> str:
    return fmt_ci(r.get(key), r.get(f"{key}_ci_low"), r.get(f"{key}_ci_high"), digits=2)


@result_section(
    "operating_points",
    kind="operating_points",
    title="Operating points",
    order=25,
    lead="At a concrete threshold, how many cases does the probe catch and how many alarms are false?",
)
def render(report: Report, res: Result) -> list[Block]:
    m = res.metrics
    target = fmt_pct(m.get("sensitivity_target"))
    blocks: list[Block] = [
        Paragraph(
            f"Two thresholds per label, both chosen on the validation split and applied once to the "
            f"{fmt(m.get('n_test'))} test records ({fmt(m.get('n_test_patients'))} patients): the probe's own "
            f"(maximum validation F1) and the highest one keeping validation sensitivity at {target} or more. "
            f"Intervals: {fmt(m.get('n_resamples'))} {m.get('bootstrap_unit', 'patient')}-bootstrap resamples."
        )
    ]
    names = {"val_f1": "max F1 (val)"}
    rows = tuple(
        (
            r["label"],
            names.get(r["point"], f"sensitivity ≥ {target} (val)"),
            fmt(r.get("threshold")),
            f"{r['tp']}/{r['fp']}/{r['tn']}/{r['fn']}",
            fmt_pct(r.get("prevalence"), 1),
            _rate(r, "sensitivity"),
            _rate(r, "specificity"),
            _rate(r, "ppv"),
            _rate(r, "npv"),
        )
        for r in res.tables.get("per_label", [])
    )
    blocks.append(
        Table(
            (
                "label",
                "threshold from",
                "p ≥",
                "TP/FP/TN/FN",
                "prevalence",
                "sensitivity",
                "specificity",
                "PPV",
                "NPV",
            ),
            rows,
            caption=f"Test operating points per label ({ci_of(res)})",
        )
    )
    blocks.append(
        Note(
            "Sensitivity: share of test positives flagged; specificity: share of negatives not flagged; PPV: share "
            "of flagged records that are positive; NPV: share of unflagged records that are negative. PPV and NPV "
            "depend on the prevalence, so they do not carry over to a population with another prevalence."
        )
    )
    blocks += [Note(n) for n in res.notes]
    return blocks
