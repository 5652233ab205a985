"""The confounding check: known answers on scores made to carry the site, the skip without a site
column, the stratified AUROC against brute force, and a fast seeded coverage simulation (the full
one: ``benchmarks/coverage_confounding.py``)."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ecgprobe
from ecgprobe.analyzers import ANALYZERS
from ecgprobe.analyzers.confounding import site_confounding, within_auroc
from ecgprobe.analyzers.subgroups import group_values, subgroup_gaps
from ecgprobe.exceptions import AnalysisError, ConfigError
from ecgprobe.extract.embeddings import Embeddings


def _coverage_module():
    name = "coverage_confounding"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[2] / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


def test_within_auroc_is_the_share_of_concordant_same_site_pairs(rng):
    y = rng.random(120) < 0.3
    s = rng.normal(size=120) + y
    site = rng.integers(0, 3, size=120)
    concordant = pairs = 0.0
    aucs, n_pairs = [], []
    for g in range(3):
        pos, neg = s[(site == g) & y], s[(site == g) & ~y]
        diff = pos[:, None] - neg[None, :]
        concordant += (diff > 0).sum() + 0.5 * (diff == 0).sum()
        pairs += diff.size
        aucs.append(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)
        n_pairs.append(diff.size)
    assert within_auroc(np.array(aucs), np.array(n_pairs)) == pytest.approx(concordant / pairs)
    assert np.isnan(within_auroc(np.array([np.nan]), np.array([0.0])))


def test_confounded_scores_are_found_and_clean_ones_are_not():
    cov = _coverage_module()
    rng = np.random.default_rng(3)
    found = site_confounding(*cov.as_inputs(cov.draw(rng, 800, c=1.5)), n_resamples=300, seed=1)
    row = found.tables["labels"][0]
    assert row["difference_ci_low"] > 0 and row["pooled_auroc"] > row["within_auroc"]
    assert found.metrics["labels_confounded"] == ["label"]
    assert row["site_alone_auroc"] > 0.6  # prevalence 10 % vs 35 %: the site alone carries signal
    levels = {r["level"]: r for r in found.tables["per_level"]}
    assert set(levels) == {"A", "B"} and levels["B"]["prevalence"] > levels["A"]["prevalence"]
    assert found.arrays["difference_replicates"].shape == (300, 1)
    clean = site_confounding(*cov.as_inputs(cov.draw(rng, 800, c=0.0)), n_resamples=300, seed=1)
    r0 = clean.tables["labels"][0]
    assert r0["difference_ci_low"] <= 0 <= r0["difference_ci_high"]
    assert clean.metrics["labels_confounded"] == []


def test_interval_coverage_fast_simulation():
    """Seeded coverage of the paired difference interval (full run: benchmarks/coverage_confounding.py)."""
    cov = _coverage_module()
    out = cov.coverage(sims=40, resamples=200, seed=7, n_patients=150, c=0.8)
    assert out["sims"] >= 38
    assert 0.85 <= out["coverage"]["difference"] <= 1.0
    assert out["truth"]["difference"] > 0.02 and out["share_called_confounded"] > 0.5


def test_skips_with_a_reason_without_a_site_column(synthetic_small):
    X = np.hstack([synthetic_small.y * 2.0, np.zeros((len(synthetic_small), 2))]).astype(np.float32)
    emb = Embeddings(X, synthetic_small.ids)
    with pytest.raises(AnalysisError, match=r"no site-like metadata column.*set attribute="):
        ANALYZERS.get("confounding")(n_resamples=20).run(emb, synthetic_small)
    with pytest.raises(ConfigError, match="min_records"):
        ANALYZERS.get("confounding")(min_records=0).run(emb, synthetic_small)


def test_demo_task_site_is_decoded_and_subgroups_include_it(synthetic_small):
    """A site column joins the subgroups by default, and an embedding carrying the site decodes it."""
    rng = np.random.default_rng(0)
    pids = pd.Series(synthetic_small.patient_ids)
    site_of = {p: ("B" if rng.random() < 0.5 else "A") for p in pids.unique()}
    site = pids.map(site_of).to_numpy()
    records = replace(synthetic_small, meta=synthetic_small.meta.assign(site=site))
    X = np.hstack(
        [synthetic_small.y * 2.0, (site == "B")[:, None] * 3.0, rng.normal(size=(len(site), 3))]
    ).astype(np.float32)
    emb = Embeddings(X, records.ids)
    probe = ANALYZERS.get("linear_probe")(Cs=(0.1, 1.0), n_resamples=30).run(emb, records)
    res = ANALYZERS.get("confounding")(probe=probe, n_resamples=30, min_records=5).run(emb, records)
    assert res.metrics["attribute"] == "site" and res.metrics["site_decodability_auroc"] > 0.9
    gaps = subgroup_gaps(probe, records, n_resamples=30, min_records=5)
    assert "site" in gaps.metrics["attributes"]
    assert {r["group"] for r in gaps.tables["groups"] if r["attribute"] == "site"} == {"A", "B"}


def test_group_values_normalise_codes():
    assert group_values(pd.Series([2.0, 0.0, np.nan])).tolist() == ["2", "0", ""]
    assert group_values(pd.Series(["Male", " female", "unknown"], name="sex")).tolist() == [
        "male",
        "female",
        "",
    ]


def test_report_states_the_planted_confounder():
    """The demo task's site confounder, with an embedding that hears the site's hum: the summary
    names afib as confounded, with the pooled and within-site AUROCs."""
    from ecgprobe.report import Report

    records = ecgprobe.load_dataset("synthetic", task="demo", n_records=400, fs=100.0, seed=0)
    rng = np.random.default_rng(1)
    site_b = (records.meta["site"] == "B").to_numpy()
    X = np.hstack(
        [
            records.y * 1.0 + rng.normal(scale=0.6, size=records.y.shape),
            site_b[:, None] * 2.0 + rng.normal(scale=0.3, size=(len(records), 1)),
        ]
    ).astype(np.float32)
    X[:, 4] = (
        records.y[:, 4] * 0.5 + rng.normal(scale=0.8, size=len(records)) + 1.5 * site_b
    )  # afib: weak, site-borne
    emb = Embeddings(X, records.ids)
    probe = ANALYZERS.get("linear_probe")(Cs=(0.1, 1.0), n_resamples=200).run(emb, records)
    conf = ANALYZERS.get("confounding")(probe=probe, n_resamples=200).run(emb, records)
    report = Report({"linear_probe": probe, "confounding": conf}, title="t", mode="model", subjects=["x"])
    texts = [f.text for f in report.findings() if f.rule == "site_confounding"]
    assert any(t.startswith("afib is confounded with site: pooled AUROC") and "site A" in t for t in texts), (
        texts
    )
    blocks = [s for s in report.sections() if s.id == "confounding"]
    assert blocks and "Confounding by site" in blocks[0].title
