"""Pure plots of the robustness card (a ``robustness`` result), each on the ``ax=`` it is given:
macro AUROC against SNR per noise type with interval bands, and bars per condition (lead sets,
round trips, amplitude) with their intervals. They read only the ``conditions`` table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ecgprobe.report.figures import PALETTE, new_axes

__all__ = ["condition_rows", "plot_condition_bars", "plot_snr_curves"]


def condition_rows(result: Any, families: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The evaluated rows of the card's ``conditions`` table (skipped ones left out), of
    ``families`` only when given (``"noise"``, ``"leads"``, ``"resample"``, ``"amplitude"``)."""
    rows = [r for r in result.tables.get("conditions", []) if r.get("status") == "ok"]
    return [r for r in rows if families is None or r["family"] in families]


def _clean(result: Any) -> dict[str, Any] | None:
    return next((r for r in condition_rows(result) if r["family"] == "clean"), None)


def _num(v: Any) -> float:
    return float("nan") if v is None else float(v)


def plot_snr_curves(result: Any, *, ax: Any = None) -> Any:
    """Macro AUROC against the SNR (dB, falling to the right), one curve per noise type with its
    interval band; the clean AUROC and its interval as a dashed line and a grey band.

    Returns:
        The Axes.
    """
    ax = ax if ax is not None else new_axes((6.5, 3.8))
    clean = _clean(result)
    if clean is not None:
        ax.axhline(clean["macro_auroc"], color="#555", ls="--", lw=1.0, label="clean")
        if clean.get("ci_low") is not None:
            ax.axhspan(clean["ci_low"], clean["ci_high"], color="#999", alpha=0.15, lw=0)
    rows = condition_rows(result, ["noise"])
    kinds = list(dict.fromkeys(r["perturbation"] for r in rows))
    for i, kind in enumerate(kinds):
        mine = sorted((r for r in rows if r["perturbation"] == kind), key=lambda r: -float(r["level"]))
        x = np.array([float(r["level"]) for r in mine])
        y = np.array([_num(r["macro_auroc"]) for r in mine])
        lo = np.array([_num(r["ci_low"]) for r in mine])
        hi = np.array([_num(r["ci_high"]) for r in mine])
        color = PALETTE[i % len(PALETTE)]
        ax.plot(x, y, "-o", color=color, ms=3.5, lw=1.5, label=kind.replace("_", " "))
        ax.fill_between(x, lo, hi, color=color, alpha=0.15, lw=0)
    if rows:
        levels = sorted({float(r["level"]) for r in rows}, reverse=True)
        ax.set_xticks(levels)
        ax.set_xlim(max(levels) + 1.5, min(levels) - 1.5)
    ax.axhline(0.5, color="#bbb", lw=0.8)
    ax.set_xlabel("SNR (dB, noise stress test definition)")
    ax.set_ylabel("test macro AUROC")
    ax.legend(loc="lower left", fontsize=8)
    return ax


def plot_condition_bars(result: Any, *, families: Sequence[str] = ("leads",), ax: Any = None) -> Any:
    """Horizontal bars of macro AUROC with intervals: the clean condition first (12 leads, as
    recorded), then the conditions of ``families`` in the table's order.

    Returns:
        The Axes.
    """
    ax = ax if ax is not None else new_axes((6.5, 3.0))
    rows = [r for r in (_clean(result), *condition_rows(result, families)) if r is not None]
    names = ["clean (as recorded)" if r["family"] == "clean" else r["label"] for r in rows]
    y = np.arange(len(rows))
    v = np.array([_num(r["macro_auroc"]) for r in rows])
    lo = np.array([_num(r["ci_low"]) for r in rows])
    hi = np.array([_num(r["ci_high"]) for r in rows])
    colors = ["#888" if r["family"] == "clean" else PALETTE[0] for r in rows]
    ax.barh(y, v - 0.5, left=0.5, color=colors, height=0.6)
    ax.errorbar(v, y, xerr=np.vstack([v - lo, hi - v]), fmt="none", ecolor="#222", lw=1.0, capsize=3)
    ax.axvline(0.5, color="#bbb", lw=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels(names)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    low = np.nanmin(np.concatenate([lo, v])) if len(v) else 0.4
    ax.set_xlim(min(0.4, low - 0.05), 1.0)
    ax.set_xlabel("test macro AUROC")
    ax.grid(axis="y", visible=False)
    return ax
