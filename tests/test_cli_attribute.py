"""``ecgprobe attribute``: writes both results, refuses to overwrite without --force, checks --probe."""

from __future__ import annotations

import numpy as np
import pytest

import ecgprobe
from ecgprobe.analyzers import Result
from ecgprobe.analyzers._stats.heads import linear_head
from ecgprobe.analyzers.input_attribution import InputAttributionResult
from ecgprobe.analyzers.linear_probe import LinearProbe
from ecgprobe.analyzers.probe_shap import ProbeShapResult
from ecgprobe.cli import main
from tests.analyzers.attribution_fixtures import embed


@pytest.fixture(scope="module")
def saved_probe(ptbxl100, tmp_path_factory):
    enc = ecgprobe.create_encoder("tiny-test", device="cpu")
    probe = LinearProbe(n_resamples=20).run(embed(enc, ptbxl100), ptbxl100)
    return probe.save(tmp_path_factory.mktemp("probe") / "probe")


def _args(root, out, *extra):
    return [
        "attribute", "--dataset", "ptbxl", "--root", str(root), "-o", "sampling_rate=100",
        "--encoder", "tiny-test", "--device", "cpu", "--no-cache", "--quiet",
        "--labels", "MI,NORM", "--n-examples", "2", "--n-steps", "4", "--out", str(out), *extra,
    ]  # fmt: skip


def test_attribute_writes_results_and_protects_them(ptbxl_root, tmp_path, capsys):
    out = tmp_path / "attr"
    assert main(_args(ptbxl_root, out, "--baseline", "mean")) == 0  # fits and saves a LinearProbe
    shap_res = Result.load(out / "probe_shap.json")
    attr = Result.load(out / "input_attribution.json")
    probe = Result.load(out / "linear_probe.json")
    assert isinstance(shap_res, ProbeShapResult) and isinstance(attr, InputAttributionResult)
    assert shap_res.metrics["labels"] == ["MI", "NORM"] == attr.metrics["labels"]
    assert attr.metrics["method"] == "ig" and attr.params["baseline"] == "mean"
    assert "sanity_spearman_lead" in attr.arrays and attr.arrays["attributions"].shape[1:] == (12, 250)
    W, _ = linear_head(probe)
    labels = list(probe.metrics["labels_fitted"])
    np.testing.assert_allclose(shap_res.arrays["W"], W[[labels.index("MI"), labels.index("NORM")]])

    capsys.readouterr()
    assert main(_args(ptbxl_root, out)) == 1
    assert "--force" in capsys.readouterr().err
    assert main(_args(ptbxl_root, out, "--force", "--no-sanity-check")) == 0
    assert "sanity_spearman_lead" not in Result.load(out / "input_attribution.json").arrays


def test_attribute_with_a_saved_probe(ptbxl_root, saved_probe, tmp_path):
    out = tmp_path / "attr"
    assert main(_args(ptbxl_root, out, "--probe", str(saved_probe), "--no-sanity-check")) == 0
    assert not (out / "linear_probe.json").exists()
    assert Result.load(out / "probe_shap.json").params["probe"]["params"]["n_resamples"] == 20


def test_attribute_rejects_bad_probe_and_labels(ptbxl_root, saved_probe, tmp_path, capsys):
    wrong = Result(kind="knn").save(tmp_path / "knn")
    assert main(_args(ptbxl_root, tmp_path / "a", "--probe", str(wrong))) == 1
    assert "linear_probe" in capsys.readouterr().err
    assert main(_args(ptbxl_root, tmp_path / "b", "--probe", str(saved_probe), "-E", "seed=7")) == 1
    assert "fit the probe on the embeddings" in capsys.readouterr().err
    args = _args(ptbxl_root, tmp_path / "c", "--probe", str(saved_probe))
    args[args.index("MI,NORM")] = "MI,XYZ"
    assert main(args) == 1
    assert "XYZ" in capsys.readouterr().err
