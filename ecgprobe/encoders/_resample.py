"""Resamplers that some published models were trained with, reproduced exactly.

:func:`ecgprobe.data.preprocess.resample` (polyphase FIR) is the package default. Several
foundation models were trained on data resampled otherwise, and their official preprocessing
is part of their input contract:

- :func:`resample_fft` — :func:`scipy.signal.resample` (Fourier method, periodic extension),
  used by ECG-JEPA and ST-MEM.
- :func:`resample_kaiser_best` — band-limited sinc interpolation with resampy's ``kaiser_best``
  filter (Smith's algorithm), used by the Strodthoff group's ``clinical_ts`` pipelines
  (ECG-CPC). Reimplemented with NumPy/SciPy (no numba), bit-compatible up to float rounding.

:func:`windows_then_resample` cuts windows at the records' own rate and resamples each window
separately, the order in which those official pipelines crop and resample.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

import numpy as np

from ecgprobe.data import preprocess as pp
from ecgprobe.exceptions import ConfigError

if TYPE_CHECKING:  # scipy is imported where it is used (start-up stays light)
    from scipy import sparse

__all__ = ["resample_fft", "resample_kaiser_best", "windows_then_resample"]

# resampy 0.4 ``kaiser_best``: 50 zero crossings, 2**13 table entries per crossing, Kaiser
# window; beta recovered from resampy's stored table (max deviation 2e-15).
_KB_ZEROS = 50
_KB_TABLE = 2**13
_KB_BETA = 12.984585247037439
_KB_ROLLOFF = 0.9173473712608761


def resample_fft(x: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Fourier resampling of the last axis to ``int(T * fs_out / fs_in)`` samples.

    Exactly :func:`scipy.signal.resample` (the spectrum is truncated or zero-padded, the signal
    treated as periodic), computed in float64 and returned as float32.
    """
    from scipy import signal as sps

    arr = np.asarray(x, dtype=np.float64)
    if fs_in == fs_out:
        return arr.astype(np.float32)
    n_out = int(arr.shape[-1] * float(fs_out) / float(fs_in))
    if n_out < 1:
        raise ConfigError(f"{arr.shape[-1]} samples at {fs_in:g} Hz are too few to resample to {fs_out:g} Hz")
    return sps.resample(arr, n_out, axis=-1).astype(np.float32)


@lru_cache(maxsize=1)
def _kaiser_best_table() -> np.ndarray:
    from scipy import signal as sps

    n = _KB_ZEROS * _KB_TABLE
    sinc = _KB_ROLLOFF * np.sinc(_KB_ROLLOFF * np.linspace(0.0, _KB_ZEROS, n + 1))
    return sps.windows.kaiser(2 * n + 1, _KB_BETA)[n:] * sinc


@lru_cache(maxsize=16)
def _kaiser_best_matrix(n_in: int, fs_in: float, fs_out: float) -> sparse.csr_matrix:
    """The (n_out, n_in) interpolation matrix of resampy's ``resample`` loop."""
    from scipy import sparse

    win = _kaiser_best_table()
    ratio = fs_out / fs_in
    n_out = int(n_in * fs_out / fs_in)
    if ratio < 1:
        win = ratio * win
    delta = np.diff(win, append=win[-1])
    scale = min(1.0, ratio)
    step = int(scale * _KB_TABLE)
    nwin = win.shape[0]
    t_out = np.arange(n_out) * (1.0 / ratio)
    n = t_out.astype(np.int64)
    rows, cols, vals = [], [], []
    for side in ("left", "right"):
        frac = scale * (t_out - n)
        if side == "right":
            frac = scale - frac
        index_frac = frac * _KB_TABLE
        offset = index_frac.astype(np.int64)
        eta = index_frac - offset
        n_taps = (nwin - offset) // step
        limit = np.minimum(n + 1, n_taps) if side == "left" else np.minimum(n_in - n - 1, n_taps)
        taps = np.arange(int(limit.max(initial=0)))
        if taps.size == 0:
            continue
        pos = offset[:, None] + taps[None, :] * step
        ok = taps[None, :] < limit[:, None]
        pos = np.where(ok, pos, 0)
        weight = win[pos] + eta[:, None] * delta[pos]
        src = n[:, None] - taps[None, :] if side == "left" else n[:, None] + taps[None, :] + 1
        r = np.broadcast_to(np.arange(n_out)[:, None], ok.shape)
        rows.append(r[ok])
        cols.append(src[ok])
        vals.append(weight[ok])
    return sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_out, n_in)
    )


def resample_kaiser_best(x: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Band-limited sinc resampling of the last axis to ``int(T * fs_out / fs_in)`` samples.

    The same arithmetic as ``resampy.resample(x, fs_in, fs_out, axis=-1)`` with its default
    ``kaiser_best`` filter: output sample ``t`` sits at input time ``t * fs_in / fs_out``; each
    is a sum of input samples weighted by a Kaiser-windowed sinc (roll-off 0.917 of the lower
    Nyquist rate, 50 zero crossings, linear interpolation in a 2**13-entry table); samples
    beyond the record count as zero. Computed in float64, returned as float32.
    """
    arr = np.asarray(x, dtype=np.float64)
    if fs_in == fs_out:
        return arr.astype(np.float32)
    t = arr.shape[-1]
    if int(t * fs_out / fs_in) < 1:
        raise ConfigError(f"{t} samples at {fs_in:g} Hz are too few to resample to {fs_out:g} Hz")
    mat = _kaiser_best_matrix(t, float(fs_in), float(fs_out))
    flat = arr.reshape(-1, t)
    out = (mat @ flat.T).T
    return np.ascontiguousarray(out.reshape(*arr.shape[:-1], mat.shape[0])).astype(np.float32)


Resampler = Callable[[np.ndarray, float, float], np.ndarray]


def windows_then_resample(
    x: np.ndarray,
    fs_in: float,
    fs_out: float,
    n_samples: int,
    resampler: Resampler,
    *,
    window: Literal["fit", "sliding"] = "fit",
    hop: int | None = None,
) -> np.ndarray:
    """Cut windows of ``n_samples / fs_out`` seconds at the input rate, then resample each.

    ``"fit"``: the first window of each record ``(N, L, n_samples)``; a record shorter than one
    window is resampled whole and zero-padded at the end. ``"sliding"``: windows every ``hop``
    samples of the model's rate (default: no overlap), a partial tail window zero-padded at the
    input rate, ``(N, W, L, n_samples)``. Every window is finally cropped/padded to exactly
    ``n_samples`` (rounding of non-integer rate ratios).

    Raises:
        ConfigError: for an unknown ``window`` or a non-positive ``hop``.
    """
    n_in = max(1, int(round(n_samples * fs_in / fs_out)))
    if window == "fit":
        if x.shape[-1] < n_in:
            return pp.fit_length(resampler(x, fs_in, fs_out), n_samples)
        cut = pp.fit_length(x, n_in)
    elif window == "sliding":
        if hop is not None and hop < 1:
            raise ConfigError(f"hop must be >= 1 sample, got {hop}")
        hop_in = None if hop is None else max(1, int(round(hop * fs_in / fs_out)))
        cut = pp.sliding_windows(x, n_in, hop=hop_in, pad_last=True)
    else:
        raise ConfigError(f"window must be 'fit' or 'sliding', got {window!r}")
    return pp.fit_length(resampler(cut, fs_in, fs_out), n_samples)
