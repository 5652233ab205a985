"""Coverage of :func:`ecgprobe.analyzers._stats.rank_correlation.spearman_interval` (Fisher z,
Bonett-Wright variance): sets of ``n`` models whose two scores are bivariate normal with
correlation ``r``; the truth is the population Spearman ``6/pi asin(r/2)``. Prints the coverage
of the nominal 95 % interval per (r, n) and writes ``benchmarks/results/coverage_spearman.json``.

Usage: python benchmarks/coverage_spearman.py [--sims 4000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ecgprobe.analyzers._stats.rank_correlation import spearman_interval  # noqa: E402


def coverage(r: float, n: int, sims: int, seed: int, level: float = 0.95) -> float:
    """Share of ``sims`` simulated sets of ``n`` models whose interval holds the population value."""
    rng = np.random.default_rng(seed)
    truth = 6 / math.pi * math.asin(r / 2)
    cov = np.array([[1.0, r], [r, 1.0]])
    hits = 0
    for _ in range(sims):
        x, y = rng.multivariate_normal([0.0, 0.0], cov, size=n).T
        _, lo, hi, _, _ = spearman_interval(x, y, level)
        hits += lo <= truth <= hi
    return hits / sims


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sims", type=int, default=4000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    rows = []
    for r in (0.0, 0.5, 0.8):
        for n in (5, 9, 20):
            c = coverage(r, n, args.sims, args.seed)
            rows.append({"r": r, "spearman": 6 / math.pi * math.asin(r / 2), "n": n, "coverage": c})
            print(
                f"r={r:.1f} (Spearman {rows[-1]['spearman']:.3f}), n={n:2d}: coverage {100 * c:.1f} % at 95 %"
            )
    out = ROOT / "benchmarks" / "results" / "coverage_spearman.json"
    out.write_text(
        json.dumps(
            {"name": "coverage_spearman", "sims": args.sims, "seed": args.seed, "rows": rows}, indent=1
        )
        + "\n"
    )
    print(f"  -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
