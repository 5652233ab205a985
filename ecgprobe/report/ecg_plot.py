"""The 12-lead ECG on the standard printed grid, optionally coloured by saliency (pure; ``ax=``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ecgprobe.report.figures import new_axes

__all__ = ["STANDARD_LAYOUT", "plot_ecg"]

#: The standard printed 12-lead layout: 3 rows x 4 columns of 2.5 s, each column a later 2.5 s.
STANDARD_LAYOUT: tuple[tuple[str, ...], ...] = (
    ("I", "aVR", "V1", "V4"),
    ("II", "aVL", "V2", "V5"),
    ("III", "aVF", "V3", "V6"),
)
_PAPER_MINOR = "#f6c9c9"
_PAPER_MAJOR = "#e89a9a"


def _saliency_cmap() -> Any:
    # Dark grey (unimportant, still readable on ECG paper) to magenta to orange (most important).
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list("ecgprobe_saliency", ["#3b3b3b", "#b5177d", "#ff7b00"])


def _paper(ax: Any, x1: float, y0: float, y1: float, mv_per_unit: float) -> None:
    """ECG paper: 0.04 s x 0.1 mV small squares, 0.2 s x 0.5 mV large ones (in mV units)."""
    for step, color, lw in ((0.04, _PAPER_MINOR, 0.3), (0.2, _PAPER_MAJOR, 0.6)):
        for x in np.arange(0.0, x1 + 1e-9, step):
            ax.axvline(x, color=color, lw=lw, zorder=0)
        ystep = (0.1 if step == 0.04 else 0.5) / mv_per_unit
        for y in np.arange(np.floor(y0 / ystep) * ystep, y1 + 1e-9, ystep):
            ax.axhline(y, color=color, lw=lw, zorder=0)


def plot_ecg(
    signal: np.ndarray,
    fs: float,
    leads: Sequence[str],
    *,
    saliency: np.ndarray | None = None,
    units: str = "mV",
    ax: Any = None,
    title: str = "",
    rhythm_lead: str = "II",
) -> Any:
    """A 12-lead ECG on the standard printed grid, optionally coloured by saliency.

    The 12 leads are laid out 3 x 4 (each column a consecutive quarter of the record) with a
    rhythm strip of ``rhythm_lead`` below; other lead sets are stacked. On mV signals the
    background is ECG paper (25 mm/s, 10 mm/mV proportions); otherwise plain.

    Args:
        signal: ``(L, n)`` samples.
        fs: sampling rate in Hz.
        leads: the ``L`` lead names.
        saliency: optional ``(L, n)`` non-negative importance; the trace is coloured by it
            (scaled to its 99th percentile over the record).
        units: the signal's units (``"mV"`` draws ECG paper).
        ax: the Axes to draw on.
        title: the Axes title.
        rhythm_lead: the lead of the rhythm strip.

    Returns:
        The Axes (its last collection is the saliency-coloured trace, for a colour bar).

    Example:
        >>> ax = plot_ecg(np.zeros((12, 1000)), 100.0, ["I", "II", "III", "aVR", "aVL", "aVF",
        ...     "V1", "V2", "V3", "V4", "V5", "V6"])
    """
    from matplotlib.collections import LineCollection

    ax = ax if ax is not None else new_axes((10.0, 6.0))
    sig = np.asarray(signal, dtype=np.float64)
    leads = list(leads)
    n = sig.shape[1]
    index = {name: i for i, name in enumerate(leads)}
    standard = all(name in index for row in STANDARD_LAYOUT for name in row)
    sal = None if saliency is None else np.abs(np.asarray(saliency, dtype=np.float64))
    scale = 1.0
    if sal is not None:
        top = float(np.nanpercentile(sal, 99)) if np.isfinite(sal).any() else 0.0
        scale = top if top > 0 else 1.0
    span = float(np.nanpercentile(np.abs(sig), 99.5)) if sig.size else 1.0
    row_h = max(2.4 * span, 1e-6) if units != "mV" else max(3.0, 2.4 * span)

    # (lead, start sample, stop sample, x offset, y offset) of each trace
    panels: list[tuple[str, int, int, float, float]] = []
    if standard:
        quarter = n // 4
        for r, row in enumerate(STANDARD_LAYOUT):
            for c, name in enumerate(row):
                panels.append((name, c * quarter, (c + 1) * quarter, c * quarter / fs, -r * row_h))
        if rhythm_lead in index:
            panels.append((rhythm_lead, 0, n, 0.0, -3 * row_h))
    else:
        for r, name in enumerate(leads):
            panels.append((name, 0, n, 0.0, -r * row_h))
    segments, values = [], []
    for name, a, b, x0, y0 in panels:
        i = index[name]
        t = x0 + np.arange(b - a) / fs
        y = y0 + sig[i, a:b]
        pts = np.column_stack([t, y])
        segments.append(np.stack([pts[:-1], pts[1:]], axis=1))
        if sal is not None:
            s = sal[i, a:b]
            values.append(np.clip(0.5 * (s[:-1] + s[1:]) / scale, 0, 1))
        label = name if not (standard and b - a == n) else f"{name} (rhythm)"
        ax.text(x0 + 0.03, y0 + 0.42 * row_h, label, fontsize=7.5, va="center", ha="left", color="#222")
        if standard and a > 0 and b - a < n:  # the small separator of the printed layout
            ax.plot([x0, x0], [y0 - 0.25 * row_h, y0 + 0.25 * row_h], color="#222", lw=0.8)
    lc = LineCollection(np.concatenate(segments), linewidths=0.8)
    if sal is not None:
        lc.set_array(np.concatenate(values))
        lc.set_cmap(_saliency_cmap())
        lc.set_clim(0.0, 1.0)
        lc.set_linewidths(0.6 + 1.2 * np.concatenate(values))
    else:
        lc.set_color("#111111")
    x1 = n / fs
    y_lo = min(p[4] for p in panels) - 0.5 * row_h
    y_hi = 0.5 * row_h
    if units == "mV":
        _paper(ax, x1, y_lo, y_hi, 1.0)
        ax.grid(False)
    ax.add_collection(lc)
    ax.set_xlim(0, x1)
    ax.set_ylim(y_lo, y_hi)
    ax.set_yticks([])
    ax.set_xlabel("time (s)")
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    if units == "mV":
        ax.set_aspect(0.4 / 1.0)  # 25 mm/s and 10 mm/mV: 1 mV is as tall as 0.4 s is wide
    if title:
        ax.set_title(title, loc="left")
    return ax
