"""Spearman's ρ with its Fisher-z (Bonett-Wright) interval: known values, ties, too few models,
and a seeded small-scale coverage check (full run: benchmarks/coverage_spearman.py)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from ecgprobe.analyzers._stats.rank_correlation import spearman_interval


def test_rho_matches_scipy_with_ties_and_the_interval_holds_it():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=12), rng.normal(size=12)
    x[3] = x[5]  # a tie
    rho, lo, hi, n, why = spearman_interval(x, y)
    assert rho == pytest.approx(spearmanr(x, y).statistic) and n == 12 and why == ""
    assert lo < rho < hi and lo >= -1 and hi <= 1


def test_too_few_models_and_constant_scores_say_why():
    rho, lo, _hi, _n, why = spearman_interval([1, 2, 3], [1, 3, 2])
    assert not math.isnan(rho) and math.isnan(lo) and "at least 4" in why
    assert "at least 3" in spearman_interval([1, np.nan, 3], [1, 2, 3])[4]
    assert "the same for every model" in spearman_interval([1, 1, 1, 1], [1, 2, 3, 4])[4]
    with pytest.raises(ValueError, match="same length"):
        spearman_interval([1, 2], [1, 2, 3])


def test_small_coverage_simulation_is_near_nominal():
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from coverage_spearman import coverage

    assert 0.92 <= coverage(0.5, 12, sims=600, seed=1) <= 0.985
