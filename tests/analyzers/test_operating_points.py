"""Operating points: thresholds from validation only, counts and rates that add up, intervals."""

from __future__ import annotations

import json

import numpy as np
import pytest

import ecgprobe
from ecgprobe.analyzers.linear_probe import LinearProbe
from ecgprobe.analyzers.operating_points import OperatingPoints, threshold_for_sensitivity
from ecgprobe.exceptions import ConfigError


@pytest.fixture(scope="module")
def fitted():
    rs = ecgprobe.load_dataset("synthetic", n_records=300, fs=100.0, seed=5)
    emb = ecgprobe.extract(ecgprobe.create_encoder("handcrafted"), rs, cache_dir=None, progress=False)
    probe = LinearProbe(n_resamples=50).run(emb, rs)
    return rs, emb, probe


def test_threshold_for_sensitivity_is_the_highest_that_keeps_the_target():
    rng = np.random.default_rng(0)
    y = rng.random(200) < 0.3
    p = np.clip(y * 0.3 + rng.random(200) * 0.7, 0, 1)
    for target in (0.5, 0.8, 0.9, 0.99):
        t = threshold_for_sensitivity(y, p, target)
        assert np.mean(p[y] >= t) >= target
        higher = np.sort(p[y])[np.sort(p[y]) > t]
        if len(higher):  # the next positive score up would lose the target
            assert np.mean(p[y] >= higher[0]) < target
    assert np.isnan(threshold_for_sensitivity(np.zeros(5, bool), np.ones(5), 0.9))


def test_rates_add_up_and_intervals_hold_the_estimate(fitted):
    rs, emb, probe = fitted
    res = OperatingPoints(probe=probe, n_resamples=200).run(emb, rs)
    n_test = int((rs.split == "test").sum())
    assert res.metrics["n_test"] == n_test
    for r in res.tables["per_label"]:
        assert r["tp"] + r["fp"] + r["tn"] + r["fn"] == n_test
        assert r["sensitivity"] == pytest.approx(r["tp"] / (r["tp"] + r["fn"]))
        assert r["specificity"] == pytest.approx(r["tn"] / (r["tn"] + r["fp"]))
        for rate in ("sensitivity", "specificity"):
            assert r[f"{rate}_ci_low"] - 1e-9 <= r[rate] <= r[f"{rate}_ci_high"] + 1e-9
        if r["point"] == "sens_90":
            assert r["val_sensitivity"] >= 0.9
    points = {r["point"] for r in res.tables["per_label"]}
    assert points == {"val_f1", "sens_90"}
    again = OperatingPoints(probe=probe, n_resamples=200).run(emb, rs)
    assert json.dumps(again.tables) == json.dumps(res.tables)  # seeded (NaN-safe comparison)


def test_thresholds_never_look_at_test_labels(fitted):
    rs, emb, probe = fitted
    base = OperatingPoints(probe=probe, n_resamples=20).run(emb, rs)
    y = rs.y.copy()
    test = rs.split == "test"
    y[test] = 1 - y[test]  # any change to the test labels
    flipped = OperatingPoints(probe=probe, n_resamples=20).run(
        emb, rs.with_labels(list(rs.label_names), y, rs.task)
    )
    thr = {(r["label"], r["point"]): r["threshold"] for r in base.tables["per_label"]}
    for r in flipped.tables["per_label"]:
        assert r["threshold"] == thr[(r["label"], r["point"])]


def test_bad_settings_are_refused(fitted):
    rs, emb, probe = fitted
    for bad in ({"sensitivity": 1.5}, {"sensitivity": "high"}, {"n_resamples": 3}):
        with pytest.raises(ConfigError):
            OperatingPoints(probe=probe, **bad).run(emb, rs)
