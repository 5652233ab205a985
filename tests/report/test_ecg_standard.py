"""The printed 12-lead layout in mV, on a real PTB-XL record, and the attribution examples that use it."""

from __future__ import annotations

import numpy as np
import pytest

from ecgprobe.analyzers.base import Result
from ecgprobe.exceptions import ConfigError
from ecgprobe.report import Report
from ecgprobe.report.ecg_plot import STANDARD_LAYOUT, plot_ecg_standard, standard_figsize
from ecgprobe.report.figures import render_png
from ecgprobe.report.sections.attribution import example_figure

ROWS = [list(row) for row in STANDARD_LAYOUT] + [["II (rhythm)"]]


@pytest.fixture(scope="module")
def ptbxl500(ptbxl_root):
    import ecgprobe

    return ecgprobe.load_dataset("ptbxl", ptbxl_root, sampling_rate=500)


@pytest.fixture(scope="module")
def record(ptbxl500):
    """The first real record: (12, 5000) mV at 500 Hz, 10 s."""
    return ptbxl500.read([0])[0].astype(np.float64), float(ptbxl500.fs), list(ptbxl500.leads)


def _figure():
    from matplotlib.figure import Figure

    return Figure(figsize=(10, 5), layout="constrained")


def test_rows_name_the_leads_in_the_standard_order_and_span_their_mv_range(record):
    sig, fs, leads = record
    assert sig.shape == (12, 5000) and fs == 500.0
    axes = plot_ecg_standard(sig, fs, leads, fig=_figure())
    assert len(axes) == 4
    assert [[t.get_text() for t in ax.texts] for ax in axes] == ROWS
    n_col = int(2.5 * fs)
    for ax, names in zip(axes[:3], STANDARD_LAYOUT):
        drawn = np.concatenate(
            [sig[leads.index(n), c * n_col : (c + 1) * n_col] for c, n in enumerate(names)]
        )
        lo, hi = ax.get_ylim()
        # the whole mV range of the row's four 2.5 s pieces and the 0-1 mV calibration pulse, on 0.5 mV lines
        assert lo <= min(drawn.min(), 0.0) and hi >= max(drawn.max(), 1.0)
        assert hi - lo <= max(drawn.max(), 1.0) - min(drawn.min(), 0.0) + 2 * (0.2 + 0.5)  # margins
        assert lo % 0.5 == pytest.approx(0.0) and hi % 0.5 == pytest.approx(0.0)
        assert ax.get_ylabel() == "mV"
    # the real record's V2 reaches about -1.4 mV: its row is deeper than the others
    assert axes[1].get_ylim()[0] <= sig[leads.index("V2")].min() < -1.0


def test_each_column_is_the_next_2_5_s_of_its_lead_and_the_rhythm_strip_is_lead_ii(record):
    sig, fs, leads = record
    axes = plot_ecg_standard(sig, fs, leads, fig=_figure())
    segs = axes[0].collections[-1].get_segments()
    assert len(segs) == 4 * (1250 - 1)
    v4 = np.array([s[0] for s in segs[3 * 1249 : 4 * 1249]])  # the fourth piece: V4 from 7.5 s
    np.testing.assert_allclose(v4[:, 0], np.arange(3750, 4999) / fs)
    np.testing.assert_allclose(v4[:, 1], sig[leads.index("V4"), 3750:4999])
    rhythm = np.array([s[0] for s in axes[3].collections[-1].get_segments()])
    assert len(rhythm) == sig.shape[1] - 1  # the full record
    np.testing.assert_allclose(rhythm[:, 0], np.arange(4999) / fs)
    np.testing.assert_allclose(rhythm[:, 1], sig[leads.index("II"), :4999])
    assert axes[3].get_xlim() == pytest.approx((-0.4, 10.0))


def test_ecg_paper_calibration_pulse_and_proportions(record):
    sig, fs, leads = record
    for ax in plot_ecg_standard(sig, fs, leads, fig=_figure()):
        assert ax.get_aspect() == pytest.approx(0.4)  # 25 mm/s and 10 mm/mV
        paper = {c.get_gid(): c.get_segments() for c in ax.collections if c.get_gid()}
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        for gid, xstep, ystep in (("paper-major", 0.2, 0.5), ("paper-minor", 0.04, 0.1)):
            segs = np.asarray(paper[gid])
            vertical = segs[:, 0, 0] == segs[:, 1, 0]
            xs, ys = np.sort(segs[vertical, 0, 0]), np.sort(segs[~vertical, 0, 1])
            assert np.diff(xs) == pytest.approx(xstep) and np.diff(ys) == pytest.approx(ystep)
            # the lines fill the whole view: none missing at either edge
            assert xs[0] - x0 < xstep and x1 - xs[-1] < xstep and ys[0] - y0 < ystep and y1 - ys[-1] < ystep
            assert (segs[vertical, :, 1] == [y0, y1]).all() and (segs[~vertical, :, 0] == [x0, x1]).all()
        labelled = [v for v in ax.get_yticks() if y0 <= v <= y1]
        assert labelled and all(abs(v - round(v)) < 1e-9 for v in labelled)  # whole mV
        pulse = ax.lines[-1]
        x, y = pulse.get_xdata(), pulse.get_ydata()
        assert max(y) - min(y) == pytest.approx(1.0) and max(x) <= 0.0  # 1 mV, left of the trace
        assert x[3] - x[2] == pytest.approx(0.2)  # 0.2 s wide


