"""``handcrafted``: interpretable ECG features in physical units — the "no deep learning" reference.

Every embedding dimension has a name (:meth:`HandcraftedEncoder.feature_names`, e.g.
``"V2:st_level"``) and a unit (:data:`FEATURES`). Groups, exposed as layers:

- ``amplitude`` (per lead, mV): std, 5/25/50/75/95th percentiles, peak-to-peak, skewness,
  excess kurtosis of the baseline-corrected signal.
- ``spectral`` (per lead): log10 band power (mV^2) of a Welch spectrum (2 s Hann segments, 50 %
  overlap) in 0.5-5, 5-15 and 15-40 Hz (P/T, QRS and high-frequency QRS/muscle ranges).
- ``rhythm`` (record): heart rate (bpm, 60 / median RR), SDNN, RMSSD (ms), pNN50 (%) and the
  number of beats found.
- ``morphology``: QRS width (ms, record) and per lead ST level (mV at J+60 ms relative to the
  PR baseline), QRS amplitude (mV, max - min within the QRS) and T amplitude (mV, signed
  extreme after the ST segment), measured on the median beat.

How beats are found (all steps vectorised over the batch): a multi-lead QRS energy signal
(leads band-passed 5-25 Hz, differentiated, squared and summed over leads; then a centred
100 ms moving average) is searched for local maxima at least 200 ms apart that exceed 30 % of
the record's typical QRS energy (the median of its 2 s block maxima, robust to single
artefacts); a candidate within 360 ms of the previous beat with less than half its energy is a
T wave and dropped (Pan & Tompkins 1985). Beats with a full window (-250..+450 ms) are
aligned on the energy peak and their sample-wise median forms one template per lead. QRS
onset/offset are the outer edges of the region where the template's spatial velocity (the
norm over leads of the derivative of the 40 Hz low-passed template) exceeds 10 % of its QRS
peak above the isoelectric level, dips shorter than 20 ms inside the complex bridged; J = offset.

Fill values (documented, never NaN): the heart rate needs 2 beats, SDNN, RMSSD and pNN50 need 3;
below that they are 0. Without a beat that has a full template window, or when the QRS
boundaries are not found within -150..+250 ms of the fiducial, all morphology features are 0.
``n_beats`` tells a downstream model when a fill may apply (0 for flat or near-flat records:
a typical QRS energy below 10 (mV/s)^2, i.e. noise under ~20 uV). A flat lead has skewness and
kurtosis 0; band powers are floored at 1e-10 mV^2 (log10 = -10).

Input contract: 500 Hz, any length of at least 0.5 s (>= 2 s for rhythm features to be
meaningful; 10 s is the usual), 12 leads,
baseline wander removed by a zero-phase 0.5 Hz high-pass (2nd-order Butterworth, which keeps
the ST segment intact, cf. the AHA recommendations on zero-phase filtering), no normalisation:
features are in mV, Hz, ms and bpm.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence

import numpy as np
import torch

from ecgprobe.data import preprocess as pp
from ecgprobe.data.beats import (
    BLOCK_S,
    ENV_WIN_S,
    MIN_ENERGY,
    REFRACTORY_S,
    T_GUARD_S,
    THRESHOLD,
    detect_beats,
)
from ecgprobe.data.leads import LEADS_12
from ecgprobe.encoders.base import FINAL_LAYER, Encoder, InputSpec
from ecgprobe.encoders.registry import ENCODERS
from ecgprobe.exceptions import ConfigError, IncompatibleInputError

__all__ = ["FEATURES", "GROUPS", "HANDCRAFTED_SPEC", "HandcraftedEncoder", "compute_features"]

HANDCRAFTED_SPEC = InputSpec(
    fs=500.0,
    leads=LEADS_12,
    n_samples=None,
    baseline="highpass",
    normalization="none",
    units="mV",
    notes="ecgprobe handcrafted features: zero-phase 0.5 Hz high-pass, physical units, any length",
)

#: Feature groups (the encoder's layers), in embedding order.
GROUPS: tuple[str, ...] = ("amplitude", "spectral", "rhythm", "morphology")
_BANDS: tuple[tuple[float, float], ...] = ((0.5, 5.0), (5.0, 15.0), (15.0, 40.0))
_PERCENTILES = (5, 25, 50, 75, 95)
_POWER_FLOOR = 1e-10

#: ``name -> (group, per_lead, unit, description)``, in embedding order within each group.
FEATURES: dict[str, tuple[str, bool, str, str]] = {
    "std": ("amplitude", True, "mV", "standard deviation"),
    **{f"p{q:02d}": ("amplitude", True, "mV", f"{q}th percentile") for q in _PERCENTILES},
    "ptp": ("amplitude", True, "mV", "peak-to-peak (max - min)"),
    "skewness": ("amplitude", True, "1", "skewness (0 for a flat lead)"),
    "kurtosis": ("amplitude", True, "1", "excess kurtosis (0 for a flat lead)"),
    **{
        f"bp_{lo:g}_{hi:g}hz": ("spectral", True, "log10 mV^2", f"Welch band power {lo:g}-{hi:g} Hz")
        for lo, hi in _BANDS
    },
    "heart_rate": ("rhythm", False, "bpm", "60 / median RR (0 with < 2 beats)"),
    "sdnn": ("rhythm", False, "ms", "standard deviation of RR (0 with < 3 beats)"),
    "rmssd": ("rhythm", False, "ms", "root mean square of successive RR differences (0 with < 3 beats)"),
    "pnn50": ("rhythm", False, "%", "successive RR differences > 50 ms (0 with < 3 beats)"),
    "n_beats": ("rhythm", False, "count", "beats detected in the record"),
    "qrs_width": ("morphology", False, "ms", "QRS onset to offset on the median beat (0: no beat)"),
    "st_level": ("morphology", True, "mV", "J+60 ms minus PR baseline on the median beat (0: no beat)"),
    "qrs_amplitude": ("morphology", True, "mV", "max - min within the QRS (0: no beat)"),
    "t_amplitude": ("morphology", True, "mV", "signed extreme after J+80 ms vs PR baseline (0: no beat)"),
}

# Timing constants (seconds); see the module docstring.
_PRE, _POST, _MIN_DURATION = 0.25, 0.45, 0.5
_ST_AFTER_J, _PR_BASE, _QRS_FRACTION, _QRS_GAP = 0.06, (0.03, 0.01), 0.10, 0.02


# ----------------------------------------------------------------------------- features
def _amplitude(x: np.ndarray) -> np.ndarray:
    """(B, L, T) -> (B, L, 9): std, percentiles, ptp, skewness, excess kurtosis."""
    x = np.asarray(x, dtype=np.float32)  # float32 sorts/multiplies twice as fast; sums in float64
    n = x.shape[-1]
    c = x - x.mean(axis=-1, keepdims=True, dtype=np.float64).astype(np.float32)
    c2 = c * c  # products, not c**3: float powers are an order of magnitude slower
    m2 = c2.mean(axis=-1, dtype=np.float64)
    m3 = (c2 * c).mean(axis=-1, dtype=np.float64)
    m4 = (c2 * c2).mean(axis=-1, dtype=np.float64)
    flat = m2 <= 1e-12
    safe = np.where(flat, 1.0, m2)
    skew = np.where(flat, 0.0, m3 / safe**1.5)
    kurt = np.where(flat, 0.0, m4 / safe**2 - 3.0)
    srt = np.sort(x, axis=-1)
    # numpy's default ("linear") percentile: value at virtual index q/100 * (n - 1)
    virt = np.asarray(_PERCENTILES, dtype=np.float64) / 100.0 * (n - 1)
    lo = np.floor(virt).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    frac = virt - lo
    pct = srt[..., lo] * (1.0 - frac) + srt[..., hi] * frac
    ptp = srt[..., -1].astype(np.float64) - srt[..., 0]
    return np.concatenate(
        [np.sqrt(m2)[..., None], pct, ptp[..., None], skew[..., None], kurt[..., None]], axis=-1
    )


def welch_psd(x: np.ndarray, fs: float, nper: int) -> tuple[np.ndarray, np.ndarray]:
    """One-sided Welch power spectral density along the last axis, equal to
    ``scipy.signal.welch(x, fs, nperseg=nper)`` (periodic Hann window, 50 % overlap, constant
    detrend per segment, density scaling), computed in one batched FFT instead of scipy's
    generic short-time-FFT path (about twice as fast on ECG batches)."""
    from scipy import signal as sps

    step = nper - nper // 2
    n_seg = 1 + (x.shape[-1] - nper) // step
    segs = np.lib.stride_tricks.sliding_window_view(x, nper, axis=-1)[..., : n_seg * step : step, :]
    win = sps.get_window("hann", nper).astype(np.float32)
    spec = np.fft.rfft((segs - segs.mean(axis=-1, keepdims=True)) * win, axis=-1)
    psd = (spec.real**2 + spec.imag**2).mean(axis=-2) / (fs * float((win.astype(np.float64) ** 2).sum()))
    psd[..., 1 : nper // 2 + (nper % 2)] *= 2.0  # one-sided: double all but DC (and Nyquist)
    return np.fft.rfftfreq(nper, 1.0 / fs), psd


def _spectral(x: np.ndarray, fs: float) -> np.ndarray:
    """(B, L, T) -> (B, L, 3): log10 Welch band powers."""
    nper = min(x.shape[-1], int(round(2 * fs)))
    freqs, pxx = welch_psd(np.asarray(x, dtype=np.float32), fs, nper)
    df = freqs[1] - freqs[0] if len(freqs) > 1 else fs
    out = [pxx[..., (freqs >= lo) & (freqs < hi)].sum(axis=-1, dtype=np.float64) * df for lo, hi in _BANDS]
    return np.log10(np.stack(out, axis=-1) + _POWER_FLOOR)


def _rhythm(peaks: np.ndarray, valid: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """(B, 5) rhythm features and the median RR in seconds (0 where undefined)."""
    rr = np.diff(peaks, axis=1) / fs
    rr_ok = valid[:, 1:] & valid[:, :-1]
    n_rr = rr_ok.sum(axis=1)
    rr_nan = np.where(rr_ok, rr, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows are filled below
        med = np.nanmedian(rr_nan, axis=1) if rr.shape[1] else np.full(len(rr), np.nan)
        sdnn = np.nanstd(rr_nan, axis=1, ddof=1) * 1000.0 if rr.shape[1] else med
        d = np.diff(rr_nan, axis=1)
        rmssd = np.sqrt(np.nanmean(d**2, axis=1)) * 1000.0 if d.shape[1] else med
        pnn50 = (
            np.nanmean(np.where(np.isnan(d), np.nan, np.abs(d) > 0.05), axis=1) * 100 if d.shape[1] else med
        )
    hr = np.where(n_rr >= 1, 60.0 / np.where(n_rr >= 1, med, 1.0), 0.0)
    two = n_rr >= 2
    feats = np.stack(
        [
            hr,
            np.where(two, sdnn, 0.0),
            np.where(two, rmssd, 0.0),
            np.where(two, pnn50, 0.0),
            valid.sum(axis=1).astype(np.float64),
        ],
        axis=1,
    )
    return np.nan_to_num(feats), np.where(n_rr >= 1, np.nan_to_num(med), 0.0)


def median_beats(
    x: np.ndarray, peaks: np.ndarray, valid: np.ndarray, fs: float
) -> tuple[np.ndarray, np.ndarray]:
    """Median beat per record and lead ``(B, L, W)`` over ``-250..+450 ms`` around each fiducial,
    and whether the record had any beat with a full window ``(B,)``."""
    b, _, t = x.shape
    pre, post = int(_PRE * fs), int(_POST * fs)
    offs = np.arange(-pre, post + 1)
    full = valid & (peaks - pre >= 0) & (peaks + post < t)
    idx = np.clip(peaks[:, :, None] + offs, 0, t - 1)  # (B, K, W)
    xt = np.ascontiguousarray(
        np.swapaxes(np.asarray(x, dtype=np.float32), 1, 2)
    )  # (B, T, L): rows gather fast
    beats = xt[np.arange(b)[:, None, None], idx]  # (B, K, W, L)
    # Median over the beats of each record: NaN-out the others, sort (NaN last) and pick the
    # middle of the n valid ones (much faster than np.nanmedian's generic path).
    srt = np.sort(np.where(full[:, :, None, None], beats, np.nan), axis=1)
    n = full.sum(axis=1)
    lo = np.maximum((n - 1) // 2, 0)[:, None, None, None]
    hi = np.maximum(n // 2, 0)[:, None, None, None]
    tmpl = 0.5 * (np.take_along_axis(srt, lo, 1) + np.take_along_axis(srt, hi, 1))[:, 0]  # (B, W, L)
    return np.moveaxis(np.nan_to_num(tmpl), -1, 1).astype(np.float64), n > 0


def _last_before(mask: np.ndarray, stop: np.ndarray, lo: int) -> np.ndarray:
    """Per row, the last index ``lo <= i < stop`` where ``mask`` holds (``lo - 1`` if none)."""
    pos = np.arange(mask.shape[1])
    ok = mask & (pos < stop[:, None]) & (pos >= lo)
    return np.where(ok, pos, lo - 1).max(axis=1)


def _first_after(mask: np.ndarray, start: np.ndarray, hi: int) -> np.ndarray:
    """Per row, the first index ``start < i <= hi`` where ``mask`` holds (``hi + 1`` if none)."""
    pos = np.arange(mask.shape[1])
    ok = mask & (pos > start[:, None]) & (pos <= hi)
    return np.where(ok, pos, hi + 1).min(axis=1)


def _morphology(tmpl: np.ndarray, has: np.ndarray, rr: np.ndarray, fs: float) -> np.ndarray:
    """(B, 1 + 3L): QRS width, then per lead ST level, QRS amplitude, T amplitude."""
    from scipy import ndimage

    b, _, w = tmpl.shape
    c = int(_PRE * fs)
    pos = np.arange(w)
    # Spatial velocity (mV/s) of the 40 Hz low-passed template: without the low-pass the
    # derivative of the residual noise is as large as the slopes at the QRS boundaries.
    smooth = pp.bandpass(tmpl, fs, None, min(40.0, 0.45 * fs), order=2).astype(np.float64)
    sv = np.sqrt((np.gradient(smooth, axis=-1) ** 2).sum(axis=1)) * fs
    near = np.abs(pos - c) <= int(0.06 * fs)
    peak = np.argmax(np.where(near, sv, -np.inf), axis=1)
    sv_max = sv[np.arange(b), peak]
    iso = np.percentile(sv, 10, axis=1)
    span = (sv_max - iso)[:, None]
    lo_lim, hi_lim = c - int(0.15 * fs), c + int(0.25 * fs)
    # The velocity dips briefly inside the QRS where the heart vector turns (Q->R->S); dips
    # shorter than _QRS_GAP are closed, so the boundaries are the outer edges of the complex
    # where the velocity falls below 10 % of its peak above the isoelectric level. (Longer
    # closing merges the ST/T slopes of low-voltage wide complexes into the QRS.)
    gap = np.ones((1, int(_QRS_GAP * fs) + 1), dtype=bool)
    low = ~ndimage.binary_closing(sv >= iso[:, None] + _QRS_FRACTION * span, structure=gap, border_value=1)
    onset = _last_before(low, peak, lo_lim)
    offset = _first_after(low, peak, hi_lim)
    found = (onset >= lo_lim) & (offset <= hi_lim)  # no boundary inside the search window: no beat
    onset, offset = np.maximum(onset, lo_lim), np.minimum(offset, hi_lim)
    width_ms = (offset - onset) / fs * 1000.0
    has = has & found

    def window_mean(start: np.ndarray, stop: np.ndarray) -> np.ndarray:
        m = (pos >= start[:, None]) & (pos < np.maximum(stop, start + 1)[:, None])
        return (tmpl * m[:, None, :]).sum(-1) / m.sum(-1)[:, None]

    base = window_mean(onset - int(_PR_BASE[0] * fs), onset - int(_PR_BASE[1] * fs))  # (B, L)
    j60 = np.clip(offset + int(_ST_AFTER_J * fs), 0, w - 1)
    st = tmpl[np.arange(b), :, j60] - base
    in_qrs = (pos >= onset[:, None]) & (pos <= offset[:, None])
    qrs_amp = np.where(in_qrs[:, None], tmpl, -np.inf).max(-1) - np.where(in_qrs[:, None], tmpl, np.inf).min(
        -1
    )
    t_end = c + np.minimum(int(_POST * fs), np.where(rr > 0, 0.7 * rr * fs, _POST * fs).astype(int))
    t_start = np.minimum(offset + int(0.08 * fs), t_end - 1)
    in_t = (pos >= t_start[:, None]) & (pos <= t_end[:, None])
    dev = np.where(in_t[:, None], tmpl - base[..., None], 0.0)
    t_amp = np.take_along_axis(dev, np.abs(dev).argmax(-1)[..., None], -1)[..., 0]
    out = np.concatenate([width_ms[:, None], st, qrs_amp, t_amp], axis=1)
    return np.where(has[:, None], np.nan_to_num(out, posinf=0.0, neginf=0.0), 0.0)


def compute_features(x: np.ndarray, fs: float) -> dict[str, np.ndarray]:
    """Every feature group of a batch ``(B, L, T)`` in mV (baseline already removed).

    Returns:
        ``{group: (B, D_group) float32}`` in :data:`GROUPS` order; per-lead features are laid
        out feature-major within a group (all leads of the first feature, then the next), as
        :meth:`HandcraftedEncoder.feature_names` lists them.

    Raises:
        ConfigError: for an array that is not ``(records, leads, samples)``.
        IncompatibleInputError: for records shorter than 0.5 s.

    Example:
        >>> x = np.zeros((2, 12, 5000), np.float32)
        >>> {k: v.shape for k, v in compute_features(x, 500.0).items()}["rhythm"]
        (2, 5)
    """
    x = np.asarray(x, dtype=np.float32)  # float32 halves the memory traffic; sums accumulate in float64
    if x.ndim != 3:
        raise ConfigError(f"handcrafted features need (records, leads, samples), got shape {x.shape}")
    if x.shape[-1] < int(_MIN_DURATION * fs):
        raise IncompatibleInputError(
            f"handcrafted features need records of at least {_MIN_DURATION:g} s; these have "
            f"{x.shape[-1] / fs:.3g} s ({x.shape[-1]} samples at {fs:g} Hz)"
        )
    b = x.shape[0]
    amp = _amplitude(x)  # (B, L, 9)
    spec = _spectral(x, fs)  # (B, L, 3)
    peaks, valid = detect_beats(x, fs)
    rhythm, rr = _rhythm(peaks, valid, fs)
    tmpl, has = median_beats(x, peaks, valid, fs)
    morph = _morphology(tmpl, has, rr, fs)
    groups = {
        "amplitude": np.moveaxis(amp, -1, 1).reshape(b, -1),
        "spectral": np.moveaxis(spec, -1, 1).reshape(b, -1),
        "rhythm": rhythm,
        "morphology": morph,
    }
    return {k: np.nan_to_num(v).astype(np.float32) for k, v in groups.items()}


# ------------------------------------------------------------------------------ encoder
class HandcraftedEncoder(Encoder):
    """Interpretable features as an encoder: layers are the feature groups, not differentiable."""

    family = "handcrafted"
    differentiable = False

    def feature_names(self, layer: str = FINAL_LAYER) -> list[str]:
        """One name per dimension of ``layer``: ``"<lead>:<feature>"`` for per-lead features,
        ``"<feature>"`` for record-level ones (units in :data:`FEATURES`).

        Example:
            >>> import ecgprobe
            >>> enc = ecgprobe.create_encoder("handcrafted", device="cpu")
            >>> enc.feature_names("rhythm")[0]
            'heart_rate'
        """
        groups = GROUPS if layer == FINAL_LAYER else (self._check_layer(layer),)
        names: list[str] = []
        for group in groups:
            for feat, (g, per_lead, _unit, _doc) in FEATURES.items():
                if g == group:
                    names += [f"{lead}:{feat}" for lead in self.spec.leads] if per_lead else [feat]
        return names

    def feature_units(self, layer: str = FINAL_LAYER) -> list[str]:
        """The unit of every dimension of ``layer`` (aligned with :meth:`feature_names`)."""
        return [FEATURES[name.rpartition(":")[2]][2] for name in self.feature_names(layer)]

    def layer_names(self) -> list[str]:
        return [*GROUPS, FINAL_LAYER]

    def _check_layer(self, layer: str) -> str:
        if layer not in GROUPS and layer != FINAL_LAYER:
            raise ConfigError(f"{self.name} has no layer {layer!r}; its layers are {self.layer_names()}")
        return layer

    def _features(self, x: torch.Tensor | np.ndarray) -> dict[str, np.ndarray]:
        arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        return compute_features(arr, self.spec.fs)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        groups = self._features(x)
        return torch.from_numpy(np.concatenate([groups[g] for g in GROUPS], axis=1)).to(self.device)

    def embed_layers(self, x: torch.Tensor | np.ndarray, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        want = [self._check_layer(name) for name in dict.fromkeys(layers)]
        groups = self._features(x)
        groups[FINAL_LAYER] = np.concatenate([groups[g] for g in GROUPS], axis=1)
        return {name: torch.from_numpy(groups[name]).to(self.device) for name in want}


#: Digest of the algorithm's version and constants: the "weights" of this encoder, so cached
#: embeddings are invalidated when the feature definitions change.
_ALGORITHM_SHA256 = hashlib.sha256(
    json.dumps(
        {
            "version": 1,
            "features": list(FEATURES),
            "bands": _BANDS,
            "constants": [
                *(ENV_WIN_S, REFRACTORY_S, T_GUARD_S, BLOCK_S, THRESHOLD),
                *(_PRE, _POST, _ST_AFTER_J, _PR_BASE, _QRS_FRACTION, _QRS_GAP, MIN_ENERGY),
            ],
        }
    ).encode()
).hexdigest()


def _embed_dim(n_leads: int) -> int:
    return sum(n_leads if per_lead else 1 for _g, per_lead, _u, _d in FEATURES.values())


@ENCODERS.register(
    "handcrafted",
    family="handcrafted",
    needs_checkpoint=False,
    checkpoint_format="none (no weights)",
    embed_dim=_embed_dim(len(LEADS_12)),
    spec=HANDCRAFTED_SPEC,
    pooling="features over the whole record (median beat for morphology)",
    layers=(*GROUPS, FINAL_LAYER),
    licence="part of ecgprobe",
    download="none",
    details=(
        "Interpretable per-lead amplitude statistics, Welch band powers, heart rate and HRV from "
        "multi-lead QRS-energy beat detection, QRS width, ST level (J+60 ms vs PR baseline), QRS and "
        "T amplitudes, in physical units; named dimensions via feature_names(). Not differentiable. "
        "Records without detectable beats get documented zero fills and n_beats = 0."
    ),
)
def create_handcrafted() -> HandcraftedEncoder:
    """Create the handcrafted-feature encoder (no options, no weights).

    Example:
        >>> import ecgprobe
        >>> enc = ecgprobe.create_encoder("handcrafted", device="cpu")
        >>> enc.layer_names()
        ['amplitude', 'spectral', 'rhythm', 'morphology', 'embedding']
    """
    return HandcraftedEncoder(
        name="handcrafted",
        spec=HANDCRAFTED_SPEC,
        embed_dim=_embed_dim(len(HANDCRAFTED_SPEC.leads)),
        pooling="features over the whole record (median beat for morphology)",
        weights_sha256=_ALGORITHM_SHA256,
        options={},
    )
