"""Transfer: the probe fitted on one dataset, tested on others; the gap; site predictability."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ecgprobe.analyzers.base import Result
from ecgprobe.data.harmonise import abbreviation
from ecgprobe.report import transfer_plots
from ecgprobe.report.base import Finding, result_finding, result_section
from ecgprobe.report.blocks import Block, Figure, Note, Paragraph, Table, fmt, fmt_ci
from ecgprobe.report.claims import ci_label, enough, level_of, n_phrase, side
from ecgprobe.report.document import Report
from ecgprobe.report.figures import render_png


def _ci(r: dict[str, Any], key: str, lo: str, hi: str) -> str:
    return fmt_ci(r.get(key), r.get(lo), r.get(hi))


@result_section(
    "transfer",
    kind="transfer",
    title="Transfer to other datasets",
    order=75,
    lead="Does what the probe learned on one dataset hold on another, and can the embedding tell the datasets apart?",
)
def render(report: Report, res: Result) -> list[Block]:
    m = res.metrics
    cil = ci_label(level_of(m, res.params))
    split = "all their records" if m.get("target_split") == "all" else "their test split"
    blocks: list[Block] = [
        Paragraph(
            f"One linear probe, fitted on the train split of {m.get('source')} (C chosen on its validation split), "
            f"is evaluated on {m.get('source')}'s test split (in-dataset) and on each target ({split}), on the labels "
            f"present in both. Intervals: {fmt(m.get('n_resamples'))} patient-bootstrap resamples of each set, drawn "
            "independently (different patients); the gap is in-dataset minus target macro AUROC. Labels with fewer "
            f"than {fmt(m.get('min_positives'))} positive (or negative) patients in either set are left out of the "
            "headline macros."
        )
    ]
    rows = res.tables.get("targets", [])
    if rows:
        blocks.append(
            Figure(
                render_png(
                    lambda fig: transfer_plots.plot_in_out(
                        rows, ax=fig.subplots(), xlabel=f"macro AUROC ({cil})"
                    ),
                    size=(6.5, 1.3 + 0.5 * len(rows)),
                ),
                caption="Macro AUROC in-dataset (blue) and on each target (orange); the grey bar is the gap.",
                alt="In-dataset versus target macro AUROC per target",
                width=0.85,
            )
        )
        blocks.append(
            Table(
                ("target", "records", "labels", f"in-dataset ({cil})", f"target ({cil})", f"gap ({cil})"),
                tuple(
                    (
                        r["target"],
                        fmt(r["n_records"]),
                        fmt(r["n_labels"]),
                        _ci(r, "macro_auroc_in", "in_ci_low", "in_ci_high"),
                        _ci(r, "macro_auroc_out", "out_ci_low", "out_ci_high"),
                        _ci(r, "gap", "gap_ci_low", "gap_ci_high"),
                    )
                    for r in rows
                ),
            )
        )
    per_label = [r for r in res.tables.get("per_label", []) if r.get("evaluated")]
    if per_label:
        blocks.append(
            Table(
                ("target", "label", "positives in/out", f"AUROC in ({cil})", f"AUROC target ({cil})", "gap"),
                tuple(
                    (
                        r["target"],
                        abbreviation(r["label"]) + (" (flagged)" if r.get("flagged") else ""),
                        f"{r['n_pos_in']}/{r['n_pos_out']}",
                        _ci(r, "auroc_in", "auroc_in_ci_low", "auroc_in_ci_high"),
                        _ci(r, "auroc_out", "auroc_out_ci_low", "auroc_out_ci_high"),
                        _ci(r, "gap", "gap_ci_low", "gap_ci_high"),
                    )
                    for r in per_label
                ),
            )
        )
    cells = res.tables.get("matrix", [])
    if cells:
        blocks.append(
            Figure(
                render_png(
                    lambda fig: transfer_plots.plot_transfer_matrix(cells, ax=fig.subplots()), size=(6.0, 4.0)
                ),
                caption="Train x test matrix: macro test AUROC of a probe fitted on each dataset (rows), on the "
                f"labels every dataset has ({', '.join(abbreviation(x) for x in m.get('matrix_labels', []))}).",
                alt="Heat map of macro AUROC, fitted on rows, tested on columns",
                width=0.7,
            )
        )
    blocks += _site_blocks(res, cil)
    blocks.append(
        Note(
            "Label names are SNOMED-CT codes shown by their PhysioNet/CinC Challenge 2021 abbreviations; a label a "
            "dataset does not annotate is left out, never counted as negative."
        )
    )
    blocks += [Note(n) for n in res.notes]
    return blocks


def _site_blocks(res: Result, cil: str) -> list[Block]:
    site = res.metrics.get("site")
    out: list[Block] = []
    if site:
        out.append(
            Paragraph(
                f"Site predictability: a linear probe on {fmt(site.get('n_per_source'))} records per dataset "
                "(balanced, split patient-wise) predicts which dataset a record came from: macro AUROC "
                f"{fmt_ci(site.get('macro_auroc'), *(site.get('macro_auroc_ci') or (None, None)))} "
                f"({cil}; 0.5 = the embedding does not reveal the dataset). Within a label it is computed on the test "
                "records with that label: high values mean records with the same diagnosis are still told apart by "
                "their origin, a shortcut a transferred probe can take."
            )
        )
        rows = [r for r in res.tables.get("site", []) if r.get("auroc") is not None]
        out.append(
            Table(
                ("scope", "test records", f"site AUROC ({cil})"),
                tuple(
                    (
                        "all records" if r["scope"] == "overall" else abbreviation(r["label"]),
                        fmt(r["n_test"]),
                        fmt_ci(r.get("auroc"), r.get("ci_low"), r.get("ci_high")),
                    )
                    for r in rows
                ),
            )
        )
    acq = res.tables.get("acquisition", [])
    if acq:
        out.append(
            Table(
                ("dataset", "records", "analysed at (Hz)", "recorded at (Hz)", "mains (Hz)", "devices"),
                tuple(
                    (
                        r["dataset"],
                        fmt(r["records"]),
                        fmt(r["fs"]),
                        r["fs_recorded"],
                        r["mains_hz"],
                        r["devices"],
                    )
                    for r in acq
                ),
            )
        )
        out.append(
            Note(
                "Known shortcut risks: datasets differ in sampling rate, mains frequency (from the country of "
                "recording, not measured) and recording devices; an embedding that encodes them separates the sites."
            )
        )
    return out


@result_finding("transfer_gap", kind="transfer", order=75)
def rule_gap(report: Report, res: Result) -> Iterator[Finding]:
    """A loss on transfer is claimed only with an interval wholly above 0; site predictability is
    flagged when its interval lies wholly above chance."""
    src = "transfer.tables.targets"
    for r in res.tables.get("targets", []):
        lies = side(r.get("gap_ci_low"), r.get("gap_ci_high"), threshold=0.0)
        gap = fmt_ci(r.get("gap"), r.get("gap_ci_low"), r.get("gap_ci_high"))
        where = f"{res.metrics.get('source')} -> {r['target']}"
        if lies == "above" and enough(r.get("n_patients")):
            yield Finding(
                f"AUROC drops on transfer {where}: gap {gap} ({n_phrase(r.get('n_patients'))}).",
                "bad",
                "transfer_gap",
                src,
            )
        elif lies == "below" and enough(r.get("n_patients")):
            yield Finding(f"AUROC is higher on the target {where}: gap {gap}.", "info", "transfer_gap", src)
        else:
            yield Finding(
                f"The transfer gap {where} is not decided at this sample size: {gap} ({n_phrase(r.get('n_patients'))}).",
                "inconclusive",
                "transfer_gap",
                src,
            )
    site = res.metrics.get("site") or {}
    lo, hi = site.get("macro_auroc_ci") or (None, None)
    if side(lo, hi, threshold=0.5) == "above":
        yield Finding(
            f"The embedding reveals which dataset a record came from: site AUROC {fmt_ci(site.get('macro_auroc'), lo, hi)}.",
            "bad",
            "transfer_gap",
            "transfer.metrics.site",
        )
