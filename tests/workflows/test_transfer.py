"""Transfer (issue 15.3): fit on one dataset, test on others; the gap interval's coverage; site
predictability; the ``ecgprobe transfer`` command."""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ecgprobe
from ecgprobe.analyzers.base import Result
from ecgprobe.exceptions import AnalysisError, ConfigError
from ecgprobe.extract import extract
from ecgprobe.settings import RunSettings
from ecgprobe.workflows.transfer import TransferResult, TransferSet, transfer
from tests.data.challenge_format import ptbxl_dx, write_challenge

SETTINGS = RunSettings(device="cpu", n_resamples=60, seed=3, progress=False)
PROBE = {"Cs": (1e-2, 1.0)}


@pytest.fixture(scope="module")
def encoder():
    return ecgprobe.create_encoder("tiny-test", device="cpu")


@pytest.fixture(scope="module")
def ptb(ptbxl_root, encoder):
    rs = ecgprobe.load_dataset("ptbxl", ptbxl_root, sampling_rate=100, labels="scored")
    return TransferSet("ptbxl", rs, extract(encoder, rs, progress=False))


@pytest.fixture(scope="module")
def cinc(cinc_root, encoder):
    rs = ecgprobe.load_dataset("challenge", cinc_root, labels="scored")
    return TransferSet("challenge", rs, extract(encoder, rs, progress=False))


def test_same_records_in_two_formats_give_the_in_dataset_auroc(ptb, ptbxl_root, encoder, tmp_path):
    """The source's test split written in Challenge format (Dx codes from the mapping) and loaded
    by the other loader scores exactly as the in-dataset evaluation: gap 0."""
    test = ptb.records.by_split("test")
    db = pd.read_csv(ptbxl_root / "ptbxl_database.csv", index_col="ecg_id")
    dx = [
        ptbxl_dx(ast.literal_eval(db.at[int(i), "scp_codes"]), db.at[int(i), "heart_axis"]) for i in test.ids
    ]
    write_challenge(test, tmp_path / "copy", dx)
    copy = ecgprobe.load_dataset("challenge", tmp_path / "copy", labels="scored")
    target = TransferSet("copy", copy, extract(encoder, copy, progress=False))
    res = transfer(ptb, [target], settings=SETTINGS, probe=PROBE, site=False, min_positives=0)
    m = res.metrics["per_target"]["copy"]
    assert m["labels_evaluated"] and m["gap"] == 0.0 and m["macro_auroc_in"] == m["macro_auroc_out"]
    lo, hi = m["gap_ci"]
    assert lo <= 0.0 <= hi
    probe = ecgprobe.analyzers.ANALYZERS.get("linear_probe")(**PROBE, n_resamples=20, device="cpu")
    own = {r["label"]: r["auroc"] for r in probe.run(ptb.embeddings, ptb.records).tables["per_label"]}
    for row in res.tables["per_label"]:
        if row["evaluated"]:
            assert row["auroc_out"] == row["auroc_in"]
            assert row["auroc_in"] == pytest.approx(own[row["label"]], abs=1e-9)  # the probe's own test AUROC


def test_transfer_to_another_real_source_reports_intervals(ptb, cinc, tmp_path):
    res = transfer(ptb, [cinc], settings=SETTINGS, probe=PROBE, matrix=True, n_per_source=50)
    m = res.metrics["per_target"]["challenge"]
    assert set(m["labels_evaluated"]) <= set(ptb.records.label_names) & set(cinc.records.label_names)
    for key in ("macro_auroc_in", "macro_auroc_out", "gap"):
        lo, hi = m[f"{key}_ci"]
        assert lo <= m[key] <= hi and hi - lo > 0, key
    assert m["gap"] == pytest.approx(m["macro_auroc_in"] - m["macro_auroc_out"])
    assert res.metrics["bootstrap_seeds"]["ptbxl"] != res.metrics["bootstrap_seeds"]["challenge"]
    cells = {(c["train"], c["test"]): c for c in res.tables["matrix"]}
    assert set(cells) == {(a, b) for a in ("ptbxl", "challenge") for b in ("ptbxl", "challenge")}
    site = res.metrics["site"]
    assert 0 <= site["macro_auroc"] <= 1 and site["n_per_source"] == 50
    assert res.tables["site"][0]["scope"] == "overall"
    acq = {r["dataset"]: r for r in res.tables["acquisition"]}
    assert acq["ptbxl"]["mains_hz"] == "50" and acq["ptbxl"]["fs_recorded"] == "500"
    assert acq["challenge"]["mains_hz"] == "50;60"  # Chapman/Ningbo and PTB-XL (50 Hz), Georgia (60 Hz)
    path = res.save(tmp_path / "results.json")
    back = Result.load(path)
    assert (
        isinstance(back, TransferResult)
        and back.tables["targets"] == json.loads(path.read_text())["tables"]["targets"]
    )
    from ecgprobe.report.document import Report

    sections = Report({"transfer": back}, title="t").sections()
    assert any("Transfer" in getattr(s, "title", "") for s in sections)


