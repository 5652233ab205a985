"""Blocks, number formatting, deterministic figures and the ECG grid."""

from __future__ import annotations

import numpy as np
import pytest

from ecgprobe.report.blocks import Table, fmt, fmt_ci, fmt_pct
from ecgprobe.report.figures import render_png
from ecgprobe.report.html import _png_size
from ecgprobe.report.plots import STANDARD_LAYOUT, plot_ecg, plot_forest

LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


def test_formatting():
    assert fmt(0.91234) == "0.912"
    assert fmt(None) == "–" and fmt(float("nan")) == "–"
    assert fmt(12345) == "12,345"
    assert fmt_ci(0.9, 0.85, 0.95) == "0.900 [0.850, 0.950]"
    assert fmt_ci(0.9, None, None) == "0.900"
    assert fmt_pct(0.256) == "26%"


def test_table_checks_row_length_and_guesses_numeric_columns():
    t = Table(("label", "auroc"), (("MI", "0.91"), ("<b>", "–")))
    assert t.numeric == (False, True)
    with pytest.raises(ValueError, match="do not have 2 cells"):
        Table(("a", "b"), (("1",),))


def test_render_png_is_deterministic_and_sized():
    draw = lambda fig: fig.subplots().plot(np.arange(10), np.arange(10) ** 2)  # noqa: E731
    a, b = render_png(draw, size=(4, 3), dpi=100), render_png(draw, size=(4, 3), dpi=100)
    assert a == b
    assert _png_size(a) == (400, 300)


def test_ecg_grid_draws_the_standard_layout_and_a_rhythm_strip():
    sig = np.zeros((12, 1000), dtype=np.float32)
    sig[LEADS.index("V3")] = 1.0  # a constant 1 mV in V3 only
    sal = np.zeros_like(sig)
    sal[LEADS.index("V3"), 500:600] = 1.0
    ax = plot_ecg(sig, 100.0, LEADS, saliency=sal)
    lc = ax.collections[-1]
    segs = lc.get_segments()
    # 12 panels of a quarter (249 segments each) + a full-length rhythm strip (999 segments)
    assert len(segs) == 12 * 249 + 999
    labels = {t.get_text() for t in ax.texts}
    assert {name for row in STANDARD_LAYOUT for name in row} | {"II (rhythm)"} == labels
    # V3 sits in column 2 (t = 5.0-7.5 s), row 3: its trace is 1 mV above the row baseline
    v3 = [s for s in segs if 5.0 <= s[0, 0] < 7.5 and np.allclose(s[:, 1] % 1, 0)]
    assert v3, "V3 trace not found in its column"
    # saliency is coloured where it is non-zero (samples 500-600 of V3 fall in its column)
    values = lc.get_array()
    assert values.max() == pytest.approx(1.0) and values.min() == 0.0


def test_ecg_grid_stacks_non_standard_lead_sets():
    ax = plot_ecg(np.zeros((2, 200)), 100.0, ["II", "V5"], units="model")
    assert len(ax.collections[-1].get_segments()) == 2 * 199


def test_forest_plot_rows_follow_names():
    ax = plot_forest(["a", "b", "c"], [0.1, -0.2, 0.0], [0.0, -0.3, None], [0.2, -0.1, None])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
