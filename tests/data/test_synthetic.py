"""The synthetic generator: determinism, lead physics and labels with a known cause."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import find_peaks

import ecgprobe
from ecgprobe.data.synthetic import LABELS
from ecgprobe.exceptions import ConfigError


def _r_peaks(x: np.ndarray, fs: float) -> np.ndarray:
    """A small Pan-Tompkins: 8-30 Hz band-pass, squared slope summed over leads, peaks."""
    from ecgprobe.data.preprocess import bandpass

    energy = (np.diff(bandpass(x, fs, 8.0, 30.0), axis=-1) ** 2).sum(axis=0)
    peaks, _ = find_peaks(energy, height=0.3 * np.percentile(energy, 99.5), distance=int(0.25 * fs))
    return peaks


def _heart_rate(x: np.ndarray, fs: float) -> float:
    return 60.0 * fs / np.median(np.diff(_r_peaks(x, fs)))


def _st_level(x: np.ndarray, fs: float) -> np.ndarray:
    """Per lead: median over beats of ST (R+80..120 ms) minus the PR baseline (R-70..-40 ms)."""
    peaks = _r_peaks(x, fs)
    peaks = peaks[(peaks > 0.1 * fs) & (peaks < x.shape[-1] - 0.15 * fs)]
    st = [x[:, p + int(0.08 * fs) : p + int(0.12 * fs)].mean(axis=1) for p in peaks]
    pr = [x[:, p - int(0.07 * fs) : p - int(0.04 * fs)].mean(axis=1) for p in peaks]
    return np.median(np.array(st) - np.array(pr), axis=0)


def test_deterministic_lazy_and_subset(synthetic_small):
    again = ecgprobe.load_dataset("synthetic", n_records=120, fs=100.0, seed=0, lazy=True)
    assert not again.source.in_memory
    np.testing.assert_array_equal(again.read([5, 17]), synthetic_small.read([5, 17]))
    np.testing.assert_array_equal(again.subset([3, 1]).signals, synthetic_small.signals[[3, 1]])
    other = ecgprobe.load_dataset("synthetic", n_records=120, fs=100.0, seed=1)
    assert not np.allclose(other.signals[:5], synthetic_small.signals[:5])


def test_einthoven_and_goldberger_hold_exactly(synthetic_small):
    x = synthetic_small.signals.astype(np.float64)
    i, ii, iii, avr, avl, avf = (x[:, k] for k in range(6))
    np.testing.assert_allclose(iii, ii - i, atol=1e-5)
    np.testing.assert_allclose(avr, -(i + ii) / 2, atol=1e-5)
    np.testing.assert_allclose(avl, i - ii / 2, atol=1e-5)
    np.testing.assert_allclose(avf, ii - i / 2, atol=1e-5)
    np.testing.assert_allclose(avr + avl + avf, 0, atol=1e-5)


def test_amplitudes_are_physiological(synthetic_small):
    x = synthetic_small.signals
    ptp = np.ptp(x[:, 1], axis=1)
    assert 0.4 < np.median(ptp) < 4.0


def test_rate_labels_have_their_cause():
    rs = ecgprobe.load_dataset("synthetic", n_records=150, fs=250.0, seed=3, noise=0.005)
    hr = np.array([_heart_rate(rs.signals[k], rs.fs) for k in range(len(rs))])
    tachy = rs.y[:, LABELS.index("tachycardia")].astype(bool)
    brady = rs.y[:, LABELS.index("bradycardia")].astype(bool)
    afib = rs.y[:, LABELS.index("afib")].astype(bool)
    normal = ~tachy & ~brady & ~afib
    assert np.median(hr[tachy & ~afib]) > 100
    assert np.median(hr[brady & ~afib]) < 60
    assert 55 < np.median(hr[normal]) < 100
    np.testing.assert_allclose(rs.meta["heart_rate"][normal], hr[normal], rtol=0.1)


def test_st_elevation_raises_the_right_leads():
    rs = ecgprobe.load_dataset("synthetic", n_records=300, fs=250.0, seed=4, noise=0.005)
    narrow = ~rs.y[:, LABELS.index("wide_qrs")].astype(bool) & ~rs.y[:, LABELS.index("afib")].astype(bool)
    st = np.array([_st_level(rs.signals[k], rs.fs) for k in range(len(rs))])
    inf = rs.y[:, LABELS.index("st_elevation_inferior")].astype(bool) & narrow
    ant = rs.y[:, LABELS.index("st_elevation_anterior")].astype(bool) & narrow
    none = narrow & ~inf & ~ant
    lead = {name: k for k, name in enumerate(rs.leads)}
    for name in ("II", "III", "aVF"):  # inferior leads: elevated by >= 0.1 mV (the clinical criterion)
        assert np.median(st[inf & ~ant, lead[name]]) > np.median(st[none, lead[name]]) + 0.1
    for name in ("V1", "V2", "V3"):
        assert np.median(st[ant & ~inf, lead[name]]) > np.median(st[none, lead[name]]) + 0.1
    assert abs(np.median(st[ant & ~inf, lead["aVF"]]) - np.median(st[none, lead["aVF"]])) < 0.05


def test_low_voltage_and_split():
    rs = ecgprobe.load_dataset("synthetic", n_records=200, fs=250.0, seed=5)
    low = rs.y[:, LABELS.index("low_voltage")].astype(bool)
    ptp = np.ptp(rs.signals[:, :6], axis=2).max(axis=1)
    assert np.median(ptp[low]) < 0.6 * np.median(ptp[~low])
    by_patient: dict[str, set[str]] = {}
    for pid, s in zip(rs.patient_ids, rs.split):
        by_patient.setdefault(pid, set()).add(s)
    assert all(len(v) == 1 for v in by_patient.values())
    sizes = rs.split_sizes()
    assert abs(sizes["train"] - 140) <= 12


def test_bad_options():
    with pytest.raises(ConfigError, match="unknown label"):
        ecgprobe.load_dataset("synthetic", prevalence={"stemi": 0.1})
    with pytest.raises(ConfigError, match="n_records"):
        ecgprobe.load_dataset("synthetic", n_records=0)
    with pytest.raises(ConfigError, match="takes no root"):
        ecgprobe.load_dataset("synthetic", "/tmp")
