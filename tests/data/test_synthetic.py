"""The synthetic generator: determinism, lead physics and labels with a known cause."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import find_peaks

import ecgprobe
from ecgprobe.data.synthetic import DEMO_LABELS, LABELS
from ecgprobe.data.synthetic_demo import demo_table
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


# --- task="demo": realistic labels, a planted site confounder and a planted sex gap ------------


def _auroc(y: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, score))


@pytest.fixture(scope="module")
def demo_250():
    """300 demo records at 250 Hz (the planted structure, cheaply)."""
    return ecgprobe.load_dataset("synthetic", task="demo", n_records=300, fs=250.0, seed=0)


@pytest.fixture(scope="module")
def demo_v2_st(demo_250):
    """The measured ST level in V2 of each record of ``demo_250``."""
    rs = demo_250
    return np.array([_st_level(rs.signals[k], rs.fs)[rs.leads.index("V2")] for k in range(len(rs))])


def test_demo_is_deterministic_and_describes_what_it_plants(demo_250):
    again = ecgprobe.load_dataset("synthetic", task="demo", n_records=300, fs=250.0, seed=0, lazy=True)
    np.testing.assert_array_equal(again.read([4, 250]), demo_250.read([4, 250]))
    assert list(again.split) == list(demo_250.split) and (again.y == demo_250.y).all()
    other = ecgprobe.load_dataset("synthetic", task="demo", n_records=300, fs=250.0, seed=1)
    assert not np.allclose(other.signals[:5], demo_250.signals[:5])
    assert demo_250.label_names == DEMO_LABELS
    assert list(demo_250.meta.columns) == ["age", "sex", "site", "heart_rate", "qrs_ms"]
    assert set(demo_250.meta["site"]) == {"A", "B"} and set(demo_250.meta["sex"]) == {"female", "male"}
    assert (
        demo_250.params["task"] == "demo"
        and "task" not in ecgprobe.load_dataset("synthetic", n_records=2).params
    )
    notes = " ".join(demo_250.notes)
    assert "confounder" in notes and "site" in notes and "subgroup" in notes
    assert set(demo_250.label_descriptions) == set(DEMO_LABELS)
    # the physics still holds: limb leads derived from I and II
    x = demo_250.signals[:20].astype(np.float64)
    np.testing.assert_allclose(x[:, 2], x[:, 1] - x[:, 0], atol=1e-5)


def test_demo_patients_have_several_records_and_splits_are_patient_wise(demo_250):
    pids, counts = np.unique(demo_250.patient_ids, return_counts=True)
    assert (counts >= 2).sum() >= 0.25 * len(pids)  # many patients with several records
    assert (counts[np.searchsorted(pids, demo_250.patient_ids)] >= 2).mean() > 0.5
    for column in ("sex", "age", "site"):  # patient attributes are shared by a patient's records
        assert (demo_250.meta.groupby(demo_250.patient_ids)[column].nunique() == 1).all()
    split_of = {}
    for pid, s in zip(demo_250.patient_ids, demo_250.split):
        assert split_of.setdefault(pid, s) == s
    assert 0.28 < demo_250.split_sizes()["test"] / len(demo_250) < 0.42  # DEMO_FRACTIONS' 35 %


def test_demo_site_confounder_is_planted():
    table = demo_table(3000, seed=0)
    site_b = (table["site"] == "B").to_numpy()
    afib = table["afib"].to_numpy()
    assert afib[site_b].mean() > 4 * afib[~site_b].mean()
    assert 0.65 < _auroc(afib, site_b.astype(float)) < 0.85  # site alone scores afib
    sinus = ~table["af_rhythm"].to_numpy()  # AF's faster rate raises site B's tachycardia too
    for label in ("tachycardia", "wide_qrs", "st_elevation", "lvh"):  # only afib is tied to the site
        col = table[label].to_numpy()
        assert abs(col[site_b & sinus].mean() - col[~site_b & sinus].mean()) < 0.05, label


def test_demo_site_artefact_is_in_the_signals(demo_250):
    site_b = (demo_250.meta["site"] == "B").to_numpy()
    spec = np.abs(np.fft.rfft(demo_250.signals[:80, 1].astype(np.float64), axis=-1))
    freqs = np.fft.rfftfreq(demo_250.n_samples, 1 / demo_250.fs)
    hum = {f: spec[:, np.argmin(np.abs(freqs - f))] for f in (50.0, 60.0)}
    assert np.median(hum[60.0][site_b[:80]]) > 5 * np.median(hum[60.0][~site_b[:80]])
    assert np.median(hum[50.0][~site_b[:80]]) > 2 * np.median(hum[50.0][site_b[:80]])


def test_demo_labels_are_caused_but_not_trivially_separable(demo_250, demo_v2_st):
    """Even each label's true physical cause scores it well but not perfectly (annotation errors,
    borderline values); measured on the signals where the cause is a deflection."""
    table = demo_table(3000, seed=0)
    for label, cause in (
        ("tachycardia", table["hr"]),
        ("wide_qrs", table["qrs_ms"]),
        ("afib", table["af_rhythm"]),
    ):
        assert 0.8 < _auroc(table[label].to_numpy(), cause.to_numpy(dtype=float)) < 0.98, label
    rs = demo_250
    st_v2 = demo_v2_st
    st = rs.y[:, DEMO_LABELS.index("st_elevation")]
    assert 0.6 < _auroc(st, st_v2) < 0.98
    qrs_amp = np.ptp(rs.signals[:, rs.leads.index("V2")], axis=1) + np.ptp(
        rs.signals[:, rs.leads.index("V5")], axis=1
    )
    lvh = rs.y[:, DEMO_LABELS.index("lvh")]
    assert 0.6 < _auroc(lvh, qrs_amp) < 0.98


def test_demo_signatures_are_weaker_in_women(demo_250, demo_v2_st):
    """The planted subgroup effect: in women the injury's ST elevation and LVH's extra voltage are
    a fifth as large, so on the signals their causes separate the labels less well than in men."""
    table = demo_table(3000, seed=0)
    female = (table["sex"] == "female").to_numpy()
    injured = table["st_elevation"].to_numpy()
    st = -table["st_z"].to_numpy()  # the ST plateau along -Z: injury current + normal J-point
    assert np.median(st[injured & female]) < 0.6 * np.median(st[injured & ~female])
    lvh = table["lvh"].to_numpy()
    gain = table["qrs_gain"].to_numpy()
    assert np.median(gain[lvh & female]) - 1 < 0.4 * (np.median(gain[lvh & ~female]) - 1)
    wide, qrs = table["wide_qrs"].to_numpy(), table["qrs_ms"].to_numpy()
    assert np.median(qrs[wide & female]) < np.median(qrs[wide & ~female]) - 5  # blocks nearer 120 ms
    rs = demo_250
    female = (rs.meta["sex"] == "female").to_numpy()
    st_v2 = demo_v2_st
    volt = np.ptp(rs.signals[:, rs.leads.index("V2")], axis=1) + np.ptp(
        rs.signals[:, rs.leads.index("V5")], axis=1
    )
    gaps = []
    for label, score in (("st_elevation", st_v2), ("lvh", volt)):
        y = rs.y[:, DEMO_LABELS.index(label)]
        gaps.append(_auroc(y[~female], score[~female]) - _auroc(y[female], score[female]))
    assert min(gaps) > 0.03 and np.mean(gaps) > 0.1, gaps


def test_demo_bad_options():
    with pytest.raises(ConfigError, match="task"):
        ecgprobe.load_dataset("synthetic", task="dem0", n_records=5)
    with pytest.raises(ConfigError, match="prevalence applies to task='clean'"):
        ecgprobe.load_dataset("synthetic", task="demo", n_records=5, prevalence={"afib": 0.5})
