"""Beat detection on multi-lead ECGs, vectorised over a batch.

A multi-lead QRS energy signal (leads band-passed 5-25 Hz, differentiated, squared and summed over
leads; then a centred 100 ms moving average) is searched for local maxima at least 200 ms apart
that exceed 30 % of the record's typical QRS energy (the median of its 2 s block maxima, robust to
single artefacts); a candidate within 360 ms of the previous beat with less than half its energy
is a T wave and dropped (Pan & Tompkins 1985). Used by the ``handcrafted`` encoder's features and
by the attribution analyzers to align saliency on beats.
"""

from __future__ import annotations

import numpy as np

from ecgprobe.data import preprocess as pp

__all__ = [
    "BLOCK_S",
    "ENV_WIN_S",
    "MIN_ENERGY",
    "REFRACTORY_S",
    "THRESHOLD",
    "T_GUARD_S",
    "detect_beats",
    "qrs_energy",
]

#: Envelope window, refractory period, T-wave guard and reference block, in seconds.
ENV_WIN_S, REFRACTORY_S, T_GUARD_S, BLOCK_S = 0.10, 0.20, 0.36, 2.0
#: Detection threshold as a fraction of the record's typical QRS energy.
THRESHOLD = 0.30
#: Typical QRS energy, (mV/s)^2, below which a record has no beats (flat, or noise under ~20 uV);
#: real QRS complexes measure 1e3-1e4, low-voltage ones a few hundred.
MIN_ENERGY = 10.0


def qrs_energy(x: np.ndarray, fs: float) -> np.ndarray:
    """Multi-lead QRS energy envelope ``(B, T)`` of ``(B, L, T)`` mV signals (see module doc)."""
    from scipy import ndimage

    y = pp.bandpass(x, fs, 5.0, min(25.0, 0.45 * fs), order=2)
    e = (np.gradient(y.astype(np.float64), axis=-1) * fs) ** 2  # (mV/s)^2, so thresholds do not depend on fs
    return ndimage.uniform_filter1d(e.sum(axis=1), size=max(int(ENV_WIN_S * fs), 1), axis=-1, mode="nearest")


def detect_beats(x: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Beat fiducials of a batch: ``(peaks (B, K) int, valid (B, K) bool)``, padded per record.

    The fiducial is the peak of the multi-lead QRS energy (the QRS's centre of energy).
    """
    from scipy import ndimage

    env = qrs_energy(x, fs)
    b, t = env.shape
    block = int(BLOCK_S * fs)
    if t >= block:
        nb = t // block
        ref = np.median(env[:, : nb * block].reshape(b, nb, block).max(axis=-1), axis=-1)
    else:
        ref = env.max(axis=-1)
    thr = THRESHOLD * ref
    size = 2 * int(REFRACTORY_S * fs) + 1
    is_max = env == ndimage.maximum_filter1d(env, size=size, axis=-1, mode="nearest")
    rising = np.concatenate([np.ones((b, 1), bool), env[:, 1:] > env[:, :-1]], axis=1)  # no plateau repeats
    cand = is_max & rising & (env > thr[:, None]) & (ref[:, None] >= MIN_ENERGY)
    counts = cand.sum(axis=1)
    k = max(int(counts.max(initial=0)), 1)
    rows, cols = np.nonzero(cand)
    slot = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    peaks = np.zeros((b, k), dtype=np.int64)
    valid = np.zeros((b, k), dtype=bool)
    peaks[rows, slot], valid[rows, slot] = cols, True
    # T-wave guard: a peak soon after a much stronger one is that beat's T wave.
    amp = np.where(valid, env[np.arange(b)[:, None], peaks], 0.0)
    close = np.diff(peaks, axis=1) < T_GUARD_S * fs
    weak = amp[:, 1:] < 0.5 * amp[:, :-1]
    drop = np.zeros_like(valid)
    drop[:, 1:] = close & weak & valid[:, 1:] & valid[:, :-1]
    valid &= ~drop
    order = np.argsort(~valid, axis=1, kind="stable")  # compact the kept peaks to the left
    return np.take_along_axis(peaks, order, 1), np.take_along_axis(valid, order, 1)
