"""The neighbour gallery: neighbours from train only, nearest first, signals in mV, seeded."""

from __future__ import annotations

import numpy as np
import pytest

import ecgprobe
from ecgprobe.analyzers.neighbour_gallery import NeighbourGallery
from ecgprobe.exceptions import ConfigError


@pytest.fixture(scope="module")
def data():
    rs = ecgprobe.load_dataset("synthetic", n_records=160, fs=100.0, seed=7)
    emb = ecgprobe.extract(ecgprobe.create_encoder("handcrafted"), rs, cache_dir=None, progress=False)
    return rs, emb


def test_neighbours_are_training_records_nearest_first(data):
    rs, emb = data
    res = NeighbourGallery(n_queries=3, k=4, seed=1).run(emb, rs)
    split = dict(zip(rs.ids, rs.split))
    rows = res.tables["neighbours"]
    X = emb.X / np.linalg.norm(emb.X, axis=1, keepdims=True)
    pos = {i: j for j, i in enumerate(emb.ids)}
    train = [j for j, s in enumerate(rs.split) if s == "train"]
    for qid in {r["query_id"] for r in rows}:
        mine = sorted((r for r in rows if r["query_id"] == qid), key=lambda r: r["rank"])
        assert split[qid] == "test" and all(split[r["record_id"]] == "train" for r in mine[1:])
        d = [r["distance"] for r in mine[1:]]
        assert d == sorted(d)
        # the brute-force nearest training record by cosine distance
        dist = 1 - X[[pos[i] for i in np.asarray(rs.ids)[train]]] @ X[pos[qid]]
        assert d[0] == pytest.approx(float(dist.min()), abs=1e-5)
    sig = res.arrays["signals"]
    assert sig.shape == (3, 5, int(5.0 * rs.fs))
    first = mine[0]["record_id"]  # the stored signal is the record's own lead II in mV
    idx = list(rs.ids).index(first)
    lead = list(rs.leads).index("II")
    q_row = sorted({r["query_id"] for r in rows}, key=[r["query_id"] for r in rows].index).index(first)
    np.testing.assert_allclose(sig[q_row, 0], rs.read(np.array([idx]))[0, lead, : sig.shape[-1]], rtol=1e-6)
    again = NeighbourGallery(n_queries=3, k=4, seed=1).run(emb, rs)
    assert again.tables == res.tables


def test_bad_settings(data):
    rs, emb = data
    for bad in ({"k": 0}, {"n_queries": 100}, {"metric": "manhattan"}, {"seconds": -1}):
        with pytest.raises(ConfigError):
            NeighbourGallery(**bad).run(emb, rs)
