"""Plots of a transfer result: in- vs out-of-dataset AUROC per target, and the train x test matrix.

Pure functions of the result's tables, drawing on a given ``ax`` (a new one when omitted).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ecgprobe.report.figures import PALETTE, new_axes

__all__ = ["plot_in_out", "plot_transfer_matrix"]


def _num(v: Any) -> float:
    return float("nan") if v is None else float(v)


def plot_in_out(rows: Sequence[Mapping[str, Any]], *, ax: Any = None, xlabel: str = "macro AUROC") -> Any:
    """One row per target: the in-dataset (source test) and the target's macro AUROC with their
    intervals, joined by a line whose length is the gap.

    Args:
        rows: the ``targets`` table (``target``, ``macro_auroc_in``/``out`` with ``in_``/``out_``
            ``ci_low``/``ci_high``).
        ax: the axes to draw on.
        xlabel: the x-axis label.
    """
    ax = ax if ax is not None else new_axes((6.0, 1.2 + 0.5 * len(rows)))
    for y, r in enumerate(rows):
        a, b = _num(r.get("macro_auroc_in")), _num(r.get("macro_auroc_out"))
        ax.plot([a, b], [y, y], color="#bbb", lw=3, zorder=1)
        for v, lo, hi, col, dy in (
            (a, r.get("in_ci_low"), r.get("in_ci_high"), PALETTE[0], -0.12),
            (b, r.get("out_ci_low"), r.get("out_ci_high"), PALETTE[1], 0.12),
        ):
            if lo is not None and hi is not None:
                ax.plot([lo, hi], [y + dy, y + dy], color=col, lw=1.4, zorder=2)
            ax.plot([v], [y + dy], "o", color=col, ms=5, zorder=3)
    ax.plot([], [], "o", color=PALETTE[0], label="in-dataset (source test split)")
    ax.plot([], [], "o", color=PALETTE[1], label="target")
    ax.axvline(0.5, color="#888", ls="--", lw=0.8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([str(r["target"]) for r in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlabel(xlabel)
    ax.legend(loc="lower left", fontsize=7, frameon=False)
    ax.grid(axis="y", visible=False)
    return ax


def plot_transfer_matrix(cells: Sequence[Mapping[str, Any]], *, ax: Any = None) -> Any:
    """Macro AUROC of a probe fitted on each dataset (rows) and tested on each (columns).

    Args:
        cells: the ``matrix`` table (``train``, ``test``, ``macro_auroc``).
        ax: the axes to draw on.
    """
    train = list(dict.fromkeys(str(c["train"]) for c in cells))
    test = list(dict.fromkeys(str(c["test"]) for c in cells))
    ax = ax if ax is not None else new_axes((1.8 + 1.1 * len(test), 1.4 + 0.8 * len(train)))
    mat = np.full((len(train), len(test)), np.nan)
    for c in cells:
        mat[train.index(str(c["train"])), test.index(str(c["test"]))] = _num(c.get("macro_auroc"))
    low = min(0.5, float(np.nanmin(mat))) if np.isfinite(mat).any() else 0.5
    im = ax.imshow(mat, cmap="viridis", vmin=low, vmax=1.0, aspect="auto")
    for i in range(len(train)):
        for j in range(len(test)):
            if np.isfinite(mat[i, j]):
                color = "white" if mat[i, j] < 0.8 else "#111"
                ax.text(j, i, f"{mat[i, j]:.2f}", ha="center", va="center", fontsize=8, color=color)
    ax.set_yticks(range(len(train)))
    ax.set_yticklabels(train)
    ax.set_xticks(range(len(test)))
    ax.set_xticklabels(test, rotation=30, ha="right")
    ax.set_ylabel("fitted on (train split)")
    ax.set_xlabel("tested on (test split)")
    ax.grid(False)
    ax.figure.colorbar(im, ax=ax, shrink=0.8, label="macro AUROC")
    return ax
