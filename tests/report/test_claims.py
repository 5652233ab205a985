"""The summary claims only what the intervals decide; captions follow the settings."""

from __future__ import annotations

import numpy as np
import pytest

from ecgprobe.analyzers.base import Result
from ecgprobe.report import Report
from ecgprobe.report.claims import ci_label, enough, equivalent, fmt_p, side


def test_side_equivalent_and_enough():
    assert side(0.01, 0.2, threshold=0.0) == "above"
    assert side(-0.3, -0.01, threshold=0.0) == "below"
    assert side(-0.012, 0.277, threshold=0.0) == "inconclusive"
    assert side(None, 0.2, threshold=0.0) == side(float("nan"), 0.2, threshold=0.0) == "inconclusive"
    assert equivalent(-0.04, 0.049) and not equivalent(-0.012, 0.277) and not equivalent(None, 0.01)
    assert enough(20) and not enough(19) and not enough(None)


def test_ci_labels_and_p_values():
    assert ci_label(0.95) == "95% CI" and ci_label(0.9) == "90% CI" and ci_label(0.995) == "99.5% CI"
    assert fmt_p(0.0, 300) == "p ≤ 0.0066 (none of 300 resamples crossed 0)"
    assert fmt_p(0.0, 999, two_sided=False).startswith("p ≤ 0.001")
    assert fmt_p(0.0421, 1000) == "p = 0.042" and fmt_p(None) == "p = –"
    assert fmt_p(0.0, 10_000) == "p ≤ 0.0002 (none of 10,000 resamples crossed 0)"


def _subgroups(gap, lo, hi, n_patients, level=0.95):
    row = {
        "attribute": "sex",
        "group": "female",
        "n_records": n_patients,
        "n_patients": n_patients,
        "n_labels": 5,
        "macro_auroc": 0.8,
        "ci_low": 0.7,
        "ci_high": 0.9,
        "gap": gap,
        "gap_ci_low": lo,
        "gap_ci_high": hi,
        "n_labels_gap": 5,
    }
    res = Result(
        kind="subgroups",
        metrics={
            "overall_macro_auroc": 0.8,
            "n_resamples": 200,
            "ci_level": level,
            "bootstrap_unit": "patient",
        },
        tables={"groups": [row], "per_label": []},
        arrays={"gap_replicates": np.zeros((1, 200))},
        params={"ci_level": level},
    )
    return Report({"subgroups": res}, title="t")


def _tones(report):
    return {f.tone: f.text for f in report.findings() if f.rule == "subgroup_gaps"}


def test_an_undecided_gap_is_inconclusive_not_a_strength():
    # the audit's case: +0.112 [-0.012, 0.277] on 25 vs 39 test records was listed as a strength
    tones = _tones(_subgroups(0.112, -0.012, 0.277, 25))
    assert set(tones) == {"inconclusive"}
    assert (
        "0.112 [-0.012, 0.277]" in tones["inconclusive"] and "n = 25 test patients" in tones["inconclusive"]
    )


def test_no_gap_is_claimed_only_as_equivalence_on_enough_patients():
    assert set(_tones(_subgroups(0.004, -0.03, 0.04, 60))) == {"good"}
    assert "±0.05" in _tones(_subgroups(0.004, -0.03, 0.04, 60))["good"]
    assert set(_tones(_subgroups(0.004, -0.03, 0.04, 12))) == {"inconclusive"}  # too few patients


def test_a_decisive_gap_on_enough_patients_is_a_weakness():
    tones = _tones(_subgroups(-0.15, -0.25, -0.05, 40))
    assert set(tones) == {"bad"} and "lower" in tones["bad"]
    assert set(_tones(_subgroups(-0.15, -0.25, -0.05, 8))) == {"inconclusive"}


def test_summary_shows_the_inconclusive_group_and_the_rule():
    sec = next(s for s in _subgroups(0.112, -0.012, 0.277, 25).sections() if s.id == "summary")
    titles = [getattr(b, "title", "") for b in sec.blocks]
    assert "Inconclusive at this sample size" in titles and "Strengths" not in titles


def _paired(lo, hi, p=0.0, level=0.95):
    res = Result(
        kind="paired_bootstrap",
        metrics={
            "metric": "auroc",
            "value_a": 0.8,
            "value_b": 0.78,
            "difference": 0.02,
            "difference_ci": [lo, hi],
            "p_value": p,
            "n_resamples": 300,
            "ci_level": level,
            "bootstrap_unit": "patient",
            "labels_compared": ["x"],
            "n_test": 90,
        },
        tables={
            "per_label": [
                {"label": "x", "a": 0.8, "b": 0.78, "difference": 0.02, "ci_low": lo, "ci_high": hi}
            ]
        },
        arrays={"difference_replicates": np.zeros(300)},
        params={"ci_level": level, "n_resamples": 300},
    )
    return Report({"paired_bootstrap": res}, title="t", mode="compare", subjects=["a", "b"])


def test_a_difference_including_zero_is_not_distinguishable_not_a_tie():
    rep = _paired(-0.01, 0.05, p=0.3)
    found = [f for f in rep.findings() if f.rule == "paired_difference"]
    assert found[0].tone == "inconclusive" and "not distinguishable at this n" in found[0].text
    assert "n = 90 test records" in found[0].text
    paired = next(s for s in rep.sections() if s.id == "paired")
    tables = [b for b in paired.blocks if hasattr(b, "rows") and hasattr(b, "columns")]
    cells = [c for t in tables for row in t.rows for c in row]
    assert "not distinguishable" in cells and "tie" not in cells


def test_a_zero_p_value_is_shown_as_its_resampling_bound():
    rep = _paired(0.01, 0.05, p=0.0)
    text = " ".join(f.text for f in rep.findings())
    assert "p = 0.000" not in text and "p ≤ 0.0066" in text
    html = rep.to_html()
    assert "p ≤ 0.0066" in html


@pytest.mark.parametrize("level", [0.9, 0.99])
def test_captions_follow_the_ci_level(level):
    html = _paired(0.01, 0.05, level=level).to_html() + _subgroups(0.1, 0.02, 0.2, 40, level=level).to_html()
    assert f"{ci_label(level)}" in html and "95% CI" not in html


def test_an_ece_above_its_bias_corrected_interval_is_explained():
    # the demo's 0.071 [0.033, 0.070]: the basic bootstrap's interval can lie below the estimate
    def finding(ece, lo, hi):
        res = Result(
            kind="linear_probe",
            metrics={"macro_ece": ece, "macro_ece_ci": [lo, hi], "n_test_patients": 90, "ci_level": 0.95},
            params={"ci_level": 0.95},
        )
        return next(f for f in Report({"linear_probe": res}, title="t").findings() if f.rule == "calibration")

    below = finding(0.071, 0.033, 0.070)
    assert below.tone == "inconclusive" and "lies below the estimate" in below.text
    assert "lies below" not in finding(0.06, 0.03, 0.09).text
