"""The batched Newton-CG path against scikit-learn's LogisticRegression on small problems (rare
labels, constant columns, more dimensions than records), and the early end of the C path."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from ecgprobe.analyzers._stats.c_path import SettledChoice, choose_on_path
from ecgprobe.analyzers._stats.evaluation import select_by_val, val_auroc
from ecgprobe.analyzers._stats.solvers import fit_logistic_path
from ecgprobe.analyzers.linear_probe import LinearProbe
from ecgprobe.exceptions import ConfigError
from tests.analyzers.probe_fixtures import make_problem

CS = (1e-3, 1e-1, 10.0)


def _objective(X, y, w, b, C):
    z = X @ w + b
    return np.mean(np.logaddexp(0, z) - y * z) + w @ w / (2 * C * len(X))


def _sklearn(X, y, C):
    clf = LogisticRegression(C=C, tol=1e-10, max_iter=20_000).fit(X, y)
    return clf.coef_[0], clf.intercept_[0]


def _edge_problem(n, dim, seed):
    """Standardised features with two constant (all-zero) columns; labels: common, 2 and 1 positives."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, dim))
    X[:, :2] = 0.0
    z = X[:, 2:5] @ np.array([1.5, -1.0, 0.5])
    y = np.zeros((n, 3), dtype=np.uint8)
    y[:, 0] = z + rng.logistic(size=n) > 0
    y[np.argsort(-z)[:2], 1] = 1
    y[np.argmax(z), 2] = 1
    return X, y


@pytest.mark.parametrize(("n", "dim"), [(300, 12), (60, 100)], ids=["n>D", "D>n"])
def test_newton_path_matches_sklearn_on_rare_labels_constant_columns_and_wide_data(n, dim):
    X, Y = _edge_problem(n, dim, seed=n)
    Xt, _ = _edge_problem(400, dim, seed=n + 1)
    rng = np.random.default_rng(n + 2)
    path = fit_logistic_path(X.astype(np.float32), Y, CS, tol=1e-8, max_newton=200, dtype="float64")
    assert path.converged.all() and path.fitted.all()
    assert np.all(path.coef[:, :, :2] == 0)  # constant columns get no weight (as in scikit-learn)
    y_eval = rng.integers(0, 2, 400)  # only the ranking matters for the AUROC comparison
    for k, C in enumerate(CS):
        for j in range(Y.shape[1]):
            w, b = _sklearn(X, Y[:, j], C)
            ours_w, ours_b = path.coef[k, j], path.intercept[k, j]
            ref_obj = _objective(X, Y[:, j], w, b, C)
            assert _objective(X, Y[:, j], ours_w, ours_b, C) <= ref_obj + 1e-8
            np.testing.assert_allclose(ours_w, w, atol=2e-3 * max(1.0, np.abs(w).max()))
            a_ours = roc_auc_score(y_eval, Xt @ ours_w + ours_b)
            assert a_ours == pytest.approx(roc_auc_score(y_eval, Xt @ w + b), abs=1e-3)


def test_default_float32_path_matches_sklearn_within_probe_tolerance():
    X, Y = _edge_problem(400, 30, seed=3)
    path = fit_logistic_path(X.astype(np.float32), Y[:, :2], CS)  # the probe's defaults (tol 1e-4)
    for k, C in enumerate(CS):
        for j in range(2):
            w, b = _sklearn(X, Y[:, j], C)
            gap = _objective(X, Y[:, j], path.coef[k, j], path.intercept[k, j], C) - _objective(
                X, Y[:, j], w, b, C
            )
            assert gap < 5e-5  # at tol 1e-4 (scikit-learn's default test) the objective is this close
            z_ours, z_ref = X @ path.coef[k, j] + path.intercept[k, j], X @ w + b
            assert roc_auc_score(Y[:, j], z_ours) == pytest.approx(roc_auc_score(Y[:, j], z_ref), abs=1e-3)


