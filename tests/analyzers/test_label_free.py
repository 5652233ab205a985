"""Label-free geometry: known answers of RankMe, TwoNN and IsoScore, and the per-layer analyzer
(deterministic for a seed, same halves for every layer, saved and reloaded, rendered)."""

from __future__ import annotations

import numpy as np
import pytest

from ecgprobe.analyzers._stats.label_free import isoscore, rankme, standardise, twonn
from ecgprobe.analyzers.base import Result
from ecgprobe.analyzers.label_free import LabelFree
from ecgprobe.exceptions import AnalysisError, DataError
from ecgprobe.extract.embeddings import Embeddings
from tests.analyzers.probe_fixtures import make_problem

RNG = np.random.default_rng(0)


def test_rankme_known_answers():
    assert rankme(RNG.standard_normal((20000, 16))) == pytest.approx(16, rel=0.02)
    low = RNG.standard_normal((5000, 3)) @ RNG.standard_normal((3, 40))  # rank 3 in 40-d
    assert rankme(low) <= 3.0 + 1e-6


@pytest.mark.parametrize("k", [2, 5])
def test_twonn_finds_the_dimension_of_a_linear_subspace(k):
    X = RNG.standard_normal((3000, k)) @ RNG.standard_normal((k, 50))
    assert twonn(X) == pytest.approx(k, rel=0.15)
    assert twonn(X, method="mle") == pytest.approx(k, rel=0.15)


def test_twonn_ignores_duplicate_rows():
    X = RNG.standard_normal((1000, 3))
    assert twonn(np.vstack([X, X[:200]])) == pytest.approx(twonn(X))


def test_isoscore_known_answers():
    assert isoscore(RNG.standard_normal((20000, 8))) == pytest.approx(1.0, abs=0.02)
    one = np.zeros((2000, 8))
    one[:, 0] = RNG.standard_normal(2000)
    assert isoscore(one) == pytest.approx(0.0, abs=1e-9)
    half = RNG.standard_normal((20000, 8)) * np.r_[np.ones(4), np.zeros(4)]
    assert isoscore(half) == pytest.approx(3 / 7, abs=0.02)  # (k - 1) / (d - 1)


def test_standardise_drops_constant_features_and_refuses_none_varying():
    assert standardise(np.c_[RNG.standard_normal(10), np.ones(10)]).shape == (10, 1)
    with pytest.raises(DataError, match="no feature varies"):
        standardise(np.ones((5, 3)))


@pytest.fixture(scope="module")
def layered():
    emb, records = make_problem(n=300, dim=24, records_per_patient=2, seed=3)
    noisy = Embeddings(
        X=emb.X + np.random.default_rng(1).normal(size=emb.X.shape) * 5, ids=emb.ids, layer="early"
    )
    return {"early": noisy, "embedding": emb}, records


def test_per_layer_values_halves_and_determinism(layered):
    layers, records = layered
    a = LabelFree(n_subsamples=8, seed=2).run(layers, records)
    b = LabelFree(n_subsamples=8, seed=2).run(layers, records)
    assert a.tables == b.tables and a.seed == 2
    rows = {r["layer"]: r for r in a.tables["layers"]}
    assert list(rows) == ["early", "embedding"] and a.metrics["final_layer"] == "embedding"
    # the latent problem has 4 factors: the clean embedding is lower-dimensional than the noisy one
    assert rows["embedding"]["twonn"] < rows["early"]["twonn"]
    assert rows["embedding"]["isoscore"] < rows["early"]["isoscore"]
    for r in rows.values():
        for s in ("rankme", "twonn", "isoscore"):
            assert r[f"{s}_half_low"] <= r[f"{s}_half_high"]
    assert a.arrays["twonn_halves"].shape == (2, 8)
    assert any("not confidence intervals" in n for n in a.notes)
    back = Result.load(a.save(_tmp(a)))
    assert back.tables == a.tables


def _tmp(res):
    import tempfile
    from pathlib import Path

    return Path(tempfile.mkdtemp()) / "lf.json"


def test_one_embedding_and_too_few_records(layered):
    layers, records = layered
    one = LabelFree(n_subsamples=0).run(layers["embedding"], records)
    assert one.metrics["layers"] == ["embedding"] and one.metrics["n_subsamples"] == 0
    with pytest.raises(AnalysisError, match="at least 20 records"):
        LabelFree().run(layers["embedding"], records.subset(range(10)))


def test_section_renders(layered):
    from ecgprobe.report import Report

    layers, records = layered
    html = Report({"label_free": LabelFree(n_subsamples=4).run(layers, records)}, title="t").to_html()
    assert "Label-free geometry" in html and "RankMe" in html and "not confidence intervals" in html
