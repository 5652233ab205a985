"""Attributions: which leads, moments and embedding dimensions drive the probe's decisions
(``input_attribution``, ``probe_shap``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ecgprobe.analyzers.base import Result
from ecgprobe.report import ecg_plot, plots
from ecgprobe.report.base import Finding, result_finding, section
from ecgprobe.report.blocks import Block, Figure, Heading, Note, Paragraph, Table, fmt, fmt_ci
from ecgprobe.report.claims import ci_of
from ecgprobe.report.document import Report
from ecgprobe.report.figures import plot_figure, render_png
from ecgprobe.report.glossary import explain
from ecgprobe.report.sections.provenance import encoder_identity

#: Median Spearman correlation between trained- and randomised-encoder maps above which the
#: attributions are flagged as not depending on what the encoder learned (rule threshold).
SANITY_HIGH = 0.5
#: The fewest explained examples behind a sanity-check claim.
SANITY_MIN_EXAMPLES = 10
N_EXAMPLE_ECGS = 3
_METHODS = {
    "ig": "Integrated Gradients",
    "gradshap": "GradientSHAP",
    "kernelshap": "lead Shapley values (exact over all lead coalitions, or sampled with a stated standard error)",
}


def _units(report: Report, subject: str | None) -> str:
    spec = encoder_identity(report, subject).get("spec") or {}
    return (
        "mV" if spec.get("units", "mV") == "mV" and spec.get("normalization") in (None, "none") else "model"
    )


def _examples(res: Result) -> list[int]:
    """One example per label (the first stored), for the labels with the highest logits first."""
    if "attributions" not in res.arrays:
        return []
    labels = np.asarray(res.arrays["example_label"])
    logits = np.asarray(res.arrays["logit"], dtype=float)
    chosen: dict[int, int] = {}
    for k in np.argsort(-logits, kind="stable"):
        chosen.setdefault(int(labels[k]), int(k))
    return list(chosen.values())[:N_EXAMPLE_ECGS]


def _drawn(
    report: Report, res: Result, rec: int, subject: str | None
) -> tuple[str, np.ndarray, float, list[str]]:
    """What an example draws: ``("recorded", mV signals, fs, leads)`` when the result stores the
    recorded ECG with the 12 standard leads, else the model input: ``"model_mv"`` (in mV: no
    normalisation) or ``"model"`` (normalised)."""
    recorded = list(res.metrics.get("example_leads") or [])
    if "example_signals_mv" in res.arrays and "example_fs" in res.metrics and set(recorded) >= _STANDARD:
        return (
            "recorded",
            np.asarray(res.arrays["example_signals_mv"][rec]),
            float(res.metrics["example_fs"]),
            recorded,
        )
    kind = "model_mv" if _units(report, subject) == "mV" else "model"
    return kind, np.asarray(res.arrays["inputs"][rec]), float(res.metrics["fs"]), list(res.metrics["leads"])


_STANDARD = {name for row in ecg_plot.STANDARD_LAYOUT for name in row}
_SHOWN = {
    "recorded": "the recorded ECG in mV",
    "model_mv": "the model input in mV, after the encoder's preprocessing",
    "model": "model input, normalised (the encoder's input after its normalisation, not mV; the result stores no recorded ECG)",
}


def example_figure(report: Report, res: Result, k: int, subject: str | None = None) -> Figure:
    """The k-th attribution example, coloured by |attribution|: the recorded ECG in mV in the
    standard 12-lead layout when the result stores it, else the model's input (see :func:`_drawn`)."""
    rec = int(res.arrays["example_record"][k])
    label = res.metrics["labels"][int(res.arrays["example_label"][k])]
    rid = str(res.arrays["record_ids"][rec])
    kind, sig, fs, leads = _drawn(report, res, rec, subject)
    sal, sal_fs, sal_leads = res.arrays["attributions"][k], float(res.metrics["fs"]), res.metrics["leads"]
    bar = "|attribution| (99th pct = 1)"
    printed = kind != "model" and set(leads) >= _STANDARD
    if printed:

        def draw(fig: Any) -> None:
            axes = ecg_plot.plot_ecg_standard(
                sig, fs, leads, saliency=sal, saliency_fs=sal_fs, saliency_leads=sal_leads, fig=fig
            )
            fig.colorbar(axes[0].collections[-1], ax=axes, shrink=0.6, pad=0.01, label=bar)

        size = (10.8, ecg_plot.standard_figsize(sig, fs, leads)[1])
        shown = f"{_SHOWN[kind]} (standard 12-lead layout, 25 mm/s, 10 mm/mV)"
    else:

        def draw(fig: Any) -> None:
            ax = fig.subplots()
            plots.plot_ecg(sig, fs, leads, saliency=sal, units="model" if kind == "model" else "mV", ax=ax)
            fig.colorbar(ax.collections[-1], ax=ax, shrink=0.6, pad=0.01, label=bar)

        size = (10.0, 5.6)
        shown = _SHOWN[kind] if kind == "model" else f"{_SHOWN[kind]} (its leads stacked)"
    window = np.asarray(sal).shape[-1] / sal_fs
    cover = ""
    if kind == "recorded" and window < sig.shape[-1] / fs - 1e-9:
        cover = f" Attributions cover the model's input window, the first {fmt(window, 1)} s; the rest is drawn black."
    return Figure(
        render_png(draw, size=size),
        caption=f"Record {rid}, explained for {label} (logit {fmt(res.arrays['logit'][k], 2)}): {shown}, "
        f"each sample coloured and thickened by its attribution.{cover}",
        alt=f"12-lead ECG of record {rid} with saliency for {label}",
    )


