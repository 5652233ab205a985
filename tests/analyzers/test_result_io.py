"""Saved results: the one JSON + NPZ reader, and results written by older versions still load."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest

from ecgprobe._io import read_json_npz
from ecgprobe.analyzers import Result
from ecgprobe.analyzers.base import migrate_params
from ecgprobe.analyzers.cka import CKAResult
from ecgprobe.analyzers.probe_shap import ProbeShapResult
from ecgprobe.exceptions import DataError


def _write_old(tmp_path, name: str, doc: dict, arrays: dict[str, np.ndarray]) -> None:
    """A result as an older version wrote it: JSON by hand, NPZ beside it with its sha256."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    blob = buf.getvalue()
    (tmp_path / f"{name}.npz").write_bytes(blob)
    doc = {**doc, "arrays_file": {"name": f"{name}.npz", "sha256": hashlib.sha256(blob).hexdigest()}}
    (tmp_path / f"{name}.json").write_text(json.dumps(doc))


@pytest.mark.parametrize(
    ("kind", "old", "klass"),
    [
        ("cka", {"kernel": "linear", "n_boot": 50, "ci": 0.9, "seed": 0}, CKAResult),
        ("alignment", {"k": 10, "n_boot": 20, "ci": 0.99, "seed": 1}, Result),
        ("probe_shap", {"top_k": 10, "n_bootstrap": 100, "ci": 0.8, "seed": 0}, ProbeShapResult),
    ],
)
def test_old_setting_names_load_under_the_current_ones(tmp_path, kind, old, klass):
    doc = {"kind": kind, "metrics": {"n_records": 40}, "params": old, "seed": old["seed"]}
    _write_old(tmp_path, kind, doc, {"cka": np.eye(2)})
    res = Result.load(tmp_path / kind)
    assert isinstance(res, klass)
    old_n = old.get("n_boot", old.get("n_bootstrap"))
    assert res.params["n_resamples"] == old_n and res.params["ci_level"] == old["ci"]
    assert not {"n_boot", "n_bootstrap", "ci"} & set(res.params)
    assert res.metrics == {"n_records": 40}
    np.testing.assert_array_equal(res.arrays["cka"], np.eye(2))
    # saved again, the current names are what the file holds
    again = json.loads(res.save(tmp_path / "again").read_text())
    assert again["params"]["n_resamples"] == old_n and "ci" not in again["params"]


def test_migration_touches_only_the_kinds_concerned():
    assert migrate_params("linear_probe", {"ci": 1, "n_boot": 2}) == {"ci": 1, "n_boot": 2}
    # a current name already present wins over the former one
    assert migrate_params("cka", {"n_boot": 5, "n_resamples": 7}) == {"n_resamples": 7}


def test_reader_errors_name_the_file_and_the_fix(tmp_path):
    res = Result(kind="demo", metrics={"x": 1.0}, arrays={"a": np.arange(3)})
    path = res.save(tmp_path / "demo")
    doc, arrays = read_json_npz(path, what="result file", redo="re-run")
    assert doc["metrics"] == {"x": 1.0}
    np.testing.assert_array_equal(arrays["a"], np.arange(3))

    with pytest.raises(DataError, match=r"result file .*nothing\.json does not exist; check the path"):
        Result.load(tmp_path / "nothing")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match=r"bad\.json is not valid JSON .*re-run the analysis"):
        Result.load(tmp_path / "bad.json")
    npz = tmp_path / "demo.npz"
    npz.write_bytes(npz.read_bytes() + b"x")
    with pytest.raises(DataError, match=r"demo\.npz does not match the checksum .*re-run the analysis"):
        Result.load(path)
    npz.unlink()
    with pytest.raises(DataError, match=r"refers to demo\.npz, which is missing; re-run the analysis"):
        Result.load(path)
