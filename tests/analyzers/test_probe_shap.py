"""probe_shap: exact linear SHAP (equal to shap's LinearExplainer), concentration metrics,
planted known answers, and the head contract checks."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import ecgprobe
from ecgprobe.analyzers import ANALYZERS, Result
from ecgprobe.analyzers._stats.heads import linear_head, resolve_head
from ecgprobe.analyzers.linear_probe import LinearProbe
from ecgprobe.analyzers.probe_shap import (
    ProbeShap,
    ProbeShapResult,
    concentration,
    linear_shap,
)
from ecgprobe.data.record import ArraySource, RecordSet
from ecgprobe.exceptions import AnalysisError, ConfigError
from ecgprobe.extract.embeddings import Embeddings
from tests.analyzers.attribution_fixtures import embed, sklearn_probe


@pytest.fixture(scope="module")
def tiny_setup(ptbxl100):
    enc = ecgprobe.create_encoder("tiny-test", device="cpu")
    emb = embed(enc, ptbxl100)
    return emb, ptbxl100, sklearn_probe(emb, ptbxl100)


def _planted(n: int = 600, d: int = 20, seed: int = 0):
    """Embeddings where label 'a' depends only on dim 3 and label 'b' on dims 5 and 7."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32) * rng.uniform(0.5, 3.0, size=d).astype(np.float32)
    y = np.stack([X[:, 3] > 0, (X[:, 5] / 2 + X[:, 7] / 3) > 0], axis=1).astype(np.uint8)
    ids = [f"r{i}" for i in range(n)]
    split = np.where(np.arange(n) % 5 == 0, "test", "train")
    rs = RecordSet(
        source=ArraySource(np.zeros((n, 1, 4), np.float32)),
        fs=100.0,
        leads=("I",),
        ids=np.asarray(ids),
        patient_ids=np.asarray(ids),
        label_names=("a", "b"),
        y=y,
        split=split,
        meta=pd.DataFrame(index=ids),
    )
    return Embeddings(X=X, ids=ids), rs


def test_closed_form_equals_shap_linear_explainer(tiny_setup):
    shap = pytest.importorskip("shap")
    emb, rs, probe = tiny_setup
    head = resolve_head(probe, emb, rs)
    bg = emb.X[rs.split == "train"].astype(np.float64)
    X = emb.X[rs.split == "test"].astype(np.float64)
    phi = linear_shap(head.W, X, bg.mean(axis=0))
    for c in range(len(head.labels)):
        masker = shap.maskers.Independent(bg, max_samples=len(bg))
        explainer = shap.LinearExplainer((head.W[c], head.b[c]), masker)
        ref = explainer.shap_values(X)
        np.testing.assert_allclose(phi[:, c, :], ref, rtol=1e-6, atol=1e-9)
        # efficiency: the values add up to f(x) - E_bg[f]
        np.testing.assert_allclose(
            phi[:, c, :].sum(axis=1), head.logits(X)[:, c] - head.logits(bg)[:, c].mean(), atol=1e-8
        )


def test_head_reproduces_the_standardised_probe(tiny_setup):
    emb, rs, probe = tiny_setup
    head = resolve_head(probe, emb, rs)
    Z = (emb.X - probe.arrays["scaler_mean"]) / probe.arrays["scaler_scale"]
    np.testing.assert_allclose(
        head.logits(emb.X), Z @ probe.arrays["coef"].T + probe.arrays["intercept"], atol=1e-8
    )
    sub = resolve_head(probe, emb, rs, labels=["MI", "CD"])
    assert sub.labels == ("MI", "CD")
    full = list(head.labels)
    np.testing.assert_array_equal(sub.W[0], head.W[full.index("MI")])


def test_concentration_known_answers():
    one_hot = np.array([0.0, 0.0, 5.0, 0.0])
    flat = np.ones(4)
    c1, c2 = concentration(one_hot, k=2), concentration(flat, k=2)
    assert c1["top1_frac"] == 1.0 and c1["effective_dims"] == pytest.approx(1.0)
    assert c1["gini"] == pytest.approx(0.75)  # (d - 1) / d for one non-zero value
    assert c2["top1_frac"] == 0.25 and c2["topk_frac"] == 0.5
    assert c2["gini"] == pytest.approx(0.0) and c2["effective_dims"] == pytest.approx(4.0)
    assert np.isnan(concentration(np.zeros(3))["gini"])
    rng = np.random.default_rng(1)
    many = concentration(rng.exponential(size=(50, 30)), k=5)
    assert np.all((many["gini"] >= 0) & (many["gini"] < 1))
    assert np.all((many["effective_dims"] >= 1) & (many["effective_dims"] <= 30))
    assert np.all(many["topk_frac"] >= many["top1_frac"])


