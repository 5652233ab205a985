"""Repeated splits: the rotation over PTB-XL's strat_fold reproduces the recommended split's probe
exactly, seeded folds are patient-wise and balanced, and the spread is reported as a spread."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import ecgprobe
from ecgprobe.analyzers.base import Result
from ecgprobe.analyzers.linear_probe import LinearProbe
from ecgprobe.analyzers.repeated_splits import RepeatedSplits, fold_numbers, rotation_splits
from ecgprobe.data.splits import stratified_patient_folds
from ecgprobe.exceptions import ConfigError
from tests.analyzers.probe_fixtures import make_problem

FAST = {"n_resamples": 50, "Cs": (0.01, 0.1, 1.0), "seed": 0}


@pytest.fixture(scope="module")
def ptbxl_case(ptbxl100):
    emb = ecgprobe.extract(ecgprobe.create_encoder("handcrafted"), ptbxl100, progress=False)
    return emb, ptbxl100, RepeatedSplits(**FAST).run(emb, ptbxl100)


def test_strat_fold_rotation_ten_is_the_recommended_split(ptbxl_case):
    emb, records, res = ptbxl_case
    folds, source = fold_numbers(records)
    assert source == "strat_fold" and res.metrics["folds_source"] == "strat_fold"
    assert (rotation_splits(folds, 10) == records.split).all()  # train 1-8, val 9, test 10
    probe = LinearProbe(**FAST).run(emb, records)
    m = res.metrics
    assert m["reference_fold"] == 10
    assert m["reference_macro"] == pytest.approx(probe.metrics["macro_auroc"], abs=1e-12)
    assert m["reference_macro_ci"] == pytest.approx(probe.metrics["macro_auroc_ci"], abs=1e-12)


def test_rotations_report_mean_and_spread_on_common_labels(ptbxl_case):
    _, records, res = ptbxl_case
    m, rows = res.metrics, res.tables["folds"]
    assert m["k"] == 10 and len(rows) + len(m["rotations_skipped"]) == 10
    values = np.array([r["value"] for r in rows])
    assert m["mean"] == pytest.approx(values.mean()) and m["sd"] == pytest.approx(values.std(ddof=1))
    assert m["sd"] > 0 and m["min"] <= m["mean"] <= m["max"]
    assert set(m["labels_common"]) <= set(records.label_names)
    # every test fold is tested once, and no test record is in its rotation's train or val
    assert sorted(r["test_fold"] for r in rows) == sorted(
        set(range(1, 11)) - {int(t) for t in m["rotations_skipped"]}
    )
    assert sum(r["n_test"] for r in rows) <= len(records)
    assert any("not a confidence interval" in n for n in res.notes)


def test_result_round_trip(ptbxl_case, tmp_path):
    res = ptbxl_case[2]
    back = Result.load(res.save(tmp_path / "rs.json"))
    assert type(back).__name__ == "RepeatedSplitsResult" and back.metrics == res.metrics


def test_seeded_folds_are_patient_wise_balanced_and_reproducible():
    emb, records = make_problem(n=600, records_per_patient=3, seed=1)
    folds = stratified_patient_folds(records.y, records.patient_ids, 5, seed=3)
    assert (folds == stratified_patient_folds(records.y, records.patient_ids, 5, seed=3)).all()
    for p in np.unique(records.patient_ids):
        assert len(set(folds[records.patient_ids == p])) == 1
    sizes = np.bincount(folds)[1:]
    assert len(sizes) == 5 and sizes.min() >= 0.8 * sizes.max()

    def spread(f):  # the largest range of a label's prevalence across folds
        return np.ptp(np.array([records.y[f == k].mean(0) for k in range(1, 6)]), axis=0).max()

    _, inv = np.unique(records.patient_ids, return_inverse=True)
    rng = np.random.default_rng(0)
    random_spread = np.median([spread(rng.integers(1, 6, inv.max() + 1)[inv]) for _ in range(20)])
    assert spread(folds) < 0.6 * random_spread  # stratified: tighter than random patient folds
    res = RepeatedSplits(k=5, **FAST).run(emb, records)
    assert res.metrics["folds_source"] == "seeded" and res.metrics["n_rotations"] == 5
    assert res.metrics["mean"] > 0.75  # the problem is learnable in every rotation


def test_regression_targets_rotate_too(ptbxl100):
    records = ptbxl100.with_meta_target("age")
    emb = ecgprobe.extract(ecgprobe.create_encoder("handcrafted"), records, progress=False)
    res = RepeatedSplits(k=4, **FAST).run(emb, records)  # k differs from strat_fold's 10: seeded
    assert res.metrics["metric"] == "r2" and res.metrics["folds_source"] == "seeded"
    assert res.metrics["n_rotations"] == 4 and "per_label" not in res.tables


def test_folds_that_split_a_patient_or_too_few_are_refused(ptbxl100):
    bad = ptbxl100.meta.copy()
    first = ptbxl100.patient_ids[0]
    same = np.flatnonzero(ptbxl100.patient_ids == first)
    others = np.flatnonzero(ptbxl100.patient_ids != first)
    leaky = replace(
        ptbxl100, patient_ids=np.where(np.arange(len(ptbxl100)) == others[0], first, ptbxl100.patient_ids)
    )
    if bad["strat_fold"].iloc[others[0]] == bad["strat_fold"].iloc[same[0]]:
        pytest.skip("the chosen records share a fold")
    with pytest.raises(ConfigError, match="several folds"):
        fold_numbers(leaky)
    with pytest.raises(ConfigError, match="at least 3"):
        RepeatedSplits(k=2).run(*make_problem(n=200)[::1])
    with pytest.raises(ConfigError, match="integer >= 3"):
        stratified_patient_folds(np.zeros((10, 1)), [str(i) for i in range(10)], 2)
    with pytest.raises(ConfigError, match="at most 4 folds"):
        stratified_patient_folds(np.zeros((8, 1)), ["a", "b", "c", "d"] * 2, 5)


def test_section_renders_the_rotations_and_the_spread(ptbxl_case):
    from ecgprobe.report import Report

    res = ptbxl_case[2]
    html = Report({"repeated_splits": res}, title="t").to_html()
    assert "Repeated splits" in html and "not a confidence interval" in html
    assert html.count("<tr") >= res.metrics["n_rotations"] + 1
    assert f"{res.metrics['sd']:.3f}" in html
