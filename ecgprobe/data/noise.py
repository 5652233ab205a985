"""Noise for the noise stress test: the SNR as the MIT-BIH noise stress test defines it, the
noise generators, and the NST noise records.

**SNR** follows the MIT-BIH noise stress test (``nst`` of the WFDB software, Moody, Muldrow & Mark
1984, *Computers in Cardiology* 11:381-384; definitions from the WFDB Applications Guide,
``nst(1)``, section "Signal-to-noise ratios"):

- the signal size ``S`` of a lead is ``pp**2 / 8``, where ``pp`` is the mean peak-to-peak
  amplitude of its QRS complexes (range within 50 ms before to 50 ms after each QRS fiducial,
  the largest and smallest 5 % of the measurements discarded); the fiducials come from
  :func:`ecgprobe.data.beats.detect_beats` (``nst`` reads reference annotations instead). A
  record without a detected beat uses the ranges of its 1 s chunks in their place;
- the noise size ``N`` is the square of the mean, over 1 s chunks (largest and smallest 5 %
  discarded), of the RMS difference between the noise and the chunk's mean (which makes ``N``
  insensitive to the slowest drift, as ``nst`` intends);
- the noise is scaled by ``a`` so that ``10 log10(S / (a**2 N)) = SNR`` for each record and lead
  separately (``nst`` calibrates each signal over its whole record; an ECG of 10 s is calibrated
  over its 10 s, so the stated SNR holds for every record).

**Sources**: with the NST noise records (``bw``, ``em``, ``ma``: WFDB records at 360 Hz, from
https://physionet.org/content/nstdb/) in a folder (:func:`load_nst_noise`), real noise is used:
resampled to the records' rate, one seeded segment per record (wrapped around at the end of the
noise record, as ``nst`` rewinds), lead ``i`` taking noise signal ``i mod 2`` as ``nst`` pairs
them. Otherwise documented generators stand in (:func:`generate_noise`). Mains interference is
always generated (the NST has no mains record); records sampled at or below twice the mains
frequency cannot carry it and are refused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecgprobe.data.record import content_digest
from ecgprobe.exceptions import ConfigError, DataError, IncompatibleInputError

__all__ = [
    "NOISE_KINDS",
    "NST_LEVELS_DB",
    "NST_RECORDS",
    "NoiseBank",
    "check_mains",
    "generate_noise",
    "load_nst_noise",
    "noise_power",
    "noise_rng",
    "qrs_power",
    "snr_db",
]

NOISE_KINDS: tuple[str, ...] = ("baseline_wander", "muscle", "electrode_motion", "mains")
#: The NST noise record of each noise type.
NST_RECORDS: dict[str, str] = {"baseline_wander": "bw", "muscle": "ma", "electrode_motion": "em"}
#: The SNR levels of the MIT-BIH noise stress test records (dB).
NST_LEVELS_DB: tuple[float, ...] = (24.0, 18.0, 12.0, 6.0, 0.0, -6.0)
_TRIM, _QRS_HALF_S, _CHUNK_S = 0.05, 0.05, 1.0


# --------------------------------------------------------------------------- SNR (nst)
def _trimmed_mean(v: np.ndarray, axis: int = -1) -> np.ndarray:
    """Mean along ``axis`` after discarding the largest and smallest 5 % (``int(0.05 n)`` each)."""
    s = np.sort(v, axis=axis)
    n = s.shape[axis]
    k = int(_TRIM * n)
    return np.take(s, np.arange(k, n - k), axis=axis).mean(axis=axis)


def _chunks(x: np.ndarray, fs: float) -> np.ndarray:
    """``(..., T)`` -> ``(..., K, C)`` 1 s chunks (a record under 1 s is one chunk; a partial tail is dropped)."""
    c = max(1, min(int(round(_CHUNK_S * fs)), x.shape[-1]))
    k = x.shape[-1] // c
    return x[..., : k * c].reshape(*x.shape[:-1], k, c)


def qrs_power(x: np.ndarray, fs: float) -> np.ndarray:
    """The NST signal size ``S = pp**2 / 8`` per record and lead ``(B, L)`` of ``(B, L, T)`` mV.

    ``pp``: trimmed mean (5 % each side) of the QRS peak-to-peak amplitudes, each the range within
    +/-50 ms of a fiducial of :func:`~ecgprobe.data.beats.detect_beats`; records without a beat
    use the ranges of their 1 s chunks instead.
    """
    from ecgprobe.data.beats import detect_beats

    x = np.asarray(x, dtype=np.float64)
    b, n_leads, t = x.shape
    peaks, valid = detect_beats(x, fs)
    half = max(1, int(round(_QRS_HALF_S * fs)))
    out = np.zeros((b, n_leads))
    for i in range(b):
        centres = peaks[i, valid[i]]
        if len(centres):
            idx = np.clip(centres[:, None] + np.arange(-half, half + 1)[None, :], 0, t - 1)
            win = x[i][:, idx]  # (L, K, W)
            pp = win.max(-1) - win.min(-1)
        else:
            ch = _chunks(x[i], fs)
            pp = ch.max(-1) - ch.min(-1)
        out[i] = _trimmed_mean(pp) ** 2 / 8.0
    return out


def noise_power(noise: np.ndarray, fs: float) -> np.ndarray:
    """The NST noise size ``N`` per record and lead (``(..., T)`` -> ``(...)``): the square of the
    trimmed mean (5 % each side) over 1 s chunks of the RMS difference from the chunk's mean."""
    ch = _chunks(np.asarray(noise, dtype=np.float64), fs)
    rms = np.sqrt(((ch - ch.mean(-1, keepdims=True)) ** 2).mean(-1))
    return _trimmed_mean(rms) ** 2


