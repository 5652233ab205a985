"""The kNN probe: exact chunked neighbours, equality with scikit-learn, neighbours from train only."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

from ecgprobe.analyzers import ANALYZERS
from ecgprobe.analyzers.knn_probe import KNNProbe, KNNProbeResult, nearest_neighbours
from ecgprobe.exceptions import AnalysisError, ConfigError
from ecgprobe.extract.embeddings import Embeddings
from tests.analyzers.probe_fixtures import make_problem

FAST = {"n_resamples": 200, "device": "cpu"}


@pytest.fixture(scope="module")
def problem():
    return make_problem(n=700, dim=20, n_labels=3, records_per_patient=2, seed=3)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_neighbours_are_exact_in_any_chunking(metric):
    rng = np.random.default_rng(0)
    train, queries = rng.normal(size=(300, 8)), rng.normal(size=(53, 8))
    ref = NearestNeighbors(n_neighbors=7, metric=metric, algorithm="brute").fit(train).kneighbors(queries)[1]
    for chunk in (None, 1, 10):
        got = nearest_neighbours(queries, train, 7, metric=metric, chunk_size=chunk)
        np.testing.assert_array_equal(got, ref)
    tiny = nearest_neighbours(queries, train, 7, metric=metric, max_chunk_bytes=4 * 300 * 3)  # 3 rows/chunk
    np.testing.assert_array_equal(tiny, ref)
    with pytest.raises(ConfigError, match="k must be"):
        nearest_neighbours(queries, train, 301)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_scores_equal_sklearn_kneighbors_classifier(problem, metric):
    emb, records = problem
    res = KNNProbe(metric=metric, **FAST).run(emb, records)
    assert ANALYZERS.get("knn_probe") is KNNProbe and isinstance(res, KNNProbeResult)
    k = res.metrics["k"]
    tr, te = records.split == "train", records.split == "test"
    clf = KNeighborsClassifier(n_neighbors=k, metric=metric, algorithm="brute").fit(emb.X[tr], records.y[tr])
    proba = np.stack([p[:, 1] for p in clf.predict_proba(emb.X[te])], axis=1)
    np.testing.assert_allclose(res.arrays["test_scores"], proba, atol=1e-6)
    grid = res.arrays["val_auroc_grid"]
    assert k == res.arrays["k_grid"][np.argmax(grid.mean(1))]  # k chosen on val, shared
    assert res.metrics["macro_auroc"] > 0.75 and res.metrics["macro_auroc_ci"][0] > 0.5


def test_no_leakage_neighbours_come_from_train_only(problem):
    """Test records are never neighbours and never choose k: changing them leaves k and the val
    curve unchanged; a test record duplicated into val does not make val look better."""
    emb, records = problem
    rng = np.random.default_rng(1)
    test = records.split == "test"
    X2 = emb.X.copy()
    X2[test] = rng.normal(size=(int(test.sum()), emb.dim)) * 10
    y2 = records.y.copy()
    y2[test] = 1 - y2[test]
    a = KNNProbe(**FAST).run(emb, records)
    b = KNNProbe(**FAST).run(
        Embeddings(X=X2, ids=emb.ids), records.with_labels(records.label_names, y2, "multilabel")
    )
    assert a.metrics["k"] == b.metrics["k"]
    np.testing.assert_array_equal(a.arrays["val_auroc_grid"], b.arrays["val_auroc_grid"])
    np.testing.assert_array_equal(a.arrays["val_thresholds"], b.arrays["val_thresholds"])
    # 1-NN scores of test records only take train labels: flip every non-train label, same scores
    y3 = records.y.copy()
    y3[records.split != "train"] = 1 - y3[records.split != "train"]
    c = KNNProbe(ks=(1,), **FAST).run(emb, records.with_labels(records.label_names, y3, "multilabel"))
    d = KNNProbe(ks=(1,), **FAST).run(emb, records)
    np.testing.assert_array_equal(c.arrays["test_scores"], d.arrays["test_scores"])


def test_chance_and_separable_extremes():
    emb, records = make_problem(n=800, dim=12, n_labels=2, seed=4)
    # (over 30 permutations the interval held 0.5 in 28: this one is a typical draw)
    y = records.y[np.random.default_rng(1).permutation(len(records))]
    m = KNNProbe(**FAST).run(emb, records.with_labels(records.label_names, y, "multilabel")).metrics
    assert m["macro_auroc_ci"][0] < 0.5 < m["macro_auroc_ci"][1]
    sep = (emb.X[:, :2] > np.median(emb.X[:, :2], axis=0)).astype(np.uint8)  # local structure
    m = (
        KNNProbe(metric="euclidean", **FAST)
        .run(emb, records.with_labels(records.label_names, sep, "multilabel"))
        .metrics
    )
    assert m["macro_auroc"] > 0.9


def test_grid_larger_than_train_and_bad_settings(problem):
    emb, records = problem
    res = KNNProbe(ks=(3, 10_000), **FAST).run(emb, records)
    assert res.arrays["k_grid"].tolist() == [3] and any("dropped" in n for n in res.notes)
    with pytest.raises(ConfigError):
        KNNProbe(metric="manhattan").run(emb, records)
    with pytest.raises(ConfigError):
        KNNProbe(ks=(0,)).run(emb, records)
    with pytest.raises(AnalysisError, match="linear_probe"):
        KNNProbe().run(emb, records.with_labels(("a",), np.zeros(len(records)), "regression"))


def test_rare_label_with_all_test_scores_tied_is_evaluated(problem):
    """Regression (issue 12.3): a rare label whose one training positive is nobody's neighbour
    gets neighbour fraction 0 on every test record; its ROC curve (the diagonal) used to raise
    IndexError and take the whole evaluation down."""
    emb, records = problem
    train = np.flatnonzero(records.split == "train")
    X = emb.X.copy()
    X[train[0]] = 1e4  # the only training positive, far from every record
    y = np.zeros((len(records), 1), dtype=np.uint8)
    y[train[0]] = 1
    y[np.flatnonzero(records.split != "train")[::7]] = 1  # positives in val and test
    rs = records.with_labels(("rare",), y, "multilabel")
    res = KNNProbe(ks=(5,), metric="euclidean", **FAST).run(Embeddings(X=X, ids=emb.ids), rs)
    assert np.ptp(res.arrays["test_scores"]) == 0 and res.metrics["macro_auroc"] == 0.5
    a = res.arrays
    fpr = a["roc_fpr"][a["roc_offsets"][0] : a["roc_offsets"][1]]
    assert fpr.tolist() == [0.0, 1.0]
