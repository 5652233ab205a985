"""Default analysis plans, by name only (no imports, so the command line can show them cheaply)."""

from __future__ import annotations

__all__ = ["COMPARE_ANALYSES", "MODEL_ANALYSES"]

#: The analyses of a model report, in order.
MODEL_ANALYSES: tuple[str, ...] = (
    "linear_probe",
    "knn_probe",
    "operating_points",
    "scarcity",
    "projection",
    "neighbour_gallery",
    "probe_shap",
    "input_attribution",
    "subgroups",
    "confounding",
)
#: The analyses of a comparison: per encoder, then pairwise (those registered ``pairwise=True``).
COMPARE_ANALYSES: tuple[str, ...] = (
    "linear_probe",
    "knn_probe",
    "scarcity",
    "projection",
    "paired_bootstrap",
    "cka",
    "alignment",
)
