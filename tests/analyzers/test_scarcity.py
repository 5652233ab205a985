"""The scarcity curve: subsets nested, patient-wise, from train only; the full point equals the
linear probe; labels missing from a subset are excluded and reported; summary definitions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ecgprobe.analyzers import ANALYZERS
from ecgprobe.analyzers._stats.subsets import nested_count_subsets, nested_fraction_subsets
from ecgprobe.analyzers.linear_probe import LinearProbe
from ecgprobe.analyzers.scarcity import ScarcityCurve, ScarcityResult, crossing_point, normalised_area
from ecgprobe.exceptions import AnalysisError, ConfigError
from tests.analyzers.probe_fixtures import make_problem

FAST = {"device": "cpu", "n_resamples": 100}


@pytest.fixture(scope="module")
def problem():
    emb, records = make_problem(n=1500, dim=16, n_labels=3, records_per_patient=3, seed=5)
    # L0 becomes rare: the records of 4 train patients (and of a few val/test patients) only
    y = records.y.copy()
    rare = np.zeros(len(records), dtype=bool)
    for part, k in (("train", 4), ("val", 3), ("test", 3)):
        pats = sorted(set(records.patient_ids[records.split == part]))[:k]
        rare |= np.isin(records.patient_ids, pats)
    y[:, 0] = rare
    return emb, records.with_labels(records.label_names, y, "multilabel")


@pytest.fixture(scope="module")
def curve(problem):
    emb, records = problem
    return ScarcityCurve(fractions=(0.02, 0.1, 0.3), n_seeds=3, **FAST).run(emb, records)


def test_fraction_subsets_are_nested_patientwise_and_stratified(problem):
    _, records = problem
    train = records.by_split("train")
    fractions = [0.05, 0.2, 0.5, 1.0]
    masks = nested_fraction_subsets(train.y, train.patient_ids, fractions, seed=0)
    for small, big in itertools.pairwise(masks):
        assert np.all(big | ~small)  # nested
    for f, m in zip(fractions, masks):
        assert abs(m.sum() / len(train) - f) < 0.03
        for pid in set(train.patient_ids):  # a patient is wholly in or out
            inside = m[train.patient_ids == pid]
            assert inside.all() or not inside.any()
        if f >= 0.2:  # label proportions kept
            np.testing.assert_allclose(train.y[m].mean(0), train.y.mean(0), atol=0.04)
    assert masks[-1].all()
    other = nested_fraction_subsets(train.y, train.patient_ids, fractions, seed=1)
    assert not np.array_equal(masks[0], other[0])
    with pytest.raises(ConfigError):
        nested_fraction_subsets(train.y, train.patient_ids, [0.0], seed=0)


def test_count_subsets_hold_enough_positives(problem):
    _, records = problem
    train = records.by_split("train")
    masks = nested_count_subsets(train.y, train.patient_ids, [2, 10, 40], seed=0)
    for n, m in zip([2, 10, 40], masks):
        assert (train.y[m].sum(0) >= np.minimum(n, train.y.sum(0))).all()
        for pid in set(train.patient_ids[m]):
            assert m[train.patient_ids == pid].all()
    assert np.all(masks[1] | ~masks[0]) and masks[0].sum() < masks[2].sum()


def test_curve_schema_and_the_full_point_equals_the_linear_probe(curve, problem):
    emb, records = problem
    assert ANALYZERS.get("scarcity") is ScarcityCurve and isinstance(curve, ScarcityResult)
    m, a = curve.metrics, curve.arrays
    assert m["grid"] == [0.02, 0.1, 0.3, 1.0] and a["macro_auroc"].shape == (4, 3)
    assert np.ptp(a["macro_auroc"][-1]) == 0  # the full set is the same for every seed
    probe = LinearProbe(**FAST).run(emb, records)
    assert m["full_macro_auroc"] == pytest.approx(probe.metrics["macro_auroc"], abs=1e-9)
    rows = curve.table("curve")
    assert rows["macro_auroc_mean"].iloc[-1] > rows["macro_auroc_mean"].iloc[0] + 0.03
    assert (rows["macro_auroc_ci_low"] <= rows["macro_auroc_mean"]).all()
    assert (rows["macro_auroc_mean"] <= rows["macro_auroc_ci_high"]).all()
    assert 0.02 <= m["fraction_for_95pct"] <= 1.0 and 0 < m["normalised_auc"] <= 1.0
    assert len(curve.table("runs")) == 12 and len(curve.table("per_label")) == 4 * 3


def test_subsets_come_from_train_only(curve, problem):
    _, records = problem
    masks = curve.arrays["subset_masks"]
    assert masks.shape[-1] == int((records.split == "train").sum())
    assert curve.arrays["train_ids"].tolist() == records.ids[records.split == "train"].tolist()
    n_train = curve.table("runs")["n_train"].to_numpy().reshape(4, 3)
    np.testing.assert_array_equal(n_train, masks.sum(-1))


def test_labels_missing_from_a_subset_are_excluded_not_averaged(curve):
    """L0 (4 of 300 train patients) lacks positives in the 2 % subsets: excluded there, listed, no NaN."""
    runs = curve.table("runs")
    small = runs[runs["x"] == 0.02]
    excluded = [r for r in small["labels_excluded"] if r]
    assert excluded and all(r == ["L0"] for r in excluded)
    assert np.isfinite(curve.arrays["macro_auroc_all"]).all()
    lacking = np.isnan(curve.arrays["per_label_auroc"][0, :, 0])
    assert lacking.sum() == len(excluded)
    np.testing.assert_allclose(  # the raw macro: whatever labels each run could fit
        curve.arrays["macro_auroc_all"][0], np.nanmean(curve.arrays["per_label_auroc"][0], axis=-1)
    )
    assert any("L0" in n for n in curve.notes)


def test_headline_macro_compares_like_with_like(curve, problem):
    """Regression (issue 12.8): L0 has no positive in the 2 % subsets (and 3 positive test
    patients), so every point of the headline curve, and the full-data point, averages L1 and L2
    only; the raw macro over whatever was fitted is kept beside it."""
    m, rows, per = curve.metrics, curve.table("curve"), curve.arrays["per_label_auroc"]
    assert m["labels_common"] == ["L1", "L2"] and m["labels_headline"] == ["L1", "L2"]
    assert m["n_labels_headline"] == 2 and (rows["n_labels"] == 2).all()
    assert m["headline_basis"] == "min_positives" and m["labels_flagged"] == ["L0"]
    np.testing.assert_allclose(rows["macro_auroc_mean"], per[..., 1:].mean(-1).mean(-1))
    np.testing.assert_allclose(curve.arrays["macro_auroc"], per[..., 1:].mean(-1))
    assert m["full_macro_auroc"] == pytest.approx(curve.arrays["full_per_label_auroc"][1:].mean())
    assert m["full_macro_auroc_all"] == pytest.approx(curve.arrays["full_per_label_auroc"].mean())
    np.testing.assert_allclose(rows["macro_auroc_all_mean"], np.nanmean(per, -1).mean(-1))
    flags = {r["label"]: (r["flagged"], r["in_headline"]) for r in curve.tables["per_label"]}
    assert flags == {"L0": (True, False), "L1": (False, True), "L2": (False, True)}
    # without the patient threshold L0 is still out: it is not fitted at every fraction
    loose = ScarcityCurve(fractions=(0.02, 0.3), n_seeds=2, min_positives=0, **FAST).run(*problem)
    assert loose.metrics["labels_headline"] == ["L1", "L2"] and loose.metrics["labels_flagged"] == []


def test_no_label_fitted_everywhere_falls_back_to_the_raw_macro_and_never_draws_empty_points(problem):
    emb, records = problem
    y = records.y.copy()
    train = np.flatnonzero(records.split == "train")
    y[:, 1:] = 0  # L1, L2 only positive in one train patient's records (and in val/test)
    y[train[:3], 1:] = 1
    y[records.split != "train", 1:] = records.y[records.split != "train", 1:]
    rs = records.with_labels(records.label_names, y, "multilabel")
    res = ScarcityCurve(fractions=(0.02, 0.3), n_seeds=2, min_positives=0, **FAST).run(emb, rs)
    m, rows = res.metrics, res.table("curve")
    assert m["headline_basis"] == "varying" and m["labels_common"] == []
    assert np.isfinite(m["full_macro_auroc"]) and any("descriptive" in n for n in res.notes)
    assert rows["n_labels"].tolist() == [0, 1, 3]  # 2 %: nothing fitted, 30 %: L0 only
    assert np.isnan(rows["macro_auroc_mean"][0]) and np.isfinite(rows["macro_auroc_mean"][1:]).all()
    assert np.isnan(rows["macro_auroc_ci_low"][0])  # an empty point has no value to draw


def test_bca_option_and_bad_interval_settings(problem):
    emb, records = problem
    res = ScarcityCurve(fractions=(0.3,), n_seeds=2, ci_method="bca", **FAST).run(emb, records)
    rows = res.table("curve")
    assert res.metrics["ci_method"] == "bca"
    assert (rows["macro_auroc_ci_low"] <= rows["macro_auroc_mean"]).all()
    assert (rows["macro_auroc_mean"] <= rows["macro_auroc_ci_high"]).all()
    with pytest.raises(ConfigError, match="ci_method"):
        ScarcityCurve(ci_method="normal").run(emb, records)
    with pytest.raises(ConfigError, match="min_positives"):
        ScarcityCurve(min_positives=2.5).run(emb, records)


def test_samples_per_class_mode_and_val_subsampling(problem):
    emb, records = problem
    res = ScarcityCurve(samples_per_class=(3, 20), n_seeds=2, subsample_val=True, **FAST).run(emb, records)
    assert res.metrics["mode"] == "samples_per_class" and res.metrics["grid"] == [3.0, 20.0]
    assert "samples_for_95pct" in res.metrics and np.isfinite(res.metrics["full_macro_auroc"])


def test_summary_definitions():
    x = np.array([0.01, 0.1, 1.0])
    assert crossing_point(x, np.array([0.5, 0.7, 0.9]), 0.8) == (pytest.approx(10**-0.5), False)
    assert crossing_point(x, np.array([0.9, 0.9, 0.9]), 0.8) == (0.01, True)
    assert crossing_point(x, np.array([0.5, 0.6, 0.7]), 0.8) == (None, False)
    assert normalised_area(x, np.array([0.9, 0.9, 0.9]), 0.9) == pytest.approx(1.0)
    # linear in log10 x from 0.5 to 0.9: mean 0.7
    assert normalised_area(x, np.array([0.5, 0.7, 0.9]), 0.9) == pytest.approx(0.7 / 0.9)
    assert normalised_area(x, np.array([0.5, 0.7, 0.9]), 0.9, floor=0.5) == pytest.approx(0.5)


def test_settings_and_inputs_are_checked(problem):
    emb, records = problem
    with pytest.raises(ConfigError):
        ScarcityCurve(fractions=(0.5, 2.0)).run(emb, records)
    with pytest.raises(ConfigError):
        ScarcityCurve(n_seeds=0).run(emb, records)
    with pytest.raises(AnalysisError, match="multi-label"):
        ScarcityCurve().run(emb, records.with_labels(("a",), np.zeros(len(records)), "regression"))


def test_scarcity_section_shows_the_label_set_and_flags(curve):
    from ecgprobe.report import Report
    from ecgprobe.report.blocks import KeyValues, Table
    from ecgprobe.report.sections.scarcity import headline_text, label_table, render

    blocks = render(Report({"scarcity": curve}, title="t"))
    kv = dict(next(b for b in blocks if isinstance(b, KeyValues)).rows)
    assert kv["labels in the macro"] == "2, the same at every point: L1, L2"
    tables = [b for b in blocks if isinstance(b, Table)]
    assert [r[0] for r in tables[-1].rows] == ["L0 †", "L1", "L2"] and tables[-1].rows[0][2] == "no"
    assert all(r[4] == "2" for r in tables[0].rows)  # the curve: labels averaged at each point
    old = ScarcityResult(
        kind="scarcity",
        metrics={k: v for k, v in curve.metrics.items() if k not in ("headline_basis", "labels_headline")},
        tables={
            "per_label": [
                {k: v for k, v in r.items() if k != "in_headline"} for r in curve.tables["per_label"]
            ]
        },
    )
    assert label_table(old) is None and headline_text(old).startswith("not recorded")
