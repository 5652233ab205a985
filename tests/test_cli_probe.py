"""`ecgprobe probe` and `ecgprobe scarcity` as a user runs them: outputs, refusals, id matching,
extraction through the cache (once), regression targets."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from ecgprobe.analyzers import Result
from ecgprobe.cli import main
from ecgprobe.encoders.testing import TinyTestEncoder

DATA = ["--dataset", "synthetic", "-o", "n_records=200", "-o", "fs=100", "-o", "seed=1"]


@pytest.fixture(scope="module")
def emb_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("emb")
    cache = tmp_path_factory.mktemp("cache")
    args = [
        "extract",
        *DATA,
        "--encoder",
        "tiny-test",
        "--out",
        str(out),
        "--cache-dir",
        str(cache),
        "--quiet",
    ]
    assert main(args) == 0
    return out


def test_probe_both_kinds_from_an_embeddings_folder(emb_dir, tmp_path, capsys):
    out = tmp_path / "p"
    args = [
        "probe",
        *DATA,
        "--embeddings",
        str(emb_dir),
        "--kind",
        "both",
        "--n-resamples",
        "100",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "linear_probe: macro_auroc" in printed and "knn_probe: macro_auroc" in printed
    for kind in ("linear", "knn"):
        res = Result.load(out / kind / "results.json")
        assert res.kind == f"{kind}_probe" and res.metrics["n_resamples"] == 100
        assert (out / kind / "results.npz").exists()
        with (out / kind / "per_label.csv").open() as fh:
            rows = list(csv.DictReader(fh))
        assert [r["label"] for r in rows] == res.metrics["labels_fitted"]
        assert float(rows[0]["auroc"]) == pytest.approx(res.tables["per_label"][0]["auroc"])
    assert main(args) == 1  # no silent overwrite
    assert "pass --force" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0


def test_probe_reports_ids_missing_on_either_side(emb_dir, tmp_path, capsys):
    other = ["--dataset", "synthetic", "-o", "n_records=250", "-o", "fs=100", "-o", "seed=2"]
    rc = main(["probe", *other, "--embeddings", str(emb_dir), "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert rc == 1 and "records of dataset 'synthetic' have no embedding (e.g. [" in err, err
    assert "embedding ids are not in the dataset" in err
    rc = main(["probe", *DATA, "--embeddings", str(tmp_path / "nothing"), "--out", str(tmp_path / "y")])
    assert rc == 1 and "does not exist" in capsys.readouterr().err


def test_probe_with_an_encoder_and_a_regression_target(tmp_path, capsys):
    args = ["probe", *DATA, "--encoder", "tiny-test", "--cache-dir", str(tmp_path / "c"), "--quiet",
            "--target", "age", "--n-resamples", "100", "--out", str(tmp_path / "age")]  # fmt: skip
    assert main(args) == 0
    assert "linear_probe: mae" in capsys.readouterr().out
    doc = json.loads((tmp_path / "age" / "results.json").read_text())
    assert doc["metrics"]["task"] == "regression" and doc["metrics"]["labels_fitted"] == ["age"]
    assert (tmp_path / "age" / "per_target.csv").exists()
    bad = [
        "probe",
        *DATA,
        "--encoder",
        "tiny-test",
        "--target",
        "age",
        "--kind",
        "knn",
        "--out",
        str(tmp_path / "k"),
    ]
    assert main(bad) == 1 and "--kind linear" in capsys.readouterr().err


def test_scarcity_extracts_once_and_writes_the_curve(tmp_path, capsys):
    cache = tmp_path / "cache"
    before = TinyTestEncoder.calls
    args = ["scarcity", *DATA, "--encoder", "tiny-test", "--cache-dir", str(cache), "--quiet",
            "--fractions", "0.3,0.6", "--seeds", "2", "--n-resamples", "50", "--out", str(tmp_path / "s")]  # fmt: skip
    assert main(args) == 0
    calls = TinyTestEncoder.calls - before
    assert 0 < calls <= int(np.ceil(200 / 64))  # one extraction pass, whatever the fractions x seeds
    printed = capsys.readouterr().out
    assert "x=0.3" in printed and "x=1" in printed and "fraction_for_95pct" in printed
    res = Result.load(tmp_path / "s" / "results.json")
    assert res.kind == "scarcity" and res.metrics["grid"] == [0.3, 0.6, 1.0] and res.metrics["n_seeds"] == 2
    for name in ("curve", "per_label", "runs"):
        assert (tmp_path / "s" / f"{name}.csv").exists()
    before = TinyTestEncoder.calls
    assert main([*args[:-1], str(tmp_path / "s2")]) == 0
    assert TinyTestEncoder.calls == before  # the cache serves the second run


def test_probe_interval_method_and_small_sample_threshold(emb_dir, tmp_path, capsys):
    """--ci-method and --min-positives reach the probe; the printed headline says how many labels
    it averages."""
    base = ["probe", *DATA, "--embeddings", str(emb_dir), "--kind", "linear", "--n-resamples", "100"]
    assert main([*base, "--out", str(tmp_path / "a"), "--ci-method", "bca", "--min-positives", "0"]) == 0
    m = Result.load(tmp_path / "a" / "results.json").metrics
    n = len(m["labels_evaluated"])
    assert m["ci_method"] == "bca" and m["min_positives"] == 0 and m["labels_flagged"] == []
    assert f"over {n} of {n} labels" in capsys.readouterr().out
    assert main([*base, "--out", str(tmp_path / "b"), "--min-positives", "1000"]) == 0
    m = Result.load(tmp_path / "b" / "results.json").metrics
    assert m["headline_basis"] == "all_evaluated" and len(m["labels_flagged"]) == n
    assert main([*base, "--out", str(tmp_path / "c"), "--ci-method", "normal"]) == 1  # one-line usage error


def test_probe_folds_rotates_and_writes_the_spread(emb_dir, tmp_path, capsys):
    base = ["probe", *DATA, "--embeddings", str(emb_dir), "--n-resamples", "50"]
    assert main([*base, "--folds", "4", "--out", str(tmp_path / "f")]) == 0
    printed = capsys.readouterr().out
    res = Result.load(tmp_path / "f" / "results.json")
    assert res.kind == "repeated_splits" and res.metrics["k"] == 4 and res.metrics["folds_source"] == "seeded"
    assert f"{res.metrics['mean']:.4f} ± {res.metrics['sd']:.4f} (sd) over" in printed
    with (tmp_path / "f" / "folds.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == res.metrics["n_rotations"]
    assert main([*base, "--folds", "2", "--out", str(tmp_path / "g")]) == 1
    assert "--folds takes a number of folds >= 3" in capsys.readouterr().err
    assert main([*base, "--folds", "--kind", "knn", "--out", str(tmp_path / "h")]) == 1
