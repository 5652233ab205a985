"""The 12-lead ECG on the standard printed grid, optionally coloured by saliency (pure; ``ax=``).

:func:`plot_ecg_standard` draws a recording in mV as it is printed (3 x 4 leads of 2.5 s, a lead-II
rhythm strip, a 1 mV calibration pulse, ECG paper at 25 mm/s and 10 mm/mV); :func:`plot_ecg` draws
any array (a model's normalised input included) in the same arrangement without physical units.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ecgprobe.exceptions import ConfigError
from ecgprobe.report.figures import new_axes

__all__ = ["STANDARD_LAYOUT", "plot_ecg", "plot_ecg_standard", "standard_figsize"]

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


def _saliency_scale(sal: np.ndarray | None) -> float:
    """The 99th percentile of |saliency| over the record (1 where there is none): it maps to 1."""
    if sal is None or not np.isfinite(sal).any():
        return 1.0
    top = float(np.nanpercentile(sal, 99))
    return top if top > 0 else 1.0


def _trace(segments: list[np.ndarray], values: list[np.ndarray] | None) -> Any:
    """One line collection of the ``(m, 2, 2)`` segments; with ``values`` (saliency in [0, 1] per
    segment, NaN where there is none) coloured and thickened by them, else black."""
    from matplotlib.collections import LineCollection

    lc = LineCollection(np.concatenate(segments), linewidths=0.8)
    if values is None:
        lc.set_color("#111111")
        return lc
    v = np.concatenate(values)
    cmap = _saliency_cmap().with_extremes(bad="#111111")
    lc.set_array(np.ma.masked_invalid(v))
    lc.set_cmap(cmap)
    lc.set_clim(0.0, 1.0)
    lc.set_linewidths(np.where(np.isfinite(v), 0.6 + 1.2 * np.nan_to_num(v), 0.8))
    return lc


def _paper(ax: Any, x1: float, y0: float, y1: float, mv_per_unit: float) -> None:
    """ECG paper: 0.04 s x 0.1 mV small squares, 0.2 s x 0.5 mV large ones (in mV units)."""
    paper_lines(ax, 0.0, x1, y0, y1, ystep=0.1 / mv_per_unit)


def _multiples(lo: float, hi: float, step: float) -> np.ndarray:
    """Every multiple of ``step`` in ``[lo, hi]``, computed from integers (no drift)."""
    k = np.arange(np.ceil(lo / step - 1e-9), np.floor(hi / step + 1e-9) + 1)
    return k * step


def paper_lines(ax: Any, x0: float, x1: float, y0: float, y1: float, *, ystep: float = 0.1) -> None:
    """The ECG paper grid of ``[x0, x1] x [y0, y1]`` as two line collections under the trace:
    small squares every 0.04 s x ``ystep`` (gid ``paper-minor``), large ones every 0.2 s x
    ``5 * ystep`` (gid ``paper-major``).

    Two collections instead of ~400 tick or axline artists: drawing a 12-lead page costs a
    few milliseconds instead of seconds, and the picture is the same.
    """
    from matplotlib.collections import LineCollection

    for gid, xstep, ys, color, lw in (
        ("paper-minor", 0.04, ystep, _PAPER_MINOR, 0.3),
        ("paper-major", 0.2, 5 * ystep, _PAPER_MAJOR, 0.6),
    ):
        xs, yv = _multiples(x0, x1, xstep), _multiples(y0, y1, ys)
        segments = [((x, y0), (x, y1)) for x in xs] + [((x0, y), (x1, y)) for y in yv]
        ax.add_collection(LineCollection(segments, colors=color, linewidths=lw, zorder=0, gid=gid))


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
    """Any ``(L, n)`` array (a model's normalised input included) on the 12-lead grid, optionally
    coloured by saliency, on one Axes; a recording in mV is drawn by :func:`plot_ecg_standard`.

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
    ax = ax if ax is not None else new_axes((10.0, 6.0))
    sig = np.asarray(signal, dtype=np.float64)
    leads = list(leads)
    n = sig.shape[1]
    index = {name: i for i, name in enumerate(leads)}
    standard = all(name in index for row in STANDARD_LAYOUT for name in row)
    sal = None if saliency is None else np.abs(np.asarray(saliency, dtype=np.float64))
    scale = _saliency_scale(sal)
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
    lc = _trace(segments, values if sal is not None else None)
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


# ------------------------------------------------------------------ the printed layout, in mV
#: Seconds of each column of the printed layout (10 s records: four consecutive 2.5 s).
COLUMN_S = 2.5
#: The calibration pulse (1 mV high, 0.2 s wide) sits left of t = 0 in a margin this wide.
_CAL_MARGIN_S = 0.4
#: 25 mm/s and 10 mm/mV: 1 mV is as tall as 0.4 s is wide.
_MV_ASPECT = 0.4


def _check_mv(signals_mv: np.ndarray, fs: float, leads: Sequence[str], rhythm_lead: str) -> np.ndarray:
    sig = np.asarray(signals_mv, dtype=np.float64)
    leads = list(leads)
    if sig.ndim != 2 or sig.shape[0] != len(leads):
        raise ConfigError(
            f"signals_mv must be (leads, samples) with one row per name in leads ({len(leads)}), got shape "
            f"{sig.shape}; pass one record"
        )
    if not np.isfinite(fs) or fs <= 0:
        raise ConfigError(f"fs must be the sampling rate in Hz (> 0), got {fs!r}")
    missing = [name for row in STANDARD_LAYOUT for name in row if name not in leads]
    if rhythm_lead not in leads:
        missing.append(rhythm_lead)
    if missing:
        raise ConfigError(
            f"leads {leads} lack {missing} of the standard 12-lead layout; derive them "
            "(ecgprobe.data.preprocess) or draw the leads you have with plot_ecg"
        )
    if sig.shape[1] < 8:
        raise ConfigError(f"signals_mv holds {sig.shape[1]} samples per lead; pass at least 8")
    return sig


def _rows(
    sig: np.ndarray, fs: float, leads: Sequence[str], rhythm_lead: str
) -> list[list[tuple[str, int, int]]]:
    """(lead, start, stop) sample ranges of the three layout rows and the rhythm strip: each
    column :data:`COLUMN_S` long (a quarter of the record when it is shorter than 10 s)."""
    n = sig.shape[1]
    col = min(int(round(COLUMN_S * fs)), n // 4)
    rows = [[(name, c * col, (c + 1) * col) for c, name in enumerate(row)] for row in STANDARD_LAYOUT]
    return [*rows, [(rhythm_lead, 0, n)]]


def _ylim(sig: np.ndarray, index: dict[str, int], row: list[tuple[str, int, int]]) -> tuple[float, float]:
    """The row's mV range (its samples and the 0-1 mV calibration pulse), widened to 0.5 mV lines."""
    values = np.concatenate([sig[index[name], a:b] for name, a, b in row])
    lo = min(float(np.nanmin(values)) if np.isfinite(values).any() else 0.0, 0.0) - 0.2
    hi = max(float(np.nanmax(values)) if np.isfinite(values).any() else 0.0, 1.0) + 0.2
    return float(np.floor(lo / 0.5) * 0.5), float(np.ceil(hi / 0.5) * 0.5)


def standard_figsize(
    signals_mv: np.ndarray, fs: float, leads: Sequence[str], *, width: float = 10.0, rhythm_lead: str = "II"
) -> tuple[float, float]:
    """The figure size (inches) at which :func:`plot_ecg_standard` fills ``width`` at 10 mm/mV
    proportions (the rows' mV ranges decide the height).

    Raises:
        ConfigError: as :func:`plot_ecg_standard`.
    """
    sig = _check_mv(signals_mv, fs, leads, rhythm_lead)
    index = {name: i for i, name in enumerate(leads)}
    span_s = sig.shape[1] / fs + _CAL_MARGIN_S
    mv = sum(hi - lo for lo, hi in (_ylim(sig, index, row) for row in _rows(sig, fs, leads, rhythm_lead)))
    return width, round(0.9 + 0.92 * width * _MV_ASPECT * mv / span_s, 2)


def plot_ecg_standard(
    signals_mv: np.ndarray,
    fs: float,
    leads: Sequence[str],
    *,
    saliency: np.ndarray | None = None,
    saliency_fs: float | None = None,
    saliency_leads: Sequence[str] | None = None,
    fig: Any = None,
    title: str = "",
    rhythm_lead: str = "II",
) -> list[Any]:
    """One 12-lead recording in mV, as it is printed: the standard layout on ECG paper.

    Rows I, aVR, V1, V4 / II, aVL, V2, V5 / III, aVF, V3, V6, each column the next 2.5 s of its
    leads (a quarter of the record when it is shorter than 10 s), then a ``rhythm_lead`` strip
    over the whole record; a 1 mV x 0.2 s calibration pulse left of each row; ECG paper with
    0.1 mV x 0.04 s small and 0.5 mV x 0.2 s large squares, drawn at 25 mm/s and 10 mm/mV
    proportions. Each row is its own Axes whose y axis is in mV (labelled at whole mV).

    Args:
        signals_mv: ``(L, T)`` samples in mV.
        fs: their sampling rate in Hz.
        leads: the ``L`` lead names (the 12 standard leads among them).
        saliency: optional ``(L', n')`` non-negative importance on the model's input; the trace is
            coloured and thickened by it (scaled to its 99th percentile), matched by lead name and
            by time; samples it does not cover stay black.
        saliency_fs: the sampling rate of ``saliency`` (default ``fs``).
        saliency_leads: the lead names of ``saliency`` (default ``leads``).
        fig: the Figure to draw on (default: a new bare Figure of :func:`standard_figsize`).
        title: the title above the first row.
        rhythm_lead: the lead of the rhythm strip.

    Returns:
        The four Axes, top to bottom (three rows, then the rhythm strip); the last collection of
        each is its trace (coloured by saliency: a colour bar can be made from it).

    Raises:
        ConfigError: signals not ``(leads, samples)`` matching ``leads``, a standard lead
            missing, a bad ``fs``, or a saliency map whose shape does not match its leads.

    Example:
        >>> rec = ecgprobe.load_dataset("ptbxl", root, sampling_rate=500)  # doctest: +SKIP
        >>> axes = plot_ecg_standard(rec.read([0])[0], rec.fs, rec.leads)  # doctest: +SKIP
    """
    sig = _check_mv(signals_mv, fs, leads, rhythm_lead)
    leads = list(leads)
    index = {name: i for i, name in enumerate(leads)}
    sal, sal_index, sal_t, sal_end = None, {}, np.zeros(0), 0.0
    if saliency is not None:
        sal = np.abs(np.asarray(saliency, dtype=np.float64))
        sal_leads = list(saliency_leads) if saliency_leads is not None else leads
        if sal.ndim != 2 or sal.shape[0] != len(sal_leads):
            raise ConfigError(
                f"saliency must be (leads, samples) with one row per name in saliency_leads ({len(sal_leads)}), "
                f"got shape {sal.shape}"
            )
        sal_fs = float(saliency_fs if saliency_fs is not None else fs)
        if not np.isfinite(sal_fs) or sal_fs <= 0:
            raise ConfigError(
                f"saliency_fs must be the saliency map's sampling rate in Hz (> 0), got {saliency_fs!r}"
            )
        sal = sal / _saliency_scale(sal)
        sal_index = {name: i for i, name in enumerate(sal_leads)}
        sal_t, sal_end = np.arange(sal.shape[1]) / sal_fs, sal.shape[1] / sal_fs  # the window it covers
    rows = _rows(sig, fs, leads, rhythm_lead)
    limits = [_ylim(sig, index, row) for row in rows]
    if fig is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=standard_figsize(sig, fs, leads, rhythm_lead=rhythm_lead), layout="constrained")
    grid = fig.add_gridspec(len(rows), 1, height_ratios=[hi - lo for lo, hi in limits])
    x1 = sig.shape[1] / fs
    axes = []
    for r, (row, (lo, hi)) in enumerate(zip(rows, limits)):
        ax = fig.add_subplot(grid[r])
        segments, values = [], []
        for c, (name, a, b) in enumerate(row):
            t = np.arange(a, b) / fs
            pts = np.column_stack([t, sig[index[name], a:b]])
            segments.append(np.stack([pts[:-1], pts[1:]], axis=1))
            if sal is not None:
                mid = 0.5 * (t[:-1] + t[1:])
                v = np.full(len(mid), np.nan)
                if name in sal_index:
                    inside = mid < sal_end
                    v[inside] = np.interp(mid[inside], sal_t, sal[sal_index[name]])
                values.append(np.clip(v, 0.0, 1.0))
            label = f"{name} (rhythm)" if len(row) == 1 else name
            ax.text(a / fs + 0.05, hi - 0.12, label, fontsize=7.5, va="top", ha="left", color="#222")
            if c:  # the small separator of the printed layout
                ax.plot([a / fs, a / fs], [-0.25, 0.25], color="#222", lw=0.8)
        # the 1 mV calibration pulse: 0.1 s baseline, 0.2 s at 1 mV, back to baseline
        ax.plot([-0.35, -0.25, -0.25, -0.05, -0.05, 0.0], [0, 0, 1, 1, 0, 0], color="#111111", lw=0.8)
        _mv_paper(ax, -_CAL_MARGIN_S, x1, lo, hi, last=r == len(rows) - 1)
        ax.add_collection(_trace(segments, values if sal is not None else None))
        axes.append(ax)
    if title:
        axes[0].set_title(title, loc="left")
    return axes


def _mv_paper(ax: Any, x0: float, x1: float, lo: float, hi: float, *, last: bool) -> None:
    """ECG paper (:func:`paper_lines`): large squares 0.2 s x 0.5 mV, small ones 0.04 s x 0.1 mV;
    the y axis in mV (labelled at whole mV), whole seconds under the rhythm strip only."""
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    ax.set_xlim(x0, x1)
    ax.set_ylim(lo, hi)
    ax.set_aspect(_MV_ASPECT)
    ax.xaxis.set_major_locator(MultipleLocator(1.0))
    ax.yaxis.set_major_locator(MultipleLocator(1.0))
    ax.grid(False)
    paper_lines(ax, x0, x1, lo, hi)
    whole = lambda v, _: f"{round(v):d}" if abs(v - round(v)) < 1e-9 else ""  # noqa: E731
    ax.yaxis.set_major_formatter(FuncFormatter(whole))
    ax.xaxis.set_major_formatter(FuncFormatter(whole) if last else FuncFormatter(lambda v, _: ""))
    ax.tick_params(which="both", length=0, labelsize=7)
    ax.set_ylabel("mV", fontsize=7.5)
    if last:
        ax.set_xlabel("time (s)")
    for side in ax.spines.values():
        side.set_visible(False)
