"""Subgroup gaps: known answers on embeddings made worse for one sex only."""

from __future__ import annotations

import numpy as np
import pytest

import ecgprobe
from ecgprobe.analyzers.subgroups import age_band_names, subgroup_gaps
from ecgprobe.exceptions import ConfigError
from ecgprobe.extract.embeddings import Embeddings


def _probe(records, X):
    from ecgprobe.analyzers import ANALYZERS

    if "linear_probe" not in ANALYZERS:
        pytest.skip("the linear probe is not in this checkout")
    return ANALYZERS.get("linear_probe")(n_resamples=200).run(Embeddings(X, records.ids), records)


@pytest.fixture(scope="module")
def sexed():
    return ecgprobe.load_dataset("synthetic", n_records=600, fs=100.0, seed=5)


def test_age_bands():
    assert age_band_names((40, 60, 80)) == ["<40", "40–59", "60–79", "≥80"]


def test_gap_is_found_where_one_group_gets_noise(sexed, rng):
    y = sexed.y.astype(np.float32)
    signal = np.hstack([y * 2.0, rng.normal(size=(len(y), 4))]).astype(np.float32)
    male = (sexed.meta.loc[list(sexed.ids), "sex"].astype(str).str.lower() == "male").to_numpy()
    noisy = signal + rng.normal(scale=np.where(male, 6.0, 0.3)[:, None], size=signal.shape).astype(np.float32)
    gaps = subgroup_gaps(_probe(sexed, noisy), sexed, n_resamples=300, seed=1)
    rows = {(r["attribute"], r["group"]): r for r in gaps.tables["groups"]}
    female, male_row = rows[("sex", "female")], rows[("sex", "male")]
    assert female["macro_auroc"] > male_row["macro_auroc"]
    assert male_row["gap_ci_high"] < 0 < female["gap_ci_low"]  # both intervals exclude 0
    assert male_row["gap"] == pytest.approx(-female["gap"])  # two groups: mirror images
    assert gaps.arrays["gap_replicates"].shape == (len(gaps.tables["groups"]), 300)


def test_no_gap_when_every_group_is_treated_alike(sexed, rng):
    X = np.hstack([sexed.y * 2.0, rng.normal(size=(len(sexed), 4))]).astype(np.float32)
    X += rng.normal(scale=1.5, size=X.shape).astype(np.float32)
    gaps = subgroup_gaps(_probe(sexed, X), sexed, n_resamples=300, seed=1)
    sex = [r for r in gaps.tables["groups"] if r["attribute"] == "sex"]
    assert sex and all(r["gap_ci_low"] <= 0 <= r["gap_ci_high"] for r in sex)


def test_refuses_results_without_test_arrays():
    from ecgprobe.analyzers.base import Result

    with pytest.raises(ConfigError, match="test arrays"):
        subgroup_gaps(Result(kind="linear_probe"), ecgprobe.load_dataset("synthetic", n_records=20, fs=100.0))
