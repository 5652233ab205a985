"""CKA: known answers, invariances, agreement with a brute-force float64 Gram implementation,
debiasing, the exactness of the block bootstrap, id checks and the layer matrix."""

from __future__ import annotations

import numpy as np
import pytest

from ecgprobe.analyzers import ANALYZERS, Result
from ecgprobe.analyzers._stats import cka_linear as lin
from ecgprobe.analyzers._stats import cka_rbf as rbf
from ecgprobe.analyzers._stats import jackknife as jk
from ecgprobe.analyzers.cka import CKA, CKAResult, LayerCKA, cka_from_grams, linear_cka, rbf_cka
from ecgprobe.exceptions import AnalysisError, ConfigError, DataError
from ecgprobe.extract.embeddings import Embeddings
from tests.analyzers.coverage_fixtures import coverage_module


# ------------------------------------------------------------------ independent references
def _centre_biased(G: np.ndarray) -> np.ndarray:
    n = len(G)
    H = np.eye(n) - np.ones((n, n)) / n
    return H @ G @ H


def _centre_unbiased(G: np.ndarray) -> np.ndarray:
    """Kornblith et al.'s U-centring (its inner product is the unbiased HSIC up to a factor)."""
    n = len(G)
    G = G.copy()
    np.fill_diagonal(G, 0.0)
    means = G.sum(axis=0) / (n - 2)
    means -= means.sum() / (2 * (n - 1))
    G -= means[:, None]
    G -= means[None, :]
    np.fill_diagonal(G, 0.0)
    return G


def brute_cka(K: np.ndarray, L: np.ndarray, debiased: bool) -> float:
    c = _centre_unbiased if debiased else _centre_biased
    Kc, Lc = c(K), c(L)
    return float(np.sum(Kc * Lc) / np.sqrt(np.sum(Kc * Kc) * np.sum(Lc * Lc)))


def brute_rbf(X: np.ndarray, sigma: float) -> np.ndarray:
    sq = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    return np.exp(-sq / (2 * sigma**2))


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    X = rng.standard_normal((60, 9)) + 3.0  # an offset: centring must matter
    Y = np.tanh(X[:, :6] @ rng.standard_normal((6, 5))) + 0.4 * rng.standard_normal((60, 5))
    return X, Y


def _orth(d: int, seed: int) -> np.ndarray:
    return np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))[0]


# ------------------------------------------------------------------ known answers and invariances
@pytest.mark.parametrize("debiased", [False, True])
def test_cka_of_a_representation_with_itself_is_one(pair, debiased):
    X, _ = pair
    assert linear_cka(X, X, debiased, precision="float64") == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(X, X, debiased) == pytest.approx(1.0, abs=1e-7)  # float32 products: ~1e-7
    assert rbf_cka(X, X, debiased=debiased) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("debiased", [False, True])
def test_invariant_to_orthogonal_maps_and_isotropic_scaling(pair, debiased):
    X, Y = pair
    ref = linear_cka(X, Y, debiased, precision="float64")
    moved = 7.5 * X @ _orth(X.shape[1], 2) - 4.0
    assert linear_cka(moved, Y, debiased, precision="float64") == pytest.approx(ref, abs=1e-10)
    assert linear_cka(X, 0.01 * Y @ _orth(Y.shape[1], 3), debiased, precision="float64") == pytest.approx(
        ref, abs=1e-10
    )
    # RBF with the median heuristic: the bandwidth scales with the data
    assert rbf_cka(moved, Y, debiased=debiased) == pytest.approx(rbf_cka(X, Y, debiased=debiased), abs=1e-10)


def test_not_invariant_to_general_invertible_linear_maps(pair):
    X, _ = pair
    A = np.diag(np.geomspace(1.0, 100.0, X.shape[1])) @ _orth(X.shape[1], 4)  # invertible, anisotropic
    assert np.linalg.matrix_rank(A) == X.shape[1]
    assert linear_cka(X, X @ A) < 0.9


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("precision", ["float64", "mixed"])
def test_linear_matches_bruteforce_gram(pair, debiased, precision):
    X, Y = pair
    ref = brute_cka(X @ X.T, Y @ Y.T, debiased)
    assert linear_cka(X, Y, debiased, precision=precision) == pytest.approx(ref, abs=1e-6)
    assert cka_from_grams(X @ X.T, Y @ Y.T, debiased) == pytest.approx(ref, abs=1e-10)


