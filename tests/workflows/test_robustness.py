"""The robustness card: the clean row is the probe's own AUROC on the same split, the drop is the
paired bootstrap of the clean and perturbed scores, perturbed embeddings are cached under their
perturbation (proven by counting encoder calls), AUROC falls as the SNR falls and with a single
lead for a reference encoder, and the command writes results.json, conditions.csv and a report."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import ecgprobe
from ecgprobe.analyzers.base import Result
from ecgprobe.analyzers.linear_probe import LinearProbe
from ecgprobe.analyzers.paired_bootstrap import paired_bootstrap
from ecgprobe.analyzers.robustness import CONDITION_COLUMNS
from ecgprobe.cli import main
from ecgprobe.encoders.testing import TinyTestEncoder
from ecgprobe.exceptions import ConfigError
from ecgprobe.settings import RunSettings
from ecgprobe.workflows.robustness import plan_conditions, robustness_card

PROBE = {"Cs": (0.01, 0.1, 1.0)}
B = 200


def _settings(cache=None, seed=0):
    return RunSettings(device="cpu", cache_dir=cache, n_resamples=B, seed=seed, progress=False)


@pytest.fixture(scope="module")
def tiny_card(ptbxl100, tmp_path_factory):
    """tiny-test on PTB-XL mini at 100 Hz, muscle noise and lead I, cached; the encoder calls of the first run."""
    cache = tmp_path_factory.mktemp("cache")
    enc = ecgprobe.create_encoder("tiny-test", device="cpu")
    before = TinyTestEncoder.calls
    card, probe = robustness_card(
        enc,
        ptbxl100,
        settings=_settings(cache),
        perturbations=["muscle", "leads", "mains"],
        levels={"muscle": [24, -6], "leads": ["I"], "mains": [6]},
        probe=PROBE,
    )
    return {
        "card": card,
        "probe": probe,
        "cache": cache,
        "calls": TinyTestEncoder.calls - before,
        "encoder": enc,
    }


def _row(card, label):
    return next(r for r in card.tables["conditions"] if r["label"] == label)


def test_clean_row_equals_the_probe_on_the_same_split(tiny_card, ptbxl100):
    emb = ecgprobe.extract(tiny_card["encoder"], ptbxl100, device="cpu", progress=False)
    own = LinearProbe(n_resamples=B, seed=0, device="cpu", **PROBE).run(emb, ptbxl100)
    clean = tiny_card["card"].tables["conditions"][0]
    assert clean["label"] == "clean" and clean["drop"] == 0.0
    assert clean["macro_auroc"] == own.metrics["macro_auroc"]
    assert [clean["ci_low"], clean["ci_high"]] == own.metrics["macro_auroc_ci"]
    assert list(tiny_card["card"].tables["conditions"][0]) == list(CONDITION_COLUMNS)


def test_drop_is_the_paired_bootstrap_of_clean_and_perturbed_scores(tiny_card):
    card, probe = tiny_card["card"], tiny_card["probe"]
    rows = [r for r in card.tables["conditions"] if r["status"] == "ok"]
    k = next(i for i, r in enumerate(rows) if r["label"] == "muscle -6 dB")
    perturbed = Result(
        kind="linear_probe",
        metrics={"labels_fitted": card.metrics["labels_headline"]},
        arrays={
            "test_ids": card.arrays["test_ids"],
            "test_patient_ids": card.arrays["test_patient_ids"],
            "test_y": card.arrays["test_y"],
            "test_scores": card.arrays["scores"][k],
        },
    )
    cmp = paired_bootstrap(probe, perturbed, n_resamples=B, seed=0)
    row = rows[k]
    assert cmp.metrics["labels_compared"] == card.metrics["labels_headline"]
    assert row["drop"] == pytest.approx(cmp.metrics["difference"], abs=1e-9)
    assert [row["drop_ci_low"], row["drop_ci_high"]] == pytest.approx(cmp.metrics["difference_ci"], abs=1e-9)
    assert row["macro_auroc"] == pytest.approx(cmp.metrics["value_b"], abs=1e-9)


def test_perturbed_embeddings_come_from_the_cache_keyed_by_perturbation_and_seed(tiny_card, ptbxl100):
    assert tiny_card["calls"] > 0
    enc = tiny_card["encoder"]
    kw = {
        "perturbations": ["muscle", "leads"],
        "levels": {"muscle": [24, -6], "leads": ["I"]},
        "probe": PROBE,
    }
    before = TinyTestEncoder.calls
    again, _ = robustness_card(enc, ptbxl100, settings=_settings(tiny_card["cache"]), **kw)
    assert TinyTestEncoder.calls == before  # clean and perturbed embeddings all read from the cache
    assert all(r["computed"] == 0 for r in again.tables["conditions"][1:])
    assert (
        _row(again, "muscle -6 dB")["macro_auroc"] == _row(tiny_card["card"], "muscle -6 dB")["macro_auroc"]
    )
    again, _ = robustness_card(enc, ptbxl100, settings=_settings(tiny_card["cache"], seed=1), **kw)
    assert TinyTestEncoder.calls > before  # another noise seed: the noisy test records are recomputed
    computed = {r["label"]: r["computed"] for r in again.tables["conditions"][1:]}
    assert computed["muscle 24 dB"] == 64 and computed["leads I"] == 0  # lead sets have no noise seed


def test_conditions_the_rate_cannot_hold_are_skipped_with_the_reason(tiny_card):
    row = _row(tiny_card["card"], "mains 6 dB")
    assert (
        row["macro_auroc"] is None and "cannot be represented in records sampled at 100 Hz" in row["status"]
    )
    assert tiny_card["card"].metrics["n_skipped"] == 1
    assert any("mains 6 dB" in n for n in tiny_card["card"].notes)


@pytest.fixture(scope="module")
def handcrafted_card(synthetic_small):
    """The handcrafted reference encoder on synthetic ECGs whose labels have physiological causes."""
    enc = ecgprobe.create_encoder("handcrafted", device="cpu")
    card, _ = robustness_card(
        enc,
        synthetic_small,
        settings=_settings(),
        perturbations=["muscle", "leads"],
        levels={"muscle": [24, 6, -6], "leads": ["I"]},
        probe=PROBE,
    )
    return card


def test_auroc_falls_as_snr_falls_for_a_reference_encoder(handcrafted_card):
    auc = [_row(handcrafted_card, f"muscle {snr} dB")["macro_auroc"] for snr in (24, 6, -6)]
    clean = handcrafted_card.tables["conditions"][0]["macro_auroc"]
    assert clean >= auc[0] > auc[1] > auc[2]
    assert _row(handcrafted_card, "muscle -6 dB")["drop_ci_low"] > 0  # decisively below clean


def test_a_single_lead_is_below_twelve_leads(handcrafted_card):
    one = _row(handcrafted_card, "leads I")
    assert one["macro_auroc"] < handcrafted_card.tables["conditions"][0]["macro_auroc"]
    assert one["drop_ci_low"] > 0
    assert one["handling"].startswith("zero-filled (kept I; zero-filled II, III")


def test_conditions_are_planned_from_kinds_families_and_levels():
    plan = plan_conditions(["noise", "leads"], [12, 0], 500.0, seed=4)
    assert [p.label for p in plan[:2]] == ["baseline wander 12 dB", "baseline wander 0 dB"]
    assert [p.label for p in plan if p.kind == "leads"] == ["leads 6-limb", "leads I,II,V2", "leads I"]
    assert {p.seed for p in plan} == {4}
    full = plan_conditions(None, None, 500.0)
    assert len([p for p in full if p.family == "noise"]) == 24  # 4 noises x 6 NST levels
    assert [p.level for p in full if p.kind == "resample"] == [250.0, 100.0]
    with pytest.raises(ConfigError, match="levels given for"):
        plan_conditions(["muscle"], {"leads": ["I"]}, 500.0)


def test_command_writes_results_csv_and_report(ptbxl_root, tmp_path, capsys):
    out = tmp_path / "card"
    argv = [
        "robustness", "--dataset", "ptbxl", "--root", str(ptbxl_root), "-o", "sampling_rate=100",
        "--encoder", "tiny-test", "--device", "cpu", "--no-cache", "--out", str(out),
        "--perturbations", "muscle,amplitude", "--levels", "18,-6", "--n-resamples", "50",
        "--format", "html", "--quiet",
    ]  # fmt: skip
    assert main(argv) == 0
    doc = json.loads((out / "results.json").read_text())
    rows = doc["results"]["robustness"]["tables"]["conditions"]
    assert [r["label"] for r in rows] == [
        "clean",
        "muscle 18 dB",
        "muscle -6 dB",
        "amplitude x0.5",
        "amplitude x2",
    ]
    with open(out / "conditions.csv") as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0]) == list(CONDITION_COLUMNS) and len(table) == 5
    assert float(table[3]["drop"]) == pytest.approx(0.0, abs=1e-12)  # per-lead z-score: scale-invariant
    html = (out / "report.html").read_text()
    assert "Robustness" in html and "muscle -6 dB" in html
    assert np.isfinite(doc["results"]["robustness"]["metrics"]["clean_macro_auroc"])
    assert main(argv) == 1  # refuses to overwrite without --force
    assert "--force" in capsys.readouterr().err
    bad = [a if a != "muscle,amplitude" else "snow" for a in argv]
    assert main([*bad, "--force"]) == 1
    assert "unknown perturbation 'snow'" in capsys.readouterr().err


def test_summary_claims_a_drop_only_with_a_decisive_interval_on_enough_patients(tiny_card, handcrafted_card):
    from ecgprobe.report import Report

    said = [
        f for f in Report({"robustness": tiny_card["card"]}, title="t").findings() if f.rule == "robustness"
    ]
    muscle = next(f for f in said if "muscle" in f.text)
    assert (
        muscle.tone == "bad"
        and "from muscle -6 dB on" in muscle.text
        and "n = 57 test patients" in muscle.text
    )
    few = [
        f for f in Report({"robustness": handcrafted_card}, title="t").findings() if f.rule == "robustness"
    ]
    assert few and all(f.tone == "inconclusive" for f in few)  # 12 test patients: too few for a claim
    assert "fewer than 20 patients" in few[0].text
