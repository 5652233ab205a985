"""UMAP projection and the geometry descriptors: brute-force references (sklearn), known
answers, stratified subsampling, and one shared UMAP fit on clustered data (numba compiles once)."""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest
from sklearn.manifold import trustworthiness
from sklearn.metrics import silhouette_samples

from ecgprobe.analyzers import ANALYZERS, Result
from ecgprobe.analyzers._stats import descriptors as desc
from ecgprobe.analyzers.projection import Projection, ProjectionResult, stratified_subsample
from ecgprobe.data.record import ArraySource, RecordSet
from ecgprobe.exceptions import ConfigError
from ecgprobe.extract.embeddings import Embeddings
from ecgprobe.report.plots import plot_projection


# ------------------------------------------------------------------ descriptors vs references
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_trustworthiness_and_silhouette_match_sklearn(metric):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((250, 10))
    E = X[:, :2] + 0.4 * rng.standard_normal((250, 2))
    Y = (rng.random((250, 3)) < [0.3, 0.1, 0.6]).astype(np.uint8)
    q = np.arange(250)
    proj = desc.space_stats(E, q, Y, 7)
    orig = desc.space_stats(X, q, Y, 7, metric=metric, rank_targets=proj.knn)
    assert desc.trustworthiness_from(orig.ranks, 250, 7) == pytest.approx(
        trustworthiness(X, E, n_neighbors=7, metric=metric), abs=1e-12
    )
    for c in range(3):
        np.testing.assert_allclose(
            orig.silhouette[:, c], silhouette_samples(X, Y[:, c], metric=metric), atol=1e-5
        )


def test_subsampled_trustworthiness_is_close_to_the_full_value():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((600, 8))
    E = X[:, :2] + 0.5 * rng.standard_normal((600, 2))
    Y = np.zeros((600, 0))
    q = np.sort(rng.choice(600, 200, replace=False))
    proj = desc.space_stats(E, q, Y, 10)
    orig = desc.space_stats(X, q, Y, 10, rank_targets=proj.knn)
    full = trustworthiness(X, E, n_neighbors=10)
    assert desc.trustworthiness_from(orig.ranks, 600, 10) == pytest.approx(full, abs=0.02)


def test_label_purity_and_chance():
    # two tight clusters; label 0 = cluster A exactly, label 1 = random
    rng = np.random.default_rng(2)
    X = np.vstack([rng.normal(0, 0.1, (50, 3)), rng.normal(5, 0.1, (50, 3))])
    Y = np.stack([np.r_[np.ones(50), np.zeros(50)], rng.random(100) < 0.5], axis=1).astype(np.uint8)
    q = np.arange(100)
    st = desc.space_stats(X, q, Y, 5)
    pur = desc.label_purity(st.knn, q, Y)
    assert pur[0] == 1.0 and 0.2 < pur[1] < 0.8


def test_standardised_effective_rank_does_not_depend_on_feature_units():
    # handcrafted features mix units (ms, mV, ...): the raw participation ratio counts the
    # largest-scale features ("1.6 of 186"), the standardised one the directions they span
    rng = np.random.default_rng(11)
    Z = rng.standard_normal((4000, 6))
    X = np.hstack([Z, Z[:, :2] @ rng.standard_normal((2, 2)), np.full((4000, 1), 7.0)])  # + a constant
    units = np.geomspace(1e-3, 1e3, X.shape[1])
    raw, scaled = desc.spectrum(X), desc.spectrum(X * units)
    std, std_scaled = desc.spectrum(X, standardise=True), desc.spectrum(X * units, standardise=True)
    assert scaled["participation_ratio"] < 1.1 < raw["participation_ratio"]  # units dominate it
    assert std_scaled["participation_ratio"] == pytest.approx(std["participation_ratio"], rel=1e-9)
    assert std_scaled["entropy_rank"] == pytest.approx(std["entropy_rank"], rel=1e-9)
    assert std["n_features"] == 8 and 4 < std["participation_ratio"] < 8  # 6 independent directions
    ident = desc.spectrum(rng.standard_normal((20000, 5)) * [1, 10, 100, 1e3, 1e4], standardise=True)
    assert ident["participation_ratio"] == pytest.approx(5, rel=0.01)


