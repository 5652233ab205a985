"""Exact kNN, mutual kNN overlap and Procrustes distance: known answers, brute-force references,
chance levels and the exactness of the Procrustes block bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from sklearn.neighbors import NearestNeighbors

from ecgprobe.analyzers import ANALYZERS, Result
from ecgprobe.analyzers._stats import cka_linear as lin
from ecgprobe.analyzers._stats import jackknife as jk
from ecgprobe.analyzers._stats.neighbors import exact_knn
from ecgprobe.analyzers.alignment import (
    Alignment,
    AlignmentResult,
    mutual_knn_overlap,
    mutual_knn_replicates,
    procrustes,
    procrustes_replicates,
)
from ecgprobe.exceptions import ConfigError, DataError
from ecgprobe.extract.embeddings import Embeddings
from tests.analyzers.coverage_fixtures import coverage_module


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exact_knn_matches_sklearn(metric, dtype):
    X = np.random.default_rng(0).standard_normal((150, 7)).astype(dtype)
    idx, dist = exact_knn(X, 6, metric=metric, block_rows=40)  # several blocks
    ref_d, ref_i = NearestNeighbors(n_neighbors=7, metric=metric, algorithm="brute").fit(X).kneighbors(X)
    np.testing.assert_array_equal(idx, ref_i[:, 1:])
    np.testing.assert_allclose(dist, ref_d[:, 1:], atol=2e-3 if dtype == np.float32 else 1e-6)
    with_self, d0 = exact_knn(X, 7, metric=metric, include_self=True)
    np.testing.assert_array_equal(with_self[:, 0], np.arange(150))
    np.testing.assert_array_equal(with_self[:, 1:], idx)
    assert (d0[:, 0] == 0).all()


def test_exact_knn_queries_and_errors():
    X = np.random.default_rng(1).standard_normal((30, 3))
    full, _ = exact_knn(X, 4)
    some, _ = exact_knn(X, 4, queries=np.array([3, 17]))
    np.testing.assert_array_equal(some, full[[3, 17]])
    with pytest.raises(ConfigError, match="1 <= k < n"):
        exact_knn(X, 30)
    with pytest.raises(ConfigError, match="metric"):
        exact_knn(X, 3, metric="manhattan")


def _brute_mutual(X, Y, k):
    a = NearestNeighbors(n_neighbors=k + 1, metric="cosine", algorithm="brute").fit(X).kneighbors(X)[1][:, 1:]
    b = NearestNeighbors(n_neighbors=k + 1, metric="cosine", algorithm="brute").fit(Y).kneighbors(Y)[1][:, 1:]
    return np.mean([len(set(r) & set(s)) / k for r, s in zip(a, b)])


def test_mutual_knn_known_answers_and_chance():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((400, 16))
    Q = np.linalg.qr(rng.standard_normal((16, 16)))[0]
    assert mutual_knn_overlap(X, 3.0 * X @ Q, k=10)[0] == 1.0
    Y = X[:, :8] + 0.8 * rng.standard_normal((400, 8))
    mean, per = mutual_knn_overlap(X, Y, k=10)
    assert mean == pytest.approx(_brute_mutual(X, Y, 10), abs=1e-12) and per.shape == (400,)
    indep, _ = mutual_knn_overlap(X, rng.standard_normal((400, 16)), k=10)
    assert indep == pytest.approx(10 / 399, abs=0.015)  # chance level k/(n-1)
    with pytest.raises(DataError, match="same records"):
        mutual_knn_overlap(X, Y[:-1])


def test_procrustes_known_answers_and_padding():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((200, 5))
    Q = np.linalg.qr(rng.standard_normal((5, 5)))[0]
    assert procrustes(X, -2.0 * X @ Q + 7.0)["distance"] == pytest.approx(0.0, abs=1e-6)
    # different dims: equals the residual of the best rotation of explicitly zero-padded matrices
    Y = np.tanh(X[:, :3]) + 0.3 * rng.standard_normal((200, 3))
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    Xc, Yc = Xc / np.linalg.norm(Xc), Yc / np.linalg.norm(Yc)
    Yp = np.hstack([Yc, np.zeros((200, 2))])
    R, _ = orthogonal_procrustes(Xc, Yp)
    out = procrustes(X, Y)
    assert out["distance"] == pytest.approx(np.linalg.norm(Xc @ R - Yp), abs=1e-10)
    assert out["angle"] == pytest.approx(np.arccos(out["similarity"]))
    assert procrustes(X, rng.standard_normal((200, 5)))["distance"] > 1.0


def test_procrustes_block_replicates_equal_direct_computation():
    rng = np.random.default_rng(4)
    X, Y = rng.standard_normal((50, 4)) + 2.0, rng.standard_normal((50, 3))
    Y[:, 0] += X[:, 0]
    perm = rng.permutation(50)
    A = lin.make_side(["x"], [X], np.float64, order=perm)
    B = lin.make_side(["y"], [Y], np.float64, order=perm)
    rb = jk.group_plan(50, 7, rng).slices
    W = np.vstack([rng.multinomial(7, np.full(7, 1 / 7), size=5), jk.leave_one_out_weights(7)]).astype(float)
    got = procrustes_replicates(A, B, rb, W)
    for w, value in zip(W, got):
        idx = np.concatenate([np.tile(np.arange(r.start, r.stop), int(k)) for r, k in zip(rb, w)])
        assert value == pytest.approx(procrustes(X[perm][idx], Y[perm][idx])["similarity"], abs=1e-12)


def test_alignment_analyzer(tmp_path):
    assert ANALYZERS.get("alignment") is Alignment
    rng = np.random.default_rng(5)
    ids = [f"r{i}" for i in range(300)]
    X = rng.standard_normal((300, 8))
    a = Embeddings(X=X, ids=ids)
    b = Embeddings(X=np.tanh(X[:, :6]) + 0.3 * rng.standard_normal((300, 6)), ids=ids)
    res = Alignment(k=8, n_resamples=100, n_blocks=20).run(a, b)
    m = res.metrics
    assert m["mutual_knn"] == pytest.approx(mutual_knn_overlap(a.X, b.X, 8)[0])
    assert m["mutual_knn_chance"] == pytest.approx(8 / 299)
    assert m["mutual_knn_ci_low"] <= m["mutual_knn"] <= m["mutual_knn_ci_high"]
    assert m["procrustes_distance_ci_low"] <= m["procrustes_distance"] <= m["procrustes_distance_ci_high"]
    assert m["procrustes_distance"] == pytest.approx(procrustes(a.X, b.X)["distance"], abs=1e-6)
    assert res.params["n_blocks_used"] == 20
    again = Result.load(res.save(tmp_path / "alignment"))
    assert isinstance(again, AlignmentResult) and list(again.arrays["ids"][:2]) == ["r0", "r1"]
    with pytest.raises(DataError, match="different row order"):
        Alignment().run(a, b.take(ids[::-1]))
    with pytest.raises(ConfigError, match="metric"):
        Alignment(metric="manhattan").run(a, b)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_mutual_knn_replicates_equal_the_overlap_without_each_group(metric):
    rng = np.random.default_rng(6)
    X = rng.standard_normal((120, 5))
    Y = X[:, :3] + 0.7 * rng.standard_normal((120, 3))
    groups = jk.group_plan(120, 6, rng).membership(120)
    mean, _, reps = mutual_knn_replicates(X, Y, 4, groups, metric=metric)
    assert mean == pytest.approx(mutual_knn_overlap(X, Y, 4, metric=metric)[0], abs=1e-12)
    for g in range(6):
        keep = groups != g
        assert reps[g] == pytest.approx(mutual_knn_overlap(X[keep], Y[keep], 4, metric=metric)[0], abs=1e-12)
    with pytest.raises(ConfigError, match="n_blocks"):
        mutual_knn_replicates(X, Y, 100, groups)


def test_intervals_contain_their_estimate_at_small_n_per_dim():
    # the record bootstrap's copies align with themselves: on this kind of data (n/d ≈ 8) the
    # demo reported Procrustes similarity 0.502 with an interval [0.518, 0.554]
    rng = np.random.default_rng(7)
    ids = [f"r{i}" for i in range(500)]
    X = rng.standard_normal((500, 64))
    a = Embeddings(X=X, ids=ids)
    b = Embeddings(X=X[:, :32] @ rng.standard_normal((32, 64)) + 3 * rng.standard_normal((500, 64)), ids=ids)
    res = Alignment(k=10, n_resamples=1).run(a, b)
    m = res.metrics
    for key in ("procrustes_similarity", "procrustes_distance", "procrustes_angle", "mutual_knn"):
        assert m[f"{key}_ci_low"] <= m[key] <= m[f"{key}_ci_high"], (key, m)
    assert "jackknife" in res.params["interval"] and res.params["n_blocks_used"] == 50
    assert res.arrays["replicates_procrustes_similarity"].shape == (50,)


@pytest.mark.slow
def test_seeded_coverage_of_procrustes_and_mutual_knn():
    """Fast version of ``benchmarks/coverage_similarity.py`` (60 data sets; the benchmark runs
    1,000). Procrustes: the closed-form population value; mutual kNN: its expectation at this n
    (the jackknife is conservative for it, see the benchmark)."""
    cs = coverage_module()
    sc = next(s for s in cs.scenarios(fast=True) if s.name == "procrustes")
    res = cs.run_scenario(sc, 60, fast=True)["methods"]
    assert res["procrustes_similarity"]["target"] == pytest.approx(cs.population_procrustes(sc.model))
    for key in ("procrustes_similarity", "mutual_knn"):
        assert 0.86 <= res[key]["coverage"] <= 1.0 and res[key]["contains_estimate"] == 1.0, (key, res[key])


def test_alignment_jackknife_groups_patients(synthetic_small):
    rs = synthetic_small
    rng = np.random.default_rng(8)
    X = rng.standard_normal((len(rs), 5))
    a = Embeddings(X=X, ids=rs.ids)
    b = Embeddings(X=X[:, :3] + rng.standard_normal((len(rs), 3)), ids=rs.ids)
    res = Alignment(k=5, n_blocks=10).run(a, b, rs)
    assert res.params["resampling_unit"] == "patient" and res.params["n_blocks_used"] == 10
    strangers = [f"x{i}" for i in range(20)]  # ids that are not records of the dataset
    with pytest.raises(DataError, match="not in dataset"):
        Alignment(k=5).run(Embeddings(X=X[:20], ids=strangers), Embeddings(X=b.X[:20], ids=strangers), rs)
