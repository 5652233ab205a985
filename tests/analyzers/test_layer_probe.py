"""layer_probe: the linear probe per layer on labels and physiology targets (the physiology atlas)."""

from __future__ import annotations

import numpy as np
import pytest

import ecgprobe
from ecgprobe.analyzers.base import Result
from ecgprobe.analyzers.layer_probe import LABELS_ROW, LayerProbe
from ecgprobe.exceptions import ConfigError
from ecgprobe.extract.embeddings import Embeddings

pytest.importorskip("neurokit2")


@pytest.fixture(scope="module")
def handcrafted_layers(synthetic_small):
    enc = ecgprobe.create_encoder("handcrafted", device="cpu")
    return ecgprobe.extract(enc, synthetic_small, layers="all", cache_dir=None, device="cpu", progress=False)


def test_handcrafted_encodes_heart_rate_and_random_init_much_less(synthetic_small, handcrafted_layers):
    probe = LayerProbe(quantities=("heart_rate",), labels=False, n_resamples=50)
    hand = probe.run(handcrafted_layers, synthetic_small)
    rand_enc = ecgprobe.create_encoder("random-resnet1d", width=8, device="cpu")  # small: fast on CPU
    rand = ecgprobe.extract(rand_enc, synthetic_small, cache_dir=None, device="cpu", progress=False)
    rnd = probe.run(rand, synthetic_small)
    atlas = {(r["row"], r["layer"]): r for r in hand.tables["atlas"]}
    r2_hand = atlas[("heart_rate", "embedding")]["value"]
    r2_rand = rnd.tables["atlas"][0]["value"]
    assert r2_hand > 0.9, r2_hand
    assert r2_rand < 0.9 and r2_rand < r2_hand - 0.1, (r2_hand, r2_rand)
    # the rhythm group holds the heart rate: it is the best layer, chosen on validation, and its
    # paired interval against the final layer excludes 0 in its favour
    assert hand.metrics["best_layer"]["heart_rate"] == "rhythm"
    (cmp,) = hand.tables["comparison"]
    assert cmp["intermediate_layer"] == "rhythm" and cmp["verdict"] == "intermediate"
    assert 0 < cmp["ci_low"] <= cmp["difference"] <= cmp["ci_high"]
    assert rnd.metrics["verdict"] == {"heart_rate": "single_layer"}
    assert hand.arrays["atlas_value"].shape == (1, len(handcrafted_layers))


def test_labels_row_and_round_trip(synthetic_small, handcrafted_layers, tmp_path):
    two = {k: handcrafted_layers[k] for k in ("amplitude", "embedding")}
    res = LayerProbe(quantities=("qrs",), Cs=(0.1, 1.0), n_resamples=20).run(two, synthetic_small)
    assert res.metrics["rows"] == [LABELS_ROW, "qrs"] and res.metrics["layers"] == ["amplitude", "embedding"]
    assert res.metrics["metric"] == {LABELS_ROW: "auroc", "qrs": "r2"}
    final_auc = next(r for r in res.tables["atlas"] if r["row"] == LABELS_ROW and r["layer"] == "embedding")
    assert final_auc["value"] > 0.9 and final_auc["ci_low"] <= final_auc["value"] <= final_auc["ci_high"]
    assert res.metrics["physiology_source"] == "neurokit2" and res.seed == 0
    again = Result.load(res.save(tmp_path / "lp"))
    np.testing.assert_array_equal(again.arrays["atlas_value"], res.arrays["atlas_value"])
    assert again.tables == res.tables


def test_identical_layer_is_not_compared_with_itself(synthetic_small, handcrafted_layers):
    final = handcrafted_layers["embedding"]
    copy = Embeddings(final.X.copy(), final.ids, layer="last_stage", key="copy")
    res = LayerProbe(quantities=("heart_rate",), labels=False, n_resamples=20).run(
        {"last_stage": copy, "embedding": final}, synthetic_small
    )
    assert res.metrics["verdict"]["heart_rate"] == "single_layer"


def test_bad_settings_are_refused(synthetic_small, handcrafted_layers):
    with pytest.raises(ConfigError, match="heart_rate"):
        LayerProbe(quantities=("hr",)).run(handcrafted_layers, synthetic_small)
    with pytest.raises(ConfigError, match="twice"):
        LayerProbe(quantities=("qt", "qt")).run(handcrafted_layers, synthetic_small)
    with pytest.raises(ConfigError, match="non-empty"):
        LayerProbe().run({}, synthetic_small)


