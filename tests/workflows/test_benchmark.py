"""Multi-model benchmark (issue 15, parts 4 and 6): rank intervals, top groups and the aggregate
consistent with the cells; the study config's benchmark section; Ray run == local run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import ecgprobe
from ecgprobe.analyzers._stats.ranking import aggregate, holm, rank_table
from ecgprobe.exceptions import ConfigError
from ecgprobe.extract import extract
from ecgprobe.settings import RunSettings
from ecgprobe.workflows.benchmark import BenchmarkSet, benchmark, leaderboard_by_encoder
from tests.analyzers.coverage_fixtures import coverage_module

SETTINGS = RunSettings(device="cpu", n_resamples=200, seed=1, progress=False)
PROBE = {"Cs": (1e-2, 1.0)}
ENCODERS = {"tiny0": {"seed": 0}, "tiny1": {"seed": 1}, "tiny2": {"seed": 2, "dim": 32}}


@pytest.fixture(scope="module")
def sets(ptbxl_root, cinc_root):
    """Two tasks on ptbxl-mini (superclass and scored labels) and the CinC sample as a transfer
    target, embedded by three tiny encoders."""
    sc = ecgprobe.load_dataset("ptbxl", ptbxl_root, sampling_rate=100)
    scored = ecgprobe.load_dataset("ptbxl", ptbxl_root, sampling_rate=100, labels="scored")
    cinc = ecgprobe.load_dataset("challenge", cinc_root, labels="scored")
    out = {
        "ptbxl-superclass": BenchmarkSet("ptbxl-superclass", "ptbxl", sc, {}),
        "ptbxl-scored": BenchmarkSet("ptbxl-scored", "ptbxl", scored, {}),
        "challenge": BenchmarkSet("challenge", "challenge", cinc, {}),
    }
    for label, opts in ENCODERS.items():
        enc = ecgprobe.create_encoder("tiny-test", device="cpu", **opts)
        out["ptbxl-superclass"].embeddings[label] = extract(enc, sc, progress=False)
        out["ptbxl-scored"].embeddings[label] = extract(enc, scored, progress=False)
        out["challenge"].embeddings[label] = extract(enc, cinc, progress=False)
    return out


def _run(sets, **kwargs):
    """The benchmark of the tests: two ptbxl-mini tasks and one transfer cell."""
    return benchmark(
        sets,
        list(ENCODERS),
        tasks=["ptbxl-superclass", "ptbxl-scored"],
        transfer=[["ptbxl-scored", "challenge"]],
        settings=SETTINGS,
        probe=PROBE,
        min_positives=5,
        **kwargs,
    )


@pytest.fixture(scope="module")
def result(sets):
    return _run(sets)


def test_holm_and_rank_table_known_answers():
    assert holm([0.01, 0.04, 0.03]).round(3).tolist() == [0.03, 0.06, 0.06]
    rng = np.random.default_rng(0)
    far = np.array([0.9, 0.7, 0.5]) + 0.005 * rng.normal(size=(300, 3))
    t = rank_table(np.array([0.9, 0.7, 0.5]), far, ["a", "b", "c"])
    assert t["n_top"] == 1 and t["best"] == "a" and t["n_adjacent_significant"] == 2
    assert [r["rank_ci"] for r in t["rows"]] == [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]
    same = 0.8 + 0.02 * rng.normal(size=(300, 1)) + 0.001 * rng.normal(size=(300, 3))
    t = rank_table(same.mean(0), same, ["a", "b", "c"])
    assert t["n_top"] == 3 and t["n_adjacent_significant"] == 0
    with pytest.raises(ConfigError, match=r"\(B, M\)"):
        rank_table(np.zeros(3), np.zeros((10, 2)), ["a", "b", "c"])


def test_cells_ranks_and_top_group_are_consistent(result):
    cells = result.tables["cells"]
    assert len(cells) == 3 * 3
    for c in cells:
        assert c["ci_low"] <= c["macro_auroc"] <= c["ci_high"]
        assert c["rank_ci_low"] <= c["rank"] <= c["rank_ci_high"]
    alpha = 1 - result.metrics["ci_level"]
    for name, table in result.metrics["per_task"].items():
        best = table["rows"][0]
        assert best["top_group"] and best["rank"] == 1.0
        for r in table["rows"][1:]:
            overlaps = r["value_ci"][1] >= best["value_ci"][0]
            # a model whose interval overlaps the best's and is not significantly different is in the top group
            if overlaps and r["p_holm"] >= alpha:
                assert r["top_group"], (name, r)
            assert r["top_group"] == (r["p_holm"] >= alpha)
            assert r["p_holm"] >= r["p"]  # an adjustment never lowers a p-value
        assert table["n_adjacent_significant"] == sum(a["significant"] for a in table["adjacent"])


def test_tasks_are_paired_and_aggregate_matches_the_cells(result, sets):
    tasks = result.metrics["tasks"]
    seeds = {t["name"]: t["bootstrap_seed"] for t in tasks}
    assert seeds["ptbxl-superclass"] == seeds["ptbxl-scored"] != seeds["ptbxl-scored->challenge"]
    lb = leaderboard_by_encoder(result)
    assert set(lb) == set(ENCODERS)
    for enc, row in lb.items():
        mine = [c["macro_auroc"] for c in result.tables["cells"] if c["encoder"] == enc]
        assert row["mean_auroc"] == pytest.approx(np.mean(mine))
        assert row["ci_low"] <= row["mean_auroc"] <= row["ci_high"]
        assert row["rank_ci_low"] <= row["mean_rank"] <= row["rank_ci_high"]
    # the aggregate replicates are the per-task replicates averaged: recompute from the arrays
    reps = np.stack([result.arrays[f"task{k}_replicates"] for k in range(len(tasks))], axis=1)
    pts = np.array(
        [[c["macro_auroc"] for c in result.tables["cells"] if c["task"] == t["name"]] for t in tasks]
    )
    again = aggregate(pts, reps.astype(np.float64), list(ENCODERS), level=0.95)
    assert [r["name"] for r in again["rows"]] == [r["encoder"] for r in result.tables["leaderboard"]]
    # label sets of one dataset draw from one patient pool; the transfer target from its own
    pools = {t["name"]: t["resampled_with"] for t in tasks}
    assert pools["ptbxl-superclass"] == pools["ptbxl-scored"] == "ptbxl/test"
    assert pools["ptbxl-scored->challenge"] == "challenge/all"


def test_benchmark_refuses_bad_inputs(sets):
    with pytest.raises(ConfigError, match="at least two encoders"):
        benchmark(sets, ["tiny0"], settings=SETTINGS)
    with pytest.raises(ConfigError, match="not a dataset label"):
        benchmark(sets, list(ENCODERS), tasks=["nope"], settings=SETTINGS)
    with pytest.raises(ConfigError, match=r"\[source, target\]"):
        benchmark(sets, list(ENCODERS), tasks=[], transfer=["ptbxl-scored"], settings=SETTINGS)


def test_seeds_fit_one_probe_each_on_train_subsamples(sets, result):
    """Three seeds on 50 % of the train split: 3 fits per encoder and source; the cell is the mean
    over seeds, so it differs from the full-data cell; one seed on the full split is refused as
    a repeat of the same deterministic fit."""
    res = benchmark(
        sets, ["tiny0", "tiny1"], tasks=["ptbxl-superclass"], settings=SETTINGS, probe=PROBE,
        min_positives=5, seeds=[0, 1, 2], train_fraction=0.5,
    )  # fmt: skip
    assert res.metrics["n_fits"] == 2 * 3 and res.metrics["seeds"] == [0, 1, 2]
    full = {c["encoder"]: c["macro_auroc"] for c in result.tables["cells"] if c["task"] == "ptbxl-superclass"}
    for c in res.tables["cells"]:
        assert c["ci_low"] <= c["macro_auroc"] <= c["ci_high"] and c["macro_auroc"] != full[c["encoder"]]
    with pytest.raises(ConfigError, match="train_fraction below 1"):
        benchmark(sets, ["tiny0", "tiny1"], settings=SETTINGS, seeds=[0, 1])


def test_ray_run_equals_local_run(sets, result):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'ecgprobe[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        remote = _run(sets, ray=True)
    finally:
        ray.shutdown()
    assert remote.metrics["ray"] and not result.metrics["ray"]
    assert remote.tables["cells"] == result.tables["cells"]
    assert remote.tables["leaderboard"] == result.tables["leaderboard"]
    for k in result.arrays:
        np.testing.assert_array_equal(remote.arrays[k], result.arrays[k])


def test_coverage_small_scale():
    """Small version of benchmarks/coverage_benchmark.py: the aggregate interval covers the true
    mean AUROC near the nominal rate, and equal models rarely leave the top group."""
    out = coverage_module("coverage_benchmark").simulate(sims=40, resamples=150, seed=5, n=200)
    assert 0.88 <= out["aggregate_coverage"] <= 1.0, out
    assert out["rank_coverage"] >= 0.9, out
    assert out["fwer"] <= 0.15, out  # 160 null tasks; full run: 5.8 % (n=200), 5.0 % (n=800)


def _config(tmp_path: Path, ptbxl_root: Path, bench: str) -> Path:
    p = tmp_path / "b.yaml"
    p.write_text(
        f"""name: bsmoke
