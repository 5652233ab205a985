"""Two encoders side by side: paired differences, representational similarity, maps, scarcity.

Sections of ``compare`` reports (``paired_bootstrap``, ``cka``, ``alignment`` and each encoder's
``linear_probe``/``knn_probe``/``projection``/``scarcity`` stored as ``"<encoder>/<kind>"``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from ecgprobe.analyzers.base import Result
from ecgprobe.report import plots
from ecgprobe.report.base import Finding, finding, result_finding, section, subjects_section
from ecgprobe.report.blocks import Block, Figure, Heading, KeyValues, Note, Paragraph, Table, fmt, fmt_ci
from ecgprobe.report.claims import MIN_PATIENTS, ci_label, enough, fmt_p, level_of, n_phrase
from ecgprobe.report.document import Report
from ecgprobe.report.figures import render_png
from ecgprobe.report.sections.geometry import descriptor_help, descriptor_rows
from ecgprobe.report.sections.probe_rows import ci
from ecgprobe.report.sections.scarcity import band, efficiency_findings, efficiency_rows, overlay_figure


def _ci_excludes_zero(lo: Any, hi: Any) -> bool:
    return lo is not None and hi is not None and (lo > 0 or hi < 0)


#: The verdict for a difference whose interval includes 0 (not a tie: absence of evidence).
TIE = "not distinguishable"


def winner(row: dict[str, Any], a: str, b: str) -> str:
    """``a`` or ``b`` when the difference's interval excludes 0, else :data:`TIE`."""
    if not _ci_excludes_zero(row.get("ci_low"), row.get("ci_high")):
        return TIE
    return a if row["difference"] > 0 else b


def _probe_overview(report: Report) -> Table:
    paired = report.get("paired_bootstrap")
    rows, level = [], level_of(paired.metrics if paired else None, paired.params if paired else None)
    for subject in report.subjects:
        for kind, label in (("linear_probe", "linear"), ("knn_probe", "kNN")):
            res = report.get(kind, subject)
            if res is not None:
                m = res.metrics
                level = level_of(m, res.params)
                rows.append(
                    (subject, label, ci(m, "macro_auroc"), ci(m, "macro_auprc"), fmt(m.get("macro_ece")))
                )
    return Table(
        ("encoder", "probe", "macro AUROC", "macro AUPRC", "macro ECE"),
        tuple(rows),
        caption=f"Probes of each encoder ({ci_label(level)})",
    )


