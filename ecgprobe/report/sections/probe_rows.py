"""Reading probe results (``linear_probe``, ``knn_probe``) into report cells: the evaluated
per-label rows, the few-patients flag, intervals formatted with their estimate."""

from __future__ import annotations

from typing import Any

from ecgprobe.analyzers.base import Result
from ecgprobe.report.blocks import Note, fmt, fmt_ci

PROBES = ("linear_probe", "knn_probe")
#: The probes' names in sentences and table rows.
NAMES = {"linear_probe": "linear probe", "knn_probe": "kNN probe"}
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