out: {tmp_path / "out"}
cache_dir: null
n_resamples: 100
datasets:
  - name: ptbxl
    root: {ptbxl_root}
    options: {{sampling_rate: 100}}
    label_sets: [superclass, scored]
encoders:
  - {{name: tiny-test, label: tiny0, options: {{seed: 0}}}}
  - {{name: tiny-test, label: tiny1, options: {{seed: 1}}}}
extraction: {{device: cpu}}
benchmark:
{bench}
"""
    )
    return p


@pytest.mark.parametrize(
    ("bench", "message"),
    [
        ("  tasks: [ptbxl-nope]", r"tasks names \['ptbxl-nope'\]"),
        ("  encoders: [tiny0]", "two or more encoders"),
        ("  transfer: [ptbxl-scored]", r"transfer\[0\] must be \[source, target\]"),
        ("  colour: red", r"unknown keys \['colour'\]"),
        ("  probe: {Cz: [1]}", r"linear_probe has no settings \['Cz'\]"),
        ("  references: /no/such.csv", "does not exist"),
        ("  min_positives: many", "min_positives"),
        ("  seeds: [0, 1]", "train_fraction below 1"),
        ("  train_fraction: 2", r"train_fraction must lie in \(0, 1\]"),
    ],
)
def test_config_errors_are_clear(tmp_path, ptbxl_root, bench, message):
    from ecgprobe.workflows.study import load_study

    with pytest.raises(ConfigError, match=message):
        load_study(_config(tmp_path, ptbxl_root, bench))


def test_run_writes_benchmark_folder_with_references(tmp_path, ptbxl_root):
    from ecgprobe.cli import main

    ref = tmp_path / "ref.csv"
    ref.write_text(
        "paper,arxiv_id,table,model,dataset,label_set,metric,value\n"
        "Test paper,0000.00000,Table 1,tiny0,ptbxl,superclass,macro_auroc,0.5\n"
    )
    cfg = _config(
        tmp_path, ptbxl_root, f"  probe: {{Cs: [0.01, 1.0]}}\n  min_positives: 5\n  references: {ref}"
    )
    assert main(["run", str(cfg), "--quiet", "--format", "html"]) == 0
    out = tmp_path / "out" / "benchmark"
    assert {p.name for p in out.iterdir()} >= {"results.json", "leaderboard.csv", "cells.csv", "report.html"}
    rows = list(csv.DictReader((out / "leaderboard.csv").open()))
    assert {r["encoder"] for r in rows} == {"tiny0", "tiny1"}
    assert len(list(csv.DictReader((out / "cells.csv").open()))) == 4
    html = (out / "report.html").read_text()
    assert "Benchmark leaderboard" in html and "adjacent-rank" in html and "Test paper" in html
    assert "benchmark" in (tmp_path / "out" / "index.html").read_text()
    doc = json.loads((out / "results.json").read_text())
    assert "benchmark" in json.dumps(doc)


def test_label_free_statistics_are_correlated_with_the_ranking(result):
    values = result.tables["label_free"]
    assert {(r["encoder"], r["task"]) for r in values} == {
        (e, t) for e in ENCODERS for t in ("ptbxl-superclass", "ptbxl-scored")
    }
    corr = result.tables["label_free_correlation"]
    assert {r["statistic"] for r in corr} == {"rankme", "twonn", "isoscore"}
    assert all(r["n_encoders"] == 3 and "at least 4" in r["verdict"] for r in corr)  # 3 encoders: no interval


def test_label_free_correlation_gives_a_verdict_only_when_decisive():
    from types import SimpleNamespace

    from ecgprobe.workflows.benchmark_geometry import label_free_correlation

    rng = np.random.default_rng(0)
    z = rng.standard_normal((400, 12))
    # encoder k spreads over k + 1 directions; its AUROC rises with k: RankMe should rank them alike
    embs = {f"e{k}": SimpleNamespace(X=z[:, : k + 1] @ rng.standard_normal((k + 1, 12))) for k in range(1, 8)}
    sets = {"t": SimpleNamespace(records=list(range(400)), embeddings=embs)}
    cells = [{"encoder": e, "task": "t", "macro_auroc": 0.6 + 0.03 * k} for k, e in enumerate(embs)]
    values, corr = label_free_correlation(sets, list(embs), cells, [{"name": "t", "kind": "in_dataset"}])
    rank = next(r for r in corr if r["statistic"] == "rankme")
    assert rank["rho"] == pytest.approx(1.0) and rank["ci_low"] > 0 and rank["verdict"].startswith("higher")
    assert len(values) == 7