@section(
    "paired",
    title="Accuracy, paired",
    order=20,
    kinds=("paired_bootstrap", "linear_probe"),
    modes=("compare",),
    lead="Which encoder's embeddings support the better linear probe, on exactly the same test records?",
)
def render_paired(report: Report) -> list[Block]:
    a, b = report.subjects[:2]
    blocks: list[Block] = [_probe_overview(report)]
    res = report.get("paired_bootstrap")
    if res is None:
        return blocks
    m = res.metrics
    metric = str(m.get("metric", "auroc")).upper()
    cil = ci_label(level_of(m, res.params))
    blocks.insert(
        0,
        Paragraph(
            f"Differences are {a} minus {b}. Each of the {fmt(m.get('n_resamples'))} resamples draws test "
            f"{m.get('bootstrap_unit', 'patient')}s once and scores both encoders on exactly those records, so the interval "
            "reflects how the encoders differ, not which records happened to be drawn."
        ),
    )
    lo, hi = (m.get("difference_ci") or [None, None])[:2]
    blocks.append(
        KeyValues(
            (
                (f"macro {metric}, {a}", fmt(m.get("value_a"))),
                (f"macro {metric}, {b}", fmt(m.get("value_b"))),
                (f"difference ({cil})", fmt_ci(m.get("difference"), lo, hi)),
                ("two-sided bootstrap p", fmt_p(m.get("p_value"), m.get("n_resamples"))),
                ("labels compared", fmt(len(m.get("labels_compared", [])))),
                ("test records", fmt(m.get("n_test"))),
            ),
            caption="Paired bootstrap of the macro difference",
        )
    )
    rows = sorted(res.tables.get("per_label", []), key=lambda r: -(r.get("difference") or 0))
    rows = [r for r in rows if r.get("difference") is not None]
    if rows:
        colors = [
            plots.PALETTE[0]
            if winner(r, a, b) == a
            else plots.PALETTE[1]
            if winner(r, a, b) == b
            else "#888888"
            for r in rows
        ]

        def draw(fig: Any) -> None:
            plots.plot_forest(
                [r["label"] for r in rows],
                [r["difference"] for r in rows],
                [r.get("ci_low") for r in rows],
                [r.get("ci_high") for r in rows],
                ax=fig.subplots(),
                xlabel=f"{metric} difference, {a} − {b} ({cil})",
                colors=colors,
            )

        blocks.append(
            Figure(
                render_png(draw, size=(7.0, 1.0 + 0.22 * len(rows))),
                caption=f"Per-label {metric} difference; blue: {a} better, orange: {b} better, grey: interval includes 0.",
                alt=f"Forest plot of per-label differences between {a} and {b}",
            )
        )
        wins = {w: sum(winner(r, a, b) == w for r in rows) for w in (a, b, TIE)}
        blocks.append(
            Table(
                ("label", a, b, f"difference ({cil})", "better"),
                tuple(
                    (
                        r["label"],
                        fmt(r.get("a")),
                        fmt(r.get("b")),
                        fmt_ci(r["difference"], r.get("ci_low"), r.get("ci_high")),
                        winner(r, a, b),
                    )
                    for r in rows
                ),
                caption=f"Better encoder per label (interval excludes 0): {a} {wins[a]}, {b} {wins[b]}, "
                f"not distinguishable at this n {wins[TIE]}",
            )
        )
    blocks += [Note(n) for n in res.notes]
    return blocks


@section(
    "similarity",
    title="Representational similarity",
    order=30,
    kinds=("cka", "alignment"),
    modes=("compare",),
    lead="Do the two encoders represent the records alike, layer by layer and neighbourhood by neighbourhood?",
)
def render_similarity(report: Report) -> list[Block]:
    a, b = report.subjects[:2]
    blocks: list[Block] = []
    cka = report.get("cka")
    if cka is not None and "cka" in cka.arrays:
        mat = np.asarray(cka.arrays["cka"])
        blocks.append(Paragraph(cka_method_text(cka, a, b)))
        blocks.append(
            Figure(
                render_png(
                    lambda fig: plots.plot_cka(cka, ax=fig.subplots(), name_a=a, name_b=b),
                    size=(1.8 + 0.6 * mat.shape[1], 1.4 + 0.45 * mat.shape[0]),
                ),
                caption=f"Layer-by-layer linear CKA, {a} (rows) × {b} (columns).",
                alt="Heatmap of CKA between layers",
                width=min(1.0, 0.25 + 0.09 * mat.shape[1]),
            )
        )
        final = [
            r
            for r in cka.tables.get("pairs", [])
            if r["layer_a"] == "embedding" and r["layer_b"] == "embedding"
        ]
        if final:
            r = final[0]
            blocks.append(
                KeyValues(
                    (
                        (
                            f"CKA of the final embeddings ({ci_label(level_of(cka.metrics, cka.params))})",
                            fmt_ci(r["cka"], r.get("ci_low"), r.get("ci_high")),
                        ),
                    )
                )
            )
    al = report.get("alignment")
    if al is not None:
        m = al.metrics
        cil = ci_label(level_of(m, al.params))
        blocks.append(Heading("Neighbourhoods and shape"))
        blocks.append(
            KeyValues(
                (
                    (
                        f"mutual kNN overlap ({cil})",
                        f"{fmt_ci(m.get('mutual_knn'), m.get('mutual_knn_ci_low'), m.get('mutual_knn_ci_high'))} (chance {fmt(m.get('mutual_knn_chance'))}, k = {al.params.get('k', '–')})",
                    ),
                    (
                        f"Procrustes similarity ({cil})",
                        fmt_ci(
                            m.get("procrustes_similarity"),
                            m.get("procrustes_similarity_ci_low"),
                            m.get("procrustes_similarity_ci_high"),
                        ),
                    ),
                    (
                        f"Procrustes distance ({cil})",
                        fmt_ci(
                            m.get("procrustes_distance"),
                            m.get("procrustes_distance_ci_low"),
                            m.get("procrustes_distance_ci_high"),
                        ),
                    ),
                ),
                caption="Alignment of the final embeddings",
            )
        )
        blocks.append(
            Paragraph(
                "Mutual kNN overlap: the share of each record's k nearest neighbours that both encoders agree on; it depends "
                "on the number of records, so compare it at equal n. Procrustes similarity: how well one centred, normalised "
                "space maps onto the other by the best rotation (1 = identical shape); Procrustes distance: the residual of that "
                "rotation (0 = identical shape, √2 = unrelated); both are biased towards alignment when records are few per "
                "dimension. " + interval_text(al.params)
            )
        )
    for res in (cka, al):
        if res is not None:
            blocks += [Note(n) for n in res.notes]
    return blocks


