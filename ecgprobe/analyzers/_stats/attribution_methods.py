"""The mechanics behind :mod:`ecgprobe.analyzers.input_attribution`: the encoder plus a linear
head as one differentiable model, a guard restoring the model's state after attribution,
reference inputs (baselines), gradient attributions (captum), exact Shapley values over lead
occlusions, model randomisation for the sanity check, and beat alignment of saliency.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

from ecgprobe.data import preprocess as pp
from ecgprobe.exceptions import ConfigError, DependencyError

BASELINES = ("zeros", "mean", "smooth")
GRADIENT_METHODS = ("ig", "gradshap")
_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_backward_hooks",
    "_backward_pre_hooks",
)


# ------------------------------------------------------------------------------- the model
def torch_modules(encoder: Any) -> list[nn.Module]:
    """The ``nn.Module`` objects an encoder holds (``TorchEncoder.module`` and any others)."""
    seen: dict[int, nn.Module] = {}
    for value in vars(encoder).values():
        if isinstance(value, nn.Module):
            seen.setdefault(id(value), value)
    return list(seen.values())


class HeadedModel(nn.Module):
    """Encoder embedding followed by the probe's linear head: ``(B, L, n) -> (B, C)`` logits."""

    def __init__(self, encoder: Any, W: np.ndarray, b: np.ndarray) -> None:
        super().__init__()
        self.encoder = encoder  # an Encoder (not a Module): its own modules stay its own
        dev = encoder.device
        self.register_buffer("W", torch.as_tensor(W, dtype=torch.float32, device=dev))
        self.register_buffer("b", torch.as_tensor(b, dtype=torch.float32, device=dev))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder._forward(x) @ self.W.T + self.b


def _hook_snapshot(modules: list[nn.Module]) -> dict[tuple[int, str], set[int]]:
    snap = {}
    for root in modules:
        for m in root.modules():
            for name in _HOOK_DICTS:
                d = getattr(m, name, None)
                if d is not None:
                    snap[(id(m), name)] = set(d.keys())
    return snap


def _remove_new_hooks(modules: list[nn.Module], before: dict[tuple[int, str], set[int]]) -> None:
    for root in modules:
        for m in root.modules():
            for name in _HOOK_DICTS:
                d = getattr(m, name, None)
                if d is None:
                    continue
                for key in set(d.keys()) - before.get((id(m), name), set()):
                    del d[key]


@contextmanager
def attribution_mode(encoder: Any) -> Iterator[None]:
    """Gradients on (even inside ``torch.inference_mode``), parameters frozen, modules in eval
    mode; on exit — also after an error — ``requires_grad`` flags, train/eval modes are restored
    and every module hook added meanwhile (captum adds some for some methods) is removed."""
    modules = torch_modules(encoder)
    params = [p for m in modules for p in m.parameters()]
    flags = [p.requires_grad for p in params]
    modes = [(m, m.training) for root in modules for m in root.modules()]
    hooks = _hook_snapshot(modules)
    try:
        for p in params:
            p.requires_grad_(False)
        for m in modules:
            m.eval()
        with torch.inference_mode(False), torch.enable_grad():
            yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)
        for m, training in modes:
            m.train(training)
        _remove_new_hooks(modules, hooks)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch and NumPy's global generator (captum draws from both), restoring both after."""
    state = np.random.get_state()  # noqa: NPY002  captum draws from the legacy global generator
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)  # noqa: NPY002
        try:
            yield
        finally:
            np.random.set_state(state)  # noqa: NPY002


# ---------------------------------------------------------------------------- baselines
def make_baseline(x: np.ndarray, kind: str, fs: float, smooth_hz: float) -> np.ndarray:
    """The reference input per example, same shape as ``x`` ``(..., L, n)``.

    ``zeros``: all zeros. ``mean``: each lead's mean over the window, held constant (keeps the
    lead's offset, removes every wave). ``smooth``: a zero-phase low-pass copy at ``smooth_hz``
    (keeps the slow baseline and the broad outline of T waves, removes QRS complexes and other
    sharp detail).

    Raises:
        ConfigError: unknown kind, or a cut-off outside (0, fs/2).
    """
    if kind == "zeros":
        return np.zeros_like(x, dtype=np.float32)
    if kind == "mean":
        return np.broadcast_to(x.mean(axis=-1, keepdims=True), x.shape).astype(np.float32)
    if kind == "smooth":
        return pp.bandpass(x, fs, None, smooth_hz, order=2)
    raise ConfigError(f"baseline {kind!r} is not one of {list(BASELINES)}")


