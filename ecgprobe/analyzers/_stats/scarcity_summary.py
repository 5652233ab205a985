"""The summary figures and notes of a data-scarcity curve (used by :mod:`ecgprobe.analyzers.scarcity`)."""

from __future__ import annotations

import numpy as np

__all__ = ["crossing_point", "normalised_area", "scarcity_notes"]


def crossing_point(x: np.ndarray, curve: np.ndarray, target: float) -> tuple[float | None, bool]:
    """Smallest ``x`` where ``curve`` reaches ``target``, interpolated in ``log10 x``.

    Returns:
        ``(x, reached_at_smallest)``; ``(None, False)`` when the curve never reaches the target.
    """
    x = np.asarray(x, dtype=np.float64)
    c = np.asarray(curve, dtype=np.float64)
    hit = np.flatnonzero(np.isfinite(c) & (c >= target))
    if not len(hit):
        return None, False
    i = int(hit[0])
    if i == 0:
        return float(x[0]), True
    lx0, lx1 = np.log10(x[i - 1]), np.log10(x[i])
    c0, c1 = c[i - 1], c[i]
    t = 1.0 if not np.isfinite(c0) or c1 == c0 else (target - c0) / (c1 - c0)
    return float(10 ** (lx0 + t * (lx1 - lx0))), False


def normalised_area(x: np.ndarray, curve: np.ndarray, reference: float, *, floor: float = 0.0) -> float:
    """Trapezoid area of ``curve - floor`` over ``log10 x``, over axis width x ``(reference - floor)``."""
    lx = np.log10(np.asarray(x, dtype=np.float64))
    c = np.asarray(curve, dtype=np.float64) - floor
    if len(lx) < 2 or not np.all(np.isfinite(c)) or reference - floor <= 0:
        return float("nan")
    area = float(np.sum((c[1:] + c[:-1]) / 2 * np.diff(lx)))
    return area / (float(lx[-1] - lx[0]) * (reference - floor))


def scarcity_notes(
    curve_rows: list[dict],
    names: list[str],
    test_ok: np.ndarray,
    flagged: np.ndarray,
    pos_pat: np.ndarray,
    basis: str,
    headline: list[str],
    k: int,
) -> list[str]:
    """What was left out of the headline macro, and why."""
    notes = []
    dropped = sorted({lab for row in curve_rows for lab in row["labels_excluded"]})
    if dropped:
        notes.append(
            f"labels without a positive (or negative) in some training subsets were excluded there: "
            f"{', '.join(dropped)} (see tables curve/runs)"
            + ("" if basis == "varying" else "; the headline macro leaves them out at every x")
        )
    if len(flagged):
        notes.append(
            f"labels with fewer than {k} positive (or negative) test patients are flagged (min_positives={k}) "
            "and left out of the headline macro: "
            + ", ".join(f"{names[j]} ({int(pos_pat[j])}+)" for j in flagged)
        )
    if basis == "varying":
        notes.append(
            "no label is fitted in every training subset: the macro at each x averages the labels fitted "
            "there, so points average different label sets (descriptive); use larger training fractions"
        )
    elif basis == "all_evaluated":
        notes.append(
            f"every label fitted in all subsets is flagged: the headline macro averages them all "
            f"({', '.join(headline)}) and is descriptive"
        )
    if (~test_ok).any():
        notes.append(f"not evaluable on test (a class missing): {', '.join(np.asarray(names)[~test_ok])}")
    return notes