@pytest.mark.parametrize("debiased", [False, True])
def test_rbf_matches_bruteforce_gram(pair, debiased):
    X, Y = pair
    ref = brute_cka(brute_rbf(X, 2.5), brute_rbf(Y, 0.7), debiased)
    assert rbf_cka(X, Y, sigma=(2.5, 0.7), debiased=debiased) == pytest.approx(ref, abs=1e-10)
    # the median heuristic: the median of the off-diagonal pairwise distances
    d = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))[np.triu_indices(len(X), 1)]
    dy = np.sqrt(((Y[:, None] - Y[None]) ** 2).sum(-1))[np.triu_indices(len(Y), 1)]
    ref = brute_cka(brute_rbf(X, np.median(d)), brute_rbf(Y, np.median(dy)), debiased)
    assert rbf_cka(X, Y, debiased=debiased) == pytest.approx(ref, abs=1e-10)


def test_debiased_cka_is_near_zero_for_independent_matrices():
    rng = np.random.default_rng(5)
    X, Y = rng.standard_normal((400, 64)), rng.standard_normal((400, 48))
    assert abs(linear_cka(X, Y, debiased=True)) < 0.01
    assert linear_cka(X, Y) > 0.1  # the biased estimator is inflated at n/d this small
    assert abs(rbf_cka(X, Y, debiased=True)) < 0.01


def test_minibatch_rbf_estimates_the_exact_value(pair):
    rng = np.random.default_rng(6)
    X = rng.standard_normal((900, 6))
    Y = X[:, :3] ** 2 + 0.5 * rng.standard_normal((900, 3))
    exact = rbf_cka(X, Y, debiased=True)
    assert rbf_cka(X, Y, debiased=True, batch_size=300) == pytest.approx(exact, abs=0.03)
    with pytest.raises(ConfigError, match="debiased=True"):
        rbf_cka(X, Y, batch_size=300)


def test_input_errors_name_the_problem(pair):
    X, Y = pair
    with pytest.raises(DataError, match="60 rows but Y has 59"):
        linear_cka(X, Y[:-1])
    with pytest.raises(AnalysisError, match="no variance"):
        linear_cka(X, np.ones_like(Y))
    with pytest.raises(ConfigError, match="precision"):
        linear_cka(X, Y, precision="float16")
    with pytest.raises(ConfigError, match="2-D"):
        linear_cka(X[:, 0], Y)


# ------------------------------------------------------------------ bootstrap exactness
@pytest.mark.parametrize("debiased", [False, True])
def test_block_bootstrap_replicates_equal_cka_of_the_resampled_records(pair, debiased):
    X, Y = pair
    rng = np.random.default_rng(7)
    perm = rng.permutation(len(X))
    A = lin.make_side(["x"], [X], np.float64, order=perm)
    B = lin.make_side(["y"], [Y], np.float64, order=perm)
    rb = jk.group_plan(len(X), 8, rng).slices
    # general weights (the engine is exact for any), and the jackknife's leave-one-out rows
    W = np.vstack(
        [rng.multinomial(len(rb), np.full(len(rb), 1 / len(rb)), size=6), jk.leave_one_out_weights(8)]
    )
    point, boot = lin.replicate_cka(A, B, False, debiased, rb, W.astype(float))
    assert point[0, 0] == pytest.approx(linear_cka(X, Y, debiased, precision="float64"), abs=1e-12)
    Xp, Yp = X[perm], Y[perm]
    for w, value in zip(W, boot[:, 0, 0]):
        idx = np.concatenate([np.tile(np.arange(r.start, r.stop), int(k)) for r, k in zip(rb, w)])
        assert value == pytest.approx(linear_cka(Xp[idx], Yp[idx], debiased, precision="float64"), abs=1e-10)


@pytest.mark.parametrize("debiased", [False, True])
def test_rbf_record_bootstrap_is_the_estimator_on_resampled_grams(pair, debiased):
    X, Y = pair
    K, L = rbf.rbf_gram(X, 2.0), rbf.rbf_gram(Y, 1.0)
    rng = np.random.default_rng(8)
    W = rng.multinomial(len(X), np.full(len(X), 1 / len(X)), size=4).T.astype(float)
    got = rbf.weighted_hsic(K, L, W, debiased)
    for r in range(W.shape[1]):
        idx = np.repeat(np.arange(len(X)), W[:, r].astype(int))
        assert got[r] == pytest.approx(
            rbf.hsic(K[np.ix_(idx, idx)], L[np.ix_(idx, idx)], debiased), rel=1e-10
        )


# ------------------------------------------------------------------ the analyzer
def _emb(X, ids, layer="embedding"):
    return Embeddings(X=X, ids=ids, layer=layer)