def test_saliency_is_matched_by_lead_name_and_time(record):
    sig, fs, leads = record
    model_leads = ["II", "V2"]  # a model that saw two leads, 2.5 s at 100 Hz
    sal = np.zeros((2, 250))
    sal[0, 100:150] = 1.0  # lead II, 1.0-1.5 s
    axes = plot_ecg_standard(
        sig, fs, leads, saliency=sal, saliency_fs=100.0, saliency_leads=model_leads, fig=_figure()
    )
    row = axes[1].collections[-1]  # II, aVL, V2, V5
    values = np.ma.filled(row.get_array(), np.nan)
    t = np.array([s[0, 0] for s in row.get_segments()])
    ii = slice(0, 1249)
    assert np.nanmax(values[ii][(t[ii] > 1.05) & (t[ii] < 1.45)]) == pytest.approx(1.0)
    assert np.nanmax(values[ii][t[ii] < 0.9]) == 0.0
    assert np.isnan(values[1249:2498]).all()  # aVL: not a model lead
    assert np.isnan(values[2 * 1249 :]).all()  # V2 (5-7.5 s) and V5: past the model's 2.5 s window
    rhythm = np.ma.filled(axes[3].collections[-1].get_array(), np.nan)
    assert np.isfinite(rhythm[:1249]).all() and np.isnan(rhythm[1300:]).all()


def test_bad_input_is_refused_with_the_fix(record):
    sig, fs, leads = record
    with pytest.raises(ConfigError, match=r"lack \['V4', 'V5', 'V6'\].*plot_ecg"):
        plot_ecg_standard(sig[:9], fs, leads[:9])
    with pytest.raises(ConfigError, match="signals_mv must be"):
        plot_ecg_standard(sig[None], fs, leads)
    with pytest.raises(ConfigError, match="fs must be"):
        plot_ecg_standard(sig, 0.0, leads)
    with pytest.raises(ConfigError, match="saliency must be"):
        plot_ecg_standard(sig, fs, leads, saliency=np.ones((3, 10)))


def test_figure_size_keeps_the_paper_proportions(record):
    sig, fs, leads = record
    w, h = standard_figsize(sig, fs, leads)
    assert w == 10.0 and 3.5 < h < 7.0
    png = render_png(lambda fig: plot_ecg_standard(sig, fs, leads, fig=fig), size=(w, h))
    assert png[:4] == b"\x89PNG"


def _attribution(sig: np.ndarray, fs: float, leads: list[str], *, recorded: bool) -> Result:
    """An input_attribution result as the analyzer stores it: one record, one example; the model
    saw all 12 leads at 100 Hz for 5 s, z-scored."""
    x = sig[:, ::5][:, :500]
    model = (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)
    sal = np.abs(np.gradient(model, axis=1))
    arrays = {
        "inputs": model[None].astype(np.float32),
        "attributions": sal[None].astype(np.float32),
        "record_ids": np.array(["1"]),
        "example_record": np.array([0]),
        "example_label": np.array([0]),
        "logit": np.array([1.5]),
    }
    metrics = {"labels": ["NORM"], "leads": leads, "fs": 100.0}
    if recorded:
        arrays["example_signals_mv"] = sig[None].astype(np.float32)
        metrics |= {"example_fs": fs, "example_leads": leads}
    return Result(kind="input_attribution", metrics=metrics, arrays=arrays)


def test_attribution_examples_draw_the_recorded_ecg_in_mv_when_stored(record):
    sig, fs, leads = record
    spec = {"encoders": {"m": {"spec": {"normalization": "zscore_lead", "units": "mV"}}}}
    with_mv = Report(
        {"input_attribution": _attribution(sig, fs, leads, recorded=True)}, title="t", context=spec
    )
    fig = example_figure(with_mv, with_mv.get("input_attribution"), 0)
    assert "the recorded ECG in mV (standard 12-lead layout, 25 mm/s, 10 mm/mV)" in fig.caption
    assert "first 5.0 s" in fig.caption  # the attributions cover the model's window only
    without = Report(
        {"input_attribution": _attribution(sig, fs, leads, recorded=False)}, title="t", context=spec
    )
    fig = example_figure(without, without.get("input_attribution"), 0)
    assert "model input, normalised" in fig.caption and "mV (" not in fig.caption
    as_mv = Report({"input_attribution": _attribution(sig, fs, leads, recorded=False)}, title="t")
    assert "model input in mV" in example_figure(as_mv, as_mv.get("input_attribution"), 0).caption


def test_a_real_report_draws_its_examples_as_recorded_in_mv(computed):
    """input_attribution stores the recorded ECG (mV, first 10 s) beside the model input, so the
    report draws each example as printed, captioned as the recorded ECG, never as normalised
    input (the tiny test encoder z-scores its input)."""
    html = (computed.model_dir / "report.html").read_text()
    ia = computed.report.get("input_attribution")
    rec = ia.arrays["example_signals_mv"]
    assert rec.shape[:2] == (ia.arrays["inputs"].shape[0], len(ia.metrics["example_leads"]))
    assert ia.metrics["example_fs"] > 0 and rec.shape[-1] <= round(10 * ia.metrics["example_fs"])
    n = html.count("12-lead ECG of record")
    assert n >= 1 and html.count("the recorded ECG in mV") >= n
    assert "model input, normalised" not in html
