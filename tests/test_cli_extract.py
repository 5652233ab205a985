"""`ecgprobe extract` as a user runs it: outputs, cache reuse, refusals."""

from __future__ import annotations

import json

import numpy as np

from ecgprobe.cli import main


def _args(out, cache, *extra):
    return ["extract", "--dataset", "synthetic", "-o", "n_records=40", "-o", "fs=100", "--encoder", "tiny-test",
            "--out", str(out), "--cache-dir", str(cache), *extra]  # fmt: skip


def test_extract_writes_exchange_format_and_reuses_cache(tmp_path, capsys):
    assert main(_args(tmp_path / "a", tmp_path / "cache")) == 0
    err = capsys.readouterr().err
    assert "40 records computed" in err and "wrote 40 x (embedding 16)" in err
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["provenance"]["encoder"]["weights_sha256"]
    assert set(manifest["split"].values()) <= {"train", "val", "test"} and len(manifest["split"]) == 40
    assert np.load(tmp_path / "a" / "embeddings.npy").shape == (40, 16)
    assert main(_args(tmp_path / "b", tmp_path / "cache")) == 0
    assert "reused 40 cached embeddings" in capsys.readouterr().err


def test_extract_refuses_overwrite_and_bad_names(tmp_path, capsys):
    assert main(_args(tmp_path / "a", tmp_path / "cache", "--quiet")) == 0
    assert main(_args(tmp_path / "a", tmp_path / "cache")) == 1
    assert "pass --force" in capsys.readouterr().err
    assert main(_args(tmp_path / "a", tmp_path / "cache", "--force", "--layers", "all", "--quiet")) == 0
    assert (tmp_path / "a" / "embeddings.conv1.npy").exists()
    rc = main(["extract", "--dataset", "synthetic", "--encoder", "tiny-tst", "--out", str(tmp_path / "c")])
    assert rc == 1 and "did you mean 'tiny-test'" in capsys.readouterr().err