@pytest.fixture(scope="module")
def layered():
    rng = np.random.default_rng(9)
    n = 240
    ids = [f"rec{i:03d}" for i in range(n)]
    Z = rng.standard_normal((n, 12))
    a = {
        f"a{k}": _emb(
            Z[:, : 6 + 2 * k] @ rng.standard_normal((6 + 2 * k, 10)) + 0.5 * rng.standard_normal((n, 10)),
            ids,
            f"a{k}",
        )
        for k in range(3)
    }
    b = {f"b{k}": _emb(np.tanh(Z[:, k : k + 8] * 1.5), ids, f"b{k}") for k in range(2)}
    return a, b


def test_registered_with_alias_and_typed_result():
    assert ANALYZERS.get("cka") is CKA and ANALYZERS.get("layer_cka") is CKA and LayerCKA is CKA


@pytest.mark.parametrize("debiased", [False, True])
def test_layer_matrix_equals_pairwise_cka_and_ci_brackets_it(layered, debiased):
    a, b = layered
    res = CKA(debiased=debiased, n_resamples=100, n_blocks=30).run(a, b)
    ref = np.array([[linear_cka(x.X, y.X, debiased) for y in b.values()] for x in a.values()])
    np.testing.assert_allclose(res.arrays["cka"], ref, atol=1e-6)
    assert res.layers_a == ["a0", "a1", "a2"] and res.layers_b == ["b0", "b1"]
    lo, hi = res.arrays["ci_low"], res.arrays["ci_high"]
    assert np.all(lo <= res.arrays["cka"] + 1e-9) and np.all(res.arrays["cka"] <= hi + 1e-9)
    assert np.all(hi - lo > 1e-4) and res.arrays["replicates"].shape == (30, 3, 2)
    assert res.params["n_blocks_used"] == 30 and "jackknife" in res.params["interval"]
    assert res.params["resampling_unit"] == "record" and res.metrics["n_replicates"] == 30
    no_ci = CKA(debiased=debiased, n_resamples=0).run(a, b)
    np.testing.assert_allclose(no_ci.arrays["cka"], ref, atol=1e-6)


def test_within_one_encoder_is_symmetric_with_unit_diagonal(layered):
    a, _ = layered
    res = CKA(n_resamples=20, debiased=False).run(a)
    M = res.arrays["cka"]
    np.testing.assert_allclose(M, M.T, atol=1e-12)
    np.testing.assert_allclose(np.diag(M), 1.0, atol=1e-9)
    assert res.params["within"] is True
    assert M[0, 1] == pytest.approx(linear_cka(a["a0"].X, a["a1"].X), abs=1e-6)


def test_rbf_analyzer_exact_and_minibatch(layered):
    a, b = layered
    res = CKA(kernel="rbf", debiased=False, n_resamples=30).run(a, b)
    ref = np.array([[rbf_cka(x.X, y.X) for y in b.values()] for x in a.values()])
    np.testing.assert_allclose(res.arrays["cka"], ref, atol=1e-10)
    mb = CKA(kernel="rbf", debiased=True, batch_size=60, n_resamples=30).run(a, b)
    assert "minibatch" in mb.params["estimator"] and np.all(np.abs(mb.arrays["cka"] - ref) < 0.1)


def test_single_pair_metrics_and_roundtrip(layered, tmp_path):
    a, b = layered
    res = CKA(n_resamples=50).run(a["a1"], b["b0"])
    m = res.metrics
    assert m["cka_ci_low"] <= m["cka"] <= m["cka_ci_high"] and m["n_records"] == 240
    assert res.provenance["a"]["layers"] == ["a1"] and res.seed == 0
    again = Result.load(res.save(tmp_path / "cka"))
    assert isinstance(again, CKAResult)
    np.testing.assert_allclose(again.matrix.to_numpy(), res.matrix.to_numpy())
    assert again.table("pairs").loc[0, "layer_a"] == "a1"


def test_seed_makes_the_ci_reproducible(layered):
    a, b = layered
    r1, r2 = (
        CKA(n_resamples=40, seed=3).run(a["a0"], b["b1"]),
        CKA(n_resamples=40, seed=3).run(a["a0"], b["b1"]),
    )
    np.testing.assert_array_equal(r1.arrays["replicates"], r2.arrays["replicates"])


def test_ids_must_match_exactly(layered):
    a, b = layered
    x = a["a0"]
    shuffled = x.take(list(x.ids[::-1]))
    with pytest.raises(DataError, match="different row order"):
        CKA(n_resamples=0).run(x, shuffled)
    other = Embeddings(X=x.X[:-3], ids=[*x.ids[:-4], "stranger"])
    with pytest.raises(DataError, match=r"only in A \(e\.g\..*only in B \(e\.g\. \['stranger'\]"):
        CKA(n_resamples=0).run(x, other)
    # layers of one side must agree too
    with pytest.raises(DataError, match="different row order"):
        CKA(n_resamples=0).run({"a0": x, "bad": shuffled}, b)


