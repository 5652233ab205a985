"""The model-randomisation sanity check of input attributions (Adebayo et al. 2018): how
much the attributions of a re-initialised encoder (same head) resemble the trained one's.
Spearman correlations near 1 mean an explanation ignores what the encoder learned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ecgprobe.analyzers._stats import attribution_methods as am

__all__ = ["Attribution", "randomisation_statistics", "randomised_encoder"]


@dataclass
class Attribution:
    """Attributions of ``K`` examples (an example: one record, one label's logit).

    Attributes:
        lead: ``(K, L)`` signed per-lead attribution.
        maps: ``(K, L, n)`` per-sample attributions (gradient methods), else None.
        delta: ``(K,)`` completeness / efficiency gap.
        se: ``(K, L)`` standard errors of sampled lead Shapley values, else None.
        how: ``"exact"`` / ``"sampled"`` for lead Shapley values.
        steps: ``(K,)`` Integrated-Gradients steps each example used, else None.
    """

    lead: np.ndarray
    maps: np.ndarray | None
    delta: np.ndarray
    se: np.ndarray | None = None
    how: str = ""
    steps: np.ndarray | None = None

    def lead_abs(self) -> np.ndarray:
        """``(K, L)`` mean |attribution| per lead (|lead attribution| without maps)."""
        return np.abs(self.maps).mean(axis=-1) if self.maps is not None else np.abs(self.lead)


def randomised_encoder(encoder: Any, x: np.ndarray, seed: int, notes: list[str]) -> Any | None:
    """A copy of ``encoder`` with re-initialised weights, or None (saying why in ``notes``) when
    it has none to randomise or re-initialising does not change its output on ``x``."""
    rand = am.randomised_copy(encoder, seed)
    if rand is None:
        notes.append(f"sanity check skipped: encoder {encoder.name!r} has no parameters to randomise")
        return None
    with torch.no_grad():
        unchanged = np.allclose(encoder.embed(x).cpu().numpy(), rand.embed(x).cpu().numpy())
    if unchanged:
        notes.append(
            "sanity check skipped: re-initialising the encoder's parameters did not change its output"
        )
        return None
    return rand


def randomisation_statistics(
    attr: Attribution, r_attr: Attribution, labels: np.ndarray, importance: np.ndarray, seed: int
) -> tuple[dict[str, np.ndarray], dict[str, Any], str]:
    """Compare the trained encoder's attributions ``attr`` (lead importances ``importance``,
    ``(C, L)``) with those of the randomised encoder ``r_attr``, for examples of label indices
    ``labels``.

    Returns:
        The arrays (``random_lead_importance``, ``sanity_spearman_*``, ...), the metrics
        (medians of the Spearman correlations, what they rest on) and the note saying so.
    """
    C = len(importance)
    r_imp, _ = am.lead_importance(r_attr.lead_abs(), labels, C, seed, n_resamples=0)
    a, b = (attr.maps, r_attr.maps) if attr.maps is not None else (attr.lead, r_attr.lead)
    arrays: dict[str, np.ndarray] = {
        "random_lead_importance": r_imp,
        "random_lead_attributions": r_attr.lead,
        "sanity_spearman_lead": np.array([am.spearman(importance[c], r_imp[c]) for c in range(C)]),
        "sanity_spearman_abs": np.array(
            [am.spearman(np.abs(a[k]).ravel(), np.abs(b[k]).ravel()) for k in range(len(a))]
        ),
        "sanity_spearman_signed": np.array([am.spearman(a[k].ravel(), b[k].ravel()) for k in range(len(a))]),
    }
    metrics: dict[str, Any] = {}
    for key in ("lead", "abs", "signed"):
        v = arrays[f"sanity_spearman_{key}"]
        metrics[f"sanity_spearman_{key}_median"] = float(np.nanmedian(v)) if np.isfinite(v).any() else None
    # Descriptive, no interval: ρ over L leads of a mean of few examples (3 leads: 4 values).
    n_ex, n_leads = np.bincount(labels, minlength=C), int(r_imp.shape[1])
    metrics.update(sanity_spearman_descriptive=True, sanity_n_leads=n_leads)
    metrics["sanity_min_examples_per_label"] = int(n_ex.min())
    note = (
        "sanity check (model randomisation, Adebayo et al. 2018): encoder weights re-initialised, head kept; "
        "Spearman correlations near 1 would mean the attributions ignore what the encoder learned. Descriptive, "
        f"without an interval: each lead ρ ranks {n_leads} leads from {n_ex.min()}–{n_ex.max()} examples per label"
    )
    return arrays, metrics, note
