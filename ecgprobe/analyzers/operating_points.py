"""``operating_points``: what the linear probe means at the bedside — sensitivity, specificity,
PPV and NPV per label at a threshold, with confusion counts and patient-bootstrap intervals.

Two thresholds per label, both chosen on the **validation** split (never on test):

- ``val_f1``: the threshold the probe itself chose on validation (maximum F1);
- ``sens_<q>``: the highest threshold whose validation sensitivity is at least ``sensitivity``
  (default 90 %), the usual screening operating point.

Each is then applied once to the test split. Intervals come from the same cluster bootstrap as
the probe's (test patients drawn with replacement, every record of a drawn patient counted as
often as its patient was drawn); PPV and NPV depend on the test prevalence, which is stated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ecgprobe.analyzers._stats.bootstrap import (
    bootstrap_unit,
    check_resampling,
    percentile_ci,
    resample_weights,
)
from ecgprobe.analyzers._stats.heads import resolve_head
from ecgprobe.analyzers.base import ANALYZERS, Analyzer, Result, analyzer_settings
from ecgprobe.data.record import RecordSet
from ecgprobe.exceptions import AnalysisError, ConfigError
from ecgprobe.extract.embeddings import Embeddings

__all__ = ["OperatingPoints", "OperatingPointsResult", "threshold_for_sensitivity"]

_RATES = ("sensitivity", "specificity", "ppv", "npv")


@dataclass
class OperatingPointsResult(Result):
    """Result of :class:`OperatingPoints`.

    Schema:
        tables: ``per_label``: one row per (label, operating point) with ``label``, ``point``
            (``val_f1`` or ``sens_90``), ``threshold`` (probability), ``tp``, ``fp``, ``tn``,
            ``fn`` on test, ``prevalence``, and ``sensitivity``/``specificity``/``ppv``/``npv``
            each with ``_ci_low``/``_ci_high``; ``val_sensitivity`` (what the threshold gave
            on validation).
        metrics: ``sensitivity_target``, ``n_test``, ``n_test_patients``, ``n_resamples``,
            ``ci_level``, ``bootstrap_unit``, ``labels``.
    """

    KIND: ClassVar[str] = "operating_points"


def threshold_for_sensitivity(y: np.ndarray, p: np.ndarray, target: float) -> float:
    """The highest threshold ``t`` with ``mean(p[y == 1] >= t) >= target`` (NaN without positives)."""
    pos = np.sort(np.asarray(p, dtype=np.float64)[np.asarray(y) == 1])[::-1]
    if not len(pos):
        return float("nan")
    k = int(np.ceil(target * len(pos))) - 1  # the k-th highest positive score keeps k+1 of them
    return float(pos[min(max(k, 0), len(pos) - 1)])


def _rates(tp: np.ndarray, fp: np.ndarray, tn: np.ndarray, fn: np.ndarray) -> dict[str, np.ndarray]:
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "sensitivity": tp / (tp + fn),
            "specificity": tn / (tn + fp),
            "ppv": tp / (tp + fp),
            "npv": tn / (tn + fn),
        }


@ANALYZERS.register(
    "operating_points", summary="sensitivity, specificity, PPV, NPV at validation-chosen thresholds, with CIs"
)
@analyzer_settings
class OperatingPoints(Analyzer):
    """Sensitivity, specificity, PPV and NPV of a linear probe at validation-chosen thresholds.

    Args:
        probe: the fitted ``linear_probe`` result (its head and validation thresholds), a dict of
            probe settings, or ``None`` to fit one.
        sensitivity: the target sensitivity of the screening operating point (0–1).
        n_resamples: bootstrap resamples of the test patients.
        ci_level: interval level.
        seed: seed of the resampling.

    Raises:
        ConfigError: bad settings.
        AnalysisError: no validation or test records, or a multi-class/regression task.

    Example:
        >>> res = OperatingPoints(probe=probe_result).run(emb, records)  # doctest: +SKIP
        >>> res.table("per_label").query("point == 'sens_90'")  # doctest: +SKIP
    """

    name = "operating_points"
    requires: ClassVar[Mapping[str, str]] = {"probe": "linear_probe"}

    probe: Result | dict[str, Any] | None = None
    sensitivity: float = 0.9
    n_resamples: int = 1000
    ci_level: float = 0.95
    seed: int = 0

    def _validate(self) -> None:
        if not isinstance(self.sensitivity, (int, float)) or not 0 < float(self.sensitivity) < 1:
            raise ConfigError(f"sensitivity must be a number in (0, 1), got {self.sensitivity!r}")
        check_resampling(self.n_resamples, self.ci_level, least=10)
        if self.ci_level <= 0.5:
            raise ConfigError(f"ci_level must be in (0.5, 1), got {self.ci_level!r}")

    def _run(self, emb: Embeddings, records: RecordSet) -> OperatingPointsResult:
        if records.task != "multilabel":
            raise AnalysisError(f"operating points need binary labels; {records.name!r} is {records.task!r}")
        head = resolve_head(self.probe, emb, records)
        names = list(records.label_names)
        cols = [names.index(lab) for lab in head.labels]
        val, test = records.split == "val", records.split == "test"
        if not val.any() or not test.any():
            raise AnalysisError(
                f"operating points need val and test records ({int(val.sum())} val, {int(test.sum())} test)"
            )
        prob = lambda m: 1.0 / (1.0 + np.exp(-head.logits(emb.X[m])))  # noqa: E731
        p_val, p_test = prob(val), prob(test)
        y_val, y_test = records.y[val][:, cols], records.y[test][:, cols]
        f1_thr = self._probe_thresholds(head.labels)
        groups = np.asarray(records.patient_ids[test], dtype=str)
        weights = resample_weights(groups, self.n_resamples, self.seed).astype(np.float64)  # (B, N)
        point = f"sens_{round(100 * float(self.sensitivity))}"
        rows = []
        for c, label in enumerate(head.labels):
            yv, yt = y_val[:, c] == 1, y_test[:, c] == 1
            if yt.all() or not yt.any():
                continue
            chosen = {
                "val_f1": f1_thr.get(label, float("nan")),
                point: threshold_for_sensitivity(yv, p_val[:, c], self.sensitivity),
            }
            for name, thr in chosen.items():
                if not np.isfinite(thr):
                    continue
                pred = p_test[:, c] >= thr
                cells = {
                    "tp": yt & pred,
                    "fp": ~yt & pred,
                    "tn": ~yt & ~pred,
                    "fn": yt & ~pred,
                }
                counts = {k: float(v.sum()) for k, v in cells.items()}
                reps = _rates(*(weights @ cells[k].astype(np.float64) for k in ("tp", "fp", "tn", "fn")))
                est = _rates(*(np.asarray(counts[k]) for k in ("tp", "fp", "tn", "fn")))
                row: dict[str, Any] = {
                    "label": label,
                    "point": name,
                    "threshold": float(thr),
                    **{k: int(v) for k, v in counts.items()},
                    "prevalence": float(yt.mean()),
                    "val_sensitivity": float(np.mean(p_val[yv, c] >= thr)) if yv.any() else None,
                }
                for rate in _RATES:
                    lo, hi = (
                        percentile_ci(reps[rate][np.isfinite(reps[rate])], self.ci_level)
                        if np.isfinite(reps[rate]).any()
                        else (np.nan, np.nan)
                    )
                    row[rate] = float(est[rate])
                    row[f"{rate}_ci_low"], row[f"{rate}_ci_high"] = float(lo), float(hi)
                rows.append(row)
        if not rows:
            raise AnalysisError("no label has both classes on test; operating points cannot be computed")
        return OperatingPointsResult(
            kind=OperatingPointsResult.KIND,
            metrics={
                "sensitivity_target": float(self.sensitivity),
                "n_test": int(test.sum()),
                "n_test_patients": int(len(np.unique(groups))),
                "n_resamples": self.n_resamples,
                "ci_level": self.ci_level,
                "bootstrap_unit": bootstrap_unit(groups, records.ids[test]),
                "labels": sorted({r["label"] for r in rows}, key=list(head.labels).index),
            },
            tables={"per_label": rows},
            params={
                "sensitivity": self.sensitivity,
                "n_resamples": self.n_resamples,
                "ci_level": self.ci_level,
            },
            seed=self.seed,
            notes=[
                "thresholds are chosen on the validation split and applied once to test; PPV and NPV "
                "depend on the test prevalence shown beside them"
            ],
        )

    def _probe_thresholds(self, labels: tuple[str, ...]) -> dict[str, float]:
        """The probe's own validation thresholds (maximum F1), by label."""
        if not isinstance(self.probe, Result) or "val_thresholds" not in self.probe.arrays:
            return {}
        fitted = list(self.probe.metrics.get("labels_fitted", []))
        thr = np.asarray(self.probe.arrays["val_thresholds"], dtype=np.float64)
        return {lab: float(thr[i]) for i, lab in enumerate(fitted) if lab in labels and i < len(thr)}
