"""What the summary may claim, decided in one place.

A summary sentence that calls something a *strength* or a *weakness* is a claim. A claim needs
evidence: an interval that is decisive on the side the sentence states, computed on at least
:data:`MIN_PATIENTS` test patients. When the interval straddles the line (or the sample is
smaller), the sentence goes to *inconclusive* and says so, with the interval and the n: absence
of evidence is not evidence of absence. "No difference" is claimed only as *equivalence*: the
whole interval inside ``±`` :data:`EQUIVALENCE_MARGIN`.

Example:
    >>> side(0.02, 0.09, threshold=0.0)
    'above'
    >>> side(-0.01, 0.09, threshold=0.0)
    'inconclusive'
    >>> equivalent(-0.03, 0.04)
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from ecgprobe.report.blocks import fmt

__all__ = [
    "EQUIVALENCE_MARGIN",
    "MIN_PATIENTS",
    "ci_label",
    "ci_of",
    "enough",
    "equivalent",
    "fmt_p",
    "level_of",
    "n_phrase",
    "side",
]

#: The fewest test patients behind a claimed strength or weakness.
MIN_PATIENTS = 20
#: AUROC margin of an equivalence claim ("no gap"): the whole interval within ±margin.
EQUIVALENCE_MARGIN = 0.05

Side = Literal["above", "below", "inconclusive"]


def _finite(x: Any) -> bool:
    try:
        return x is not None and float(x) == float(x) and abs(float(x)) != float("inf")
    except (TypeError, ValueError):
        return False


def side(lo: Any, hi: Any, *, threshold: float) -> Side:
    """Where an interval lies relative to ``threshold``: wholly ``above``, wholly ``below``, or
    ``inconclusive`` (it contains the threshold, or it is missing)."""
    if not (_finite(lo) and _finite(hi)):
        return "inconclusive"
    if float(lo) > threshold:
        return "above"
    if float(hi) < threshold:
        return "below"
    return "inconclusive"


def equivalent(lo: Any, hi: Any, margin: float = EQUIVALENCE_MARGIN) -> bool:
    """Whether the interval lies inside ``[-margin, margin]`` (an equivalence claim holds)."""
    return _finite(lo) and _finite(hi) and -margin <= float(lo) and float(hi) <= margin


def enough(n: Any, minimum: int = MIN_PATIENTS) -> bool:
    """Whether ``n`` (test patients) is large enough for a claim."""
    return _finite(n) and float(n) >= minimum


def n_phrase(n: Any, unit: str = "test patients") -> str:
    """``"n = 33 test patients"`` (or ``"n unknown"``)."""
    return f"n = {fmt(int(n))} {unit}" if _finite(n) else "n unknown"


def level_of(metrics: Mapping[str, Any] | None, params: Mapping[str, Any] | None = None) -> float:
    """The confidence level a result was computed at (``ci_level``), 0.95 when not stored."""
    for source in (metrics or {}, params or {}):
        value = source.get("ci_level")
        if _finite(value) and 0 < float(value) < 1:
            return float(value)
    return 0.95


def ci_label(level: float = 0.95) -> str:
    """``"95% CI"`` for ``0.95``, ``"99.5% CI"`` for ``0.995``: captions follow the settings."""
    pct = 100 * float(level)
    text = f"{pct:.1f}".rstrip("0").rstrip(".")
    return f"{text}% CI"


def ci_of(result: Any) -> str:
    """The interval caption of a stored result (its own ``ci_level``), e.g. ``"90% CI"``."""
    if result is None:
        return ci_label()
    return ci_label(level_of(getattr(result, "metrics", None), getattr(result, "params", None)))


def fmt_p(p: Any, n_resamples: Any = None, two_sided: bool = True) -> str:
    """A resampling p-value as text: never ``p = 0.000``.

    With B resamples the smallest p a resampling test can show is about ``1/(B+1)`` one-sided
    (``2/(B+1)`` two-sided); a p of 0 means no replicate crossed the null, so the text gives
    that bound instead (``"p ≤ 0.0066 (none of 300 resamples crossed 0)"``).
    """
    if not _finite(p):
        return "p = –"
    p = float(p)
    b = int(n_resamples) if _finite(n_resamples) and float(n_resamples) > 0 else None
    if b is not None:
        floor = (2.0 if two_sided else 1.0) / (b + 1)
        if p < floor:
            return f"p ≤ {floor:.2g} (none of {b:,} resamples crossed 0)"
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.3f}"