def test_spectrum_effective_rank_and_mean_cosine():
    rng = np.random.default_rng(3)
    iso = rng.standard_normal((20000, 8))
    s = desc.spectrum(iso)
    assert s["participation_ratio"] == pytest.approx(8, rel=0.02)
    assert s["entropy_rank"] == pytest.approx(8, rel=0.01)
    assert s["explained_variance_ratio"].sum() == pytest.approx(1.0)
    rank1 = np.outer(rng.standard_normal(500), rng.standard_normal(6))
    assert desc.spectrum(rank1)["participation_ratio"] == pytest.approx(1.0, abs=1e-6)
    # mean cosine over distinct pairs, against brute force
    X = rng.standard_normal((40, 5)) + 0.5
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    C = U @ U.T
    assert desc.mean_cosine(X) == pytest.approx(C[~np.eye(40, dtype=bool)].mean(), abs=1e-12)


def test_stratified_subsample_is_proportional_exact_and_seeded():
    keys = np.array(["10"] * 700 + ["01"] * 250 + ["11"] * 45 + ["00"] * 5)
    idx = stratified_subsample(keys, 100, np.random.default_rng(0))
    assert len(idx) == 100 and len(set(idx)) == 100 and np.all(np.diff(idx) > 0)
    counts = pd.Series(keys[idx]).value_counts().to_dict()
    assert counts == {"10": 70, "01": 25, "11": 4, "00": 1}  # 4.5 and 0.5 rounded by largest remainder
    np.testing.assert_array_equal(idx, stratified_subsample(keys, 100, np.random.default_rng(0)))
    np.testing.assert_array_equal(stratified_subsample(keys, 2000, np.random.default_rng(0)), np.arange(1000))


# ------------------------------------------------------------------ one UMAP fit, shared
def _clustered_records(n_per: int = 60, k: int = 5, d: int = 24, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 6, (k, d))
    lab = np.repeat(np.arange(k), n_per)
    X = (centres[lab] + rng.standard_normal((len(lab), d))).astype(np.float32)
    n = len(lab)
    ids = [f"c{i:04d}" for i in range(n)]
    y = np.eye(k, dtype=np.uint8)[lab]
    meta = pd.DataFrame({"age": rng.integers(20, 90, n).astype(float), "sex": rng.choice(["M", "F"], n)})
    rs = RecordSet(
        source=ArraySource(np.zeros((n, 1, 4), np.float32)),
        fs=100.0,
        leads=("I",),
        ids=np.array(ids),
        patient_ids=np.array(ids),
        label_names=tuple(f"cluster{j}" for j in range(k)),
        y=y,
        split=np.array(["train"] * n),
        meta=meta,
        name="clusters",
    )
    return Embeddings(X=X, ids=ids), rs


@pytest.fixture(scope="module")
def fitted():
    emb, rs = _clustered_records()
    return emb, rs, Projection(seed=0, n_eval=150).run(emb, rs)


def test_umap_on_clustered_data_is_trustworthy_and_pure(fitted):
    _, rs, res = fitted
    assert ANALYZERS.get("projection") is Projection and isinstance(res, ProjectionResult)
    m = res.metrics
    assert m["trustworthiness"] > 0.9 and m["n_eval"] == 150 and m["n_projected"] == 300
    tab = res.table("labels")
    assert list(tab["label"]) == list(rs.label_names)
    assert (tab["purity_projection"] > 0.95).all() and (tab["purity_embedding"] > 0.95).all()
    assert (tab["silhouette_pos_embedding"] > 0.5).all()
    assert tab["purity_chance"].iloc[0] == pytest.approx(59 / 299)
    assert res.coords.shape == (300, 2) and res.coords.dtype == np.float32
    assert (
        m["participation_ratio"] > 1 and 1 < m["participation_ratio_standardised"] <= m["n_varying_features"]
    )
    assert "isotropy" not in m  # scale-dependent, 0.000 for every real encoder: dropped (issue 12, item 9)


def test_result_records_what_ran(fitted):
    _, _, res = fitted
    u = res.params["umap"]
    assert u["threads"] == 1 and u["random_state"] == 0 and u["backend"] == "umap-learn"
    assert u["knn"].startswith("exact") and u["umap-learn"] and u["numba"] and u["pynndescent"]
    assert u["n_neighbors"] == 15 and u["min_dist"] == 0.1 and u["metric"] == "euclidean"
    assert res.params["subsample"]["n_total"] == 300 and res.seed == 0
    # five far-apart clusters: a disconnected kNN graph, so a reproducible PCA initialisation
    assert u["init"] == "pca" and any("disconnected" in n for n in res.notes)


