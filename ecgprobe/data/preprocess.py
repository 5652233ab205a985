"""Pure preprocessing functions over ECG arrays.

Every function takes an array whose *last* axis is time (``(T,)``, ``(L, T)`` or ``(N, L, T)``),
returns a new float32 array and never modifies its input. Each docstring states the formula it
applies, so that a model's input contract (:class:`ecgprobe.encoders.base.InputSpec`) can be
reproduced by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Literal

import numpy as np

from ecgprobe.data.leads import DERIVABLE, canonical_leads, derive_limb_leads
from ecgprobe.exceptions import ConfigError, IncompatibleInputError

__all__ = [
    "NORMALISATIONS",
    "bandpass",
    "fit_length",
    "normalize",
    "notch",
    "remove_baseline",
    "resample",
    "select_leads",
    "sliding_windows",
]

Normalisation = Literal[
    "none", "zscore_lead", "zscore_global", "minmax_lead", "minmax_global", "minmax_lead_sym", "rank"
]
NORMALISATIONS: tuple[str, ...] = (
    "none",
    "zscore_lead",
    "zscore_global",
    "minmax_lead",
    "minmax_global",
    "minmax_lead_sym",
    "rank",
)


def _f32(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def _rational(ratio: float, max_den: int = 1000) -> Fraction:
    frac = Fraction(ratio).limit_denominator(max_den)
    if frac.numerator == 0:
        raise ConfigError(f"resampling ratio {ratio} is too small to represent")
    return frac


def resample(x: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Resample along the last axis by polyphase filtering (any rational ratio).

    With ``fs_out / fs_in = up / down`` (reduced fraction, denominator <= 1000) the signal is
    upsampled by ``up``, low-pass filtered by a Kaiser-windowed FIR (cut-off
    ``min(1/up, 1/down) * Nyquist``, :func:`scipy.signal.resample_poly`) and downsampled by
    ``down``. Output length is ``ceil(T * up / down)``. Identity when the rates are equal.

    Raises:
        ConfigError: if either rate is not positive.
    """
    from scipy import signal as sps

    if fs_in <= 0 or fs_out <= 0:
        raise ConfigError(f"sampling rates must be positive, got fs_in={fs_in}, fs_out={fs_out}")
    if fs_in == fs_out:
        return _f32(x).copy()
    frac = _rational(fs_out / fs_in)
    y = sps.resample_poly(np.asarray(x, dtype=np.float64), frac.numerator, frac.denominator, axis=-1)
    return _f32(y)


def select_leads(
    x: np.ndarray,
    leads_in: Sequence[str],
    leads_out: Sequence[str],
    *,
    derive: bool = True,
) -> np.ndarray:
    """Reorder/select leads (axis ``-2``) to ``leads_out``, deriving limb leads when allowed.

    Missing III, aVR, aVL, aVF are derived from I and II when ``derive`` is true, by
    :func:`ecgprobe.data.leads.derive_limb_leads` (``III = II - I``, ``aVR = -(I+II)/2``,
    ``aVL = I - II/2``, ``aVF = II - I/2``). No other lead is ever invented.

    Raises:
        IncompatibleInputError: naming the leads that are missing and cannot be derived.
    """
    arr = np.asarray(x)
    lin = canonical_leads(list(leads_in))
    lout = canonical_leads(list(leads_out))
    if arr.shape[-2] != len(lin):
        raise ConfigError(f"signal has {arr.shape[-2]} leads but {len(lin)} lead names were given")
    pos = {name: i for i, name in enumerate(lin)}
    missing = [lead for lead in lout if lead not in pos]
    derivable = derive and "I" in pos and "II" in pos
    not_derivable = [lead for lead in missing if not (derivable and lead in DERIVABLE)]
    if not_derivable:
        hint = (
            "III, aVR, aVL and aVF can be derived from I and II, but other leads cannot be invented"
            if derive
            else "pass derive=True to compute limb leads from I and II"
        )
        raise IncompatibleInputError(
            f"leads {not_derivable} are required but the records only have {list(lin)}; {hint}. "
            "Use an encoder whose input contract needs fewer leads, or records that contain them."
        )
    derived = derive_limb_leads(arr[..., pos["I"], :], arr[..., pos["II"], :]) if missing else {}
    out = [arr[..., pos[lead], :] if lead in pos else derived[lead] for lead in lout]
    return _f32(np.stack(out, axis=-2))


