"""Pure plotting functions: each draws one result (or a few) on the ``ax=`` it is given.

They read only what a :class:`~ecgprobe.analyzers.base.Result` stores (so a figure can be
redrawn from ``results.json``), never compute statistics of their own beyond what drawing needs,
and return the Axes. Called without ``ax``, they draw on a fresh bare figure (no pyplot state).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ecgprobe.exceptions import ConfigError
from ecgprobe.report.ecg_plot import STANDARD_LAYOUT, plot_ecg
from ecgprobe.report.figures import PALETTE, categorical_colors, new_axes
from ecgprobe.report.signal_plots import plot_beat_saliency, plot_gallery, plot_lead_importance

__all__ = [
    "PALETTE",
    "STANDARD_LAYOUT",
    "plot_beat_saliency",
    "plot_cka",
    "plot_ecg",
    "plot_forest",
    "plot_gallery",
    "plot_label_metric",
    "plot_lead_importance",
    "plot_projection",
    "plot_reliability",
    "plot_roc",
    "plot_scarcity",
    "plot_spectrum",
]


# ------------------------------------------------------------------------------ probes
def _rows(result: Any, table: str = "per_label") -> list[dict[str, Any]]:
    return list(result.tables.get(table, []))


def plot_label_metric(
    result: Any,
    *,
    metric: str = "auroc",
    order: Sequence[str] | None = None,
    ax: Any = None,
    color: str = PALETTE[0],
    offset: float = 0.0,
    label: str | None = None,
    chance: float | None = 0.5,
) -> Any:
    """Per-label ``metric`` of a probe result with its confidence interval, one row per label.

    Args:
        result: a ``linear_probe`` or ``knn_probe`` result (table ``per_label`` with
            ``<metric>``, ``<metric>_ci_low``, ``<metric>_ci_high``).
        metric: the column to draw.
        order: labels top to bottom (default: the evaluated labels by decreasing ``metric``).
        ax: the Axes.
        color: marker colour.
        offset: vertical shift in rows (to overlay a second probe beside the first).
        label: legend entry.
        chance: draw a dashed vertical line here (``None``: none).

    Returns:
        The Axes.
    """
    ax = ax if ax is not None else new_axes((6.0, 4.0))
    rows = {r["label"]: r for r in _rows(result) if r.get("evaluated", True) and r.get(metric) is not None}
    if order is None:
        order = sorted(rows, key=lambda k: -rows[k][metric])
    ys, xs, lo, hi = [], [], [], []
    for i, name in enumerate(order):
        r = rows.get(name)
        if r is None:
            continue
        ys.append(i + offset)
        xs.append(r[metric])
        lo.append(r.get(f"{metric}_ci_low"))
        hi.append(r.get(f"{metric}_ci_high"))
    x = np.asarray(xs, dtype=float)
    err = np.array(
        [
            [v - (a if a is not None else v) for v, a in zip(x, lo)],
            [(b if b is not None else v) - v for v, b in zip(x, hi)],
        ]
    )
    ax.errorbar(
        x,
        ys,
        xerr=np.clip(err, 0, None),
        fmt="o",
        ms=3.5,
        color=color,
        ecolor=color,
        elinewidth=1.0,
        capsize=0,
        label=label,
    )
    ax.set_yticks(range(len(order)))
    ax.set_yticklabels(list(order))
    ax.set_ylim(len(order) - 0.5, -0.5)
    if chance is not None:
        ax.axvline(chance, color="#888", ls="--", lw=0.8)
    ax.set_xlabel(f"test {metric.upper()} (95% CI)")
    ax.grid(axis="y", visible=False)
    return ax


def plot_roc(result: Any, *, labels: Sequence[str], ax: Any = None) -> Any:
    """ROC curves of ``labels`` from a probe result's stored curve points (``roc_fpr/tpr/offsets``)."""
    ax = ax if ax is not None else new_axes((4.5, 4.5))
    fitted = [str(v) for v in result.metrics.get("labels_fitted", [])]
    offsets = np.asarray(result.arrays["roc_offsets"])
    fpr, tpr = np.asarray(result.arrays["roc_fpr"]), np.asarray(result.arrays["roc_tpr"])
    auc = {r["label"]: r.get("auroc") for r in _rows(result)}
    colors = _cycle(len(labels))
    for i, name in enumerate(labels):
        j = fitted.index(name)
        a, b = int(offsets[j]), int(offsets[j + 1])
        if b <= a:
            continue
        ax.plot(
            fpr[a:b], tpr[a:b], color=colors[i], lw=1.4, label=f"{name} ({auc.get(name, float('nan')):.3f})"
        )
    ax.plot([0, 1], [0, 1], color="#999", ls="--", lw=0.8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.legend(loc="lower right", title="label (AUROC)")
    return ax


def plot_reliability(
    result: Any, *, ax: Any = None, color: str = PALETTE[0], label: str | None = None, diagonal: bool = True
) -> Any:
    """Reliability diagram pooled over evaluated labels (table ``reliability``), with bin counts."""
    ax = ax if ax is not None else new_axes((4.5, 4.5))
    rows = [r for r in _rows(result, "reliability") if r.get("count")]
    pred = np.array([r["mean_predicted"] for r in rows], dtype=float)
    obs = np.array([r["observed_frequency"] for r in rows], dtype=float)
    count = np.array([r["count"] for r in rows], dtype=float)
    if diagonal:
        ax.plot([0, 1], [0, 1], color="#999", ls="--", lw=0.8, label="perfect calibration")
    ax.plot(pred, obs, "-o", color=color, ms=4, lw=1.4, label=label or "probe")
    if len(rows):
        hist = ax.inset_axes((0.0, 0.0, 1.0, 0.18), sharex=ax)
        lows = np.array([r["bin_low"] for r in rows])
        widths = np.array([r["bin_high"] - r["bin_low"] for r in rows])
        hist.bar(lows, count, width=widths, align="edge", color=color, alpha=0.25)
        hist.set_yscale("log")
        hist.patch.set_alpha(0)
        hist.tick_params(axis="x", bottom=False, labelbottom=False)
        hist.yaxis.tick_right()
        hist.yaxis.set_label_position("right")
        hist.tick_params(axis="y", labelsize=7)
        hist.set_ylabel("records\nper bin", fontsize=7)
        for side in ("top", "left", "bottom"):
            hist.spines[side].set_visible(False)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed frequency")
    ax.legend(loc="upper left")
    return ax


def _cycle(n: int) -> list[str]:
    return [PALETTE[i % len(PALETTE)] for i in range(n)]


# ---------------------------------------------------------------------------- scarcity
def plot_scarcity(results: Any, *, ax: Any = None, colors: Sequence[str] | None = None) -> Any:
    """Macro AUROC against the amount of training data, with the CI band, one curve per result.

    Args:
        results: a ``scarcity`` result, or ``{name: result}`` to overlay several encoders.
        ax: the Axes.
        colors: one colour per curve (default :data:`PALETTE`).

    Returns:
        The Axes (x on a log scale: fraction of the training split in %, or positives per label).
    """
    ax = ax if ax is not None else new_axes((6.0, 4.0))
    named = results if isinstance(results, dict) else {"": results}
    colors = list(colors) if colors else _cycle(len(named))
    mode = "fraction"
    for (name, res), color in zip(named.items(), colors):
        mode = res.metrics.get("mode", "fraction")
        rows = res.tables.get("curve", [])
        scale = 100.0 if mode == "fraction" else 1.0
        x = np.array([r["x"] for r in rows], dtype=float) * scale
        y = np.array([r["macro_auroc_mean"] for r in rows], dtype=float)
        lo = np.array(
            [np.nan if r.get("macro_auroc_ci_low") is None else r["macro_auroc_ci_low"] for r in rows]
        )
        hi = np.array(
            [np.nan if r.get("macro_auroc_ci_high") is None else r["macro_auroc_ci_high"] for r in rows]
        )
        ax.plot(x, y, "-o", color=color, ms=3.5, lw=1.5, label=name or None)
        if np.isfinite(lo).any():
            ax.fill_between(x, lo, hi, color=color, alpha=0.18, lw=0)
    ax.set_xscale("log")
    ax.set_xlabel(
        "training records used (% of the train split)"
        if mode == "fraction"
        else "positives per label (train)"
    )
    ax.set_ylabel("test macro AUROC")
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    # every grid value gets its own labelled tick (a log axis would label only the decades)
    ticks = sorted(
        {
            float(r["x"]) * (100.0 if mode == "fraction" else 1.0)
            for res in named.values()
            for r in res.tables.get("curve", [])
        }
    )
    if ticks:
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    if any(named):
        ax.legend(loc="lower right")
    return ax


# ---------------------------------------------------------------------------- geometry
def projection_categories(result: Any, *, max_labels: int = 8) -> np.ndarray:
    """A category per projected record: its single positive label, ``multiple`` or ``none``.

    Only the ``max_labels`` most frequent labels are named; records whose single label is a
    rarer one are ``other``.
    """
    y = np.asarray(result.arrays["y"])
    names = np.asarray(result.arrays["label_names"]).astype(str)
    frequent = set(names[np.argsort(-(y > 0).sum(0), kind="stable")[:max_labels]])
    k = (y > 0).sum(axis=1)
    single = names[np.argmax(y, axis=1)]
    named = np.array([s if s in frequent else "other" for s in single])
    return np.where(k == 1, named, np.where(k > 1, "multiple", "none"))


def plot_projection(result: Any, *, color_by: str = "label", ax: Any = None, max_labels: int = 8) -> Any:
    """The 2-D projection (``projection`` result) coloured by ``"label"``, ``"age"`` or ``"sex"``.

    ``"label"`` colours by the record's single positive label among the ``max_labels`` most
    frequent (``multiple``/``none``/``other`` otherwise).

    Raises:
        ConfigError: ``color_by`` is not one of those or not stored (a dataset without ages).
    """
    if color_by not in ("label", "age", "sex") or (color_by != "label" and color_by not in result.arrays):
        raise ConfigError(f"color_by={color_by!r} is unknown or not stored; use 'label', 'age' or 'sex'")
    ax = ax if ax is not None else new_axes((5.0, 5.0))
    xy = np.asarray(result.arrays["coords"], dtype=float)
    size = float(np.clip(3000.0 / max(len(xy), 1), 1.0, 12.0))
    kw = {"s": size, "linewidths": 0, "rasterized": True}
    if color_by == "age":
        age = np.asarray(result.arrays["age"], dtype=float)
        known = np.isfinite(age)
        ax.scatter(xy[~known, 0], xy[~known, 1], color="#cccccc", label="unknown", **kw)
        sc = ax.scatter(xy[known, 0], xy[known, 1], c=age[known], cmap="viridis", **kw)
        ax.figure.colorbar(sc, ax=ax, shrink=0.7, label="age (years)")
    else:
        if color_by == "sex":
            cats = np.asarray(result.arrays["sex"]).astype(str)
        else:
            cats = projection_categories(result, max_labels=max_labels)
        values, counts = np.unique(cats, return_counts=True)
        order = [
            v
            for v in values[np.argsort(-counts, kind="stable")]
            if v not in ("none", "other", "multiple", "unknown", "nan", "")
        ]
        order += [v for v in ("multiple", "other", "none", "unknown", "nan", "") if v in values]
        # the residual classes are greys told apart by marker as well as shade
        grey = {
            "none": "#c4c4c4",
            "other": "#7f7f7f",
            "multiple": "#262626",
            "unknown": "#dcdcdc",
            "nan": "#dcdcdc",
            "": "#dcdcdc",
        }
        marker = {"other": "^", "multiple": "s"}
        colors = dict(zip([v for v in order if v not in grey], categorical_colors(len(order))))
        for v in order:
            m = cats == v
            ax.scatter(
                xy[m, 0],
                xy[m, 1],
                color=grey.get(v, colors.get(v)),
                label=f"{v or 'unknown'} ({int(m.sum())})",
                marker=marker.get(v, "o"),
                **kw,
            )
        ax.legend(  # beside the map, never over its points
            markerscale=max(1.0, 12.0 / size) ** 0.5 * 1.5,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.01),
            ncol=2,
            fontsize=9,
            frameon=False,
        )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    ax.set_title({"label": "by label", "age": "by age", "sex": "by sex"}[color_by], loc="left")
    return ax