@subjects_section(
    "maps",
    kind="projection",
    title="Latent geometry, side by side",
    order=40,
    lead="The two embedding spaces projected to 2-D, with their descriptors.",
)
def render_maps(report: Report, maps: Mapping[str, Result]) -> list[Block]:

    def draw(fig: Any) -> None:
        for ax, (subject, res) in zip(fig.subplots(1, len(maps), squeeze=False)[0], maps.items()):
            plots.plot_projection(res, color_by="label", ax=ax)
            ax.set_title(subject, loc="left")

    blocks: list[Block] = [
        Figure(
            render_png(draw, size=(4.6 * len(maps), 5.6)),
            caption="UMAP of each encoder's embeddings, coloured by label (single positive label; grey: none, other or several).",
            alt="Side-by-side UMAP scatter plots of " + " and ".join(maps),
        )
    ]
    rows = {s: dict(descriptor_rows(r)) for s, r in maps.items()}
    keys = list(dict.fromkeys(k for r in rows.values() for k in r))
    blocks.append(
        Table(("descriptor", *rows), tuple((k, *(rows[s].get(k, "–") for s in rows)) for k in keys))
    )
    blocks.append(descriptor_help([(k, "") for k in keys]))
    return blocks


def interval_text(params: dict[str, Any]) -> str:
    """How the intervals of a similarity result were made, in one sentence."""
    if params.get("interval"):
        return (
            f"Intervals: delete-a-group jackknife over {fmt(params.get('n_blocks_used'))} random groups of "
            f"{params.get('resampling_unit', 'record')}s (each statistic recomputed without each group), centred on the "
            "estimate."
        )
    if params.get("bootstrap"):
        return (
            "Intervals: record bootstrap (results made before the jackknife; copies of records bias these intervals "
            "upward, recompute for a valid interval)."
        )
    return "No intervals were computed."


def cka_method_text(cka: Result, a: str, b: str) -> str:
    """What the CKA matrix is: estimator, records and intervals."""
    debiased = cka.params.get("debiased")
    kind = "debiased (unbiased HSIC) " if debiased else "biased " if debiased is False else ""
    text = (
        f"{'RBF' if cka.params.get('kernel') == 'rbf' else 'Linear'} CKA, {kind}estimator (centred kernel alignment; 1 = the same representation up to rotation and scale), "
        f"between every layer of {a} (rows) and of {b} (columns), on {fmt(cka.metrics.get('n_records'))} records. "
    )
    if debiased is False:
        text += "The biased estimator is inflated when records are few per dimension; its interval does not cover that. "
    return text + interval_text(cka.params)


@subjects_section(
    "scarcity_compare",
    kind="scarcity",
    title="Data scarcity, overlaid",
    order=50,
    lead="Which encoder needs fewer labels?",
)
def render_scarcity(report: Report, curves: Mapping[str, Result]) -> list[Block]:
    return [
        overlay_figure(
            curves,
            f"Test macro AUROC against training data (mean over seeds, {band(next(iter(curves.values())))}).",
        ),
        efficiency_table(curves),
    ]


