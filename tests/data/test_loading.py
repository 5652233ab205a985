"""The helpers every loader assembles its RecordSet with."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ecgprobe.data import ArraySource
from ecgprobe.data.loading import finish, multi_hot
from ecgprobe.data.sources import LoadedSignals
from ecgprobe.data.splits import stratified_patient_split


def test_multi_hot_marks_the_vocabulary_and_ignores_the_rest():
    y = multi_hot([["b"], [], ["a", "b", "zz"]], ["a", "b"])
    assert y.dtype == np.uint8 and y.tolist() == [[0, 1], [0, 0], [1, 1]]
    assert multi_hot([["a"]], []).shape == (1, 0)


def _parts(n: int = 12) -> dict:
    return {
        "fs": 100.0,
        "leads": ("I",),
        "ids": np.asarray([f"r{i}" for i in range(n)], dtype=object),
        "patient_ids": np.asarray([f"p{i // 2}" for i in range(n)], dtype=object),
        "label_names": ("a",),
        "y": (np.arange(n) % 2)[:, None].astype(np.uint8),
        "meta": pd.DataFrame({"age": np.arange(n)}),
        "name": "toy",
    }


def test_finish_splits_by_patient_records_the_split_and_applies_keep():
    n = 12
    keep = np.ones(n, dtype=bool)
    keep[[1, 4]] = False  # dropped by the non-finite policy: the source holds the 10 others
    source = ArraySource(np.arange(n, dtype=np.float32)[keep, None, None] * np.ones((1, 1, 3), np.float32))
    parts = _parts(n)
    rs = finish(
        LoadedSignals(source, keep, ["signal note"]), **parts, params={"root": "/x"}, notes=["loader note"],
        fractions=(0.5, 0.25, 0.25), seed=3,
    )  # fmt: skip
    want = stratified_patient_split(parts["y"], parts["patient_ids"], fractions=(0.5, 0.25, 0.25), seed=3)
    assert list(rs.ids) == [f"r{i}" for i in range(n) if keep[i]]
    assert list(rs.split) == list(want[keep])
    assert rs.params == {"root": "/x", "fractions": [0.5, 0.25, 0.25], "seed": 3}
    assert rs.notes == ("loader note", "signal note")
    assert rs.read([2])[0, 0, 0] == 3.0 and list(rs.meta["age"]) == [i for i in range(n) if keep[i]]


def test_finish_keeps_a_predefined_split_and_records_no_fractions_without_them():
    n = 4
    split = np.asarray(["train", "train", "val", "test"], dtype=object)
    rs = finish(
        LoadedSignals(ArraySource(np.zeros((n, 1, 3), np.float32)), np.ones(n, dtype=bool), []),
        **_parts(n), params={"root": "/x"}, split=split,
    )  # fmt: skip
    assert list(rs.split) == list(split) and rs.params == {"root": "/x"} and rs.notes == ()