def snr_db(clean: np.ndarray, noisy: np.ndarray, fs: float) -> np.ndarray:
    """The NST SNR in dB per record and lead of ``noisy`` against ``clean`` (both ``(B, L, T)``):
    ``10 log10(S / N)`` with ``S`` from the clean QRS (:func:`qrs_power`) and ``N`` from
    ``noisy - clean`` (:func:`noise_power`)."""
    with np.errstate(divide="ignore"):
        return 10 * np.log10(qrs_power(clean, fs) / noise_power(np.asarray(noisy, np.float64) - clean, fs))


# ------------------------------------------------------------------------- noise sources
def noise_rng(seed: int, kind: str, record_id: str) -> np.random.Generator:
    """The generator of one record's noise: seeded by (seed, kind, record id), independent of batches."""
    words = np.frombuffer(hashlib.sha256(f"{kind}|{record_id}".encode()).digest()[:16], dtype="<u4")
    return np.random.default_rng([int(seed), *map(int, words)])


def _band(rng: np.random.Generator, shape: tuple[int, int], fs: float, low: float, high: float) -> np.ndarray:
    """Gaussian noise ``(L, T)`` with a flat spectrum between ``low`` and ``min(high, 0.45 fs)`` Hz
    and none elsewhere (drawn in the frequency domain: one inverse FFT, no filter transients)."""
    n_leads, t = shape
    freqs = np.fft.rfftfreq(t, 1 / fs)
    band = (freqs >= low) & (freqs <= min(high, 0.45 * fs))
    spec = np.zeros((n_leads, len(freqs)), dtype=np.complex128)
    k = int(band.sum())
    spec[:, band] = rng.standard_normal((n_leads, k)) + 1j * rng.standard_normal((n_leads, k))
    return np.fft.irfft(spec, n=t, axis=-1)


def _sines(freqs: np.ndarray, amp: np.ndarray, phase: np.ndarray, tt: np.ndarray) -> np.ndarray:
    """``sum_k amp[l, k] sin(2 pi freqs[k] t + phase[l, k])`` ``(L, T)``, by the angle-sum identity
    (two matrix products instead of ``L x K x T`` sines)."""
    w = 2 * np.pi * np.asarray(freqs)[:, None] * tt[None, :]
    return (amp * np.cos(phase)) @ np.sin(w) + (amp * np.sin(phase)) @ np.cos(w)


