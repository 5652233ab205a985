"""Perturbations of the robustness card: noise at a stated SNR has that SNR (measured on the
perturbed signal, independently of the calibration code), real NST noise records are read and
used, lead sets are zero-filled or dropped as the contract needs, round trips and scaling do what
they say, and every record's perturbation is seeded, batch-independent and cached by its key."""

from __future__ import annotations

import numpy as np
import pytest

from ecgprobe.data.leads import LEADS_12
from ecgprobe.data.noise import NOISE_KINDS, generate_noise, load_nst_noise, noise_rng, snr_db
from ecgprobe.data.perturb import Perturbation, PerturbedSource, lead_plan, perturb, perturbed_view
from ecgprobe.data.record import ArraySource, RecordSet
from ecgprobe.exceptions import ConfigError, DataError, IncompatibleInputError

FS = 500.0
BEAT_S = 0.8  # one QRS every 0.8 s, the first at 0.4 s
QRS_MV = np.linspace(0.6, 1.7, 12)  # a different QRS amplitude per lead


def _pulse_train(n: int = 4, seconds: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """Clean records with known QRS peaks: narrow Gaussian QRS (sd 8 ms, height QRS_MV per lead)
    and broad low T waves; returns (signals (n, 12, T), beat sample positions)."""
    t = np.arange(int(seconds * FS)) / FS
    beats = np.arange(0.4, seconds - 0.2, BEAT_S)
    qrs = sum(np.exp(-0.5 * ((t - b) / 0.008) ** 2) for b in beats)
    twave = sum(0.15 * np.exp(-0.5 * ((t - b - 0.3) / 0.05) ** 2) for b in beats)
    x = QRS_MV[:, None] * qrs[None] + twave[None]
    out = np.stack([x * (1 + 0.05 * i) for i in range(n)]).astype(np.float32)
    return out, np.round(beats * FS).astype(int)


def _records(x: np.ndarray, fs: float = FS) -> RecordSet:
    import pandas as pd

    n = len(x)
    return RecordSet(
        source=ArraySource(x),
        fs=fs,
        leads=LEADS_12,
        ids=np.array([f"r{i}" for i in range(n)]),
        patient_ids=np.array([f"p{i}" for i in range(n)]),
        label_names=("A",),
        y=np.zeros((n, 1)),
        split=np.array(["test"] * n),
        meta=pd.DataFrame(index=range(n)),
    )


def _measured_snr(clean: np.ndarray, noisy: np.ndarray, beats: np.ndarray, fs: float) -> np.ndarray:
    """The NST definition written out independently, with the true beat positions: S = pp^2/8
    (trimmed mean of the ranges within +/-50 ms of each beat), N = (trimmed mean over 1 s chunks
    of the RMS about the chunk mean)^2, SNR = 10 log10(S/N); per record and lead."""
    half = int(0.05 * fs)
    pp = np.stack([np.ptp(clean[..., b - half : b + half + 1], -1) for b in beats], -1)  # (n, L, beats)
    noise = noisy.astype(np.float64) - clean
    c = int(fs)
    k = noise.shape[-1] // c
    chunks = noise[..., : k * c].reshape(*noise.shape[:-1], k, c)
    rms = np.sqrt(((chunks - chunks.mean(-1, keepdims=True)) ** 2).mean(-1))

    def trim(v: np.ndarray) -> np.ndarray:
        v = np.sort(v, -1)
        cut = int(0.05 * v.shape[-1])
        return v[..., cut : v.shape[-1] - cut].mean(-1)

    return 10 * np.log10((trim(pp) ** 2 / 8) / trim(rms) ** 2)


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_noise_has_the_stated_snr_measured_on_the_perturbed_signal(kind):
    clean, beats = _pulse_train()
    rs = _records(clean)
    for level in (24.0, 6.0, -6.0):
        noisy = perturbed_view(rs, Perturbation(kind, level, seed=3)).signals
        measured = _measured_snr(clean, noisy, beats, FS)
        np.testing.assert_allclose(measured, level, atol=0.02)
        assert not np.allclose(noisy, clean)


def test_snr_holds_on_real_ptbxl_records(ptbxl100):
    rs = ptbxl100.by_split("test").subset(range(6))
    noisy = perturbed_view(rs, Perturbation("electrode_motion", 0.0)).signals
    measured = snr_db(rs.signals, noisy, rs.fs)
    np.testing.assert_allclose(measured, 0.0, atol=1e-4)


def test_levels_scale_one_waveform_and_records_do_not_depend_on_the_batch():
    clean, _ = _pulse_train(n=3)
    rs = _records(clean)
    n24 = perturbed_view(rs, Perturbation("muscle", 24.0)).signals - clean
    n0 = perturbed_view(rs, Perturbation("muscle", 0.0)).signals - clean
    ratio = n0[..., 100:200] / n24[..., 100:200]
    np.testing.assert_allclose(ratio, 10 ** (24 / 20), rtol=1e-3)
    view = perturbed_view(rs, Perturbation("muscle", 6.0, seed=1))
    together = view.read([0, 1, 2])
    alone = np.concatenate([view.read([i]) for i in (2, 1, 0)][::-1])
    np.testing.assert_array_equal(together, alone)
    other_seed = perturbed_view(rs, Perturbation("muscle", 6.0, seed=2)).read([0])
    assert not np.allclose(other_seed, together[:1])


def test_mains_is_a_sinusoid_at_the_mains_frequency_and_refused_below_nyquist():
    rng = noise_rng(0, "mains", "r0")
    wave = generate_noise("mains", (2, 5000), FS, rng, mains_hz=60.0)
    spec = np.abs(np.fft.rfft(wave[0]))
    freqs = np.fft.rfftfreq(5000, 1 / FS)
    assert freqs[np.argmax(spec)] == pytest.approx(60.0)
    assert spec[np.argmin(np.abs(freqs - 180))] == pytest.approx(0.3 * spec.max(), rel=1e-3)
    clean, _ = _pulse_train(n=1)
    with pytest.raises(
        IncompatibleInputError, match="50 Hz cannot be represented in records sampled at 100 Hz"
    ):
        perturbed_view(_records(clean[..., ::5], fs=100.0), Perturbation("mains", 6.0))


def test_lead_sets_zero_fill_what_the_contract_needs_and_drop_the_rest():
    plan = lead_plan(LEADS_12, "I,II,V2", LEADS_12)
    assert plan.zero_filled == ("V1", "V3", "V4", "V5", "V6")
    assert plan.derived == ("III", "aVR", "aVL", "aVF")
    assert plan.handling == "zero-filled" and plan.leads_out == (
        "I",
        "II",
        "V2",
        "V1",
        "V3",
        "V4",
        "V5",
        "V6",
    )
    limb = lead_plan(LEADS_12, "6-limb", ("I", "II", "V2"))
    assert limb.zero_filled == ("V2",) and "V1" in limb.dropped
    three = lead_plan(LEADS_12, "I,II,V2", ("I", "II", "V2"))
    assert three.handling == "dropped" and three.zero_filled == ()
    clean, _ = _pulse_train(n=2)
    view = perturbed_view(_records(clean), Perturbation("leads", "I"), required_leads=LEADS_12)
    assert view.leads[0] == "I" and len(view.leads) == 12
    x = view.signals
    np.testing.assert_array_equal(x[:, 0], clean[:, 0])
    assert not x[:, 1:].any()
    assert view.params["perturbation"]["handling"] == "zero-filled"
    with pytest.raises(ConfigError, match="lead set"):
        lead_plan(("I", "II"), "I,II,V2", None)


def test_round_trip_removes_what_the_intermediate_rate_cannot_hold_and_amplitude_scales():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 12, 5000)).astype(np.float32)
    y = perturb(x, FS, LEADS_12, Perturbation("resample", 100.0), ["r0"])
    assert y.shape == x.shape
    spec_x, spec_y = (np.abs(np.fft.rfft(a[0, 0])) ** 2 for a in (x, y))
    freqs = np.fft.rfftfreq(5000, 1 / FS)
    assert spec_y[freqs > 55].sum() < 1e-3 * spec_x[freqs > 55].sum()
    low = freqs < 35
    assert spec_y[low].sum() == pytest.approx(spec_x[low].sum(), rel=0.02)
    np.testing.assert_array_equal(perturb(x, FS, LEADS_12, Perturbation("amplitude", 2.0), ["r0"]), 2 * x)


