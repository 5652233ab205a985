"""The exchange format and id alignment."""

from __future__ import annotations

import numpy as np
import pytest

import ecgprobe
from ecgprobe.exceptions import DataError
from ecgprobe.extract import Embeddings, align_to_records, load_embeddings, save_embeddings


def test_roundtrip_single_and_layers(tmp_path, synthetic_small):
    enc = ecgprobe.create_encoder("tiny-test", device="cpu")
    out = ecgprobe.extract(enc, synthetic_small, layers="all", progress=False)
    save_embeddings(tmp_path / "all", list(out.values()), records=synthetic_small)
    for layer, emb in out.items():
        back = load_embeddings(tmp_path / "all", layer=layer)
        np.testing.assert_array_equal(back.X, emb.X)
        assert list(back.ids) == list(emb.ids) and back.provenance["encoder"]["encoder"] == "tiny-test"
    assert load_embeddings(tmp_path / "all").layer == "embedding"
    save_embeddings(tmp_path / "one", out["conv1"])
    assert (tmp_path / "one" / "embeddings.npy").exists()
    assert load_embeddings(tmp_path / "one").dim == 8


def test_foreign_folder_and_alignment(tmp_path, synthetic_small):
    rng = np.random.default_rng(0)
    ids = np.array(list(synthetic_small.ids)[::-1])  # another tool, another order
    np.save(tmp_path / "embeddings.npy", rng.normal(size=(len(ids), 5)).astype(np.float32))
    np.save(tmp_path / "ids.npy", ids)
    emb = load_embeddings(tmp_path)
    aligned, _ = align_to_records(emb, synthetic_small)
    assert list(aligned.ids) == list(synthetic_small.ids)
    np.testing.assert_array_equal(aligned.X[0], emb.X[-1])
    partial = Embeddings(X=emb.X[:10], ids=ids[:10])
    with pytest.raises(DataError, match=r"110 of 120 records of dataset 'synthetic' have no embedding"):
        align_to_records(partial, synthetic_small)
    sub, rs_sub = align_to_records(partial, synthetic_small, allow_subset=True)
    assert len(sub) == len(rs_sub) == 10


def test_bad_folders(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_embeddings(tmp_path / "nope")
    with pytest.raises(DataError, match=r"no embeddings\.npy"):
        load_embeddings(tmp_path)
    np.save(tmp_path / "embeddings.npy", np.zeros((3, 2), np.float32))
    with pytest.raises(DataError, match=r"no ids\.npy"):
        load_embeddings(tmp_path)
    np.save(tmp_path / "ids.npy", np.array(["a", "b"]))
    with pytest.raises(DataError, match=r"3 rows but ids\.npy has 2"):
        load_embeddings(tmp_path)
    np.save(tmp_path / "ids.npy", np.array(["a", "b", "c"]))
    x = np.zeros((3, 2), np.float32)
    x[1, 0] = np.nan
    np.save(tmp_path / "embeddings.npy", x)
    with pytest.raises(DataError, match=r"not finite, e.g. records \['b'\]"):
        load_embeddings(tmp_path)
    with pytest.raises(DataError, match="not unique"):
        Embeddings(X=np.zeros((2, 2)), ids=["a", "a"])


def test_regression_extract_stays_callable_after_subpackage_import(synthetic_small):
    """Importing the ecgprobe.extract package once hid the ecgprobe.extract() function."""
    import importlib

    importlib.import_module("ecgprobe.extract.embeddings")
    enc = ecgprobe.create_encoder("tiny-test", device="cpu")
    assert ecgprobe.extract(enc, synthetic_small.subset(range(4)), progress=False).X.shape == (4, 16)


def test_all_layers_of_a_folder_without_manifest(tmp_path, synthetic_small):
    """Folders made elsewhere list their layers by file name (embeddings.<layer>.npy)."""
    import argparse

    from ecgprobe.cli.common import embeddings_from_args

    ids = np.asarray(synthetic_small.ids, dtype=str)
    for name, dim in (("block1", 3), ("block2", 4)):
        np.save(tmp_path / f"embeddings.{name}.npy", np.ones((len(ids), dim), np.float32))
    np.save(tmp_path / "ids.npy", ids)
    args = argparse.Namespace(embeddings=tmp_path, encoder=None)
    out = embeddings_from_args(args, synthetic_small, layers="all")
    assert {k: v.dim for k, v in out.items()} == {"block1": 3, "block2": 4}


def test_regression_written_files_have_ordinary_permissions(tmp_path):
    """atomic_write used to leave mkstemp's private 0600 mode on results and caches."""
    import os

    from ecgprobe._io import atomic_write

    mask = os.umask(0o022)
    os.umask(mask)
    path = atomic_write(tmp_path / "x.json", b"{}")
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def _folder(tmp_path, n=6):
    emb = Embeddings(np.arange(n * 4, dtype=np.float32).reshape(n, 4), [f"r{i}" for i in range(n)])
    return save_embeddings(tmp_path / "emb", emb)


def test_ids_saved_as_object_array_are_refused_with_how_to_resave(tmp_path):
    """Regression (issue 13.5): ids.npy with dtype=object used to end in an internal error."""
    folder = _folder(tmp_path)
    np.save(folder / "ids.npy", np.array([f"r{i}" for i in range(6)], dtype=object), allow_pickle=True)
    with pytest.raises(
        DataError, match=r"ids\.npy holds a Python object array .*never unpickles.*dtype=str"
    ) as info:
        load_embeddings(folder)
    assert str(folder / "ids.npy") in str(info.value)
    ids = np.load(folder / "ids.npy", allow_pickle=True)  # the fix the message gives, applied
    np.save(folder / "ids.npy", np.asarray(ids, dtype=str))
    assert list(load_embeddings(folder).ids) == [f"r{i}" for i in range(6)]


@pytest.mark.parametrize("name", ["embeddings.npy", "ids.npy"])
def test_truncated_npy_files_are_named(tmp_path, name):
    """Regression (issue 13.5): a truncated embeddings.npy used to end in an internal error."""
    folder = _folder(tmp_path)
    raw = (folder / name).read_bytes()
    (folder / name).write_bytes(raw[:-10])
    with pytest.raises(
        DataError, match=rf"{name.replace('.', '[.]')} is truncated: \d+ bytes, but its header declares"
    ):
        load_embeddings(folder)
    (folder / name).write_bytes(raw[:20])  # not even a complete header
    with pytest.raises(DataError, match=rf"{name.replace('.', '[.]')} is not a readable \.npy file"):
        load_embeddings(folder)
    (folder / name).write_bytes(raw + b"\x00" * 8)
    with pytest.raises(DataError, match="longer than its header says"):
        load_embeddings(folder)


def test_embedding_files_of_the_wrong_kind(tmp_path):
    folder = _folder(tmp_path)
    np.save(folder / "embeddings.npy", np.array([["a", "b"]] * 6))
    with pytest.raises(DataError, match=r"embeddings\.npy holds a 2-D <U1 array .*real-valued matrix"):
        load_embeddings(folder)
    np.save(folder / "embeddings.npy", np.zeros((6, 4), dtype=np.float32))
    np.save(folder / "ids.npy", np.array(["a", "b", "a", "c", "d", "e"]))
    with pytest.raises(DataError, match=r"ids\.npy repeats record ids, e\.g\. \['a'\]"):
        load_embeddings(folder)
