"""The physiology atlas as a figure: a pure plotting function of a ``layer_probe`` result."""

from __future__ import annotations

from typing import Any

import numpy as np

from ecgprobe.report.figures import new_axes

__all__ = ["atlas_scores", "plot_label_free", "plot_layer_atlas"]


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


def plot_label_free(result: Any, *, axes: Any = None) -> Any:
    """RankMe, TwoNN and IsoScore of a ``label_free`` result across its layers, one panel each,
    with the half-patient subsample range as a band.

    Args:
        result: a :class:`~ecgprobe.analyzers.label_free.LabelFreeResult`.
        axes: three Axes (new ones when None).

    Returns:
        The Axes.
    """
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(9, 2.6))
    rows = result.tables.get("layers", [])
    x = np.arange(len(rows))
    names = {"rankme": "RankMe", "twonn": "TwoNN dimension", "isoscore": "IsoScore"}
    for ax, (key, title) in zip(axes, names.items()):
        y = np.array([r[key] for r in rows], dtype=float)
        lo = np.array([r[f"{key}_half_low"] for r in rows], dtype=float)
        hi = np.array([r[f"{key}_half_high"] for r in rows], dtype=float)
        halves = np.asarray(result.arrays.get(f"{key}_halves", np.empty((len(rows), 0))), dtype=float)
        ax.fill_between(
            x, lo, hi, color="#E69F00", alpha=0.22, linewidth=0, label="half of the patients: range"
        )
        if halves.size:
            ax.plot(
                x, np.median(halves, axis=1), ls="--", color="#E69F00", label="half of the patients: median"
            )
        ax.plot(x, y, marker="o", color="#0072B2", label="all records")
        ax.set_title(title, fontsize=10)
        ax.set_xticks(x, [r["layer"] for r in rows], rotation=45, ha="right", fontsize=9)
        ax.tick_params(axis="y", labelsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=9, frameon=False)
    return axes
