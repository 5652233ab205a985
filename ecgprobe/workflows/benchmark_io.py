"""The files of a benchmark: published reference values in, leaderboard and cells CSV out.

A reference table is a CSV with the columns :data:`REFERENCE_COLUMNS` (one published number per
row, with the paper, its arXiv id and the table it is printed in). A row is shown beside our cell
when its ``model`` is an encoder label or name of the benchmark and ``dataset``-``label_set`` is
an in-dataset task's label (``dataset`` alone when ``label_set`` is empty); rows that match
nothing are listed as unmatched.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ecgprobe.exceptions import ConfigError

__all__ = ["REFERENCE_COLUMNS", "load_references", "reference_rows", "write_benchmark_csv"]

REFERENCE_COLUMNS = ("paper", "arxiv_id", "table", "model", "dataset", "label_set", "metric", "value")


def load_references(path: str | Path) -> list[dict[str, Any]]:
    """Read a reference table (see the module docstring).

    Raises:
        ConfigError: a missing file, missing columns or a value that is not a number.

    Example:
        >>> rows = load_references("analyses/reference/ptbxl_linear_probe.csv")  # doctest: +SKIP
    """
    p = Path(path)
    try:
        with p.open(newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in REFERENCE_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ConfigError(
                    f"reference table {p} lacks the columns {missing}; it needs {list(REFERENCE_COLUMNS)}"
                )
            rows = list(reader)
    except FileNotFoundError:
        raise ConfigError(f"reference table {p} does not exist; fix benchmark.references") from None
    for i, r in enumerate(rows):
        try:
            r["value"] = float(r["value"])
        except (TypeError, ValueError):
            raise ConfigError(f"{p}: row {i + 2} has value {r['value']!r}, which is not a number") from None
    return rows


def reference_rows(
    references: Sequence[Mapping[str, Any]],
    cells: Sequence[Mapping[str, Any]],
    tasks: Sequence[Mapping[str, Any]],
    sets: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """Each published value beside our cell (``ours`` None when no cell matches)."""
    in_dataset = {t["name"] for t in tasks if t["kind"] == "in_dataset"}
    by_cell = {(c["encoder"], c["task"]): c for c in cells}
    out = []
    for r in references:
        task = f"{r['dataset']}-{r['label_set']}" if r.get("label_set") else str(r["dataset"])
        cell = by_cell.get((str(r["model"]), task)) if task in in_dataset else None
        ok = cell is not None and str(r.get("metric", "")).lower() in ("auroc", "macro_auroc")
        out.append({
            **{k: r.get(k) for k in REFERENCE_COLUMNS},
            "task": task,
            "ours": cell["macro_auroc"] if ok else None,
            "ours_ci_low": cell["ci_low"] if ok else None,
            "ours_ci_high": cell["ci_high"] if ok else None,
            "published_within_ours": bool(cell["ci_low"] <= r["value"] <= cell["ci_high"]) if ok else None,
        })  # fmt: skip
    return out


def write_benchmark_csv(result: Any, folder: str | Path) -> dict[str, Path]:
    """Write ``leaderboard.csv`` and ``cells.csv`` of a benchmark result into ``folder``."""
    folder = Path(folder)
    out = {}
    for name in ("leaderboard", "cells"):
        rows = result.tables.get(name, [])
        path = folder / f"{name}.csv"
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["encoder"])
            w.writeheader()
            w.writerows(rows)
        out[name] = path
    return out
