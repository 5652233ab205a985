"""Plots of results read along the ECG signal (pure; ``ax=``): each lead's share of attribution,
the beat-aligned saliency profile, and the gallery of nearest-neighbour ECGs.

Re-exported by :mod:`ecgprobe.report.plots`, the one namespace the sections draw from.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any

import numpy as np

from ecgprobe.report.figures import PALETTE, categorical_colors, new_axes

__all__ = ["plot_beat_saliency", "plot_gallery", "plot_lead_importance"]


def plot_lead_importance(result: Any, *, ax: Any = None) -> Any:
    """Heatmap of each label's share of attribution per lead (``input_attribution`` result)."""
    ax = ax if ax is not None else new_axes((7.0, 3.5))
    imp = np.asarray(result.arrays["lead_importance"], dtype=float)
    labels, leads = list(result.metrics["labels"]), list(result.metrics["leads"])
    # Diverging around the equal share 1/L: red leads matter more than average, blue less.
    from matplotlib.colors import TwoSlopeNorm

    even = 1.0 / max(len(leads), 1)
    top = max(float(np.nanmax(imp)) if imp.size else even, even * 1.01)
    norm = TwoSlopeNorm(
        vcenter=even, vmin=min(float(np.nanmin(imp)) if imp.size else 0.0, even * 0.99), vmax=top
    )
    im = ax.imshow(imp, aspect="auto", cmap="RdBu_r", norm=norm)
    ax.set_xticks(range(len(leads)))
    ax.set_xticklabels(leads, fontsize=9)
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels)
    ax.grid(False)
    if imp.size <= 400:
        for i in range(imp.shape[0]):
            for j in range(imp.shape[1]):
                shade = float(norm(imp[i, j]))
                ink = "white" if shade < 0.15 or shade > 0.85 else "#111"
                ax.text(j, i, f"{imp[i, j]:.2f}", ha="center", va="center", fontsize=7.5, color=ink)
    ax.figure.colorbar(im, ax=ax, shrink=0.8, label=f"share of |attribution| (white: 1/{len(leads)})")
    return ax


def plot_beat_saliency(result: Any, *, ax: Any = None, labels: Sequence[str] | None = None) -> Any:
    """Saliency around the R peak, averaged over beats and examples, one line per label."""
    ax = ax if ax is not None else new_axes((6.0, 3.5))
    t = np.asarray(result.arrays["beat_offsets_s"], dtype=float) * 1000.0
    prof = np.asarray(result.arrays["beat_saliency_label"], dtype=float)
    names = list(result.metrics["labels"])
    wanted = names if labels is None else [n for n in names if n in labels]
    for color, name in zip(categorical_colors(len(wanted)), wanted):
        ax.plot(t, prof[names.index(name)], color=color, lw=1.3, label=name)
    ax.axvline(0, color="#888", lw=0.8, ls="--")
    ax.axhline(1, color="#bbb", lw=0.6)
    ax.set_xlabel("time from R peak (ms)")
    ax.set_ylabel("relative saliency (1 = record mean)")
    ax.legend(loc="upper right", fontsize=9)
    return ax


def plot_gallery(result: Any, *, axes: Any) -> Any:
    """A ``neighbour_gallery`` result on a ``(queries, k + 1)`` grid of Axes: each row a test
    record (left, framed) and its nearest training ECGs, one lead in mV, with labels and distance.
    """
    sig = np.asarray(result.arrays["signals"], dtype=float)
    fs = float(result.metrics.get("fs", 100.0))
    rows = result.tables.get("neighbours", [])
    by = {(r["query_id"], r["rank"]): r for r in rows}
    queries = list(dict.fromkeys(r["query_id"] for r in rows))
    axes = np.atleast_2d(axes)
    lo, hi = np.nanpercentile(sig, 0.5), np.nanpercentile(sig, 99.5)
    t = np.arange(sig.shape[-1]) / fs
    for a, qid in enumerate(queries):
        for rank in range(sig.shape[1]):
            ax = axes[a, rank]
            r = by.get((qid, rank), {})
            ax.plot(t, sig[a, rank], color="#1d2330" if rank == 0 else PALETTE[0], lw=0.6)
            ax.set_ylim(lo - 0.1, hi + 0.1)
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(rank == 0)
                side.set_color("#1d2330")
            head = "test record" if rank == 0 else f"#{rank}  d = {r.get('distance', float('nan')):.3f}"
            color = "#1d2330" if rank == 0 or r.get("shared_label") else PALETTE[1]
            labels = textwrap.shorten(str(r.get("labels", "")), width=44, placeholder=" …")
            labels = "\n".join(textwrap.wrap(labels, width=22)[:2])
            ax.set_title(f"{head}\n{labels}", fontsize=7.5, loc="left", color=color)
    axes[0, 0].set_ylabel(f"{result.metrics.get('lead', '')} (mV)", fontsize=8)
    return axes
