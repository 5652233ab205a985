"""RecordSet invariants, views, splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ecgprobe.data import ArraySource, RecordSet
from ecgprobe.data.splits import stratified_patient_split
from ecgprobe.exceptions import ConfigError, DataError


def _rs(n=10, **kw):
    args = dict(
        source=ArraySource(np.zeros((n, 2, 5), np.float32) + np.arange(n)[:, None, None]),
        fs=100,
        leads=("I", "II"),
        ids=[f"r{i}" for i in range(n)],
        patient_ids=[f"p{i // 2}" for i in range(n)],
        label_names=("a",),
        y=(np.arange(n) % 2)[:, None],
        split=["train"] * (n - 4) + ["val"] * 2 + ["test"] * 2,
        meta=pd.DataFrame({"age": np.arange(n)}),
    )
    args.update(kw)
    return RecordSet(**args)


def test_views_are_consistent_and_immutable():
    rs = _rs()
    sub = rs.subset([7, 2])
    assert list(sub.ids) == ["r7", "r2"] and sub.signals[:, 0, 0].tolist() == [7, 2]
    assert sub.meta["age"].tolist() == [7, 2]
    test = rs.by_split("test")
    assert list(test.ids) == ["r8", "r9"]
    with pytest.raises(ValueError):
        rs.y[0, 0] = 3
    with pytest.raises(ValueError):
        rs.signals[0, 0, 0] = 1
    assert rs.select_ids(["r3"]).signals[0, 0, 0] == 3
    with pytest.raises(DataError, match="r99"):
        rs.select_ids(["r99"])
    batches = list(rs.iter_batches(4))
    assert [len(p) for p, _ in batches] == [4, 4, 2]
    assert rs.fingerprint == _rs().fingerprint != _rs(n=8).fingerprint


def test_invalid_construction():
    with pytest.raises(DataError, match="duplicate record ids"):
        _rs(ids=["a"] * 10)
    with pytest.raises(DataError, match="unknown split"):
        _rs(split=["training"] * 10)
    with pytest.raises(DataError, match="y has 1 columns but 2"):
        _rs(label_names=("a", "b"))
    with pytest.raises(ConfigError, match="unknown split"):
        _rs().by_split("dev")


def test_meta_target_regression():
    rs = _rs().with_meta_target("age")
    assert rs.task == "regression" and rs.y[:, 0].tolist() == list(range(10))


def test_stratified_patient_split_properties():
    rng = np.random.default_rng(0)
    n = 2000
    pids = rng.integers(0, 900, n).astype(str)
    y = (rng.random((n, 6)) < np.array([0.4, 0.2, 0.1, 0.05, 0.02, 0.01])).astype(np.uint8)
    split = stratified_patient_split(y, pids, fractions=(0.8, 0.1, 0.1), seed=1)
    for p in np.unique(pids):
        assert len(set(split[pids == p])) == 1
    share = {s: np.mean(split == s) for s in ("train", "val", "test")}
    assert abs(share["train"] - 0.8) < 0.03 and abs(share["test"] - 0.1) < 0.03
    for k in range(6):  # labels balanced: test prevalence close to overall
        assert abs(y[split == "test", k].mean() - y[:, k].mean()) < 0.5 * y[:, k].mean() + 0.01
    assert (stratified_patient_split(y, pids, seed=1) == split).all()
    with pytest.raises(ConfigError, match="summing to 1"):
        stratified_patient_split(y, pids, fractions=(0.5, 0.1, 0.1))


def test_select_ids_keeps_the_requested_order_and_names_the_missing():
    rs = _rs()
    assert list(rs.select_ids(["r3", "r0", "r7"]).ids) == ["r3", "r0", "r7"]
    assert len(rs.select_ids([])) == 0
    with pytest.raises(DataError, match=r"2 of 3 requested ids .* e\.g\. \['zz', 'r99'\]"):
        rs.select_ids(["r1", "zz", "r99"])
