"""The benchmark results' schema, shared by the ``bench_*.py`` scripts: one JSON per figure in
``benchmarks/results/``, read by ``benchmarks/make_table.py``.

Keys: ``name``, ``workload``, ``threads``, ``baseline`` (what the figure is compared with), ``runs``
(each ``baseline_s``, ``ecgprobe_s``, ``ratio`` = baseline time / ecgprobe time, plus anything
else a run measured), ``ratio_range`` ([min, max] over the runs), ``accuracy`` and ``machine``;
``load_average`` (1, 5, 15 min, when the figure was saved: how quiet the machine was);
optional ``target`` (shown beside the figure) and ``unit: "s"`` (the figure is ecgprobe's seconds
rather than the ratio).
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    """A one-line description of this machine (CPU model, cores, OS, Python)."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def figure(name: str, workload: str, threads: int, baseline: str, runs: list[dict], **extra: Any) -> dict:
    """One result in the schema; ``extra`` adds ``target``, ``unit``, ``accuracy`` or other keys."""
    ratios = [r["ratio"] for r in runs]
    return {
        "name": name,
        "workload": workload,
        "threads": threads,
        "baseline": baseline,
        "runs": runs,
        "ratio_range": [min(ratios), max(ratios)],
        "machine": machine(),
        "load_average": [round(x, 2) for x in os.getloadavg()],  # other work on the machine at the end
        **extra,
    }


def save(doc: dict, file: str) -> None:
    """Write ``doc`` to ``benchmarks/results/<file>`` and say so."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / file).write_text(json.dumps(doc, indent=1) + "\n")
    print(f"  -> benchmarks/results/{file}")
