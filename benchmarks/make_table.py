"""Render the README's performance table from the benchmark results, and write it into README.md.

Reads every ``benchmarks/results/*.json`` in the benchmark schema — ``name``, ``workload``,
``threads``, ``baseline``, ``runs`` (each ``baseline_s``, ``ecgprobe_s``, ``ratio``),
``ratio_range``, ``accuracy``, ``machine`` — and skips (naming them) the files of other schemas
(e.g. the coverage simulations). A figure is the range over its runs: the ratio (baseline time /
ecgprobe time, ``x``), or seconds for a figure with ``"unit": "s"`` (with the CPU seconds when the
runs recorded ``ecgprobe_cpu_s``); an optional ``target`` is shown beside it, and the machine and
its load average below the table. The table replaces whatever lies between ``<!-- bench-table:start -->`` and
``<!-- bench-table:end -->`` in README.md; nothing else in the file changes.

Usage: python benchmarks/make_table.py [--results DIR] [--readme README.md] [--print]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- bench-table:start -->", "<!-- bench-table:end -->"
REQUIRED = ("name", "workload", "threads", "baseline", "runs", "ratio_range")


def _cell(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _number(x: float) -> str:
    """Three significant figures, without exponent for the usual range of these figures."""
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}" if abs(x) >= 0.01 else f"{x:.2g}"


def _range(lo: float, hi: float, unit: str) -> str:
    a, b = _number(lo), _number(hi)
    return f"{a}{unit}" if a == b else f"{a}-{b}{unit}"


def measured(doc: dict[str, Any]) -> str:
    """The figure of one result: its range over the runs, in seconds or as a ratio (CPU-time and
    wall-clock ratios both shown when the runs recorded both)."""
    runs = doc["runs"]
    if doc.get("unit") == "s" or any(v is None for v in doc["ratio_range"]):
        secs = [r["ecgprobe_s"] for r in runs]
        text = _range(min(secs), max(secs), " s")
        cpu = [r.get("ecgprobe_cpu_s", r.get("cpu_s")) for r in runs]
        if all(isinstance(c, (int, float)) for c in cpu):  # CPU time: what a busy machine inflates least
            text += f", CPU {_range(min(cpu), max(cpu), ' s')}"
    elif doc.get("cpu_ratio_range"):  # ratio_range is wall clock here
        text = f"{_range(*doc['cpu_ratio_range'], 'x')} CPU time, {_range(*doc['ratio_range'], 'x')} wall"
    elif doc.get("wall_ratio_range"):  # ratio_range is CPU time here
        text = f"{_range(*doc['ratio_range'], 'x')} CPU time, {_range(*doc['wall_ratio_range'], 'x')} wall"
    else:
        lo, hi = doc["ratio_range"]
        text = _range(lo, hi, "x")
    return f"{text} ({len(runs)} runs)"


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (int, float)):
        return _number(v)
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k.replace('_', ' ')} {_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return str(v)


def accuracy(doc: dict[str, Any]) -> str:
    items = (doc.get("accuracy") or {}).items()
    return ", ".join(f"{k.replace('_', ' ')} {_value(v)}" for k, v in items)


def load(results: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The results in the schema (sorted by file name) and the names of the files skipped."""
    docs, skipped = [], []
    for path in sorted(results.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            skipped.append(f"{path.name} (unreadable: {exc})")
            continue
        if path.name.startswith("coverage_"):  # interval coverage simulations: not speed figures
            skipped.append(f"{path.name} (a coverage simulation)")
            continue
        if not isinstance(doc, dict) or any(k not in doc for k in REQUIRED) or not doc["runs"]:
            skipped.append(f"{path.name} (not in the benchmark schema)")
            continue
        docs.append({**doc, "_file": path.name})
    return docs, skipped


def render(docs: list[dict[str, Any]]) -> str:
    """The Markdown table (with a line naming the machines the figures come from)."""
    lines = [
        "| what | workload | threads | baseline | measured | target | accuracy |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in docs:
        cells = [
            d["name"],
            d["workload"],
            d["threads"],
            d["baseline"],
            measured(d),
            d.get("target", ""),
            accuracy(d),
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    machines = sorted({str(d.get("machine", "unknown machine")) for d in docs})
    sources = ", ".join(f"`benchmarks/results/{d['_file']}`" for d in docs)
    loads = [
        f"{d['load_average'][0]:g}"
        for d in docs
        if isinstance(d.get("load_average"), list) and d["load_average"]
    ]
    busy = f" 1-min load average when each figure was saved: {', '.join(loads)}." if loads else ""
    lines += ["", f"Measured on: {'; '.join(machines)}.{busy} From {sources}; regenerate with `make bench`."]
    return "\n".join(lines)


def rewrite(readme: Path, table: str) -> None:
    """Replace the text between the markers of ``readme`` with ``table``.

    Raises:
        SystemExit: the markers are missing or out of order (the file is left as it was).
    """
    text = readme.read_text()
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise SystemExit(f"{readme}: expected one {START} line followed by one {END} line around the table")
    head, rest = text.split(START)
    _, tail = rest.split(END)
    readme.write_text(f"{head}{START}\n{table}\n{END}{tail}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    ap.add_argument("--print", action="store_true", help="print the table instead of writing README.md")
    args = ap.parse_args()
    docs, skipped = load(args.results)
    for name in skipped:
        print(f"make_table: skipping {name}", file=sys.stderr)
    if not docs:
        raise SystemExit(f"no benchmark results in {args.results}; run `make bench` first")
    table = render(docs)
    if args.print:
        print(table)
        return
    rewrite(args.readme, table)
    print(f"make_table: wrote {len(docs)} figures into {args.readme}")


if __name__ == "__main__":
    main()