def test_result_roundtrip_and_colouring_arrays(fitted, tmp_path):
    _, rs, res = fitted
    again = Result.load(res.save(tmp_path / "projection"))
    assert isinstance(again, ProjectionResult)
    assert again.ids == list(rs.ids) and again.arrays["y"].shape == (300, 5)
    np.testing.assert_array_equal(again.coords, res.coords)
    np.testing.assert_allclose(again.arrays["age"], rs.meta["age"].to_numpy(np.float32))
    assert set(again.arrays["sex"]) == {"M", "F"}
    for colour in ("label", "age", "sex"):
        ax = plot_projection(again, color_by=colour)
        assert len(ax.collections) >= 1
    with pytest.raises(ConfigError, match="color_by"):
        plot_projection(again, color_by="height")
    del again.arrays["age"]
    with pytest.raises(ConfigError, match="color_by='age'"):
        plot_projection(again, color_by="age")


def test_results_never_draw():
    import ecgprobe.analyzers.projection as module

    # the one projection plot is the report's (ecgprobe.report.plots.plot_projection)
    assert "matplotlib" not in inspect.getsource(module) and not hasattr(module, "plot_projection")


def test_same_seed_same_layout_and_pre_projection_is_measured(fitted):
    emb, rs, res = fitted
    again = Projection(seed=0, n_eval=150).run(emb, rs)
    np.testing.assert_array_equal(again.coords, res.coords)
    pca = Projection(seed=0, n_eval=150, pca_dims=5).run(emb, rs)
    assert 0.5 < pca.metrics["pca_retained_variance"] < 1
    # trustworthiness is measured against the original space, so the two are comparable
    assert abs(pca.metrics["trustworthiness"] - res.metrics["trustworthiness"]) < 0.05


def test_subsampling_above_max_records(fitted):
    emb, rs, _ = fitted
    res = Projection(seed=0, max_records=100, n_eval=50, n_epochs=50).run(emb, rs)
    assert res.metrics["n_projected"] == 100 and res.metrics["n_total"] == 300
    assert (res.arrays["y"].sum(axis=0) == 20).all()  # 5 equal clusters keep their shares
    assert any("subsample" in n for n in res.notes)


def test_settings_are_validated(fitted):
    emb, rs, _ = fitted
    for bad in (
        {"n_neighbors": 1},
        {"metric": "hamming"},
        {"knn": "fast"},
        {"backend": "gpu"},
        {"pca_dims": 1},
    ):
        with pytest.raises(ConfigError):
            Projection(**bad).run(emb, rs)


def test_regression_target_projects_without_label_descriptors(fitted):
    emb, rs, _ = fitted
    res = Projection(seed=0, n_eval=50, n_epochs=30).run(emb, rs.with_meta_target("age"))
    assert res.tables["labels"] == [] and any("regression" in n for n in res.notes)
    assert res.arrays["y"].dtype == np.float32 and res.metrics["trustworthiness"] > 0.8


def test_report_explains_each_descriptor_and_reads_old_results(fitted):
    from ecgprobe.report.sections.geometry import DESCRIPTOR_HELP, descriptor_help, descriptor_rows

    _, _, res = fitted
    rows = descriptor_rows(res)
    names = [k for k, _ in rows]
    assert "effective rank, standardised features" in names and "effective rank, raw features" in names
    assert not any("isotropy" in k for k in names)
    explained = descriptor_help(rows).items
    assert len(explained) == len(rows) - 1  # all but the record count, one sentence each
    assert all(text.count(". ") == 0 and text.endswith(".") for text in explained)
    # a result saved before the standardised ranks (with isotropy) still renders, raw rank only
    old = ProjectionResult(
        kind="projection",
        metrics={
            "n_projected": 10,
            "n_total": 10,
            "participation_ratio": 1.6,
            "isotropy": 0.0,
            "mean_cosine": 0.2,
        },
        arrays={"explained_variance_ratio": np.ones(186) / 186},
    )
    old_rows = dict(descriptor_rows(old))
    assert old_rows["effective rank, raw features"] == "1.6 of 186 dimensions"
    assert "effective rank, standardised features" not in old_rows and set(old_rows) - {
        "records projected"
    } <= set(DESCRIPTOR_HELP)


def test_umap_kernels_are_compiled_once_per_machine(fitted):
    """After a fit, umap-learn's lazily compiled kernels write to numba's on-disk cache, so the
    next process loads them instead of compiling (~25 s on 2 cores)."""
    import umap.layouts

    from ecgprobe.analyzers.projection import cache_compiled_umap

    kernel = umap.layouts._nb_optimize_layout_euclidean_single_epoch
    assert type(kernel._cache).__name__ != "NullCache"
    parallel_twin = umap.layouts._nb_optimize_layout_euclidean_single_epoch_parallel
    assert type(parallel_twin._cache).__name__ == "NullCache"  # never shares the serial entry
    assert cache_compiled_umap() == 0  # every umap module already switched: nothing twice
