"""Benchmark: the leaderboard of several encoders over tasks, with which differences are real."""

from __future__ import annotations

from typing import Any

from ecgprobe.analyzers.base import Result
from ecgprobe.report.base import section
from ecgprobe.report.blocks import Block, Note, Paragraph, Table, fmt, fmt_ci
from ecgprobe.report.claims import ci_label, level_of
from ecgprobe.report.document import Report
from ecgprobe.report.glossary import explain


def _ci(point: Any, ci: Any) -> str:
    lo, hi = (list(ci) if ci else [None, None])[:2]
    return fmt_ci(point, lo, hi)


def _rank(r: dict[str, Any], key: str = "rank_ci") -> str:
    lo, hi = (r.get(key) or [None, None])[:2]
    return f"{fmt(r.get('rank', r.get('mean_rank')), 2)} [{fmt(lo, 2)}, {fmt(hi, 2)}]"


def summary_lines(res: Result) -> list[str]:
    """What the benchmark shows, in sentences: a claim only where the Holm-adjusted paired test is
    decisive, otherwise "inconclusive" with the number of test patients."""
    m = res.metrics
    alpha = 1 - level_of(m, res.params)
    out = []
    agg = m.get("aggregate") or {}
    rows = agg.get("rows") or []
    if rows:
        top = [r["name"] for r in rows if r["top_group"]]
        n_tasks = agg.get("n_tasks")
        if len(top) == 1:
            out.append(
                f"Over {n_tasks} tasks, {top[0]} has the highest mean macro AUROC and every other encoder is "
                f"significantly below it (paired bootstrap, Holm-adjusted over all pairs, alpha {fmt(alpha, 2)})."
            )
        else:
            out.append(
                f"Over {n_tasks} tasks, {len(top)} encoders cannot be told apart from the best by mean macro AUROC "
                f"({', '.join(top)}): their order is inconclusive."
            )
    for t in m.get("tasks", []):
        table = (m.get("per_task") or {}).get(t["name"]) or {}
        adj = table.get("adjacent") or []
        n_top = table.get("n_top")
        verdict = (
            f"{table.get('best')} is best, all others significantly below"
            if n_top == 1
            else f"inconclusive among the top {n_top} ({', '.join(r['name'] for r in table.get('rows', []) if r['top_group'])})"
        )
        out.append(
            f"{t['name']} (n = {fmt(t['n_patients'])} patients, {len(t['labels'])} labels): {verdict}; "
            f"{table.get('n_adjacent_significant', 0)} of {len(adj)} adjacent-rank differences are significant."
        )
    return out


@section(
    "benchmark",
    title="Benchmark leaderboard",
    order=10,
    kinds=("benchmark",),
    modes=("benchmark",),
    lead="Which encoder is best on these tasks, and which differences between them are real?",
)
def render(report: Report) -> list[Block]:
    res = report.require("benchmark")
    m = res.metrics
    cil = ci_label(level_of(m, res.params))
    blocks: list[Block] = [
        Paragraph(
            f"{len(m.get('encoders', []))} encoders on {len(m.get('tasks', []))} tasks. Each cell is a linear probe's "
            f"macro AUROC on the task's test patients (transfer cells: every target record) with a {cil} from "
            f"{fmt(m.get('n_resamples'))} patient-bootstrap resamples shared by every encoder of the task (paired). "
            "Ranks are recomputed in each resample (rank interval); the top group holds the best and every encoder "
            "whose paired difference to it is not significant after Holm's adjustment over all pairs; most "
            "adjacent ranks of a leaderboard are not significant, and the count below says how many are."
        ),
    ]
    seeds = m.get("seeds") or [0]
    if len(seeds) > 1:
        blocks.append(
            Paragraph(
                f"Each cell averages {len(seeds)} probes (seeds {', '.join(map(str, seeds))}), each fitted on its own "
                f"patient-wise stratified {fmt(100 * float(m.get('train_fraction', 1)), 0)} % of the train split; "
                "the intervals are those of that mean over the test resamples."
            )
        )
    blocks += [Paragraph(line) for line in summary_lines(res)]
    lb = res.tables.get("leaderboard", [])
    blocks.append(
        Table(
            ("encoder", f"mean macro AUROC ({cil})", f"mean rank ({cil})", "top group", "tasks in top group"),
            tuple(
                (
                    r["encoder"],
                    fmt_ci(r["mean_auroc"], r["ci_low"], r["ci_high"]),
                    f"{fmt(r['mean_rank'], 2)} [{fmt(r['rank_ci_low'], 2)}, {fmt(r['rank_ci_high'], 2)}]",
                    fmt(bool(r["top_group"])),
                    f"{r['tasks_in_top_group']} / {r['n_tasks']}",
                )
                for r in lb
            ),
        )
    )
    for t in m.get("tasks", []):
        table = (m.get("per_task") or {}).get(t["name"]) or {}
        blocks.append(
            Table(
                (
                    "encoder",
                    f"{t['name']}: macro AUROC ({cil})",
                    f"rank ({cil})",
                    "diff. to best",
                    "Holm p",
                    "top",
                ),
                tuple(
                    (
                        r["name"],
                        _ci(r["value"], r["value_ci"]),
                        _rank(r),
                        _ci(r["diff_to_best"], r["diff_ci"]),
                        fmt(r["p_holm"]),
                        fmt(bool(r["top_group"])),
                    )
                    for r in table.get("rows", [])
                ),
            )
        )
    refs = [r for r in res.tables.get("reference", [])]
    if refs:
        blocks.append(
            Table(
                ("model", "task", "published", f"ours ({cil})", "published within ours", "source"),
                tuple(
                    (
                        str(r["model"]),
                        str(r["task"]),
                        fmt(r["value"]),
                        fmt_ci(r["ours"], r["ours_ci_low"], r["ours_ci_high"]),
                        fmt(r["published_within_ours"]),
                        f"{r['paper']} (arXiv {r['arxiv_id']}, {r['table']})",
                    )
                    for r in refs
                ),
            )
        )
        blocks.append(
            Note(
                "Published values come from other protocols (their splits, preprocessing, probe and label "
                "definitions, often the full dataset rather than this one): a published value outside our interval "
                "says the setups differ, not which is right."
            )
        )
    blocks += _label_free_blocks(res, cil)
    blocks += [Note(n) for n in res.notes]
    return blocks


def _label_free_blocks(res: Result, cil: str) -> list[Block]:
    """Does a label-free number (RankMe, TwoNN, IsoScore) predict the ranking of a task?"""
    rows = res.tables.get("label_free_correlation", [])
    if not rows:
        return []
    names = {"rankme": "RankMe", "twonn": "TwoNN", "isoscore": "IsoScore"}
    return [
        Paragraph(
            "Does a number computed without labels predict the ranking? Per in-dataset task, Spearman's ρ across "
            "encoders between each label-free statistic of the encoder's standardised embedding (all records of "
            f"the dataset) and its macro AUROC, with a Fisher-z {cil} (Bonett–Wright variance; no interval below 4 "
            "encoders)."
        ),
        Table(
            ("task", "statistic", "encoders", f"Spearman ρ ({cil})", "verdict"),
            tuple(
                (
                    str(r["task"]),
                    names.get(r["statistic"], r["statistic"]),
                    fmt(r["n_encoders"]),
                    fmt_ci(r["rho"], r["ci_low"], r["ci_high"]),
                    str(r["verdict"]),
                )
                for r in rows
            ),
        ),
        explain("rankme", "twonn", "isoscore"),
    ]