def test_site_predictability_finds_a_planted_site_signal(ptb, cinc):
    """A constant offset in one dataset's embeddings is a site the probe must find (AUROC ≈ 1);
    the same embeddings split at random into two 'sites' are not told apart (≈ 0.5)."""
    from ecgprobe.extract.embeddings import Embeddings

    shifted = Embeddings(cinc.embeddings.X + 5.0, cinc.embeddings.ids)
    res = transfer(ptb, [TransferSet("challenge", cinc.records, shifted)], settings=SETTINGS, probe=PROBE,
                   n_per_source=50)  # fmt: skip
    assert res.metrics["site"]["macro_auroc"] > 0.95
    order = np.random.default_rng(0).permutation(len(ptb.records))  # exchangeable halves: no site at all
    half, other = ptb.records.subset(np.sort(order[::2])), ptb.records.subset(np.sort(order[1::2]))
    res = transfer(TransferSet("a", half, ptb.embeddings), [TransferSet("b", other, ptb.embeddings)],
                   settings=SETTINGS.replace(n_resamples=200), probe=PROBE, n_per_source=240)  # fmt: skip
    lo, hi = res.metrics["site"]["macro_auroc_ci"]
    assert lo < 0.5 < hi


def test_transfer_refuses_what_it_cannot_compare(ptb, cinc):
    regression = TransferSet("age", ptb.records.with_meta_target("age"), ptb.embeddings)
    with pytest.raises(ConfigError, match="regression"):
        transfer(ptb, [regression], settings=SETTINGS)
    with pytest.raises(ConfigError, match="at least one target"):
        transfer(ptb, [], settings=SETTINGS)
    with pytest.raises(ConfigError, match="target_split"):
        transfer(ptb, [cinc], settings=SETTINGS, target_split="some")
    other = cinc.records.with_labels(["elsewhere"], np.ones((len(cinc.records), 1)), "multilabel")
    with pytest.raises(AnalysisError, match="labels=scored"):
        transfer(ptb, [TransferSet("x", other, cinc.embeddings)], settings=SETTINGS)


def _coverage_module():
    name = "coverage_transfer"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[2] / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


def test_gap_interval_covers_the_true_gap():
    """The small version of benchmarks/coverage_transfer.py (known binormal AUROCs, patients with
    two correlated records): the 95 % interval of the gap covers the truth at the nominal rate."""
    out = _coverage_module().simulate(sims=120, resamples=150, seed=11, baseline=False)
    assert 0.89 <= out["coverage"] <= 0.995, out  # Monte Carlo SE ~2 % at 120 simulations
    assert 0.1 < out["width"] < 0.4


def test_cli_transfer_writes_results_csv_and_report(ptbxl_copy, cinc_root, tmp_path, capsys):
    from ecgprobe.cli import main

    out = tmp_path / "out"
    args = ["transfer", "--dataset", "ptbxl", "--root", str(ptbxl_copy(150)), "-o", "sampling_rate=100",
            "-o", "labels=scored", "--encoder", "tiny-test", "--target", f"challenge:{cinc_root}",
            "--target-option", "challenge.min_count=2", "--n-resamples", "30", "--format", "html",
            "--no-cache", "--device", "cpu", "--quiet", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "ptbxl -> challenge: macro AUROC in" in text and "gap" in text and "site predictability" in text
    for name in (
        "results.json",
        "targets.csv",
        "per_label.csv",
        "site.csv",
        "acquisition.csv",
        "report/report.html",
    ):
        assert (out / name).exists(), name
    per_label = pd.read_csv(out / "per_label.csv")
    assert {"auroc_out_ci_low", "gap_ci_high"} <= set(per_label.columns)
    assert "Transfer to other datasets" in (out / "report" / "report.html").read_text()
    assert main(args) != 0  # refuses to overwrite without --force
    bad = [*args[:-2], "--out", str(tmp_path / "o2"), "--target", "challenge"]
    assert main(bad) != 0 and "LOADER:ROOT" in capsys.readouterr().err