def efficiency_table(curves: Mapping[str, Result]) -> Table:
    """Label efficiency of several encoders, one row each."""
    rows = []
    for subject, res in curves.items():
        kv = dict(efficiency_rows(res))
        rows.append((subject, *(kv[k] for k in list(kv)[:4])))
    keys = [k for k, _ in efficiency_rows(next(iter(curves.values())))][:4]
    return Table(("encoder", *keys), tuple(rows), caption="Label efficiency")


# ----------------------------------------------------------------------------- summary rules
def _paired_n(report: Report, m: dict[str, Any]) -> tuple[Any, str]:
    """The paired comparison's sample size: test patients where the probes stored them."""
    for subject in report.subjects[:2]:
        lp = report.get("linear_probe", subject)
        if lp is not None and lp.metrics.get("n_test_patients") is not None:
            return lp.metrics["n_test_patients"], "test patients"
    return m.get("n_test"), "test records"


@result_finding("paired_difference", kind="paired_bootstrap", modes=("compare",), order=20)
def rule_paired(report: Report, res: Result) -> Iterator[Finding]:
    a, b = report.subjects[:2]
    m = res.metrics
    lo, hi = (m.get("difference_ci") or [None, None])[:2]
    metric = str(m.get("metric", "auroc")).upper()
    diff = fmt_ci(m.get("difference"), lo, hi)
    n, unit = _paired_n(report, m)
    p = fmt_p(m.get("p_value"), m.get("n_resamples"))
    if _ci_excludes_zero(lo, hi) and enough(n):
        better, worse = (a, b) if m["difference"] > 0 else (b, a)
        yield Finding(
            f"{better} outperforms {worse}: macro {metric} difference ({a} − {b}) {diff}, {p}, {n_phrase(n, unit)}.",
            "good",
            "paired_difference",
            "paired_bootstrap.metrics.difference",
        )
    else:
        why = (
            "the interval includes 0"
            if not _ci_excludes_zero(lo, hi)
            else f"fewer than {MIN_PATIENTS} {unit}"
        )
        yield Finding(
            f"{a} and {b} are not distinguishable at this n on macro {metric}: difference {diff} ({why}; {n_phrase(n, unit)}).",
            "inconclusive",
            "paired_difference",
            "paired_bootstrap.metrics.difference",
        )
    rows = res.tables.get("per_label", [])
    wins = {
        w: [r["label"] for r in rows if r.get("difference") is not None and winner(r, a, b) == w]
        for w in (a, b)
    }
    for who in (a, b):
        if wins[who]:
            names = ", ".join(wins[who][:8]) + (
                f" and {len(wins[who]) - 8} more" if len(wins[who]) > 8 else ""
            )
            yield Finding(
                f"{who} is better on {len(wins[who])} of {len(rows)} labels: {names}.",
                "info",
                "paired_difference",
                "paired_bootstrap.tables.per_label",
            )


@result_finding("similarity", kind="cka", modes=("compare",), order=30)
def rule_similarity(report: Report, cka: Result) -> Iterator[Finding]:
    final = [
        r for r in cka.tables.get("pairs", []) if r["layer_a"] == "embedding" and r["layer_b"] == "embedding"
    ]
    if final:
        r = final[0]
        yield Finding(
            f"The final embeddings have a linear CKA of {fmt_ci(r['cka'], r.get('ci_low'), r.get('ci_high'))}.",
            "info",
            "similarity",
            "cka.tables.pairs",
        )
    al = report.get("alignment")
    if al is not None and al.metrics.get("mutual_knn") is not None:
        m = al.metrics
        yield Finding(
            f"They agree on {fmt(100 * m['mutual_knn'], 1)}% of each record's nearest neighbours (chance {fmt(100 * (m.get('mutual_knn_chance') or 0), 1)}%).",
            "info",
            "similarity",
            "alignment.metrics.mutual_knn",
        )


@finding("scarcity_compare", kinds=("scarcity",), modes=("compare", "scarcity"), order=50)
def rule_scarcity(report: Report) -> Iterator[Finding]:
    for subject, res in report.by_subject("scarcity").items():
        yield from efficiency_findings(res, subject)