def test_the_view_carries_the_perturbation_into_identity_and_digests_without_reading():
    clean, _ = _pulse_train(n=2)
    rs = _records(clean)
    a = perturbed_view(rs, Perturbation("muscle", 6.0, seed=0))
    keys = {
        perturbed_view(rs, p).fingerprint
        for p in (
            Perturbation("muscle", 6.0, seed=0),
            Perturbation("muscle", 0.0),
            Perturbation("muscle", 6.0, seed=1),
        )
    }
    assert len(keys) == 3 and a.fingerprint != rs.fingerprint
    assert a.params["perturbation"] == {"kind": "muscle", "level": 6.0, "seed": 0, "noise": "generated"}

    class Counting(ArraySource):
        reads = 0

        def read(self, indices):
            Counting.reads += 1
            return super().read(indices)

    src = PerturbedSource(Counting(clean), Perturbation("muscle", 6.0), rs.ids, FS, LEADS_12)
    d1 = src.digests(np.arange(2))
    assert Counting.reads == 0 and len(set(d1)) == 2
    assert d1 != list(rs.content_digests())
    assert d1 == PerturbedSource(
        ArraySource(clean), Perturbation("muscle", 6.0), rs.ids, FS, LEADS_12
    ).digests(np.arange(2))


def test_real_nst_noise_records_are_read_resampled_and_used(tmp_path):
    wfdb = pytest.importorskip("wfdb")
    rng = np.random.default_rng(1)
    bank_src = {}
    for name in ("bw", "em", "ma"):
        sig = rng.standard_normal((360 * 30, 2)) * 0.1
        bank_src[name] = sig
        wfdb.wrsamp(
            name,
            fs=360,
            units=["mV", "mV"],
            sig_name=["noise1", "noise2"],
            p_signal=sig,
            fmt=["16", "16"],
            write_dir=str(tmp_path),
        )
    bank = load_nst_noise(tmp_path, FS)
    assert bank.signals["muscle"].shape == (2, 500 * 30)
    clean, beats = _pulse_train(n=2)
    view = perturbed_view(_records(clean), Perturbation("muscle", 0.0), bank=bank)
    noisy = view.signals
    np.testing.assert_allclose(_measured_snr(clean, noisy, beats, FS), 0.0, atol=0.02)
    noise = noisy.astype(np.float64) - clean
    # lead 0 and lead 2 take the same noise signal (0 mod 2), scaled: perfectly correlated
    assert np.corrcoef(noise[0, 0], noise[0, 2])[0, 1] == pytest.approx(1.0, abs=1e-4)
    assert abs(np.corrcoef(noise[0, 0], noise[0, 1])[0, 1]) < 0.2
    assert view.params["perturbation"]["noise"].startswith("NST record ma (")
    mains = perturbed_view(_records(clean), Perturbation("mains", 0.0), bank=bank)
    assert mains.params["perturbation"]["noise"] == "generated"
    (tmp_path / "em.hea").unlink()
    with pytest.raises(DataError, match=r"em\.hea not found.*bw, em and ma"):
        load_nst_noise(tmp_path, FS)


def test_bad_perturbations_are_refused_with_the_fix():
    with pytest.raises(ConfigError, match=r"unknown perturbation 'noise'.*muscle"):
        Perturbation("noise", 6)
    with pytest.raises(ConfigError, match="needs a number"):
        Perturbation("muscle", "loud")
    with pytest.raises(ConfigError, match="positive"):
        Perturbation("amplitude", 0)
    with pytest.raises(ConfigError, match="mains_hz must be 50 or 60"):
        Perturbation("mains", 6, mains_hz=55)