def plot_spectrum(
    result: Any,
    *,
    ax: Any = None,
    max_components: int = 100,
    color: str = PALETTE[0],
    label: str | None = None,
) -> Any:
    """PCA spectrum of the embedding space: explained variance ratio per component (log scale)
    and its cumulative sum (dashed, right axis)."""
    ax = ax if ax is not None else new_axes((5.0, 3.5))
    evr = np.asarray(result.arrays["explained_variance_ratio"], dtype=float)[:max_components]
    k = np.arange(1, len(evr) + 1)
    ax.plot(k, evr, color=color, lw=1.4, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("principal component")
    ax.set_ylabel("explained variance ratio")
    twin = ax.twinx()
    twin.plot(k, np.cumsum(evr), color=color, ls="--", lw=1.0)
    twin.set_ylim(0, 1.02)
    twin.set_ylabel("cumulative (dashed)")
    twin.grid(False)
    return ax


# --------------------------------------------------------------------- comparisons, gaps
def plot_forest(
    names: Sequence[str],
    value: Sequence[float],
    low: Sequence[float | None],
    high: Sequence[float | None],
    *,
    ax: Any = None,
    reference: float | None = 0.0,
    xlabel: str = "",
    colors: Sequence[str] | None = None,
) -> Any:
    """A forest plot: one row per name, a point with its interval, and a reference line.

    Used for paired differences between encoders (reference 0) and subgroup AUROCs.
    """
    ax = ax if ax is not None else new_axes((6.0, 4.0))
    v = np.asarray(value, dtype=float)
    lo = np.array([np.nan if x is None else x for x in low], dtype=float)
    hi = np.array([np.nan if x is None else x for x in high], dtype=float)
    ys = np.arange(len(names))
    cols = list(colors) if colors else [PALETTE[0]] * len(names)
    for y, a, b, c, col in zip(ys, v, lo, hi, cols):
        if np.isfinite(b) and np.isfinite(c):
            ax.plot([b, c], [y, y], color=col, lw=1.4)
        ax.plot([a], [y], "o", color=col, ms=4)
    if reference is not None:
        ax.axvline(reference, color="#888", ls="--", lw=0.8)
    ax.set_yticks(ys)
    ax.set_yticklabels(list(names))
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_xlabel(xlabel)
    ax.grid(axis="y", visible=False)
    return ax


def plot_cka(result: Any, *, ax: Any = None, name_a: str = "A", name_b: str = "B") -> Any:
    """The layer-by-layer CKA matrix (rows: layers of A, columns: layers of B)."""
    ax = ax if ax is not None else new_axes((6.0, 5.0))
    mat = np.asarray(result.arrays["cka"], dtype=float)
    la = [str(s) for s in result.arrays["layers_a"]]
    lb = [str(s) for s in result.arrays["layers_b"]]
    im = ax.imshow(mat, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_yticks(range(len(la)))
    ax.set_yticklabels(la)
    ax.set_xticks(range(len(lb)))
    ax.set_xticklabels(lb, rotation=45, ha="right")
    ax.set_ylabel(name_a)
    ax.set_xlabel(name_b)
    ax.grid(False)
    if mat.size <= 225:
        for i in range(mat.shape[0]):
            for j in range(mat.shape[1]):
                ax.text(
                    j,
                    i,
                    f"{mat[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if mat[i, j] < 0.6 else "#111",
                )
    params = getattr(result, "params", {}) or {}
    kind = f"{params.get('kernel', 'linear')} CKA" + (", debiased" if params.get("debiased") else "")
    ax.figure.colorbar(im, ax=ax, shrink=0.8, label=kind)
    return ax