# ----------------------------------------------------------------- gradient attributions
def _captum() -> Any:
    try:
        import captum.attr
    except ImportError:
        raise DependencyError(
            "gradient attributions need captum, which ecgprobe depends on but is missing from this "
            "environment: pip install 'captum>=0.7' (or reinstall ecgprobe)"
        ) from None
    return captum.attr


def gradient_attribution(
    model: HeadedModel,
    x: np.ndarray,
    baseline: np.ndarray,
    target: int,
    *,
    method: str,
    n_steps: int,
    n_samples: int,
    stdev: float,
    batch_size: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Attributions ``(k, L, n)`` of output ``target`` and convergence deltas ``(k,)``.

    ``ig``: Integrated Gradients (Gauss-Legendre, ``n_steps``), each example against its own
    baseline; delta = sum(attr) − (f(x) − f(baseline)) (completeness). ``gradshap``: GradientSHAP
    with ``n_samples`` random points on the path from the example's baseline to the example with
    Gaussian noise of std ``stdev`` added to the input; delta = the mean over those samples.
    """
    attr_mod = _captum()
    dev = model.W.device
    xt = torch.as_tensor(x, dtype=torch.float32, device=dev)
    bt = torch.as_tensor(baseline, dtype=torch.float32, device=dev)
    if method == "ig":
        ig = attr_mod.IntegratedGradients(model)
        attr, delta = ig.attribute(
            xt,
            baselines=bt,
            target=target,
            n_steps=n_steps,
            internal_batch_size=batch_size,
            return_convergence_delta=True,
        )
        return attr.detach().cpu().numpy(), delta.detach().cpu().numpy()
    gs = attr_mod.GradientShap(model)
    attrs, deltas = [], []
    with seeded(seed):
        # GradientSHAP draws baselines from a shared distribution; ours is per example, so one at a time
        for i in range(len(xt)):
            a, d = gs.attribute(
                xt[i : i + 1],
                baselines=bt[i : i + 1],
                n_samples=n_samples,
                stdevs=stdev,
                target=target,
                return_convergence_delta=True,
            )
            attrs.append(a.detach().cpu().numpy()[0])
            deltas.append(float(d.detach().cpu().mean()))
    return np.stack(attrs), np.asarray(deltas)


# ------------------------------------------------------------ exact lead Shapley values
def shapley_weights(n: int) -> np.ndarray:
    """``w[s] = s! (n − s − 1)! / n!`` for coalition sizes ``s = 0..n−1``."""
    return np.array([math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)])


def shapley_from_values(v: np.ndarray, n: int) -> np.ndarray:
    """Exact Shapley values from the value of every coalition.

    Args:
        v: ``(2**n, ...)`` values; row ``m`` is the coalition whose players are the set bits of ``m``.
        n: number of players.

    Returns:
        ``(n, ...)``: ``φ_i = Σ_{S ∌ i} w(|S|) (v(S ∪ {i}) − v(S))``; they sum to ``v(all) − v(∅)``.
    """
    masks = np.arange(2**n)
    sizes = np.array([bin(m).count("1") for m in masks])
    w = shapley_weights(n)
    out = np.empty((n, *v.shape[1:]), dtype=np.float64)
    for i in range(n):
        without = masks[(masks >> i) & 1 == 0]
        gain = v[without | (1 << i)] - v[without]
        out[i] = np.tensordot(w[sizes[without]], gain, axes=(0, 0))
    return out


def lead_coalition_values(
    value_fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, baseline: np.ndarray, batch_size: int
) -> np.ndarray:
    """``(2**L, C)`` outputs for every subset of present leads (an absent lead = its baseline)."""
    return _values_of(value_fn, x, baseline, np.arange(2 ** x.shape[0]), batch_size)


def _values_of(
    value_fn: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    baseline: np.ndarray,
    masks: np.ndarray,
    batch_size: int,
) -> np.ndarray:
    """Outputs for the coalitions ``masks`` (bit ``i`` set: lead ``i`` present)."""
    present = ((masks[:, None] >> np.arange(x.shape[0])[None, :]) & 1).astype(bool)
    out = []
    for start in range(0, len(masks), batch_size):
        keep = present[start : start + batch_size, :, None]
        out.append(value_fn(np.where(keep, x[None], baseline[None]).astype(np.float32)))
    return np.concatenate(out, axis=0)


def sampled_lead_shapley(
    value_fn: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    baseline: np.ndarray,
    *,
    n_permutations: int,
    seed: int,
    batch_size: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lead Shapley values estimated from random permutations, with their standard errors.

    Permutation sampling (Castro et al. 2009) with antithetic pairs: each drawn order is used
    with its reverse (Mitchell et al. 2022, "Sampling permutations for Shapley value
    estimation"), which cancels much of the variance. Every permutation's marginal contributions
    sum to ``v(all) − v(∅)``, so the estimate satisfies efficiency exactly. Each coalition is
    evaluated once however many permutations share it.

    Returns:
        ``(phi, se, values_used)``: ``phi`` and its standard error ``se`` (both ``(L, C)``; the
        SE is the spread of the antithetic-pair means over √pairs), and how many coalitions
        were evaluated.
    """
    n = x.shape[0]
    rng = np.random.default_rng(seed)
    pairs = max(1, n_permutations // 2)
    orders = []
    for _ in range(pairs):
        perm = rng.permutation(n)
        orders += [perm, perm[::-1]]
    bits = 1 << np.asarray(orders, dtype=np.int64)  # (P, L)
    prefixes = np.concatenate([np.zeros((len(orders), 1), np.int64), np.cumsum(bits, axis=1)], axis=1)
    masks, where = np.unique(prefixes, return_inverse=True)
    v = _values_of(value_fn, x, baseline, masks, batch_size)
    vp = v[where.reshape(prefixes.shape)]  # (P, L+1, C)
    marginal = np.diff(vp, axis=1)  # (P, L, C): contribution of the k-th lead of each order
    phi_p = np.empty_like(marginal)
    rows = np.arange(len(orders))[:, None]
    phi_p[rows, np.asarray(orders)] = marginal  # by lead
    pair_means = phi_p.reshape(pairs, 2, n, -1).mean(axis=1)
    phi = pair_means.mean(axis=0)
    se = pair_means.std(axis=0, ddof=1) / np.sqrt(pairs) if pairs > 1 else np.full_like(phi, np.nan)
    return phi, se, np.asarray(len(masks))


def lead_shapley(
    value_fn: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    baseline: np.ndarray,
    *,
    mode: str,
    n_permutations: int,
    seed: int,
    batch_size: int,
) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Lead Shapley values ``(L, C)``, exact or sampled, and their standard errors.

    ``mode="auto"`` evaluates all ``2**L`` coalitions when that costs no more than the sampled
    estimate (``L ≤ 8`` for 32 permutations) and samples otherwise; ``"exact"`` and
    ``"sampled"`` force one. Returns ``(phi, se, how)`` with ``se`` None for exact values.
    """
    n = x.shape[0]
    exact = mode == "exact" or (mode == "auto" and 2**n <= n_permutations * max(n - 1, 1) + 2)
    if exact:
        v = lead_coalition_values(value_fn, x, baseline, batch_size)
        if not np.isfinite(v).all():
            raise FloatingPointError("non-finite coalition values")
        return shapley_from_values(v, n), None, "exact"
    phi, se, _ = sampled_lead_shapley(
        value_fn, x, baseline, n_permutations=n_permutations, seed=seed, batch_size=batch_size
    )
    if not (np.isfinite(phi).all()):
        raise FloatingPointError("non-finite coalition values")
    return phi, se, "sampled"


# ------------------------------------------------------------------ model randomisation
def randomised_copy(encoder: Any, seed: int) -> Any | None:
    """A deep copy of ``encoder`` with every parameter re-initialised (``None`` without any).

    Modules with ``reset_parameters`` use their own initialisation; parameters outside those
    (e.g. learned tokens) are redrawn from a normal distribution with the original's std.
    """
    with torch.inference_mode(False):  # copies made in inference mode could not be differentiated
        rand = copy.deepcopy(encoder)
    modules = torch_modules(rand)
    params = [p for m in modules for p in m.parameters()]
    if not params:
        return None
    covered: set[int] = set()
    with seeded(seed), torch.inference_mode(False), torch.no_grad():
        for root in modules:
            for m in root.modules():
                reset = getattr(m, "reset_parameters", None) or getattr(m, "_reset_parameters", None)
                own = list(m.parameters(recurse=False))
                if callable(reset) and own:
                    reset()
                    covered.update(id(p) for p in own)
        for p in params:
            if id(p) not in covered and p.numel() > 1:
                p.normal_(0.0, float(p.std()) or 0.02)
    return rand


# ------------------------------------------------------------------------- beat alignment
def detect_r_peaks(x: np.ndarray, fs: float) -> np.ndarray:
    """QRS locations (sample indices) of one multi-lead window ``(L, n)``: the beat detector of the
    ``handcrafted`` encoder (multi-lead QRS energy, Pan & Tompkins 1985) applied to the window."""
    from ecgprobe.data.beats import detect_beats

    peaks, valid = detect_beats(np.asarray(x, dtype=np.float64)[None], fs)
    return peaks[0][valid[0]].astype(np.int64)


def beat_offsets(fs: float, window_ms: tuple[float, float]) -> np.ndarray:
    """Sample offsets of the beat window around R (e.g. −300…+500 ms)."""
    lo, hi = round(window_ms[0] * fs / 1000), round(window_ms[1] * fs / 1000)
    return np.arange(lo, hi + 1)


def beat_average(signal: np.ndarray, peaks: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, int]:
    """Mean of ``signal[..., r + offsets]`` over the peaks whose window lies inside the signal;
    NaN (and 0 beats) when none does."""
    n = signal.shape[-1]
    ok = [int(r) for r in peaks if r + offsets[0] >= 0 and r + offsets[-1] < n]
    if not ok:
        return np.full((*signal.shape[:-1], len(offsets)), np.nan), 0
    idx = np.asarray(ok)[:, None] + offsets[None, :]  # (beats, W)
    return signal[..., idx].mean(axis=-2), len(ok)


def beat_saliency(
    maps: np.ndarray, peaks: list[np.ndarray], offsets: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Beat-aligned relative saliency of attribution maps ``(K, L, n)``.

    The saliency of lead ``l`` at time ``t`` is ``|attr| / mean_t Σ_l |attr|`` (so summed over leads
    its mean over the window is 1); it is averaged over the complete beat windows of each example.

    Returns:
        ``(K, W)`` summed over leads, ``(K, L, W)`` per lead, and the number of beats ``(K,)``.
    """
    K, L, _ = maps.shape
    total = np.full((K, len(offsets)), np.nan)
    per_lead = np.full((K, L, len(offsets)), np.nan)
    n_beats = np.zeros(K, dtype=np.int64)
    sal = np.abs(maps)
    for k in range(K):
        denom = sal[k].sum(axis=0).mean()
        if denom > 0:
            per_lead[k], n_beats[k] = beat_average(sal[k] / denom, peaks[k], offsets)
            total[k] = per_lead[k].sum(axis=0)
    return total, per_lead, n_beats


# ---------------------------------------------------------------------------- aggregation
def label_mean(values: np.ndarray, labels: np.ndarray, n_labels: int) -> np.ndarray:
    """NaN-aware mean of ``values`` rows per label ``(n_labels, ...)``; NaN for labels without rows."""
    out = np.full((n_labels, *values.shape[1:]), np.nan)
    for c in range(n_labels):
        rows = values[labels == c]
        if len(rows) and np.isfinite(rows).any():
            with warnings.catch_warnings():  # all-NaN positions (e.g. no complete beat) stay NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                out[c] = np.nanmean(rows, axis=0)
    return out


def lead_importance(
    lead_abs: np.ndarray, labels: np.ndarray, n_labels: int, seed: int, n_resamples: int = 200
) -> tuple[np.ndarray, np.ndarray]:
    """Per label, the mean over its examples of each example's |attribution| per lead normalised
    to sum 1 (``(C, L)``), and 95 % percentile-bootstrap CIs over examples (``(C, L, 2)``)."""
    tot = lead_abs.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(tot > 0, lead_abs / tot, np.nan)
    imp = label_mean(share, labels, n_labels)
    ci = np.full((*imp.shape, 2), np.nan)
    rng = np.random.default_rng(seed)
    for c in range(n_labels if n_resamples else 0):
        rows = share[labels == c]
        rows = rows[np.isfinite(rows).all(axis=1)]
        if len(rows) >= 2:
            boots = rows[rng.integers(0, len(rows), size=(n_resamples, len(rows)))].mean(axis=1)
            ci[c] = np.quantile(boots, [0.025, 0.975], axis=0).T
    return imp, ci


def pad_ragged(rows: list[np.ndarray]) -> np.ndarray:
    """Integer rows of different lengths as one ``(n, max_len)`` array padded with −1."""
    out = np.full((len(rows), max([len(r) for r in rows] + [1])), -1, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (NaN when either side is constant)."""
    from scipy.stats import spearmanr

    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)
