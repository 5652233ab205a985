"""`ecgprobe cka` and `ecgprobe umap` end to end on real PTB-XL records (100 Hz), as a user runs them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ecgprobe.analyzers import Result
from ecgprobe.analyzers.cka import linear_cka
from ecgprobe.cli import main
from ecgprobe.extract.embeddings import load_embeddings, save_embeddings

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def data_args(ptbxl_root):
    """PTB-XL mini at 100 Hz (for the tiny test encoder)."""
    return ["--dataset", "ptbxl", "--root", str(ptbxl_root), "-o", "sampling_rate=100"]


@pytest.fixture(scope="module")
def real_args(ptbxl_root, tmp_path_factory):
    """PTB-XL mini at 500 Hz with an embedding cache shared by this module's commands."""
    cache = tmp_path_factory.mktemp("cache")
    return ["--dataset", "ptbxl", "--root", str(ptbxl_root), "--cache-dir", str(cache), "--quiet"]


def test_cka_of_two_real_encoders_through_the_cli(real_args, tmp_path, capsys):
    """random-resnet1d (architecture only) vs handcrafted features, on real PTB-XL records at 500 Hz."""
    out = tmp_path / "cka"
    args = [
        "cka",
        *real_args,
        "--encoder-a",
        "random-resnet1d",
        "--encoder-option-a",
        "width=8",  # a narrower ResNet-18 layout (64-d embedding) keeps the test fast
        "--encoder-b",
        "handcrafted",
        "--alignment",
        "--n-resamples",
        "100",
        "--ci-level",
        "0.9",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    res = Result.load(out / "cka.json")
    m = res.metrics
    assert m["n_records"] == 488 and 0 < m["cka"] < 1 and m["cka_ci_low"] < m["cka"] < m["cka_ci_high"]
    assert res.params["n_resamples"] == 100 and res.params["ci_level"] == 0.9
    assert f"{m['cka']:.4f}" in printed and "mutual kNN overlap" in printed
    assert res.provenance["a"]["encoder"]["encoder"] == "random-resnet1d"
    assert res.provenance["b"]["encoder"]["encoder"] == "handcrafted"
    al = Result.load(out / "alignment.json")
    assert al.metrics["mutual_knn"] > al.metrics["mutual_knn_chance"]  # both see the same ECGs
    # no silent overwrite
    assert main(args) == 1
    assert "--force" in capsys.readouterr().err


def test_cka_layer_by_layer_through_the_cli(data_args, tmp_path):
    args = [
        "cka",
        *data_args,
        "--encoder-a",
        "tiny-test",
        "--encoder-b",
        "tiny-test",
        "--encoder-option-b",
        "seed=1",
    ]
    assert (
        main(
            [*args, "--no-cache", "--quiet", "--layers", "all", "--n-resamples", "50", "--out", str(tmp_path)]
        )
        == 0
    )
    lay = Result.load(tmp_path / "cka.json")
    assert lay.layers_a == ["conv1", "conv2", "embedding"] and lay.arrays["cka"].shape == (3, 3)
    assert np.all((lay.arrays["ci_low"] <= lay.arrays["cka"]) & (lay.arrays["cka"] <= lay.arrays["ci_high"]))
    assert lay.provenance["b"]["encoder"]["options"]["seed"] == 1


def test_cka_of_embedding_folders_needs_no_dataset(data_args, tmp_path, capsys):
    """Folders made anywhere: matched by id (another row order is fine), no dataset needed."""
    for side, seed in (("a", 0), ("b", 2)):
        assert (
            main(
                [
                    "extract",
                    *data_args,
                    "--encoder",
                    "tiny-test",
                    "-E",
                    f"seed={seed}",
                    "--no-cache",
                    "--quiet",
                    "--out",
                    str(tmp_path / side),
                ]
            )
            == 0
        )
    a, b = load_embeddings(tmp_path / "a"), load_embeddings(tmp_path / "b")
    rev = b.take(list(b.ids[::-1]))
    save_embeddings(tmp_path / "b_reversed", rev)
    (tmp_path / "b_reversed" / "manifest.json").unlink()  # a folder from another tool
    out = tmp_path / "out"
    args = ["cka", "--embeddings-a", str(tmp_path / "a"), "--embeddings-b", str(tmp_path / "b_reversed")]
    assert main([*args, "--n-resamples", "0", "--out", str(out)]) == 0  # debiased by default
    res = Result.load(out / "cka.json")
    assert res.metrics["cka"] == pytest.approx(linear_cka(a.X, b.X, debiased=True), abs=1e-6)
    # --n-boot: the option's former name still works
    assert main([*args, "--n-boot", "0", "--biased", "--out", str(tmp_path / "biased")]) == 0
    biased = Result.load(tmp_path / "biased" / "cka.json")
    assert biased.params["n_resamples"] == 0 and res.params["n_resamples"] == 0
    assert biased.metrics["cka"] == pytest.approx(linear_cka(a.X, b.X, debiased=False), abs=1e-6)
    # different records: a clear error listing the mismatch
    save_embeddings(tmp_path / "fewer", a.take(list(a.ids[:-5])))
    capsys.readouterr()
    assert (
        main(
            [
                "cka",
                "--embeddings-a",
                str(tmp_path / "a"),
                "--embeddings-b",
                str(tmp_path / "fewer"),
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 1
    )
    assert "5 only in A" in capsys.readouterr().err


def test_umap_coloured_by_superclass_through_the_cli(real_args, tmp_path, capsys):
    out = tmp_path / "umap"
    args = ["umap", *real_args, "--encoder", "random-resnet1d", "-E", "width=8", "--color-by", "label,sex"]
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    res = Result.load(out / "projection.json")
    assert res.kind == "projection" and res.coords.shape == (488, 2)
    assert list(res.arrays["label_names"]) == ["CD", "HYP", "MI", "NORM", "STTC"]
    assert 0.5 < res.metrics["trustworthiness"] <= 1.0 and "trustworthiness" in printed
    tab = res.table("labels").set_index("label")
    assert tab.loc["NORM", "n_pos"] == 297 and tab.loc["NORM", "purity_chance"] == pytest.approx(296 / 487)
    for png in ("projection_label.png", "projection_sex.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads((out / "projection.json").read_text())
    assert doc["params"]["umap"]["threads"] == 1 and doc["seed"] == 0
    assert np.isfinite(res.arrays["age"]).mean() > 0.9
    assert main([*args, "--color-by", "height", "--out", str(tmp_path / "bad")]) == 1
    assert "--color-by" in capsys.readouterr().err
