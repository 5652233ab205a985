"""Fast, seeded versions of benchmarks/coverage_paired.py: the paired AUROC-difference interval
(compare reports, subgroup gaps) and the operating-point rates cover their known true values."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "coverage_paired", Path(__file__).resolve().parents[2] / "benchmarks" / "coverage_paired.py"
)
cov = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cov)


@pytest.mark.slow
def test_paired_difference_interval_covers_the_true_difference():
    r = cov.paired_difference(sims=200, resamples=200, seed=1)
    assert 0.90 <= r["coverage"] <= 0.99 and r["contains_estimate"] == 1.0


@pytest.mark.slow
def test_operating_point_intervals_cover_the_true_rates():
    r = cov.operating_point(sims=200, resamples=200, seed=1)
    for k in ("sensitivity", "specificity"):
        assert 0.89 <= r[k]["coverage"] <= 0.99, (k, r[k])