def _shap_table(res: Result) -> Table:
    top = {}
    for r in res.tables.get("top_dims", []):
        top.setdefault(r["label"], []).append(r)
    rows = []
    for r in res.tables.get("labels", []):
        dims = ", ".join(str(d["name"]) for d in sorted(top.get(r["label"], []), key=lambda d: d["rank"])[:3])
        rows.append(
            (
                r["label"],
                fmt_ci(r.get("topk_frac"), *(r.get("topk_frac_ci") or [None, None])),
                fmt_ci(r.get("effective_dims"), *(r.get("effective_dims_ci") or [None, None]), digits=1),
                fmt(r.get("gini")),
                dims or "–",
            )
        )
    k = res.metrics.get("top_k", res.params.get("top_k"))
    return Table(
        ("label", f"share of top {k} dims", "effective dims", "Gini", "top dimensions"),
        tuple(rows),
        caption=f"Which embedding dimensions the linear probe relies on (exact linear SHAP on test records, {ci_of(res)})",
    )


def _shapley_note(m: dict[str, Any]) -> str:
    if m.get("lead_shapley") == "sampled":
        return (
            f" Lead Shapley values are estimated from {fmt(m.get('lead_shapley_permutations'))} antithetic permutations "
            f"per record (efficiency holds exactly); the largest standard error of a value is "
            f"{fmt(m.get('lead_shapley_max_se'))} logit units."
        )
    if m.get("lead_shapley") == "exact":
        return " Lead Shapley values are exact (every lead coalition evaluated)."
    return ""


