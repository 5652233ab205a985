"""The data-scarcity study: how the linear probe's test AUROC grows with the labelled training data.

For each seed, nested patient-wise stratified subsets of the *train* split are drawn
(:mod:`ecgprobe.analyzers.subsets`): fractions of its records (default 1, 2, 5, 10, 25, 50,
100 %) or at least ``n`` positives per label. On each subset the linear probe is fitted exactly as
:class:`ecgprobe.analyzers.probe.LinearProbe` does (standardisation fitted on the subset, C chosen
per label on validation), and evaluated on the fixed test split. The validation split is kept
whole (``subsample_val=True`` subsamples it to the same fraction, for a fully low-label setting).
The embeddings are computed once and reused; the full training set is the same for every seed and
is fitted once.

Labels without a positive (or a negative) in a subset cannot be fitted there: they are excluded
from that subset's macro AUROC and listed (the per-fraction ``n_labels`` says how many remain).

Definitions of the summary (``x`` = training fraction, or samples per class):

- ``full_macro_auroc``: macro test AUROC with the whole training split.
- ``fraction_for_95pct`` (``samples_for_95pct`` for counts): the smallest ``x`` at which the
  seed-mean curve reaches 95 % of ``full_macro_auroc``, interpolated linearly in ``log10 x``
  between the last grid point below and the first at or above the target; the smallest grid
  value when the curve starts above it (``reached_at_smallest`` true), None if never reached.
  ``..._above_chance`` does the same with the target ``0.5 + 0.95 (full - 0.5)``.
- ``normalised_auc``: the area under the seed-mean curve over ``log10 x`` (trapezoids), divided
  by the width of the axis and by ``full_macro_auroc``: 1 means no loss at any grid point;
  ``normalised_auc_above_chance`` uses ``AUROC - 0.5`` in both places.
- Because small subsets drop rare labels, the macro average at small ``x`` covers fewer (often
  easier or harder) labels than at 100 %. The ``..._common`` variants (curve column
  ``macro_auroc_common_mean``, metrics ``fraction_for_95pct_common``/``normalised_auc_common``)
  average only ``labels_common``, the labels fitted in every run, and so compare like with like.

Intervals: ``macro_auroc_ci`` per grid point is a two-stage percentile bootstrap of the seed mean:
each resample draws test patients (as the probes do) and, independently, seeds with replacement,
so it covers both test-set sampling and the choice of training subset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ecgprobe.analyzers.base import ANALYZERS, Analyzer, Result
from ecgprobe.analyzers.bootstrap import bootstrap_unit, percentile_ci, resample_weights
from ecgprobe.analyzers.evaluation import (
    check_grid,
    fit_scaler,
    fittable_labels,
    select_by_val,
    split_data,
    val_auroc,
)
from ecgprobe.analyzers.metrics import rank_metrics
from ecgprobe.analyzers.probe import DEFAULT_CS, LinearProbe
from ecgprobe.analyzers.subsets import nested_count_subsets, nested_fraction_subsets
from ecgprobe.data.record import RecordSet
from ecgprobe.exceptions import AnalysisError, ConfigError
from ecgprobe.extract.embeddings import Embeddings

__all__ = ["DEFAULT_FRACTIONS", "ScarcityCurve", "ScarcityResult", "crossing_point", "normalised_area"]

DEFAULT_FRACTIONS: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)


class ScarcityResult(Result):
    """Result of :class:`ScarcityCurve` (``kind = "scarcity"``).

    Schema:
        metrics: ``mode`` ("fraction" or "samples_per_class"), ``grid`` (x values), ``n_seeds``,
            ``full_macro_auroc``, ``fraction_for_95pct`` / ``samples_for_95pct`` (+
            ``..._above_chance``), ``reached_at_smallest``, ``normalised_auc``,
            ``normalised_auc_above_chance``, ``labels_common``, ``..._95pct_common``,
            ``normalised_auc_common``, ``labels`` (label order of the arrays),
            ``n_resamples``, ``ci_level``, ``bootstrap_unit``.
        tables:
            ``curve``: x, n_train_mean, n_patients_mean, macro_auroc_mean, macro_auroc_sd,
            macro_auroc_ci_low, macro_auroc_ci_high, macro_auroc_common_mean, n_labels_min,
            labels_excluded (list).
            ``per_label``: x, label, auroc_mean, auroc_ci_low, auroc_ci_high, n_seeds_evaluated.
            ``runs``: x, seed, n_train, n_patients, macro_auroc, n_labels, labels_excluded.
        arrays: ``grid`` (F,), ``seeds`` (S,), ``macro_auroc`` (F x S), ``per_label_auroc``
            (F x S x L, NaN where excluded), ``chosen_C`` (F x S x L), ``n_train`` (F x S),
            ``subset_masks`` (F x S x n_train_records, bool; row order ``train_ids``),
            ``train_ids``, ``macro_auroc_replicates`` (B x F), ``full_per_label_auroc`` (L,).
    """

    KIND: ClassVar[str] = "scarcity"


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


@ANALYZERS.register("scarcity", summary="linear-probe AUROC vs amount of labelled training data")
class ScarcityCurve(Analyzer):
    """Data-scarcity curve of the linear probe (see the module docstring for the definitions).

    Args:
        fractions: training fractions in (0, 1] (1 is always added: the reference).
        samples_per_class: instead of fractions, minimum positives per label (e.g. (5, 10, 50)).
        n_seeds: independent nested subset draws.
        seed: base seed (subset draws use ``seed + i``; the bootstrap uses ``seed``).
        subsample_val: subsample the validation split to the same fraction of records.
        Cs: C grid of the probe; c_selection: as :class:`LinearProbe`.
        n_resamples: resamples of the two-stage bootstrap (0: no intervals).
        ci_level: confidence level.
        device, tol, max_iter: solver settings, as :class:`LinearProbe`.

    Example:
        >>> res = ScarcityCurve(fractions=(0.1, 0.5, 1.0), n_seeds=3).run(emb, records)  # doctest: +SKIP
        >>> res.table("curve")[["x", "macro_auroc_mean"]]  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        fractions: tuple[float, ...] = DEFAULT_FRACTIONS,
        samples_per_class: tuple[int, ...] | None = None,
        n_seeds: int = 5,
        seed: int = 0,
        subsample_val: bool = False,
        Cs: tuple[float, ...] = DEFAULT_CS,
        c_selection: str = "per_label",
        n_resamples: int = 200,
        ci_level: float = 0.95,
        device: str = "auto",
        tol: float = 1e-5,
        max_iter: int = 100,
    ) -> None:
        self.fractions = fractions
        self.samples_per_class = samples_per_class
        self.n_seeds = n_seeds
        self.seed = seed
        self.subsample_val = subsample_val
        self.Cs = Cs
        self.c_selection = c_selection
        self.n_resamples = n_resamples
        self.ci_level = ci_level
        self.device = device
        self.tol = tol
        self.max_iter = max_iter

    def _validate(self) -> None:
        if self.samples_per_class is not None:
            counts = sorted({int(v) for v in self.samples_per_class})
            if not counts or counts[0] < 1:
                raise ConfigError(
                    f"samples_per_class must be positive integers, got {self.samples_per_class}"
                )
            self.samples_per_class = tuple(counts)
        else:
            f = check_grid(self.fractions, "fractions")
            if f[-1] > 1:
                raise ConfigError(f"fractions must be in (0, 1], got {list(self.fractions)}")
            self.fractions = tuple(sorted(set(f) | {1.0}))
        if int(self.n_seeds) < 1:
            raise ConfigError(f"n_seeds must be >= 1, got {self.n_seeds}")
        if int(self.n_resamples) < 0 or not 0 < float(self.ci_level) < 1:
            raise ConfigError(
                f"need n_resamples >= 0 and 0 < ci_level < 1, got {self.n_resamples}, {self.ci_level}"
            )
        self._probe()

    def _probe(self) -> LinearProbe:
        probe = LinearProbe(
            Cs=self.Cs, c_selection=self.c_selection, device=self.device, tol=self.tol, max_iter=self.max_iter
        )
        probe._validate()
        return probe

    def _fit_eval(self, probe: LinearProbe, X: dict, Y: dict, train: np.ndarray, val: np.ndarray) -> _Fit:
        """Fit on the train rows ``train``, tune on the val rows ``val``, score the test split."""
        y_tr = Y["train"][train]
        try:
            cols, _ = fittable_labels([str(j) for j in range(y_tr.shape[1])], y_tr)
        except AnalysisError:  # no label with both classes in this subset: nothing to fit
            return _Fit(np.zeros(0, dtype=np.int64), np.zeros((len(Y["test"]), 0)), np.zeros(0))
        mean, scale, _ = fit_scaler(X["train"][train])
        std = {s: ((X[s][m] - mean) / scale).astype(np.float32) for s, m in (("train", train), ("val", val))}
        path = probe.fit_path(std["train"], y_tr[:, cols])
        v_auc = val_auroc(Y["val"][val][:, cols], path.decision_function(std["val"]))
        try:
            idx, _, _ = select_by_val(v_auc, per_label=self.c_selection == "per_label")
        except AnalysisError:  # a subsampled val split without any usable label
            idx = np.full(len(cols), len(probe.Cs) // 2)
        j = np.arange(len(cols))
        coef, b = path.coef[idx, j], path.intercept[idx, j]
        scores = ((X["test"] - mean) / scale) @ coef.T + b
        return _Fit(cols, scores, np.asarray(probe.Cs)[idx])

    def _run(self, emb: Embeddings, records: RecordSet) -> Result:
        if records.task != "multilabel":
            raise AnalysisError("the scarcity curve handles multi-label targets (it uses macro AUROC)")
        data = split_data(emb.X, records)
        names = list(records.label_names)
        Y = {s: data.y[s].astype(np.uint8) for s in data.y}
        train_groups = records.patient_ids[records.split == "train"]
        val_groups = records.patient_ids[records.split == "val"]
        probe = self._probe()
        mode = "fraction" if self.samples_per_class is None else "samples_per_class"
        grid = np.asarray(self.fractions if mode == "fraction" else self.samples_per_class, dtype=np.float64)
        seeds = [int(self.seed) + i for i in range(int(self.n_seeds))]
        F, S, L, n_tr = len(grid), len(seeds), len(names), len(Y["train"])
        masks = np.zeros((F, S, n_tr), dtype=bool)
        for si, s in enumerate(seeds):
            if mode == "fraction":
                masks[:, si] = nested_fraction_subsets(Y["train"], train_groups, grid, seed=s)
            else:
                masks[:, si] = nested_count_subsets(Y["train"], train_groups, grid.astype(int), seed=s)

        fits: dict[bytes, _Fit] = {}

        def fit(train: np.ndarray, val: np.ndarray) -> bytes:
            key = np.packbits(train).tobytes() + np.packbits(val).tobytes()
            if key not in fits:  # identical subsets (the full training set) are fitted once
                fits[key] = self._fit_eval(probe, data.X, Y, train, val)
            return key

        all_val = np.ones(len(Y["val"]), dtype=bool)
        full_key = fit(np.ones(n_tr, dtype=bool), all_val)
        keys = np.empty((F, S), dtype=object)
        for fi in range(F):
            for si, s in enumerate(seeds):
                val = all_val
                if self.subsample_val:
                    share = min(1.0, max(masks[fi, si].sum(), 1) / n_tr)
                    val = nested_fraction_subsets(Y["val"], val_groups, [share], seed=s)[0]
                keys[fi, si] = fit(masks[fi, si], val)
        test_ok = (Y["test"].sum(0) > 0) & (Y["test"].sum(0) < len(Y["test"]))
        if not test_ok.any():
            raise AnalysisError("no label has both classes in the test split; AUROC is undefined")

        def per_label_auc(weights: np.ndarray | None) -> dict[bytes, np.ndarray]:
            out = {}
            for key, f in fits.items():
                auc = np.full((1 if weights is None else len(weights), L), np.nan)
                if len(f.cols):
                    auc[:, f.cols] = rank_metrics(Y["test"][:, f.cols], f.scores, weights, ap=False)[0]
                auc[:, ~test_ok] = np.nan
                out[key] = auc
            return out

        point = per_label_auc(None)
        per_label = np.stack([[point[keys[fi, si]][0] for si in range(S)] for fi in range(F)])
        chosen_C = np.full((F, S, L), np.nan)
        for fi in range(F):
            for si in range(S):
                f = fits[keys[fi, si]]
                chosen_C[fi, si, f.cols] = f.C
        macro = _nanmean(per_label, -1)  # (F, S): over labels fitted there and evaluable
        full_labels = point[full_key][0]
        full = float(np.nanmean(full_labels))

        B = int(self.n_resamples)
        rep_curve = np.full((B, F), np.nan)
        lab_ci = np.full((F, L, 2), np.nan)
        if B:
            reps = per_label_auc(resample_weights(data.test_groups, B, int(self.seed)))
            lab = np.stack([np.stack([reps[keys[fi, si]] for si in range(S)], 1) for fi in range(F)], 1)
            # second stage: the seeds (training subsets) are redrawn with replacement per resample
            draws = np.random.default_rng(int(self.seed)).integers(0, S, size=(B, S))
            lab = np.take_along_axis(lab, np.broadcast_to(draws[:, None, :, None], lab.shape), axis=2)
            rep_curve = _nanmean(_nanmean(lab, -1), -1)  # (B, F)
            lab_ci = percentile_ci(_nanmean(lab, 2), float(self.ci_level))  # (F, L, 2)
        curve = _nanmean(macro, -1)
        # Labels fitted in every run: their macro average compares like with like across x.
        common = test_ok & np.isfinite(per_label).all(axis=(0, 1))
        curve_common = _nanmean(_nanmean(np.where(common, per_label, np.nan), -1), -1)
        full_common = float(np.mean(full_labels[common])) if common.any() else float("nan")
        x = grid
        target = 0.95 * full
        cross, at_smallest = crossing_point(x, curve, target)
        cross_chance, _ = crossing_point(x, curve, 0.5 + 0.95 * (full - 0.5))
        name = "fraction_for_95pct" if mode == "fraction" else "samples_for_95pct"
        ci = percentile_ci(rep_curve, float(self.ci_level)) if B else np.full((F, 2), np.nan)
        excluded = [
            [[names[j] for j in np.flatnonzero(test_ok & ~np.isfinite(per_label[fi, si]))] for si in range(S)]
            for fi in range(F)
        ]
        n_train = masks.sum(-1)
        train_groups_arr = np.asarray(train_groups, dtype=str)
        n_patients = np.array(
            [[len(set(train_groups_arr[masks[fi, si]])) for si in range(S)] for fi in range(F)]
        )
        curve_rows = [
            {
                "x": float(x[fi]),
                "n_train_mean": float(n_train[fi].mean()),
                "n_patients_mean": float(n_patients[fi].mean()),
                "macro_auroc_mean": float(curve[fi]),
                "macro_auroc_sd": _sd(macro[fi]),
                "macro_auroc_ci_low": float(ci[fi, 0]),
                "macro_auroc_ci_high": float(ci[fi, 1]),
                "macro_auroc_common_mean": float(curve_common[fi]),
                "n_labels_min": int(np.isfinite(per_label[fi]).sum(-1).min()),
                "labels_excluded": sorted({lab for run in excluded[fi] for lab in run}),
            }
            for fi in range(F)
        ]
        lab_mean = _nanmean(per_label, 1)  # (F, L)
        label_rows = [
            {
                "x": float(x[fi]),
                "label": names[j],
                "auroc_mean": float(lab_mean[fi, j]),
                "auroc_ci_low": float(lab_ci[fi, j, 0]),
                "auroc_ci_high": float(lab_ci[fi, j, 1]),
                "n_seeds_evaluated": int(np.isfinite(per_label[fi, :, j]).sum()),
            }
            for fi in range(F)
            for j in range(L)
            if test_ok[j]
        ]
        run_rows = [
            {
                "x": float(x[fi]),
                "seed": seeds[si],
                "n_train": int(n_train[fi, si]),
                "n_patients": int(n_patients[fi, si]),
                "macro_auroc": float(macro[fi, si]),
                "n_labels": int(np.isfinite(per_label[fi, si]).sum()),
                "labels_excluded": excluded[fi][si],
            }
            for fi in range(F)
            for si in range(S)
        ]
        notes = list(data.notes)
        dropped = sorted({lab for row in curve_rows for lab in row["labels_excluded"]})
        if dropped:
            notes.append(
                f"labels without a positive (or negative) in some training subsets were excluded there: "
                f"{', '.join(dropped)} (see tables curve/runs)"
            )
        if (~test_ok).any():
            notes.append(f"not evaluable on test (a class missing): {', '.join(np.asarray(names)[~test_ok])}")
        metrics = {
            "mode": mode,
            "grid": x.tolist(),
            "n_seeds": S,
            "labels": names,
            "full_macro_auroc": full,
            name: cross,
            f"{name}_above_chance": cross_chance,
            "reached_at_smallest": at_smallest,
            "normalised_auc": normalised_area(x, curve, full),
            "normalised_auc_above_chance": normalised_area(x, curve, full, floor=0.5),
            "labels_common": [names[j] for j in np.flatnonzero(common)],
            f"{name}_common": crossing_point(x, curve_common, 0.95 * full_common)[0]
            if common.any()
            else None,
            "normalised_auc_common": normalised_area(x, curve_common, full_common) if common.any() else None,
            "n_resamples": B,
            "ci_level": float(self.ci_level),
            "bootstrap_unit": bootstrap_unit(data.test_groups, data.test_ids),
            "n_train_total": n_tr,
            "n_val": len(Y["val"]),
            "n_test": len(Y["test"]),
        }
        arrays = {
            "grid": x,
            "seeds": np.asarray(seeds),
            "macro_auroc": macro,
            "per_label_auroc": per_label,
            "chosen_C": chosen_C,
            "n_train": n_train,
            "subset_masks": masks,
            "train_ids": np.asarray(records.ids[records.split == "train"], dtype=str),
            "macro_auroc_replicates": rep_curve,
            "full_per_label_auroc": full_labels,
        }
        return ScarcityResult(
            kind=ScarcityResult.KIND,
            metrics=metrics,
            tables={"curve": curve_rows, "per_label": label_rows, "runs": run_rows},
            arrays=arrays,
            seed=int(self.seed),
            notes=notes,
        )


@dataclass
class _Fit:
    """One subset's fit: fitted label columns, their test logits and chosen C."""

    cols: np.ndarray
    scores: np.ndarray
    C: np.ndarray


def _sd(values: np.ndarray) -> float:
    """Sample standard deviation over the finite values; 0 for one seed, NaN when fewer than two
    seeds gave a value (no numpy 'degrees of freedom' warning)."""
    if len(values) == 1:
        return 0.0
    finite = values[np.isfinite(values)]
    return float(np.std(finite, ddof=1)) if len(finite) > 1 else float("nan")


def _nanmean(a: np.ndarray, axis: int) -> np.ndarray:
    """Mean ignoring NaN; NaN (without a warning) where a slice is all NaN."""
    finite = np.isfinite(a)
    n = finite.sum(axis)
    total = np.where(finite, a, 0.0).sum(axis)
    return np.where(n > 0, total / np.maximum(n, 1), np.nan)
