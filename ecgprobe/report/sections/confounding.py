"""Confounding by recording site: pooled vs within-site AUROC per label, the site alone, and how
well the embedding predicts the site; and the summary rule that says which labels are confounded."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ecgprobe.analyzers.base import Result
from ecgprobe.report import plots
from ecgprobe.report.base import Finding, result_finding, result_section
from ecgprobe.report.blocks import Block, Figure, Note, Paragraph, Table, fmt, fmt_ci, fmt_pct
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

SOURCE = "confounding.tables.labels"


def _ci(r: dict[str, Any], key: str) -> str:
    return fmt_ci(r.get(f"{key}_auroc", r.get(key)), r.get(f"{key}_ci_low"), r.get(f"{key}_ci_high"))


def _per_level(res: Result) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in res.tables.get("per_level", []):
        out.setdefault(r["label"], []).append(r)
    return out


@result_section(
    "confounding",
    kind="confounding",
    title="Confounding by site",
    order=72,
    lead="Does the probe read the label, or the site the ECG was recorded at?",
)
def render(report: Report, res: Result) -> list[Block]:
    m = res.metrics
    attr = m.get("attribute", "site")
    cil = ci_label(level_of(m, res.params))
    rows = res.tables.get("labels", [])
    levels = [str(v) for v in m.get("levels", [])]
    per = _per_level(res)
    blocks: list[Block] = [
        Paragraph(
            f"Per label, the test AUROC pooled over the {attr}s {', '.join(levels)} and within them (a positive "
            f"ranked against negatives of its own {attr} only; each {attr}'s AUROC weighted by its "
            "positive-negative pairs). When the scores do not depend on the site beyond the label, the two are "
            f"equal; pooled above within-{attr} means part of the pooled AUROC comes from telling the {attr}s "
            f"apart. Intervals: {fmt(m.get('n_resamples'))} paired {m.get('bootstrap_unit', 'patient')}-bootstrap "
            f"resamples shared by every AUROC, on {fmt(m.get('n_test_records'))} test records "
            f"({fmt(m.get('n_test_patients'))} patients)."
        )
    ]
    if rows:
        names = [r["label"] for r in rows]
        colors = [
            plots.PALETTE[1]
            if side(r.get("difference_ci_low"), r.get("difference_ci_high"), threshold=0.0) == "above"
            else plots.PALETTE[0]
            for r in rows
        ]

        def draw(fig: Any) -> None:
            ax = fig.subplots()
            plots.plot_forest(
                names,
                [r["difference"] for r in rows],
                [r["difference_ci_low"] for r in rows],
                [r["difference_ci_high"] for r in rows],
                ax=ax,
                reference=0.0,
                xlabel=f"pooled − within-{attr} AUROC ({cil})",
                colors=colors,
            )

        blocks.append(
            Figure(
                render_png(draw, size=(6.5, 1.0 + 0.38 * len(rows))),
                caption=f"Pooled minus within-{attr} AUROC per label; orange: the interval lies above 0 "
                f"(the probe scores the {attr} along with the label).",
                alt=f"Forest plot of pooled minus within-{attr} AUROC per label",
                width=0.85,
            )
        )
        blocks.append(
            Table(
                (
                    "label",
                    f"prevalence by {attr}",
                    f"pooled AUROC ({cil})",
                    f"within-{attr} AUROC ({cil})",
                    *(f"{attr} {lv} AUROC" for lv in levels),
                    f"pooled − within ({cil})",
                    f"{attr} alone",
                ),
                tuple(
                    (
                        r["label"],
                        " / ".join(
                            f"{x['level']} {fmt_pct(x.get('prevalence'))}" for x in per.get(r["label"], [])
                        ),
                        _ci(r, "pooled"),
                        _ci(r, "within"),
                        *(
                            next(
                                (
                                    fmt_ci(x.get("auroc"), x.get("ci_low"), x.get("ci_high"))
                                    for x in per.get(r["label"], [])
                                    if str(x["level"]) == lv
                                ),
                                "–",
                            )
                            for lv in levels
                        ),
                        _ci(r, "difference"),
                        fmt(r.get("site_alone_auroc")),
                    )
                    for r in rows
                ),
            )
        )
    probe_rows = res.tables.get("site_probe", [])
    if probe_rows:
        blocks.append(
            Paragraph(
                f"How well the embedding predicts the {attr} (a linear probe, the same protocol, for each {attr} "
                f"against the others): macro test AUROC "
                f"{fmt_ci(m.get('site_decodability_auroc'), *(m.get('site_decodability_auroc_ci') or [None, None]))}. "
                f"An embedding that encodes the {attr} lets any label whose prevalence differs by {attr} be scored "
                f"partly from the recording."
            )
        )
        blocks.append(
            Table(
                (f"{attr}", "test positives", f"AUROC ({cil})"),
                tuple(
                    (
                        f"{attr} = {r['level']}",
                        fmt(r.get("n_test_pos")),
                        fmt_ci(r.get("auroc"), r.get("ci_low"), r.get("ci_high")),
                    )
                    for r in probe_rows
                ),
            )
        )
    blocks += [Note(n) for n in res.notes]
    return blocks


def _levels_text(res: Result, label: str, attr: str) -> str:
    return ", ".join(
        f"{attr} {x['level']} {fmt_ci(x.get('auroc'), x.get('ci_low'), x.get('ci_high'))}"
        for x in _per_level(res).get(label, [])
    )


@result_finding("site_confounding", kind="confounding", order=72)
def rule_confounding(report: Report, res: Result) -> Iterator[Finding]:
    """A "confounded" claim needs the pooled − within-site interval above 0 on enough patients; "no sign
    of confounding" needs the whole interval within the equivalence margin; the rest is
    inconclusive, with the interval and n."""
    m = res.metrics
    attr = m.get("attribute", "site")
    rows = [r for r in res.tables.get("labels", []) if r.get("difference") is not None]
    decod = m.get("site_decodability_auroc")
    dci = m.get("site_decodability_auroc_ci") or [None, None]
    encoded = decod is not None and side(dci[0], dci[1], threshold=0.5) == "above"
    confounded, same, rest = [], [], []
    for r in rows:
        lies = side(r.get("difference_ci_low"), r.get("difference_ci_high"), threshold=0.0)
        if lies == "above" and enough(r.get("n_patients")):
            confounded.append(r)
        elif equivalent(r.get("difference_ci_low"), r.get("difference_ci_high")) and enough(
            r.get("n_patients")
        ):
            same.append(r)
        else:
            rest.append(r)
    for r in confounded:
        extra = (
            f"; the embedding predicts the {attr} at AUROC {fmt_ci(decod, dci[0], dci[1])}" if encoded else ""
        )
        yield Finding(
            f"{r['label']} is confounded with {attr}: pooled AUROC {_ci(r, 'pooled')} vs within-{attr} "
            f"{_ci(r, 'within')} ({_levels_text(res, r['label'], attr)}); pooled − within-{attr} "
            f"{_ci(r, 'difference')}, "
            f"{n_phrase(r.get('n_patients'))}. The {attr} alone scores {r['label']} at AUROC "
            f"{fmt(r.get('site_alone_auroc'))}{extra}.",
            "bad",
            "site_confounding",
            SOURCE,
        )
    if same:
        yield Finding(
            f"No sign of confounding by {attr} (pooled − within-{attr} AUROC within ±{EQUIVALENCE_MARGIN}) for "
            + "; ".join(f"{r['label']}: {_ci(r, 'difference')}" for r in same)
            + f" ({n_phrase(same[0].get('n_patients'))}).",
            "good",
            "site_confounding",
            SOURCE,
        )
    if rest:
        yield Finding(
            f"Confounding by {attr} not decided at this sample size (pooled − within-{attr} interval includes 0 "
            f"or reaches beyond ±{EQUIVALENCE_MARGIN}, or fewer than {MIN_PATIENTS} patients): "
            + "; ".join(f"{r['label']}: {_ci(r, 'difference')}" for r in rest)
            + f" ({n_phrase(rest[0].get('n_patients'))}).",
            "inconclusive",
            "site_confounding",
            SOURCE,
        )
    if encoded and not confounded:
        yield Finding(
            f"The embedding encodes the recording {attr} (a linear probe predicts it at AUROC "
            f"{fmt_ci(decod, dci[0], dci[1])}): a label whose prevalence differs by {attr} could be scored from it.",
            "info",
            "site_confounding",
            "confounding.metrics.site_decodability_auroc",
        )