@section(
    "attribution",
    title="Attributions",
    order=60,
    kinds=("input_attribution", "probe_shap"),
    lead="What in the ECG drives the probe's decisions: which leads, which part of the beat, which embedding dimensions?",
)
def render(report: Report) -> list[Block]:
    blocks: list[Block] = []
    ia = report.get("input_attribution")
    if ia is not None:
        method = _METHODS.get(ia.metrics.get("method", ""), ia.metrics.get("method", ""))
        blocks.append(
            Paragraph(
                f"The encoder and the linear probe's head are explained as one model with {method} "
                f"(baseline: {ia.metrics.get('baseline', ia.params.get('baseline'))}), on {fmt(ia.metrics.get('n_examples'))} "
                f"test examples ({fmt(ia.params.get('n_examples'))} per label, positives drawn with the seed). A lead's importance is "
                "its share of the absolute attribution, averaged over the label's examples."
                + _shapley_note(ia.metrics)
            )
        )
        n_labels = len(ia.metrics["labels"])
        blocks.append(
            plot_figure(
                plots.plot_lead_importance,
                ia,
                size=(7.5, 1.4 + 0.32 * n_labels),
                caption="Label × lead importance: each lead's share of |attribution| (rows sum to 1); red above, blue below an equal share.",
                alt="Heatmap of lead importance per label",
            )
        )
        blocks.append(explain("lead_share"))
        if "beat_saliency_label" in ia.arrays and np.isfinite(ia.arrays["beat_saliency_label"]).any():
            blocks.append(
                plot_figure(
                    plots.plot_beat_saliency,
                    ia,
                    size=(6.5, 3.4),
                    caption="Beat-aligned saliency: attribution around each detected R peak, relative to the record's mean.",
                    alt="Line chart of saliency around the R peak per label",
                    width=0.85,
                )
            )
        examples = _examples(ia)
        if examples:
            blocks.append(Heading("Example ECGs"))
            blocks += [example_figure(report, ia, k) for k in examples]
        if "sanity_spearman_lead" in ia.arrays:
            rho = np.asarray(ia.arrays["sanity_spearman_lead"], dtype=float)
            blocks.append(
                Table(
                    ("label", "top lead", "Spearman ρ, lead importance (trained vs randomised encoder)"),
                    tuple(
                        (lab, str(ia.metrics.get("top_lead", {}).get(lab, "–")), fmt(r))
                        for lab, r in zip(ia.metrics["labels"], rho)
                    ),
                    caption="Sanity check (model randomisation): low ρ means the attributions depend on what the encoder learned",
                )
            )
            blocks.append(explain("spearman"))
        blocks += [Note(n) for n in ia.notes]
    ps = report.get("probe_shap")
    if ps is not None and ps.tables.get("labels"):
        blocks.append(Heading("Embedding dimensions"))
        blocks.append(_shap_table(ps))
        blocks.append(explain("gini", "effective_dims"))
        blocks += [Note(n) for n in ps.notes]
    return blocks


@result_finding("attribution", kind="input_attribution", order=60)
def rule_attribution(report: Report, ia: Result) -> Iterator[Finding]:
    top = ia.metrics.get("top_lead", {})
    if top:
        yield Finding(
            "The lead with the largest share of attribution, per explained label: "
            + ", ".join(f"{label}: {lead}" for label, lead in top.items())
            + ".",
            "info",
            "attribution",
            "input_attribution.metrics.top_lead",
        )
    med = ia.metrics.get("sanity_spearman_lead_median")
    if med is not None:
        n = ia.metrics.get("n_examples")
        src = "input_attribution.metrics.sanity_spearman_lead_median"
        small = n is None or n < SANITY_MIN_EXAMPLES
        where = f"median Spearman ρ {fmt(med, 2)} over {fmt(n)} explained examples"
        if small:  # a median over a handful of examples decides nothing
            yield Finding(
                f"The randomisation sanity check is not decided at this n ({where}; a claim needs at least "
                f"{SANITY_MIN_EXAMPLES}).",
                "inconclusive",
                "attribution",
                src,
            )
        elif med > SANITY_HIGH:
            yield Finding(
                f"Lead attributions barely change when the encoder's weights are randomised ({where} > {SANITY_HIGH}): "
                "they reflect the input more than what the encoder learned.",
                "bad",
                "attribution",
                src,
            )
        else:
            yield Finding(
                f"Lead attributions change when the encoder's weights are randomised ({where}): they depend on what it learned.",
                "good",
                "attribution",
                src,
            )
