"""``repeated_splits``: the linear probe over a rotation of patient-wise folds.

One split gives one number with a bootstrap interval over its *test records*; it does not say how
much the number moves when other patients are in train and test. This analysis rotates the test
fold over ``k`` patient-wise folds and reports the spread across folds beside the interval:

1. folds: the dataset's own (PTB-XL's ``strat_fold`` 1-10, stratified by its authors), else
   ``k`` seeded, patient-wise, label-stratified folds (:func:`~ecgprobe.data.splits.stratified_patient_folds`,
   the construction ``strat_fold`` comes from);
2. rotation ``r`` tests on fold ``t`` and chooses C on fold ``t - 1`` (fold ``k`` for ``t = 1``),
   training on the rest; with PTB-XL's folds the rotation testing on fold 10 is the recommended
   split (train 1-8, val 9, test 10), reported as the reference rotation;
3. each rotation is :class:`~ecgprobe.analyzers.linear_probe.LinearProbe` unchanged (its own
   patient-bootstrap interval); the headline per rotation is the macro AUROC over the labels
   evaluated in **every** rotation (R² for a regression target), so that rotations are compared
   on the same labels;
4. mean and sample standard deviation across rotations. The standard deviation is a spread, not a
   confidence interval: the training sets of two rotations share ``(k - 2) / (k - 1)`` of their
   patients, so the rotations are not independent and no unbiased estimator of the variance of
   the k-fold mean exists (Bengio & Grandvalet, JMLR 2004). The bootstrap interval of the
   reference rotation is the interval; the spread says how far another split could move it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

import numpy as np

from ecgprobe.analyzers._stats.bootstrap import DEFAULT_MIN_POSITIVES
from ecgprobe.analyzers._stats.evaluation import check_common
from ecgprobe.analyzers.base import ANALYZERS, Analyzer, Result, analyzer_settings
from ecgprobe.analyzers.linear_probe import DEFAULT_CS, LinearProbe
from ecgprobe.data.record import RecordSet
from ecgprobe.data.splits import stratified_patient_folds
from ecgprobe.exceptions import AnalysisError, ConfigError
from ecgprobe.extract.embeddings import Embeddings

__all__ = ["RepeatedSplits", "RepeatedSplitsResult", "fold_numbers", "rotation_splits"]

#: The metadata column holding a dataset's own folds (PTB-XL's name).
FOLD_COLUMN = "strat_fold"


class RepeatedSplitsResult(Result):
    """Result of :class:`RepeatedSplits` (``kind = "repeated_splits"``).

    Schema:
        metrics: ``task``; ``metric`` ("macro_auroc" or "r2"); ``folds_source`` ("strat_fold"
            or "seeded"); ``k``; ``labels_common`` (labels evaluated in every rotation);
            ``mean``, ``sd``, ``min``, ``max`` of the per-rotation headline; ``reference_fold``
            (the test fold of the reference rotation), ``reference`` (its headline over the
            common labels), ``reference_macro`` and ``reference_macro_ci`` (that rotation's own
            headline and bootstrap interval, as ``probe`` reports them, over
            ``reference_n_labels_headline`` labels); ``n_rotations``;
            ``rotations_skipped`` {fold: reason}.
        tables: ``folds``: test_fold, val_fold, n_train, n_val, n_test, n_test_patients,
            value (headline over the common labels), macro (the probe's own headline),
            ci_low, ci_high (its interval), n_labels (evaluated), n_labels_headline (what
            ``macro`` averages); ``per_label``: test_fold, label, auroc
            (multilabel only).
    """

    KIND: ClassVar[str] = "repeated_splits"


def fold_numbers(records: RecordSet, k: int | None = None, *, seed: int = 0) -> tuple[np.ndarray, str]:
    """The fold of each record: the dataset's ``strat_fold`` when present (and ``k`` is ``None``
    or equals its number of folds), else ``k`` seeded patient-wise stratified folds (10 when
    ``k`` is ``None``).

    Returns:
        ``(folds, source)``: int fold numbers ``1..k`` and ``"strat_fold"`` or ``"seeded"``.

    Raises:
        ConfigError: an invalid ``k``; a ``strat_fold`` column that splits a patient across folds.
    """
    if FOLD_COLUMN in records.meta.columns:
        raw = records.meta[FOLD_COLUMN].to_numpy()
        own = np.asarray(raw, dtype=np.int64) if np.isfinite(np.asarray(raw, dtype=float)).all() else None
        if own is not None and (k is None or k == len(np.unique(own))):
            by_patient: dict[str, set[int]] = {}
            for p, f in zip(records.patient_ids, own):
                by_patient.setdefault(str(p), set()).add(int(f))
            split = [p for p, fs in by_patient.items() if len(fs) > 1]
            if split:
                raise ConfigError(
                    f"the {FOLD_COLUMN!r} column puts patients in several folds (e.g. {split[:3]}): "
                    "rotating over it would leak patients; pass k to build patient-wise folds"
                )
            _, folds = np.unique(own, return_inverse=True)
            return folds.astype(np.int64) + 1, FOLD_COLUMN
    y = records.y if records.task == "multilabel" else _quantile_bins(records.y)
    return stratified_patient_folds(y, records.patient_ids, 10 if k is None else k, seed=seed), "seeded"


def rotation_splits(folds: np.ndarray, test_fold: int) -> np.ndarray:
    """Split names of a rotation: ``test_fold`` is test, the fold before it (cyclically) val."""
    k = int(folds.max())
    val_fold = k if test_fold == 1 else test_fold - 1
    split = np.full(len(folds), "train", dtype=object)
    split[folds == val_fold] = "val"
    split[folds == test_fold] = "test"
    return split


def _quantile_bins(y: np.ndarray, n_bins: int = 5) -> np.ndarray:
    """Quantile-bin indicators of a continuous target (NaN: no bin), to stratify folds by it."""
    v = np.asarray(y, dtype=float)[:, 0]
    out = np.zeros((len(v), n_bins), dtype=np.uint8)
    ok = np.isfinite(v)
    if ok.any():
        edges = np.quantile(v[ok], np.linspace(0, 1, n_bins + 1)[1:-1])
        out[np.flatnonzero(ok), np.searchsorted(edges, v[ok], side="right")] = 1
    return out


@ANALYZERS.register(
    "repeated_splits",
    summary="linear probe over k rotated patient-wise folds: mean ± sd beside the bootstrap interval",
)
@analyzer_settings
class RepeatedSplits(Analyzer):
    """The linear probe on every rotation of ``k`` patient-wise folds (see the module docstring).

    Args:
        k: number of folds; ``None``: the dataset's ``strat_fold`` when it has one, else 10.
        Cs: C grid of the probes.
        c_selection: as :class:`~ecgprobe.analyzers.linear_probe.LinearProbe`'s.
        n_resamples: bootstrap resamples of each rotation's interval.
        ci_level: confidence level.
        ci_method: ``"percentile"`` or ``"bca"``.
        min_positives: as the linear probe's.
        seed: seed of the folds (when built) and of every bootstrap.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.

    Example:
        >>> res = RepeatedSplits().run(embeddings, ptbxl_records)  # doctest: +SKIP
        >>> res.metrics["mean"], res.metrics["sd"], res.metrics["reference_ci"]  # doctest: +SKIP
    """

    k: int | None = None
    Cs: tuple[float, ...] = DEFAULT_CS
    c_selection: str = "per_label"
    n_resamples: int = 1000
    ci_level: float = 0.95
    ci_method: str = "percentile"
    min_positives: int = DEFAULT_MIN_POSITIVES
    seed: int = 0
    device: str = "auto"

    def _validate(self) -> None:
        if self.k is not None and self.k < 3:
            raise ConfigError(f"k must be at least 3 (a train, a validation and a test fold), got {self.k}")
        check_common(self.n_resamples, self.ci_level, 10, self.ci_method, self.min_positives)

    def _run(self, emb: Embeddings, records: RecordSet) -> Result:
        folds, source = fold_numbers(records, self.k, seed=self.seed)
        k = int(folds.max())
        probe = LinearProbe(
            Cs=self.Cs,
            c_selection=self.c_selection,
            n_resamples=self.n_resamples,
            ci_level=self.ci_level,
            ci_method=self.ci_method,
            min_positives=self.min_positives,
            seed=self.seed,
            device=self.device,
        )
        regression = records.task == "regression"
        runs: dict[int, Result] = {}
        skipped: dict[int, str] = {}
        for t in range(1, k + 1):
            try:
                runs[t] = probe.run(emb, replace(records, split=rotation_splits(folds, t)))
            except AnalysisError as exc:
                skipped[t] = str(exc)
        if len(runs) < 2:
            raise AnalysisError(
                f"only {len(runs)} of {k} rotations could be probed ({skipped}); "
                "use fewer folds or a dataset with more positives per label"
            )
        per_label = {t: _per_label(r, regression) for t, r in runs.items()}
        common = sorted(set.intersection(*(set(v) for v in per_label.values())))
        if not common:
            raise AnalysisError("no label is evaluated in every rotation: use fewer folds")
        key = "r2" if regression else "macro_auroc"
        rows = []
        for t, r in runs.items():
            m = r.metrics
            rows.append(
                {
                    "test_fold": t,
                    "val_fold": k if t == 1 else t - 1,
                    "n_train": m["n_train"],
                    "n_val": m["n_val"],
                    "n_test": m["n_test"],
                    "n_test_patients": m.get("n_test_patients"),
                    "value": float(np.mean([per_label[t][lab] for lab in common])),
                    "macro": m[key],
                    "ci_low": m[f"{key}_ci"][0],
                    "ci_high": m[f"{key}_ci"][1],
                    "n_labels": len(per_label[t]),
                    "n_labels_headline": m.get("n_labels_headline", len(per_label[t])),
                }
            )
        values = np.array([r["value"] for r in rows])
        ref = k if (source == FOLD_COLUMN and k in runs) else max(runs)
        ref_row = next(r for r in rows if r["test_fold"] == ref)
        metrics: dict[str, Any] = {
            "task": records.task,
            "metric": key,
            "folds_source": source,
            "k": k,
            "n_rotations": len(runs),
            "labels_common": common,
            "mean": float(values.mean()),
            "sd": float(values.std(ddof=1)),
            "min": float(values.min()),
            "max": float(values.max()),
            "reference_fold": ref,
            "reference": ref_row["value"],
            "reference_macro": ref_row["macro"],
            "reference_macro_ci": [ref_row["ci_low"], ref_row["ci_high"]],
            "reference_n_labels_headline": ref_row["n_labels_headline"],
            "rotations_skipped": {str(t): why for t, why in skipped.items()},
        }
        notes = [
            "sd is the spread across rotations, not a confidence interval: rotations share training "
            "patients (Bengio & Grandvalet 2004); the interval is the reference rotation's bootstrap"
        ]
        notes += [f"rotation testing on fold {t} skipped: {why}" for t, why in skipped.items()]
        tables: dict[str, list[dict[str, Any]]] = {"folds": rows}
        if not regression:
            tables["per_label"] = [
                {"test_fold": t, "label": lab, "auroc": v}
                for t, d in per_label.items()
                for lab, v in d.items()
            ]
        return RepeatedSplitsResult(
            kind="repeated_splits", metrics=metrics, tables=tables, seed=self.seed, notes=notes
        )


def _per_label(result: Result, regression: bool) -> dict[str, float]:
    """The headline metric per label (AUROC of evaluated labels, or R² per target) of one probe."""
    if regression:
        return {str(r["target"]): float(r["r2"]) for r in result.tables["per_target"]}
    return {str(r["label"]): float(r["auroc"]) for r in result.tables["per_label"] if r["evaluated"]}