SMALL = ["--dataset", "synthetic", "-o", "n_records=120", "-o", "fs=100", "-o", "seed=0"]


@pytest.fixture(scope="module")
def emb_folder(tmp_path_factory, synthetic_small, handcrafted_layers):
    """The handcrafted layers of the synthetic_small records as an embeddings folder (the CLI
    rebuilds the same records from SMALL, so no extraction runs in the CLI tests)."""
    from ecgprobe.extract.embeddings import save_embeddings

    out = tmp_path_factory.mktemp("hand")
    save_embeddings(out, list(handcrafted_layers.values()), records=synthetic_small)
    return str(out)


def test_cli_probe_layers_all_writes_the_atlas(emb_folder, tmp_path, capsys):
    from ecgprobe.cli import main

    args = ["probe", *SMALL, "--embeddings", emb_folder, "--no-cache", "--quiet", "--layers", "all",
            "--quantities", "heart_rate", "--n-resamples", "20", "--cs", "0.1,1", "--out", str(tmp_path / "l")]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "heart_rate: best layer rhythm; rhythm - embedding" in out
    for name in ("results.json", "results.npz", "atlas.csv", "comparison.csv"):
        assert (tmp_path / "l" / name).exists(), name
    res = Result.load(tmp_path / "l" / "results.json")
    assert res.kind == "layer_probe" and res.metrics["layers"][-1] == "embedding"
    assert main([*args[:-1], str(tmp_path / "m"), "--layer", "rhythm"]) == 1
    assert "--layers runs the linear probe" in capsys.readouterr().err
    assert main([*args[:-1], str(tmp_path / "n"), "--quantities", "heartrate"]) == 1


def test_cli_probe_target_heart_rate(emb_folder, tmp_path, capsys):
    from ecgprobe.cli import main

    args = ["probe", *SMALL, "--embeddings", emb_folder, "--no-cache", "--quiet", "--target", "heart_rate",
            "--n-resamples", "20", "--out", str(tmp_path / "hr")]  # fmt: skip
    assert main(args) == 0
    res = Result.load(tmp_path / "hr" / "results.json")
    assert res.metrics["labels_fitted"] == ["heart_rate"] and res.metrics["r2"] > 0.9
    assert "linear_probe: mae" in capsys.readouterr().out
    meta = ["probe", *SMALL, "--embeddings", emb_folder, "--no-cache", "--quiet", "--target", "meta:heart_rate",
            "--n-resamples", "20", "--out", str(tmp_path / "meta")]  # fmt: skip
    assert main(meta) == 0  # the generator's own heart rate, from the metadata


def test_report_section_shows_the_atlas_and_the_claim(synthetic_small, handcrafted_layers):
    from ecgprobe.report.document import Report

    res = LayerProbe(quantities=("heart_rate", "qrs"), labels=False, n_resamples=50).run(
        handcrafted_layers, synthetic_small
    )
    report = Report({"layer_probe": res}, title="atlas", mode="model", subjects=["handcrafted"])
    (section,) = [s for s in report.sections() if s.id == "layers"]
    kinds = [type(b).__name__ for b in section.blocks]
    assert kinds[:3] == ["Paragraph", "Figure", "Table"] and section.blocks[1].png[:4] == b"\x89PNG"
    texts = [f.text for f in report.findings() if f.rule == "layer_vs_final"]
    assert texts, "the comparison must reach the summary"
    n_test = res.metrics["n_test"]
    if n_test < 20:  # the claim rule needs 20 test records: the fixture's split has fewer
        assert all("not decided" in t and f"n = {n_test} test records" in t for t in texts)
    html = report.to_html()
    assert "Layer by layer" in html and "rhythm" in html


def test_a_model_report_gives_layer_probe_every_layer_and_the_rest_the_official_one(
    synthetic_small, handcrafted_layers
):
    from ecgprobe.settings import RunSettings
    from ecgprobe.workflows.model import model_report
    from ecgprobe.workflows.plan import wants_layers

    plan = {
        "layer_probe": {"quantities": ("heart_rate",), "labels": False, "n_resamples": 30},
        "linear_probe": {},
    }
    assert wants_layers(plan) and not wants_layers(["linear_probe", "cka"])
    settings = RunSettings(progress=False, n_resamples=30, seed=0)
    report = model_report(handcrafted_layers, synthetic_small, settings=settings, analyses=plan)
    atlas = report.require("layer_probe")
    assert atlas.provenance["embeddings"]["layers"] == list(handcrafted_layers)
    official = handcrafted_layers["embedding"]
    assert report.require("linear_probe").provenance["embeddings"]["key"] == official.key