def test_labels_off_the_path_are_marked_and_nan():
    X, Y = _edge_problem(300, 12, seed=4)
    calls = []

    def keep_going(k, labels, coef, intercept):
        calls.append((k, labels.tolist()))
        assert coef.shape == (len(labels), X.shape[1]) and np.isfinite(coef).all()
        return labels != 0  # label 0 stops after the first C

    exact = {"tol": 1e-9, "dtype": "float64"}
    path = fit_logistic_path(X, Y, CS, keep_going=keep_going, **exact)
    assert calls == [(0, [0, 1, 2]), (1, [1, 2]), (2, [1, 2])]
    assert path.fitted[:, 0].tolist() == [True, False, False] and path.fitted[:, 1:].all()
    assert np.isnan(path.coef[1:, 0]).all() and np.isnan(path.intercept[1:, 0]).all()
    full = fit_logistic_path(X, Y, CS, **exact)  # the others are solved exactly as without the rule
    np.testing.assert_allclose(path.coef[:, 1:], full.coef[:, 1:], atol=1e-6)


def test_settled_choice_stops_labels_past_their_peak_and_keeps_the_full_grid_choice():
    emb, records = make_problem(n=1500, dim=40, n_labels=4, seed=7)
    split = records.split
    mean, sd = emb.X[split == "train"].mean(0), emb.X[split == "train"].std(0)
    Xs = {s: (emb.X[split == s] - mean) / sd for s in ("train", "val")}
    Y = {s: records.y[split == s] for s in ("train", "val")}
    Cs = tuple(np.logspace(-4, 2, 7))
    full = fit_logistic_path(Xs["train"], Y["train"], Cs)
    full_auc = val_auroc(Y["val"], full.decision_function(Xs["val"]))
    rule = SettledChoice(Xs["val"], Y["val"], len(Cs), patience=2, per_label=True)
    path = fit_logistic_path(Xs["train"], Y["train"], Cs, keep_going=rule)
    assert not path.fitted.all()  # some labels stopped early ...
    np.testing.assert_allclose(rule.val_auc[path.fitted], full_auc[path.fitted], atol=1e-4)
    assert np.isnan(rule.val_auc[~path.fitted]).all()
    has_val = np.ones(4, dtype=bool)
    # ... and every choice (own and shared) is the one the whole grid gives
    idx, own, shared = choose_on_path(rule.val_auc, path.fitted, has_val, per_label=True)
    ref_idx, _, ref_shared = select_by_val(full_auc, per_label=True)
    assert idx.tolist() == ref_idx.tolist() and own.all() and shared == ref_shared
    for j in range(4):  # stopped only after `patience` C values without a strict improvement
        last = int(np.flatnonzero(path.fitted[:, j]).max())
        assert last == len(Cs) - 1 or last - idx[j] >= 2


def test_unsolved_values_are_never_chosen_and_labels_without_val_classes_take_the_shared_choice():
    auc = np.array([[0.6, 0.7, np.nan], [0.8, np.nan, np.nan], [np.nan, 0.9, np.nan]])
    fitted = np.array([[True, True, True], [True, False, True], [False, True, True]])
    idx, own, shared = choose_on_path(auc, fitted, np.array([True, True, False]), per_label=True)
    assert idx.tolist() == [1, 2, shared] and own.tolist() == [True, True, False]
    assert shared == 0  # rows where a label was not solved lose the shared choice


def test_probe_with_patience_matches_the_whole_grid_and_checks_the_setting():
    emb, records = make_problem(n=900, dim=24, n_labels=4, seed=0)
    kw = {"n_resamples": 20, "device": "cpu"}
    fast, whole = LinearProbe(**kw).run(emb, records), LinearProbe(patience=None, **kw).run(emb, records)
    np.testing.assert_array_equal(fast.arrays["C"], whole.arrays["C"])
    assert fast.metrics["macro_auroc"] == pytest.approx(whole.metrics["macro_auroc"], abs=1e-6)
    assert np.isfinite(whole.arrays["val_auroc_grid"]).all()
    for bad in (0, -1, True):
        with pytest.raises(ConfigError, match="patience"):
            LinearProbe(patience=bad, **kw).run(emb, records)
