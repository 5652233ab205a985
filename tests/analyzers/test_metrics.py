"""Vectorised metrics against scikit-learn, weights as repetitions, and the patient bootstrap's
coverage on a problem with a known AUROC."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from ecgprobe.analyzers._stats.bootstrap import (
    bca_ci,
    confidence_interval,
    jackknife_weights,
    percentile_ci,
    resample_weights,
)
from ecgprobe.analyzers._stats.metrics import (
    auroc,
    average_precision,
    best_f1_thresholds,
    brier_score,
    expected_calibration_error,
    f1_at_thresholds,
    rank_metrics,
    regression_metrics,
    reliability,
    roc_curve,
)
from ecgprobe.exceptions import ConfigError


@pytest.fixture(scope="module")
def tied():
    rng = np.random.default_rng(1)
    y = (rng.random((240, 4)) < [0.1, 0.3, 0.5, 0.7]).astype(np.uint8)
    s = np.round(rng.random((240, 4)) + 0.4 * y, 1)  # many ties
    return y, s


def test_rank_metrics_equal_sklearn_with_ties(tied):
    y, s = tied
    auc, ap = auroc(y, s), average_precision(y, s)
    for j in range(y.shape[1]):
        assert auc[j] == pytest.approx(skm.roc_auc_score(y[:, j], s[:, j]), abs=1e-12)
        assert ap[j] == pytest.approx(skm.average_precision_score(y[:, j], s[:, j]), abs=1e-12)
        fpr, tpr, thr = roc_curve(y[:, j], s[:, j])
        f2, t2, h2 = skm.roc_curve(y[:, j], s[:, j])
        np.testing.assert_allclose(fpr, f2)
        np.testing.assert_allclose(tpr, t2)
        np.testing.assert_allclose(thr[1:], h2[1:])


def test_roc_curve_of_identical_scores_is_the_diagonal():
    """Regression (issue 12.3): all-tied scores (a kNN probe's rare label) raised IndexError."""
    fpr, tpr, thr = roc_curve(np.array([0, 1, 0, 1]), np.full(4, 0.5))
    assert fpr.tolist() == [0.0, 1.0] and tpr.tolist() == [0.0, 1.0] and thr.tolist() == [np.inf, 0.5]
    f2, t2, _ = skm.roc_curve([0, 1, 0, 1], np.full(4, 0.5))
    np.testing.assert_allclose(fpr, f2) and np.testing.assert_allclose(tpr, t2)
    fpr, tpr, _ = roc_curve(np.array([0, 1, 0, 1]), np.array([0.0, 0.0, 0.5, 0.5]))  # two distinct
    np.testing.assert_allclose(np.trapezoid(tpr, fpr), 0.5)


def test_rank_metrics_degenerate_labels_are_nan():
    y = np.array([[0, 1], [0, 1], [0, 1]])
    auc, ap = rank_metrics(y, np.array([[0.1, 0.2], [0.3, 0.1], [0.2, 0.9]]))
    assert np.isnan(auc).all() and np.isnan(ap[0, 0]) and ap[0, 1] == 1.0


@pytest.mark.parametrize("n_resamples", [5, 40])  # float64 path, and the exact float32 path (B > 16)
def test_weights_act_as_repetitions(tied, n_resamples):
    y, s = tied
    w = np.random.default_rng(2).integers(0, 4, size=(n_resamples, len(y)))
    auc, ap = rank_metrics(y, s, w)
    f1 = f1_at_thresholds(y, s, np.full(4, 0.6), w)
    for b in (0, n_resamples - 1):
        idx = np.repeat(np.arange(len(y)), w[b])
        for j in range(4):
            assert auc[b, j] == pytest.approx(skm.roc_auc_score(y[idx, j], s[idx, j]), abs=1e-12)
            assert ap[b, j] == pytest.approx(skm.average_precision_score(y[idx, j], s[idx, j]), abs=1e-6)
            assert f1[b, j] == pytest.approx(skm.f1_score(y[idx, j], s[idx, j] >= 0.6), abs=1e-12)


def test_f1_thresholds_are_optimal_on_the_data_they_see(tied):
    y, s = tied
    thr = best_f1_thresholds(y, s)
    f1 = f1_at_thresholds(y, s, thr)[0]
    for j in range(4):
        best = max(skm.f1_score(y[:, j], s[:, j] >= c) for c in np.unique(s[:, j]))
        assert f1[j] == pytest.approx(best, abs=1e-12)
    assert best_f1_thresholds(np.zeros((3, 1)), np.ones((3, 1)))[0] == 0.5  # no positive: default


def test_calibration_matches_sklearn_and_known_answer():
    rng = np.random.default_rng(3)
    p = rng.random((4000, 2))
    y = np.stack([rng.random(4000) < p[:, 0], rng.random(4000) < 0.5 * p[:, 1]], 1).astype(int)
    mean_pred, frac, count = reliability(y, p, n_bins=10)
    for j in range(2):
        prob_true, prob_pred = calibration_curve(y[:, j], p[:, j], n_bins=10)
        np.testing.assert_allclose(mean_pred[j][count[j] > 0], prob_pred)
        np.testing.assert_allclose(frac[j][count[j] > 0], prob_true)
        assert brier_score(y, p)[0, j] == pytest.approx(skm.brier_score_loss(y[:, j], p[:, j]))
    ece = expected_calibration_error(y, p)
    assert ece[0] < 0.03  # calibrated by construction
    assert ece[1] == pytest.approx(0.25, abs=0.03)  # E|p - p/2| = 1/4
    # one bin, known answer: mean p 0.5, frequency 1 -> gap 0.5
    assert expected_calibration_error(np.ones((2, 1)), np.full((2, 1), 0.5), n_bins=1)[0] == 0.5
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        reliability(y, p + 1)


def test_weighted_ece_equals_ece_of_repeated_records():
    rng = np.random.default_rng(7)
    p = rng.random((400, 3))
    y = (rng.random((400, 3)) < 0.8 * p).astype(int)
    w = rng.integers(0, 3, size=(5, 400))
    ece_w = expected_calibration_error(y, p, weights=w, n_bins=8)
    assert ece_w.shape == (5, 3)
    for b in range(5):
        idx = np.repeat(np.arange(400), w[b])
        np.testing.assert_allclose(ece_w[b], expected_calibration_error(y[idx], p[idx], n_bins=8))
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        expected_calibration_error(y, p + 1, weights=w)


def test_regression_metrics_match_sklearn_and_weights():
    rng = np.random.default_rng(4)
    y = rng.normal(size=(300, 2)) * 10 + 50
    pred = y + rng.normal(size=(300, 2)) * 3
    m = regression_metrics(y, pred)
    for j in range(2):
        assert m["mae"][0, j] == pytest.approx(skm.mean_absolute_error(y[:, j], pred[:, j]))
        assert m["rmse"][0, j] == pytest.approx(np.sqrt(skm.mean_squared_error(y[:, j], pred[:, j])))
        assert m["r2"][0, j] == pytest.approx(skm.r2_score(y[:, j], pred[:, j]))
    w = rng.integers(0, 3, size=(2, 300))
    idx = np.repeat(np.arange(300), w[1])
    assert regression_metrics(y, pred, w)["r2"][1, 0] == pytest.approx(skm.r2_score(y[idx, 0], pred[idx, 0]))
    with pytest.raises(ConfigError, match="finite"):
        regression_metrics(np.array([1.0, np.nan]), np.array([1.0, 2.0]))


def test_resample_weights_are_patient_draws():
    groups = np.array(["a", "a", "b", "c", "c", "c"])
    w = resample_weights(groups, 500, seed=0)
    assert w.shape == (500, 6)
    assert (w[:, 0] == w[:, 1]).all() and (w[:, 3] == w[:, 5]).all()
    assert (w[:, [0, 2, 3]].sum(1) == 3).all()  # three patients drawn per resample
    np.testing.assert_array_equal(w, resample_weights(groups, 500, seed=0))
    assert not np.array_equal(w, resample_weights(groups, 500, seed=1))
    with pytest.raises(ConfigError):
        resample_weights(groups, 0, seed=0)


def test_patient_bootstrap_is_not_fooled_by_duplicated_records():
    """Copies of a record add no information: the patient bootstrap's interval stays as wide as
    with one record per patient, the record-wise one narrows by ~sqrt(3)."""
    rng = np.random.default_rng(5)
    y = (rng.random(300) < 0.4).astype(int)
    s = rng.normal(size=300) + y
    ones = resample_weights(np.arange(300).astype(str), 2000, seed=1)
    width = np.diff(percentile_ci(rank_metrics(y, s, ones, ap=False)[0], 0.95))[0, 0]
    y3, s3 = np.repeat(y, 3), np.repeat(s, 3)
    pat = np.repeat(np.arange(300), 3).astype(str)
    w_pat = resample_weights(pat, 2000, seed=1)
    w_rec = resample_weights(np.arange(900).astype(str), 2000, seed=1)
    width_pat = np.diff(percentile_ci(rank_metrics(y3, s3, w_pat, ap=False)[0], 0.95))[0, 0]
    width_rec = np.diff(percentile_ci(rank_metrics(y3, s3, w_rec, ap=False)[0], 0.95))[0, 0]
    assert width_pat == pytest.approx(width, rel=0.15)
    assert width_rec < 0.75 * width_pat


def test_bootstrap_ci_coverage_is_nominal_on_binormal_scores():
    """Binormal scores (positives ~ N(d, 1), negatives ~ N(0, 1)) have AUROC Phi(d / sqrt 2); over
    300 simulated test sets the 95 % percentile interval should contain it ~95 % of the time."""
    true_auc = 0.8
    d = np.sqrt(2) * norm.ppf(true_auc)
    rng = np.random.default_rng(6)
    n_sim, n_pos, n_neg = 300, 60, 140
    hits, widths = 0, []
    y = np.r_[np.ones(n_pos), np.zeros(n_neg)].astype(int)
    for sim in range(n_sim):
        s = np.r_[rng.normal(d, 1, n_pos), rng.normal(0, 1, n_neg)]
        w = resample_weights(np.arange(len(y)).astype(str), 1000, seed=sim)
        lo, hi = percentile_ci(rank_metrics(y, s, w, ap=False)[0], 0.95)[0]
        hits += lo <= true_auc <= hi
        widths.append(hi - lo)
    coverage = hits / n_sim
    assert 0.90 <= coverage <= 0.985, coverage
    assert 0.08 < np.mean(widths) < 0.2


def test_bca_and_basic_intervals_known_answers():
    rng = np.random.default_rng(8)
    reps = rng.normal(0.7, 0.05, size=(4000, 2))
    point = np.array([0.7, 0.7])
    flat = np.zeros((50, 2))  # no jackknife spread: acceleration 0
    # replicates centred on the estimate: BCa reduces to the percentile interval
    np.testing.assert_allclose(bca_ci(reps, point, flat), percentile_ci(reps), atol=3e-3)
    # replicates shifted up from the estimate: BCa shifts the interval down (bias correction)
    shifted = bca_ci(reps + 0.03, point, flat)
    assert (shifted[:, 0] < percentile_ci(reps + 0.03)[:, 0]).all()
    basic = confidence_interval(reps + 0.03, method="basic", point=point)
    np.testing.assert_allclose(basic, 2 * 0.7 - percentile_ci(reps + 0.03)[:, ::-1])
    assert np.isnan(bca_ci(np.full((10, 1), np.nan), np.array([0.5]), np.zeros((3, 1)))).all()
    with pytest.raises(ConfigError, match="ci_method"):
        confidence_interval(reps, method="bca")  # needs the point and the jackknife
    jk = jackknife_weights(np.array(["a", "a", "b", "c"]))
    assert jk.tolist() == [[0, 0, 1, 1], [1, 1, 0, 1], [1, 1, 1, 0]]
    assert jackknife_weights(np.arange(2500).astype(str)).shape == (1000, 2500)  # blocks of patients


def test_percentile_ci_ignores_nan_and_checks_level():
    r = np.array([[1.0, np.nan], [2.0, np.nan], [3.0, np.nan]])
    ci = percentile_ci(r, 0.5)
    assert ci[0].tolist() == [1.5, 2.5] and np.isnan(ci[1]).all()
    with pytest.raises(ConfigError, match="level"):
        percentile_ci(r, 1.5)


def _coverage_benchmark():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "coverage_auroc.py"
    spec = importlib.util.spec_from_file_location("coverage_auroc", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_auroc_interval_coverage_simulation_fast():
    """The fast version of benchmarks/coverage_auroc.py (there: 2000 simulations x 1000
    resamples). Percentile intervals undercover with 7 positives; BCa covers better (and is
    wider) there; both are near nominal with 50 positives and for the macro."""
    res = _coverage_benchmark().simulate((7, 50), sims=300, resamples=400, seed=1)["coverage"]
    pct, bca = res["percentile"], res["bca"]
    assert pct["pos_7"]["coverage"] < 0.93
    assert bca["pos_7"]["coverage"] > pct["pos_7"]["coverage"]
    assert bca["pos_7"]["width"] > pct["pos_7"]["width"] > pct["pos_50"]["width"]
    for method in (pct, bca):  # 300 simulations: Monte Carlo SE 1.3 %
        assert 0.88 <= method["pos_50"]["coverage"] <= 0.99
        assert 0.88 <= method["macro_all"]["coverage"] <= 0.99
        assert method["macro_headline"] == method["pos_50"]  # the headline leaves out the 7-positive label


def test_ece_interval_coverage_simulation_fast():
    """The fast ECE section of benchmarks/coverage_auroc.py: with 45 records the percentile interval
    of the (upward-biased) ECE almost never holds the truth; the basic interval mostly does."""
    res = _coverage_benchmark().simulate_ece((45,), sims=150, resamples=300, seed=1)
    assert res["true_ece"] == pytest.approx(0.1, abs=0.002)
    cov = res["coverage"]
    assert cov["percentile"]["n_45"]["coverage"] < 0.3 and cov["percentile"]["n_45"]["miss_high"] > 0.7
    assert cov["basic"]["n_45"]["coverage"] > 0.75
