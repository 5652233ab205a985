"""Robustness card: the clean probe on perturbed test records (noise, lead sets, resampling,
amplitude), and a summary claim per condition family from decisive paired intervals."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ecgprobe.analyzers.base import Result
from ecgprobe.report import robustness_plots as rp
from ecgprobe.report.base import Finding, result_finding, result_section
from ecgprobe.report.blocks import Block, Note, Paragraph, Table, fmt, fmt_ci
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
from ecgprobe.report.figures import plot_figure

__all__ = ["families", "render", "rule_robustness"]

_DROP = (
    "Drop: the clean macro AUROC minus the perturbed one on the same test records, with a paired "
    "patient bootstrap (one set of draws for every condition)."
)


@result_section(
    "robustness",
    kind="robustness",
    title="Robustness",
    order=75,
    lead="Does the probe, trained on clean ECGs, still work on noisy, reduced or resampled ones?",
)
def render(report: Report, res: Result) -> list[Block]:
    m = res.metrics
    cil = ci_label(level_of(m, res.params))
    blocks: list[Block] = [
        Paragraph(
            f"The linear probe was fitted once on the clean training split; only the {fmt(m.get('n_test'))} test "
            f"records ({fmt(m.get('n_test_patients'))} patients) were perturbed and embedded again. Noise is "
            f"scaled to each SNR as the MIT-BIH noise stress test defines it (QRS peak-to-peak power over the "
            f"noise's RMS in 1 s chunks, per record and lead); noise source: {m.get('noise_source', '–')}, "
            f"mains at {fmt(m.get('mains_hz'), 0)} Hz, seed {m.get('seed')}. Intervals: {fmt(m.get('n_resamples'))} "
            f"{m.get('bootstrap_unit', 'patient')}-bootstrap resamples; macro AUROC over "
            f"{', '.join(m.get('labels_headline', []))}."
        )
    ]
    if rp.condition_rows(res, ["noise"]):
        blocks.append(
            plot_figure(
                rp.plot_snr_curves,
                res,
                size=(6.5, 3.8),
                caption=f"Macro AUROC against SNR per noise type ({cil} bands); dashed: clean.",
                alt="Line plot of macro AUROC against signal-to-noise ratio for each noise type",
            )
        )
    for fams, what in ((("leads",), "lead set"), (("resample", "amplitude"), "round trip and amplitude")):
        rows = rp.condition_rows(res, fams)
        if rows:
            blocks.append(
                plot_figure(
                    rp.plot_condition_bars,
                    res,
                    families=fams,
                    size=(6.5, 1.2 + 0.4 * (len(rows) + 1)),
                    caption=f"Macro AUROC per {what} ({cil}); grey: the clean records.",
                    alt=f"Bar chart of macro AUROC per {what}",
                    width=0.85,
                )
            )
    rows = res.tables.get("conditions", [])
    blocks.append(
        Table(
            ("condition", "handling", f"macro AUROC ({cil})", f"drop from clean ({cil})"),
            tuple(
                (
                    r["label"],
                    r.get("handling") or "–",
                    fmt_ci(r.get("macro_auroc"), r.get("ci_low"), r.get("ci_high")),
                    fmt_ci(r.get("drop"), r.get("drop_ci_low"), r.get("drop_ci_high"))
                    if r["family"] != "clean"
                    else "–",
                )
                for r in rows
                if r.get("status") == "ok"
            ),
        )
    )
    cost = m.get("cost_per_condition")
    if cost is not None:
        blocks.append(
            Note(
                f"Clean extraction {fmt(m.get('clean_extraction_s'), 1)} s for all records; the {fmt(m.get('n_conditions'))} "
                f"conditions took {fmt(m.get('perturbed_extraction_s'), 1)} s, {fmt(cost, 2)}x the clean cost of the "
                "test records each (perturbing, embedding and scoring)."
            )
        )
    blocks.append(Note(_DROP))
    blocks += [Note(n, "warning") for n in res.notes]
    return blocks


def families(res: Result) -> dict[str, list[dict[str, Any]]]:
    """The evaluated conditions grouped as the summary states them: one group per noise type,
    then lead sets, round trips and amplitude."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rp.condition_rows(res):
        if r["family"] != "clean":
            key = r["perturbation"] if r["family"] == "noise" else r["family"]
            out.setdefault(key, []).append(r)
    return out


_NAMES = {
    "leads": "reduced lead sets",
    "resample": "sampling-rate round trips",
    "amplitude": "amplitude scaling",
}


@result_finding("robustness", kind="robustness", order=75)
def rule_robustness(report: Report, res: Result) -> Iterator[Finding]:
    """Per family: a drop is claimed only where its paired interval lies wholly above 0 (on enough
    patients); robustness only as equivalence (every drop's interval within the margin);
    everything else is inconclusive, with the intervals."""
    n = res.metrics.get("n_test_patients")
    src = "robustness.tables.conditions"
    for key, rows in families(res).items():
        name = _NAMES.get(key, f"{key.replace('_', ' ')} noise")

        def where(r: dict[str, Any]) -> str:
            return f"{r['label']}: {fmt_ci(r['drop'], r['drop_ci_low'], r['drop_ci_high'])}"

        drops = [r for r in rows if side(r["drop_ci_low"], r["drop_ci_high"], threshold=0.0) == "above"]
        if drops and enough(n):
            noise = key not in _NAMES
            first = max(drops, key=lambda r: float(r["level"]) if noise else r["drop"])
            lead = (
                f"AUROC drops under {name} from {first['label']} on (drop {fmt_ci(first['drop'], first['drop_ci_low'], first['drop_ci_high'])})"
                if noise
                else f"AUROC drops under {name}, most for {where(first)}"
            )
            yield Finding(
                f"{lead}; {len(drops)} of {len(rows)} levels decisively below clean, {n_phrase(n)}.",
                "bad",
                "robustness",
                src,
            )
        elif all(equivalent(r["drop_ci_low"], r["drop_ci_high"]) for r in rows) and enough(n):
            yield Finding(
                f"Robust to {name}: every drop's interval lies within ±{EQUIVALENCE_MARGIN} AUROC ("
                + "; ".join(where(r) for r in rows)
                + f"), {n_phrase(n)}.",
                "good",
                "robustness",
                src,
            )
        else:
            yield Finding(
                f"Effect of {name} not decided at this sample size (intervals include 0 or reach beyond "
                f"±{EQUIVALENCE_MARGIN}, or fewer than {MIN_PATIENTS} patients): "
                + "; ".join(where(r) for r in rows)
                + ".",
                "inconclusive",
                "robustness",
                src,
            )