def test_planted_dimensions_are_found_and_named(tmp_path):
    emb, rs = _planted()
    probe = sklearn_probe(emb, rs, C=10.0)
    names = [f"feat{j}" for j in range(emb.dim)]
    res = ProbeShap(probe=probe, feature_names=names, n_top=3, top_k=2, n_resamples=100).run(emb, rs)
    assert isinstance(res, ProbeShapResult)
    top_a = res.top_dims("a")
    assert top_a[0]["dim"] == 3 and top_a[0]["name"] == "feat3" and top_a[0]["share"] > 0.5
    assert {r["dim"] for r in res.top_dims("b")[:2]} == {5, 7}
    labels = res.table("labels").set_index("label")
    assert labels.loc["a", "effective_dims"] < labels.loc["b", "effective_dims"] < emb.dim
    for key in ("top1_frac", "gini", "effective_dims"):
        lo, hi = labels.loc["a", f"{key}_ci"]
        assert lo <= labels.loc["a", key] <= hi
    # mean |phi| is recomputable from the saved arrays
    back = Result.load(res.save(tmp_path / "ps"))
    assert isinstance(back, ProbeShapResult)
    test = rs.split == "test"
    phi = linear_shap(back.arrays["W"], emb.X[test], back.arrays["background_mean"])
    np.testing.assert_allclose(np.abs(phi).mean(axis=0), back.arrays["mean_abs_shap"], rtol=1e-6)
    np.testing.assert_array_equal(back.arrays["ids"], np.asarray(rs.ids[test], dtype=str))


def test_run_with_the_real_linear_probe_records_everything(tiny_setup):
    emb, rs, _ = tiny_setup
    # probe settings: the analyzer fits a LinearProbe itself
    res = ANALYZERS.get("probe_shap")(probe={"n_resamples": 20}, store_values=True, n_resamples=20).run(
        emb, rs
    )
    probe = LinearProbe(n_resamples=20).run(emb, rs)
    np.testing.assert_allclose(res.arrays["W"], linear_head(probe)[0])
    test = rs.split == "test"
    logits = emb.X[test].astype(np.float64) @ res.arrays["W"].T + res.arrays["b"]
    np.testing.assert_allclose(  # efficiency against the probe's own logits
        res.arrays["shap_values"].sum(axis=2), logits - res.arrays["base_value"], rtol=1e-4, atol=1e-4
    )
    C, D = len(res.metrics["labels"]), emb.dim
    assert res.arrays["mean_abs_shap"].shape == (C, D)
    assert res.arrays["shap_values"].shape == (int((rs.split == "test").sum()), C, D)
    np.testing.assert_allclose(
        np.abs(res.arrays["shap_values"]).mean(axis=0), res.arrays["mean_abs_shap"], rtol=1e-5
    )
    assert (
        res.params["probe"]["kind"] == "linear_probe" and res.params["probe"]["params"]["n_resamples"] == 20
    )
    assert res.metrics["dim_names"] is None and res.top_dims("NORM")[0]["name"].startswith("dim_")
    assert res.provenance["n_records"] == len(rs)


def test_wrong_probe_inputs_are_refused(tiny_setup):
    emb, rs, probe = tiny_setup
    with pytest.raises(ConfigError, match="not fitted by the probe"):
        ProbeShap(probe=probe, labels=["NOPE"]).run(emb, rs)
    with pytest.raises(ConfigError, match="is not a split"):
        ProbeShap(probe=probe, explain_split="holdout").run(emb, rs)
    with pytest.raises(ConfigError, match="no linear head"):
        ProbeShap(probe=Result(kind="knn")).run(emb, rs)
    with pytest.raises(AnalysisError, match="no linear head"):
        ProbeShap(probe=Result(kind="linear_probe", metrics={"labels_fitted": ["MI"]})).run(emb, rs)
    other = Embeddings(X=np.hstack([emb.X, emb.X]), ids=emb.ids)
    with pytest.raises(AnalysisError, match="dimensions"):
        ProbeShap(probe=probe).run(other, rs)
    foreign = replace(probe, provenance={"embeddings": {"encoder": {"weights_sha256": "f" * 64}}})
    with pytest.raises(AnalysisError, match="encoder weights"):
        ProbeShap(probe=foreign).run(emb, rs)


def test_handcrafted_names_and_known_causes(synthetic_small):
    """On synthetic labels with known causes, the named handcrafted features that carry them lead."""
    enc = ecgprobe.create_encoder("handcrafted", device="cpu")
    emb = embed(enc, synthetic_small)
    probe = sklearn_probe(emb, synthetic_small, C=0.1)
    res = ProbeShap(probe=probe, n_resamples=0).run(emb, synthetic_small)  # names from the provenance
    assert res.metrics["dim_names"] == enc.feature_names()

    def top(label: str, k: int) -> list[str]:
        return [r["name"] for r in res.top_dims(label)[:k]]

    assert "heart_rate" in top("tachycardia", 2)
    assert top("wide_qrs", 1) == ["qrs_width"]
    inferior = {"II:st_level", "III:st_level", "aVF:st_level"}
    assert len(inferior & set(top("st_elevation_inferior", 4))) >= 2
