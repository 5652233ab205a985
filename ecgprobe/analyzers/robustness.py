"""The robustness card's result and its statistics: a clean-trained probe's macro AUROC under each
perturbation of the test records, and its drop from clean by a paired patient bootstrap.

The perturbed embeddings come from :func:`ecgprobe.workflows.robustness.robustness_card`, which
extracts them; this module holds only the mathematics on scores (so it is not a registered
analyzer: it needs the encoder to run again on perturbed signals).

Intervals reuse the patient bootstrap of :mod:`ecgprobe.analyzers._stats.bootstrap` with one set
of draws for every condition and the clean scores (the same draws as the clean probe's own
interval: same test patients, same seed). The drop of a condition is ``clean - perturbed`` per
resample, which is exactly the paired bootstrap of :func:`ecgprobe.analyzers.paired_bootstrap.
paired_bootstrap` (tests check the two agree), whose coverage is measured by
``benchmarks/coverage_paired.py``; no new interval method is introduced.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from ecgprobe.analyzers._stats.bootstrap import (
    confidence_interval,
    jackknife_weights,
    macro_replicates,
    resample_weights,
)
from ecgprobe.analyzers._stats.metrics import rank_metrics
from ecgprobe.analyzers.base import Result
from ecgprobe.exceptions import AnalysisError

__all__ = ["CONDITION_COLUMNS", "ConditionStats", "RobustnessResult", "sigmoid"]

#: Columns of the ``conditions`` table, in order.
CONDITION_COLUMNS: tuple[str, ...] = (
    "perturbation",
    "family",
    "level",
    "label",
    "macro_auroc",
    "ci_low",
    "ci_high",
    "drop",
    "drop_ci_low",
    "drop_ci_high",
    "handling",
    "noise",
    "n_test",
    "seconds",
    "computed",
    "status",
)


class RobustnessResult(Result):
    """Result of the robustness card (``kind = "robustness"``).

    Schema:
        metrics: ``encoder``, ``clean_macro_auroc`` (+ ``clean_macro_auroc_ci``), ``labels_headline``
            (the labels averaged, the clean probe's headline), ``n_test``, ``n_test_patients``,
            ``bootstrap_unit``, ``n_resamples``, ``ci_level``, ``ci_method``, ``seed``,
            ``noise_source`` ("generated" or the NST records' digest), ``mains_hz``,
            ``clean_extraction_s`` (all records), ``perturbed_extraction_s`` (every condition),
            ``cost_per_condition`` (a condition's extraction time as a multiple of the clean
            extraction's time per test record), ``n_conditions``, ``n_skipped``.
        tables: ``conditions``: one row per perturbation x level, the clean row first, columns
            :data:`CONDITION_COLUMNS` (``level``: SNR dB, lead set, intermediate Hz or factor;
            ``drop`` = clean - perturbed macro AUROC with its paired interval; ``handling``: lead
            sets "zero-filled" or "dropped", with the plan; ``status``: "ok" or why skipped).
        arrays: ``test_ids``, ``test_patient_ids``, ``test_y`` (N x C, the headline labels),
            ``scores`` (K x N x C probabilities, row k = condition k of the table that was
            evaluated, the clean one first), ``macro_auroc_replicates`` (K x B).
    """

    KIND: ClassVar[str] = "robustness"


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function, overflow-free."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))


class ConditionStats:
    """Macro AUROC of scores on fixed test records with paired patient-bootstrap intervals.

    Args:
        y: ``(N, C)`` 0/1 labels of the labels to average.
        groups: patient id per record (the resampling unit).
        clean: ``(N, C)`` the clean probe's scores.
        n_resamples: bootstrap resamples (one set of draws for every condition).
        seed: seed of the draws.
        ci_level: interval level.
        ci_method: ``"percentile"`` or ``"bca"``.

    Raises:
        AnalysisError: no label has both classes among the test records.
    """

    def __init__(
        self,
        y: np.ndarray,
        groups: Sequence[str],
        clean: np.ndarray,
        *,
        n_resamples: int,
        seed: int,
        ci_level: float,
        ci_method: str = "percentile",
    ) -> None:
        self.y = np.asarray(y)
        self.groups = np.asarray(groups, dtype=str)
        self.weights = resample_weights(self.groups, n_resamples, seed)
        self.jack = jackknife_weights(self.groups, seed=seed) if ci_method == "bca" else None
        self.level, self.method = ci_level, ci_method
        self.cols = np.flatnonzero(np.isfinite(rank_metrics(self.y, clean, ap=False)[0][0]))
        if not len(self.cols):
            raise AnalysisError("no label has both classes among the test records; AUROC is undefined")
        self.clean = self._macro(clean)

    def _macro(self, scores: np.ndarray) -> dict[str, Any]:
        def macro(w: np.ndarray | None) -> np.ndarray:
            return macro_replicates(rank_metrics(self.y, scores, w, ap=False)[0], self.cols)

        return {
            "point": float(macro(None)[0]),
            "reps": macro(self.weights),
            "jack": None if self.jack is None else macro(self.jack),
        }

    def _ci(self, reps: np.ndarray, point: float, jack: np.ndarray | None) -> list[float]:
        return confidence_interval(
            reps, self.level, method=self.method, point=np.asarray(point), jackknife=jack
        ).tolist()

    def evaluate(self, scores: np.ndarray) -> dict[str, Any]:
        """``macro_auroc``, ``ci_low``/``ci_high``, ``drop`` (clean - this) and its paired interval,
        and the replicates (``replicates``) of one condition's scores ``(N, C)``."""
        m = self._macro(np.asarray(scores, dtype=np.float64))
        c = self.clean
        lo, hi = self._ci(m["reps"], m["point"], m["jack"])
        jack = None if m["jack"] is None else c["jack"] - m["jack"]
        dlo, dhi = self._ci(c["reps"] - m["reps"], c["point"] - m["point"], jack)
        return {
            "macro_auroc": m["point"],
            "ci_low": lo,
            "ci_high": hi,
            "drop": c["point"] - m["point"],
            "drop_ci_low": dlo,
            "drop_ci_high": dhi,
            "replicates": m["reps"],
        }
