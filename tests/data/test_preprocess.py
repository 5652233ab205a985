"""Preprocessing functions: the formulas they document, on known signals."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecgprobe.data import preprocess as pp
from ecgprobe.data.leads import LEADS_12, canonical_lead
from ecgprobe.exceptions import ConfigError, IncompatibleInputError


def _sine(f, fs, seconds=4.0, leads=1):
    t = np.arange(int(fs * seconds)) / fs
    return np.tile(np.sin(2 * np.pi * f * t), (leads, 1)).astype(np.float32)


@pytest.mark.parametrize(
    ("fs_in", "fs_out"), [(500, 100), (500, 250), (100, 500), (257, 500), (500, 240), (360, 128)]
)
def test_resample_preserves_a_sine(fs_in, fs_out):
    x = _sine(5.0, fs_in)
    y = pp.resample(x, fs_in, fs_out)
    assert y.shape[-1] == int(np.ceil(x.shape[-1] * fs_out / fs_in))
    ref = _sine(5.0, fs_out, seconds=y.shape[-1] / fs_out)
    inner = slice(int(0.5 * fs_out), -int(0.5 * fs_out))  # away from edge effects
    np.testing.assert_allclose(y[..., inner], ref[..., inner], atol=0.02)


def test_select_leads_reorders_and_derives():
    rng = np.random.default_rng(0)
    i, ii = rng.normal(size=(2, 3, 100))
    full = np.stack(
        [i, ii, ii - i, -(i + ii) / 2, i - ii / 2, ii - i / 2, *rng.normal(size=(6, 3, 100))], axis=1
    )
    eight = full[:, [0, 1, 6, 7, 8, 9, 10, 11]]
    out = pp.select_leads(eight, ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"], LEADS_12)
    np.testing.assert_allclose(out, full, atol=1e-6)
    rev = pp.select_leads(full, LEADS_12, ["V6", "AVR", "i"])
    np.testing.assert_allclose(rev, full[:, [11, 3, 0]], atol=1e-6)
    with pytest.raises(IncompatibleInputError, match=r"\['V1', 'V2'"):
        pp.select_leads(full[:, :6], LEADS_12[:6], LEADS_12)
    with pytest.raises(IncompatibleInputError, match="derive=True"):
        pp.select_leads(eight, ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"], ["III"], derive=False)


def test_canonical_lead_aliases():
    assert [canonical_lead(n) for n in ("AVR", "avl", "Lead aVF", "v1", "MLII", "i")] == [
        "aVR",
        "aVL",
        "aVF",
        "V1",
        "II",
        "I",
    ]


def test_bandpass_and_notch_attenuate_what_they_should():
    fs = 500
    x = _sine(10, fs) + _sine(0.1, fs) + _sine(80, fs)
    y = pp.bandpass(x, fs, 0.5, 40.0)  # 4th-order edges, applied twice: |H(80)|^2 = 1/(1+2^8) ~ 0.004
    spec = np.abs(np.fft.rfft(y[0])) / (len(y[0]) / 2)
    freqs = np.fft.rfftfreq(len(y[0]), 1 / fs)
    amp = lambda f: spec[np.argmin(np.abs(freqs - f))]  # noqa: E731
    assert amp(10) > 0.9 and amp(80) < 0.01 and amp(0.1) < 0.1
    z = pp.notch(_sine(50, fs) + _sine(10, fs), fs, 50.0)
    spec = np.abs(np.fft.rfft(z[0])) / (len(z[0]) / 2)
    assert amp(10) > 0.9 and spec[np.argmin(np.abs(freqs - 50))] < 0.05
    with pytest.raises(ConfigError, match="must lie in"):
        pp.bandpass(x, 100, 0.5, 60.0)


def test_remove_baseline():
    fs = 250
    x = _sine(0.2, fs, seconds=8) * 0.5 + _sine(8, fs, seconds=8) * 0.1
    for method in ("median", "highpass"):
        y = pp.remove_baseline(x, fs, method=method)
        assert np.abs(y[0, fs:-fs]).max() < 0.2


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4), st.integers(10, 200), st.floats(-100, 100), st.floats(0.1, 50))
def test_normalisations(n_leads, t, shift, scale):
    rng = np.random.default_rng(t)
    x = (rng.normal(size=(2, n_leads, t)) * scale + shift).astype(np.float32)
    z = pp.normalize(x, "zscore_lead")
    np.testing.assert_allclose(z.mean(-1), 0, atol=1e-3)
    np.testing.assert_allclose(z.std(-1), 1, atol=1e-3)
    g = pp.normalize(x, "zscore_global")
    np.testing.assert_allclose(g.mean((-1, -2)), 0, atol=1e-3)
    m = pp.normalize(x, "minmax_lead")
    assert m.min() >= -1e-6 and m.max() <= 1 + 1e-6
    s = pp.normalize(x, "minmax_lead_sym")
    np.testing.assert_allclose(s.max(-1), 1, atol=1e-4)
    r = pp.normalize(x, "rank")
    # invariant to monotone maps; scaling by 4 is exact in float32, so no ties are created
    np.testing.assert_allclose(r, pp.normalize(x * 4.0, "rank"), atol=1e-6)
    np.testing.assert_allclose(
        pp.normalize(np.array([[5.0, -1.0, 3.0, 3.0, 100.0]]), "rank"), [[0.5, -1.0, -0.25, -0.25, 1.0]]
    )


def test_fit_length_and_windows():
    x = np.arange(10, dtype=np.float32)[None, :]
    np.testing.assert_array_equal(pp.fit_length(x, 4), [[0, 1, 2, 3]])
    np.testing.assert_array_equal(pp.fit_length(x, 4, align="center"), [[3, 4, 5, 6]])
    np.testing.assert_array_equal(pp.fit_length(x, 12), [[*range(10), 0, 0]])
    w = pp.sliding_windows(np.stack([x, -x]), 4)  # (2 records, 1 lead, 10) -> (2, 2 windows, 1, 4)
    assert w.shape == (2, 2, 1, 4)
    np.testing.assert_array_equal(w[0, 1, 0], [4, 5, 6, 7])
    w = pp.sliding_windows(x, 4, hop=3, pad_last=True)
    assert w.shape == (3, 1, 4)
    np.testing.assert_array_equal(w[-1, 0], [6, 7, 8, 9])
    assert pp.sliding_windows(x, 16).shape == (1, 1, 16)
    with pytest.raises(ConfigError):
        pp.normalize(x, "l2")