def _sos_filtfilt(x: np.ndarray, sos: np.ndarray) -> np.ndarray:
    from scipy import signal as sps

    x64 = np.asarray(x, dtype=np.float64)
    padlen = min(3 * (2 * len(sos) + 1), x64.shape[-1] - 1)
    return _f32(sps.sosfiltfilt(sos, x64, axis=-1, padlen=max(padlen, 0)))


def bandpass(
    x: np.ndarray, fs: float, low: float | None, high: float | None, *, order: int = 4
) -> np.ndarray:
    """Zero-phase Butterworth band-pass (or high-/low-pass when one edge is ``None``).

    Designs an ``order``-th order Butterworth filter in second-order sections with pass band
    ``[low, high]`` Hz and applies it forwards and backwards (:func:`scipy.signal.sosfiltfilt`),
    so the effective magnitude response is ``|H(f)|^2`` and the phase is zero.

    Raises:
        ConfigError: if the edges are not ``0 < low < high < fs/2``.
    """
    from scipy import signal as sps

    nyq = fs / 2.0
    if low is None and high is None:
        return _f32(x).copy()
    if (low is not None and not 0 < low < nyq) or (high is not None and not 0 < high < nyq):
        raise ConfigError(f"filter edges low={low}, high={high} Hz must lie in (0, {nyq:g}) for fs={fs:g} Hz")
    if low is not None and high is not None and low >= high:
        raise ConfigError(f"band-pass needs low < high, got low={low}, high={high}")
    if low is None:
        sos = sps.butter(order, high, btype="lowpass", fs=fs, output="sos")
    elif high is None:
        sos = sps.butter(order, low, btype="highpass", fs=fs, output="sos")
    else:
        sos = sps.butter(order, [low, high], btype="bandpass", fs=fs, output="sos")
    return _sos_filtfilt(x, sos)


def notch(x: np.ndarray, fs: float, freq: float = 50.0, *, quality: float = 30.0) -> np.ndarray:
    """Remove power-line interference with a zero-phase IIR notch at ``freq`` Hz.

    Second-order notch (:func:`scipy.signal.iirnotch`) with ``Q = freq / bandwidth``, applied with
    :func:`scipy.signal.filtfilt`; use ``freq=60`` for North American recordings.
    """
    from scipy import signal as sps

    if not 0 < freq < fs / 2:
        raise ConfigError(f"notch frequency {freq} Hz must lie in (0, {fs / 2:g}) for fs={fs:g} Hz")
    b, a = sps.iirnotch(freq, quality, fs=fs)
    return _f32(sps.filtfilt(b, a, np.asarray(x, dtype=np.float64), axis=-1))


def remove_baseline(
    x: np.ndarray, fs: float, *, method: Literal["median", "highpass"] = "median", cutoff: float = 0.5
) -> np.ndarray:
    """Remove baseline wander.

    ``"median"``: subtract the baseline estimated by two cascaded median filters of 200 ms and
    600 ms (de Chazal et al. 2004): ``b = med_600(med_200(x))``, ``y = x - b``.
    ``"highpass"``: a zero-phase 2nd-order Butterworth high-pass at ``cutoff`` Hz.
    """
    if method == "highpass":
        return bandpass(x, fs, cutoff, None, order=2)
    if method != "median":
        raise ConfigError(f"baseline method must be 'median' or 'highpass', got {method!r}")
    arr = np.asarray(x, dtype=np.float32)
    w1 = int(round(0.2 * fs)) | 1
    w2 = int(round(0.6 * fs)) | 1
    from scipy.ndimage import median_filter

    size = (1,) * (arr.ndim - 1)
    base = median_filter(arr, size=(*size, w1), mode="reflect")
    base = median_filter(base, size=(*size, w2), mode="reflect")
    return _f32(arr - base)