def generate_noise(
    kind: str, shape: tuple[int, int], fs: float, rng: np.random.Generator, *, mains_hz: float = 50.0
) -> np.ndarray:
    """One record's generated noise ``(L, T)`` (unscaled: :func:`ecgprobe.data.perturb.perturb` scales it to the SNR).

    - ``baseline_wander``: per lead, a respiration sinusoid (frequency U(0.15, 0.35) Hz, shared
      by the leads) plus three slower or faster drifts (U(0.05, 0.5) Hz, relative amplitudes
      U(0.2, 0.7)), random phases;
    - ``muscle`` (EMG): Gaussian noise with a flat spectrum over 10-100 Hz (capped at 0.45 fs,
      zero elsewhere), amplitude-modulated by ``1 + 0.7 sin(2 pi f t + phi)``, f ~ U(0.3, 1) Hz,
      a phase per lead (bursts of contraction);
    - ``electrode_motion``: Gaussian noise flat over 1-10 Hz (overlapping P and T waves) plus
      abrupt transients at Poisson times (0.3 per second): jumps decaying with time constants
      U(0.05, 0.3) s and amplitudes of 1-3 times the band noise's SD, random sign;
    - ``mains``: ``sin(2 pi f t + phi) + 0.3 sin(2 pi 3f t + phi3)`` (harmonic left out at or
      above Nyquist), f = ``mains_hz``, one phase for all leads.

    Raises:
        IncompatibleInputError: mains at or above the records' Nyquist frequency.
        ConfigError: an unknown kind.
    """
    n_leads, t = shape
    tt = np.arange(t) / fs
    if kind == "baseline_wander":
        f = np.concatenate([rng.uniform(0.15, 0.35, 1), rng.uniform(0.05, 0.5, 3)])
        amp = np.concatenate([np.ones((n_leads, 1)), rng.uniform(0.2, 0.7, (n_leads, 3))], axis=1)
        return _sines(f, amp, rng.uniform(0, 2 * np.pi, (n_leads, 4)), tt)
    if kind == "muscle":
        white = _band(rng, shape, fs, 10.0, 100.0)
        f_env = rng.uniform(0.3, 1.0, 1)
        env = 1 + _sines(f_env, np.full((n_leads, 1), 0.7), rng.uniform(0, 2 * np.pi, (n_leads, 1)), tt)
        return white * env
    if kind == "electrode_motion":
        base = _band(rng, shape, fs, 1.0, 10.0)
        sd = base.std(axis=1, keepdims=True) + 1e-12
        for _ in range(rng.poisson(0.3 * t / fs)):
            start = int(rng.integers(0, t))
            tau, jump = (
                rng.uniform(0.05, 0.3),
                rng.uniform(1, 3, (n_leads, 1)) * rng.choice([-1, 1], (n_leads, 1)),
            )
            base[:, start:] += sd * jump * np.exp(-(tt[start:] - tt[start]) / tau)
        return base
    if kind == "mains":
        check_mains(fs, mains_hz)
        phi, phi3 = rng.uniform(0, 2 * np.pi, 2)
        wave = np.sin(2 * np.pi * mains_hz * tt + phi)
        if 3 * mains_hz < fs / 2:
            wave = wave + 0.3 * np.sin(2 * np.pi * 3 * mains_hz * tt + phi3)
        return np.broadcast_to(wave, (n_leads, t)).copy()
    raise ConfigError(f"no noise generator for {kind!r}; use one of {list(NOISE_KINDS)}")


def check_mains(fs: float, mains_hz: float) -> None:
    """Refuse mains interference at or above the Nyquist frequency of records at ``fs``.

    Raises:
        IncompatibleInputError: naming the rates and the fix.
    """
    if mains_hz >= fs / 2:
        raise IncompatibleInputError(
            f"mains interference at {mains_hz:g} Hz cannot be represented in records sampled at {fs:g} Hz "
            f"(Nyquist {fs / 2:g} Hz); use records sampled above {2 * mains_hz:g} Hz or leave 'mains' out"
        )


@dataclass(frozen=True)
class NoiseBank:
    """Real noise records at the records' rate: ``{kind: (channels, samples)}`` float32 mV, and
    ``digest``, the content digest of the files (part of the perturbed records' identity)."""

    fs: float
    signals: Mapping[str, np.ndarray]
    digest: str
    folder: str = ""

    def segment(self, kind: str, n_leads: int, t: int, rng: np.random.Generator) -> np.ndarray:
        """A seeded segment ``(n_leads, t)``: one start for all leads, lead ``i`` on channel ``i mod C``."""
        sig = self.signals[kind]
        start = int(rng.integers(0, sig.shape[1]))
        idx = (start + np.arange(t)) % sig.shape[1]  # wraps around, as nst rewinds its noise record
        return sig[np.arange(n_leads) % sig.shape[0]][:, idx].astype(np.float64)


def load_nst_noise(folder: str | Path, fs: float) -> NoiseBank:
    """Read the NST noise records ``bw``, ``em`` and ``ma`` from ``folder``, resampled to ``fs``.

    Raises:
        DataError: naming a missing record or one with non-finite samples.
    """
    from ecgprobe.data import preprocess as pp
    from ecgprobe.data.wfdb_io import read_record, wfdb_digest

    root = Path(folder).expanduser()
    signals, digests = {}, []
    for kind, name in NST_RECORDS.items():
        hea = root / f"{name}.hea"
        if not hea.exists():
            raise DataError(
                f"noise record {hea} not found; --noise-records must be a folder holding the MIT-BIH noise stress "
                "test records bw, em and ma (.hea + .dat, from https://physionet.org/content/nstdb/)"
            )
        x, header = read_record(hea)
        if not np.isfinite(x).all():
            raise DataError(f"noise record {hea} has non-finite samples; re-download it")
        signals[kind] = pp.resample(x, header.fs, fs)
        digests.append(wfdb_digest(str(hea)))
    return NoiseBank(
        fs=float(fs), signals=signals, digest=content_digest(*(d.encode() for d in digests)), folder=str(root)
    )
