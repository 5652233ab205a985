"""Pooling RecordSets (issue 15.2): a source column, unique ids, namespaced patients, honest labels."""

from __future__ import annotations

import numpy as np
import pytest

import ecgprobe
from ecgprobe.data import pool
from ecgprobe.exceptions import ConfigError, DataError


@pytest.fixture(scope="module")
def two_sets():
    a = ecgprobe.load_dataset("synthetic", n_records=12, fs=100.0, seed=0)
    b = ecgprobe.load_dataset("synthetic", n_records=8, fs=100.0, seed=1)
    return a, b


def test_pool_keeps_records_signals_splits_and_names_sources(two_sets):
    a, b = two_sets
    p = pool(a, b, names=["site_a", "site_b"])
    assert len(p) == len(a) + len(b) and p.name == "pool"
    assert p.meta["source"].tolist() == ["site_a"] * len(a) + ["site_b"] * len(b)
    assert p.meta["source_id"].tolist() == [*a.ids, *b.ids]
    np.testing.assert_array_equal(p.signals[: len(a)], a.signals)
    np.testing.assert_array_equal(p.read([len(a) + 3, 1]), np.stack([b.signals[3], a.signals[1]]))
    assert list(p.split) == [*a.split, *b.split]
    view = p.by_split("train")  # views read through the pooled source
    np.testing.assert_array_equal(
        view.signals, np.concatenate([a.by_split("train").signals, b.by_split("train").signals])
    )
    assert list(p.content_digests()) == [*a.content_digests(), *b.content_digests()]
    assert set(p.params["sources"]) == {"site_a", "site_b"}


def test_colliding_ids_are_prefixed_and_patients_always_namespaced(two_sets):
    a, b = two_sets
    q = pool(a, b, names=["c", "d"])
    assert list(q.ids) == [*a.ids, *b.ids]  # no collision: ids untouched
    assert not any("prefixed" in n for n in q.notes)
    twin = ecgprobe.load_dataset("synthetic", n_records=5, fs=100.0, seed=0)  # the same ids as a's first five
    p = pool(a, twin)  # default names: the loaders', numbered when repeated
    assert p.ids[0] == f"synthetic1:{a.ids[0]}" and p.ids[-1] == f"synthetic2:{twin.ids[-1]}"
    assert len(set(p.ids)) == len(p) and any("prefixed" in n for n in p.notes)
    assert p.patient_ids[0] == f"synthetic1/{a.patient_ids[0]}"
    assert not set(p.patient_ids[: len(a)]) & set(p.patient_ids[len(a) :])


def test_labels_absent_in_a_source_are_not_silent_negatives(two_sets):
    a, b = two_sets
    keep = list(b.label_names[:2])
    b2 = b.with_labels(keep, b.y[:, :2], "multilabel")
    shared = pool(a, b2, names=["a", "b"])
    assert list(shared.label_names) == [n for n in a.label_names if n in keep]
    assert any("not present in every source" in n for n in shared.notes)
    union = pool(a, b2, names=["a", "b"], labels="union")
    assert list(union.label_names) == list(a.label_names)
    lacking = [n for n in a.label_names if n not in keep]
    assert all(f"{n} in b" in " ".join(union.notes) for n in lacking)
    assert union.y[len(a) :, union.label_names.index(lacking[0])].sum() == 0


def test_incompatible_sets_are_refused_with_the_fix(two_sets):
    a, _ = two_sets
    fast = ecgprobe.load_dataset("synthetic", n_records=6, fs=500.0, seed=3)
    with pytest.raises(DataError, match="sampling_rate=500"):
        pool(a, fast)
    with pytest.raises(ConfigError, match="two or more"):
        pool(a)
    with pytest.raises(ConfigError, match="unique"):
        pool(a, a, names=["x", "x"])
    other = a.with_labels(["nothing"], np.zeros((len(a), 1)), "multilabel")
    with pytest.raises(DataError, match="labels=scored"):
        pool(a, other, names=["a", "o"])


def test_pool_of_real_sources_in_the_harmonised_label_space(ptbxl_root, cinc_root):
    ptb = ecgprobe.load_dataset("ptbxl", ptbxl_root, sampling_rate=100, labels="scored").subset(np.arange(40))
    cinc = ecgprobe.load_dataset("challenge", cinc_root, labels="scored", fs=100)
    p = pool(ptb, cinc)
    assert set(p.label_names) == set(ptb.label_names) & set(cinc.label_names)
    assert "426783006" in p.label_names  # sinus rhythm in both
    assert set(p.meta["source"]) == {"ptbxl", "challenge"}
    assert set(p.meta.loc[p.meta["source"] == "challenge", "subsource"]) >= {"Georgia", "PTB-XL"}
    j = p.label_names.index("426783006")
    np.testing.assert_array_equal(p.y[len(ptb) :, j], cinc.y[:, cinc.label_names.index("426783006")])
