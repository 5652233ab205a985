"""``ecgprobe report``, ``compare``, ``run`` and ``demo`` end to end, as a user runs them."""

from __future__ import annotations

import json

import pytest

from ecgprobe.cli import main

PTB = ["--dataset", "ptbxl", "-o", "sampling_rate=100"]


@pytest.fixture(autouse=True)
def _need_probes():
    from ecgprobe.analyzers import ANALYZERS

    if "linear_probe" not in ANALYZERS or "cka" not in ANALYZERS:
        pytest.skip("the probe and geometry analyzers are not in this checkout")


@pytest.mark.realdata
def test_report_on_real_ptbxl_then_rerender_and_refuse_overwrite(ptbxl_root, tmp_path, capsys):
    out = tmp_path / "rep"
    args = [
        "report",
        *PTB,
        "--root",
        str(ptbxl_root),
        "--encoder",
        "tiny-test",
        "--out",
        str(out),
        "--analyses",
        "linear_probe,knn_probe,subgroups",
        "--profile",
        "quick",
        "--cache-dir",
        str(tmp_path / "c"),
        "--quiet",
    ]
    assert main(args) == 0
    assert {p.name for p in out.iterdir()} == {"report.html", "report.pdf", "results.json", "results.npz"}
    doc = json.loads((out / "results.json").read_text())
    assert set(doc["results"]) == {"linear_probe", "knn_probe", "subgroups"}
    assert doc["context"]["dataset"]["split_sizes"]["test"] > 0
    capsys.readouterr()
    assert main(args) == 1  # refuses to overwrite
    assert "--force" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0
    assert json.loads((out / "results.json").read_text())["context"]["run"]["results reused from cache"] == 3
    again = tmp_path / "again"
    assert main(["report", "--from", str(out), "--out", str(again), "--quiet"]) == 0
    assert (again / "report.html").read_text() == (out / "report.html").read_text()
    assert (again / "report.pdf").read_bytes() == (out / "report.pdf").read_bytes()


@pytest.mark.realdata
def test_compare_two_encoders_on_real_ptbxl(ptbxl_root, tmp_path):
    out = tmp_path / "cmp"
    code = main(
        [
            "compare",
            *PTB,
            "--root",
            str(ptbxl_root),
            "--encoder-a",
            "tiny-test",
            "--encoder-b",
            "tiny-test",
            "--encoder-option-b",
            "seed=1",
            "--out",
            str(out),
            "--analyses",
            "linear_probe,paired_bootstrap,cka",
            "--profile",
            "quick",
            "--no-cache",
            "--quiet",
            "--format",
            "html",
        ]
    )
    assert code == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["subjects"] == ["tiny-test (A)", "tiny-test (B)"]
    assert set(doc["results"]) == {
        "tiny-test (A)/linear_probe",
        "tiny-test (B)/linear_probe",
        "paired_bootstrap",
        "cka",
    }
    cka = doc["results"]["cka"]["arrays"]["cka"]["shape"]
    assert cka[0] == cka[1] > 1  # every layer of A against every layer of B
    assert not (out / "report.pdf").exists()