def test_records_align_embeddings_by_id(layered, synthetic_small):
    rs = synthetic_small
    rng = np.random.default_rng(0)
    X = rng.standard_normal((len(rs), 5))
    a = Embeddings(X=X, ids=rs.ids)
    b = Embeddings(X=np.tanh(X[::-1]), ids=rs.ids[::-1])  # same records, another order
    res = CKA(n_resamples=0).run(a, b, rs)
    assert res.metrics["cka"] == pytest.approx(linear_cka(X, np.tanh(X), debiased=True), abs=1e-6)
    assert res.provenance["dataset"]["n_records"] == len(rs)


def test_settings_are_validated(layered):
    a, b = layered
    for bad in (
        {"kernel": "poly"},
        {"n_resamples": -1},
        {"ci_level": 1.5},
        {"precision": "half"},
        {"n_blocks": 1},
    ):
        with pytest.raises(ConfigError):
            CKA(**bad).run(a["a0"], b["b0"])
    with pytest.raises(ConfigError, match="dict of layer name"):
        CKA().run([a["a0"]], b["b0"])


# ------------------------------------------------------------------ intervals (issue 12, items 1-2)
@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_intervals_on_independent_data_contain_their_estimate(kernel):
    # the case: X, Y ~ N(0, I), n = 500, d = 64; the record bootstrap gave debiased CKA
    # 0.0009 with [0.08, 0.15] and biased 0.114 with [0.18, 0.24]
    rng = np.random.default_rng(12)
    ids = [f"r{i}" for i in range(500)]
    a, b = (_emb(rng.standard_normal((500, 64)), ids) for _ in range(2))
    for debiased in (True, False):
        m = CKA(kernel=kernel, debiased=debiased, n_resamples=50).run(a, b).metrics
        assert m["cka_ci_low"] <= m["cka"] <= m["cka_ci_high"], (debiased, m)
        if debiased:  # unbiased: the interval covers the population value 0
            assert m["cka_ci_low"] <= 0.0 <= m["cka_ci_high"] and m["cka_ci_high"] < 0.02


@pytest.mark.slow
def test_seeded_coverage_of_the_population_cka():
    """Fast version of the benchmark: 120 data sets with a closed-form population CKA (the
    benchmark runs 1,000: coverage 95 ± 3 %). Bands: ±3.5 Monte Carlo SEs (2 %) around 95 %."""
    cs = coverage_module()
    byname = {sc.name: sc for sc in cs.scenarios(fast=True)}
    lin_res = cs.run_scenario(byname["linear"], 120, fast=True)["methods"]
    deb = lin_res["cka_debiased"]
    assert deb["target"] == pytest.approx(cs.population_linear_cka(byname["linear"].model))
    assert 0.88 <= deb["coverage"] <= 0.99 and deb["contains_estimate"] == 1.0, deb
    assert lin_res["cka_biased"]["contains_estimate"] == 1.0
    rbf_res = cs.run_scenario(byname["rbf"], 60, fast=True)["methods"]["rbf_cka_debiased"]
    assert 0.86 <= rbf_res["coverage"] <= 1.0 and rbf_res["contains_estimate"] == 1.0, rbf_res
    # patients share variance: groups of whole patients keep the interval honest
    pat = cs.run_scenario(byname["patients"], 60, fast=True)["methods"]["cka_debiased"]
    assert 0.86 <= pat["coverage"] <= 1.0, pat


def test_jackknife_leaves_out_whole_patients(synthetic_small):
    rs = synthetic_small
    assert len(set(rs.patient_ids)) < len(rs)  # the fixture has patients with several records
    rng = np.random.default_rng(1)
    X = rng.standard_normal((len(rs), 6))
    a = Embeddings(X=X, ids=rs.ids)
    b = Embeddings(X=X[:, :4] + rng.standard_normal((len(rs), 4)), ids=rs.ids)
    res = CKA(n_resamples=1, n_blocks=10, seed=4).run(a, b, rs)
    assert res.params["resampling_unit"] == "patient" and res.params["n_blocks_used"] == 10
    plan = jk.group_plan(len(rs), 10, np.random.default_rng(4), rs.patient_ids)  # the analyzer's plan
    of = plan.membership(len(rs))
    pids = np.asarray(rs.patient_ids)
    assert all(len(set(of[pids == p])) == 1 for p in set(pids))  # a patient never straddles groups
    for g in range(plan.m):
        keep = of != g
        assert res.arrays["replicates"][g, 0, 0] == pytest.approx(
            linear_cka(X[keep], b.X[keep], debiased=True, precision="float64"), abs=1e-6
        )