def normalize(x: np.ndarray, method: str = "zscore_lead", *, eps: float = 1e-8) -> np.ndarray:
    """Normalise each record (axis ``-2`` leads, ``-1`` time; statistics never cross records).

    - ``"zscore_lead"``:  ``(x - mean_t) / (std_t + eps)`` per lead.
    - ``"zscore_global"``: ``(x - mean_{l,t}) / (std_{l,t} + eps)`` per record.
    - ``"minmax_lead"``: ``(x - min_t) / (max_t - min_t + eps)`` per lead, into [0, 1].
    - ``"minmax_global"``: the same with min/max over all leads and times, into [0, 1].
    - ``"minmax_lead_sym"``: ``2 (x - min_t) / (max_t - min_t + eps) - 1`` per lead, into [-1, 1].
    - ``"rank"``: each sample replaced by its rank within its lead, scaled to [-1, 1]:
      ``2 * rank / (T - 1) - 1`` (ties get their average rank); invariant to any monotone
      amplitude distortion.
    - ``"none"``: a float32 copy.

    Raises:
        ConfigError: for an unknown method.
    """
    arr = np.asarray(x, dtype=np.float32)
    if method == "none":
        return arr.copy()
    if method in ("zscore_lead", "minmax_lead", "minmax_lead_sym", "rank"):
        axes: tuple[int, ...] = (-1,)
    elif method in ("zscore_global", "minmax_global"):
        axes = (-2, -1)
    else:
        raise ConfigError(f"unknown normalisation {method!r}; choose from {list(NORMALISATIONS)}")
    if method.startswith("zscore"):
        mean = arr.mean(axis=axes, keepdims=True, dtype=np.float64)
        std = arr.std(axis=axes, keepdims=True, dtype=np.float64)
        return _f32((arr - mean) / (std + eps))
    if method == "rank":
        from scipy.stats import rankdata

        t = arr.shape[-1]
        ranks = rankdata(arr, axis=-1, method="average") - 1.0
        return _f32(2.0 * ranks / max(t - 1, 1) - 1.0)
    lo = arr.min(axis=axes, keepdims=True)
    hi = arr.max(axis=axes, keepdims=True)
    unit = (arr - lo) / (hi - lo + eps)
    return _f32(2.0 * unit - 1.0) if method == "minmax_lead_sym" else _f32(unit)


def fit_length(
    x: np.ndarray,
    n_samples: int,
    *,
    align: Literal["start", "center"] = "start",
    pad_value: float = 0.0,
) -> np.ndarray:
    """Crop or pad the last axis to exactly ``n_samples``.

    Longer signals keep ``x[..., s:s+n]`` with ``s = 0`` (``align="start"``) or
    ``s = (T - n) // 2`` (``"center"``); shorter ones are padded at the end with ``pad_value``.
    """
    arr = np.asarray(x, dtype=np.float32)
    t = arr.shape[-1]
    if n_samples < 1:
        raise ConfigError(f"n_samples must be >= 1, got {n_samples}")
    if t == n_samples:
        return arr.copy()
    if t > n_samples:
        s = 0 if align == "start" else (t - n_samples) // 2
        return arr[..., s : s + n_samples].copy()
    pad = [(0, 0)] * (arr.ndim - 1) + [(0, n_samples - t)]
    return np.pad(arr, pad, constant_values=pad_value)


def sliding_windows(
    x: np.ndarray, window: int, *, hop: int | None = None, pad_last: bool = False
) -> np.ndarray:
    """Cut the last axis into windows of ``window`` samples every ``hop`` samples (default: no overlap).

    Returns ``(..., W, L, window)`` for input ``(..., L, T)`` — i.e. a new window axis before
    the lead axis, with ``W = 1 + (T - window) // hop``. With ``pad_last`` a final partial window
    is zero-padded so the tail of the record is not dropped. A record shorter than one window
    is zero-padded to one window.
    """
    hop = window if hop is None else hop
    if window < 1 or hop < 1:
        raise ConfigError(f"window and hop must be >= 1, got window={window}, hop={hop}")
    arr = np.asarray(x, dtype=np.float32)
    t = arr.shape[-1]
    if t < window:
        arr = fit_length(arr, window)
        t = window
    n_win = 1 + (t - window) // hop
    if pad_last and (t - window) % hop:
        n_win += 1
        arr = fit_length(arr, (n_win - 1) * hop + window)
    view = np.lib.stride_tricks.sliding_window_view(arr, window, axis=-1)[..., ::hop, :][..., :n_win, :]
    # view: (..., L, W, window) -> (..., W, L, window)
    return np.ascontiguousarray(np.moveaxis(view, -2, -3))