def test_bad_arguments_exit_non_zero_with_a_message(tmp_path, capsys):
    base = [
        "report",
        "--dataset",
        "synthetic",
        "-o",
        "n_records=60",
        "-o",
        "fs=100.0",
        "--encoder",
        "tiny-test",
        "--out",
        str(tmp_path / "x"),
    ]
    assert main([*base, "--format", "docx"]) == 1
    assert "--format" in capsys.readouterr().err
    assert main([*base, "--analyses", "linear_prob", "--no-cache"]) == 1
    assert "unknown analysis 'linear_prob'" in capsys.readouterr().err
    assert main(["report", "--from", str(tmp_path / "nothing"), "--out", str(tmp_path / "y")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_run_a_study_config_twice_reuses_every_result(tmp_path):
    config = tmp_path / "study.yaml"
    config.write_text(
        f"""
name: tiny
out: {tmp_path / "out"}
cache_dir: {tmp_path / "cache"}
profile: quick
datasets:
  - name: synthetic
    options: {{n_records: 200, fs: 100.0, seed: 2}}
encoders:
  - {{name: tiny-test, label: tiny0}}
  - {{name: tiny-test, label: tiny1, options: {{seed: 1}}}}
  - {{name: no-such-encoder, optional: true}}
analyses: {{linear_probe: {{}}, scarcity: {{fractions: [0.25, 0.5, 1.0]}}}}
reports: [model, scarcity, compare]
compare_layers: embedding
"""
    )
    assert main(["run", str(config), "--quiet", "--format", "html"]) == 0
    base = tmp_path / "out" / "synthetic"
    assert {p.name for p in base.iterdir()} == {"tiny0", "tiny1", "scarcity", "tiny0-vs-tiny1"}
    csv = (base / "scarcity" / "scarcity.csv").read_text().splitlines()
    assert csv[0].startswith("encoder,mode,x,") and len(csv) == 1 + 2 * 3
    index = (tmp_path / "out" / "index.html").read_text()
    for name in ("tiny0", "tiny1", "scarcity", "tiny0-vs-tiny1"):
        assert (
            f'href="synthetic/{name}/report.html"' in index
            and f'href="synthetic/{name}/results.json"' in index
        )
    assert main(["run", str(config), "--quiet", "--format", "html"]) == 1  # outputs exist
    assert main(["run", str(config), "--quiet", "--format", "html", "--force"]) == 0
    run = json.loads((base / "tiny0" / "results.json").read_text())["context"]["run"]
    assert run["results reused from cache"] == 2


def test_demo_without_openecg(tmp_path, capsys):
    out = tmp_path / "demo"
    assert (
        main(
            [
                "demo",
                "--no-openecg",
                "--n-records",
                "150",
                "--out",
                str(out),
                "--format",
                "html",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    for name in ("random-resnet1d", "random-resnet1d-vs-handcrafted", "scarcity"):
        assert (out / name / "report.html").exists(), name
        assert str(out / name / "report.html") in printed
    index = (out / "index.html").read_text()
    assert 'href="random-resnet1d/report.html"' in index
    # every report is listed with its headline number and links that resolve
    from ecgprobe.report import Report
    from ecgprobe.report.index import headline

    for name in ("random-resnet1d", "random-resnet1d-vs-handcrafted", "scarcity"):
        assert headline(Report.load(out / name)) in index.replace("&#x27;", "'")
        assert f'href="{name}/results.json"' in index
    import re

    for href in re.findall(r'href="([^"]+)"', index):
        assert (out / href).is_file(), href
    assert 'href="scarcity/scarcity.csv"' in index


def test_scarcity_study_across_encoders(tmp_path, capsys):
    out = tmp_path / "study"
    args = [
        "scarcity", "--dataset", "synthetic", "-o", "n_records=200", "-o", "fs=100.0", "-o", "seed=4",
        "--encoders", "tiny-test,handcrafted", "--fractions", "0.25,0.5", "--seeds", "2", "--n-resamples", "50",
        "--out", str(out), "--no-cache", "--quiet", "--format", "html",
    ]  # fmt: skip
    assert main(args) == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["mode"] == "scarcity" and doc["subjects"] == ["tiny-test", "handcrafted"]
    assert set(doc["results"]) == {"tiny-test/scarcity", "handcrafted/scarcity"}
    rows = (out / "scarcity.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 3  # header + (0.25, 0.5, 1.0) per encoder
    html = (out / "report.html").read_text()
    assert "Label efficiency" in html and html.count("<img") == 1
    assert main(args) == 1 and "--force" in capsys.readouterr().err


def test_the_shipped_study_configs_are_valid(monkeypatch):
    from pathlib import Path

    from ecgprobe.workflows import load_study, plan_analyses

    monkeypatch.setenv("PTBXL_ROOT", "/data/ptb-xl")
    monkeypatch.delenv("ECGFOUNDER_CKPT", raising=False)
    configs = sorted((Path(__file__).resolve().parents[1] / "analyses").glob("*.yaml"))
    assert len(configs) >= 4
    for path in configs:
        study = load_study(path)
        plan_analyses(study.analyses, study.settings)  # every setting is accepted
        assert study.datasets and study.encoders
        if any(e["name"] == "ecgfounder" for e in study.encoders):
            assert next(e for e in study.encoders if e["name"] == "ecgfounder").get("unavailable")
    sup = load_study(configs[0].with_name("ptbxl-superclass.yaml"))
    assert sup.datasets[0]["options"] == {"sampling_rate": 500, "labels": "superclass"}
    assert sup.datasets[0]["root"] == "/data/ptb-xl"
    ratios = load_study(configs[0].with_name("label-ratios.yaml"))
    assert [d["label"] for d in ratios.datasets] == ["ptbxl-superclass", "ptbxl-all"]
    assert ratios.analyses["scarcity"]["fractions"] == [0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0]
