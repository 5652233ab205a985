"""The physiology atlas as a figure: a pure plotting function of a ``layer_probe`` result."""

from __future__ import annotations

from typing import Any

import numpy as np

from ecgprobe.report.figures import new_axes

__all__ = ["atlas_scores", "plot_layer_atlas"]


def atlas_scores(metrics: dict[str, Any], value: np.ndarray) -> np.ndarray:
    """Cell colours on one 0-1 scale: R² clipped to [0, 1], AUROC as ``2 (AUROC - 0.5)``
    clipped (0 = chance for both)."""
    rows = list(metrics.get("rows", []))
    kinds = metrics.get("metric", {})
    out = np.asarray(value, dtype=float).copy()
    for r, row in enumerate(rows):
        if kinds.get(row) == "auroc":
            out[r] = 2.0 * (out[r] - 0.5)
    return np.clip(out, 0.0, 1.0)


def plot_layer_atlas(result: Any, *, ax: Any = None) -> Any:
    """Heatmap layers (columns) x quantities (rows) of a ``layer_probe`` result; every cell
    shows its value (R², or macro AUROC for the labels row); the best layer of each row is
    framed.

    Args:
        result: a :class:`~ecgprobe.analyzers.layer_probe.LayerProbeResult`.
        ax: the Axes to draw on (a new one when None).

    Returns:
        The Axes.
    """
    ax = ax if ax is not None else new_axes()
    m = result.metrics
    rows, layers = list(m["rows"]), list(m["layers"])
    value = np.asarray(result.arrays["atlas_value"], dtype=float)
    ax.imshow(atlas_scores(m, value), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    for r, row in enumerate(rows):
        for c in range(len(layers)):
            v = value[r, c]
            text = "–" if not np.isfinite(v) else f"{v:.2f}"
            ax.text(c, r, text, ha="center", va="center", fontsize=7, color="white" if v < 0.6 else "black")
        best = m.get("best_layer", {}).get(row)
        if best in layers:
            c = layers.index(best)
            ax.add_patch(_frame(c, r))
    ax.set_xticks(range(len(layers)), layers, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), [f"{row} ({m['metric'].get(row, '')})" for row in rows])
    ax.set_xlabel("layer (input → output)")
    return ax


def _frame(c: int, r: int) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="#d62728", linewidth=2.0)
