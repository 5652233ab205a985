"""The data-scarcity study: how the linear probe's test AUROC grows with the labelled training data.

For each seed, nested patient-wise stratified subsets of the *train* split are drawn
(:mod:`ecgprobe.analyzers._stats.subsets`): fractions of its records (default 1, 2, 5, 10, 25, 50,
100 %) or at least ``n`` positives per label. On each subset the linear probe is fitted exactly as
:class:`ecgprobe.analyzers.linear_probe.LinearProbe` does (standardisation fitted on the subset, C chosen
per label on validation), and evaluated on the fixed test split. The validation split is kept
whole (``subsample_val=True`` subsamples it to the same fraction, for a fully low-label setting).
The embeddings are computed once and reused; the full training set is the same for every seed and
is fitted once.

The headline macro AUROC compares like with like: at every ``x`` (and for the full-data point)
it averages the same labels, ``labels_headline``: those fitted in every run (a label without a
positive, or a negative, in some subset cannot be fitted there) and with at least
``min_positives`` positive and negative test patients (``labels_flagged``: those below). The
curve's ``n_labels`` says how many; ``macro_auroc_all_mean`` (and ``full_macro_auroc_all``) keep
the raw macro over whatever labels each run could fit. When no label is fitted everywhere, the
headline falls back to that raw macro (``headline_basis`` "varying"; "all_evaluated" when every
label fitted everywhere is flagged, "min_positives" normally); a grid point without any label
is NaN and is not drawn.

Definitions of the summary (``x`` = training fraction, or samples per class):

- ``full_macro_auroc``: macro test AUROC (headline labels) with the whole training split.
- ``fraction_for_95pct`` (``samples_for_95pct`` for counts): the smallest ``x`` at which the
  seed-mean curve reaches 95 % of ``full_macro_auroc``, interpolated linearly in ``log10 x``
  between the last grid point below and the first at or above the target; the smallest grid
  value when the curve starts above it (``reached_at_smallest`` true), None if never reached.
  ``..._above_chance`` does the same with the target ``0.5 + 0.95 (full - 0.5)``.
- ``normalised_auc``: the area under the seed-mean curve over ``log10 x`` (trapezoids), divided
  by the width of the axis and by ``full_macro_auroc``: 1 means no loss at any grid point;
  ``normalised_auc_above_chance`` uses ``AUROC - 0.5`` in both places.

Intervals: ``macro_auroc_ci`` per grid point is a two-stage bootstrap of the seed mean (percentile,
or BCa with ``ci_method="bca"``): each resample draws test patients (as the probes do) and,
independently, seeds with replacement, so it covers both test-set sampling and the choice of
training subset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ecgprobe.analyzers._stats.bootstrap import (
    DEFAULT_MIN_POSITIVES,
    bootstrap_unit,
    check_ci_method,
    class_patients,
    confidence_interval,
    headline_columns,
    jackknife_weights,
    resample_weights,
)
from ecgprobe.analyzers._stats.evaluation import check_grid
from ecgprobe.analyzers._stats.metrics import rank_metrics
from ecgprobe.analyzers._stats.probe_data import fit_scaler, fittable_labels, split_data
from ecgprobe.analyzers._stats.scarcity_summary import crossing_point, normalised_area, scarcity_notes
from ecgprobe.analyzers._stats.subsets import nested_count_subsets, nested_fraction_subsets
from ecgprobe.analyzers.base import ANALYZERS, Analyzer, Result, analyzer_settings
from ecgprobe.analyzers.linear_probe import DEFAULT_CS, LinearProbe
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
            ``normalised_auc_above_chance``, ``full_macro_auroc_all``, ``labels_headline``,
            ``n_labels_headline``, ``headline_basis``, ``labels_common`` (fitted in every run),
            ``labels_flagged``, ``min_positives``, ``ci_method``, ``labels`` (label order of the
            arrays), ``n_resamples``, ``ci_level``, ``bootstrap_unit``.
        tables:
            ``curve``: x, n_train_mean, n_patients_mean, macro_auroc_mean, macro_auroc_sd,
            macro_auroc_ci_low, macro_auroc_ci_high, n_labels (in the headline macro),
            macro_auroc_all_mean, n_labels_min (fitted, in the raw macro), labels_excluded.
            ``per_label``: x, label, auroc_mean, auroc_ci_low, auroc_ci_high, n_seeds_evaluated,
            n_test_pos_patients, flagged, in_headline.
            ``runs``: x, seed, n_train, n_patients, macro_auroc, macro_auroc_all, n_labels,
            labels_excluded.
        arrays: ``grid`` (F,), ``seeds`` (S,), ``macro_auroc`` (F x S, headline),
            ``macro_auroc_all`` (F x S, raw), ``per_label_auroc``
            (F x S x L, NaN where excluded), ``chosen_C`` (F x S x L), ``n_train`` (F x S),
            ``subset_masks`` (F x S x n_train_records, bool; row order ``train_ids``),
            ``train_ids``, ``macro_auroc_replicates`` (B x F), ``full_per_label_auroc`` (L,).
    """

    KIND: ClassVar[str] = "scarcity"


@ANALYZERS.register("scarcity", summary="linear-probe AUROC vs amount of labelled training data")
@analyzer_settings
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
        ci_method: ``"percentile"`` or ``"bca"`` (acceleration from a test-patient jackknife with
            the seeds held fixed: an approximation for the two-stage bootstrap).
        min_positives: labels with fewer positive (or negative) test patients are flagged and
            left out of the headline curve, as in :class:`LinearProbe`.
        device, tol, max_iter, patience: solver settings, as :class:`LinearProbe`.

    Example:
        >>> res = ScarcityCurve(fractions=(0.1, 0.5, 1.0), n_seeds=3).run(emb, records)  # doctest: +SKIP
        >>> res.table("curve")[["x", "macro_auroc_mean"]]  # doctest: +SKIP
    """

    fractions: tuple[float, ...] = DEFAULT_FRACTIONS
    samples_per_class: tuple[int, ...] | None = None
    n_seeds: int = 5
    seed: int = 0
    subsample_val: bool = False
    Cs: tuple[float, ...] = DEFAULT_CS
    c_selection: str = "per_label"
    n_resamples: int = 200
    ci_level: float = 0.95
    ci_method: str = "percentile"
    min_positives: int = DEFAULT_MIN_POSITIVES
    device: str = "auto"
    tol: float = 1e-4
    max_iter: int = 100
    patience: int | None = 2

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
        check_ci_method(self.ci_method, self.min_positives)
        self._probe()

    def _probe(self) -> LinearProbe:
        probe = LinearProbe(
            Cs=self.Cs,
            c_selection=self.c_selection,
            device=self.device,
            tol=self.tol,
            max_iter=self.max_iter,
            patience=self.patience,
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
        y_val = Y["val"][val][:, cols]
        path, v_auc = probe.fit_tuned(std["train"], y_tr[:, cols], std["val"], y_val)
        try:
            idx, _, _ = probe.choose(path, v_auc, y_val)
        except AnalysisError:  # a subsampled val split without any usable label (whole path solved)
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

        def stack(by_key: dict[bytes, np.ndarray]) -> np.ndarray:  # (R, F, S, L)
            return np.stack([np.stack([by_key[keys[fi, si]] for si in range(S)], 1) for fi in range(F)], 1)

        point = per_label_auc(None)
        per_label = stack(point)[0]  # (F, S, L)
        chosen_C = np.full((F, S, L), np.nan)
        for fi in range(F):
            for si in range(S):
                f = fits[keys[fi, si]]
                chosen_C[fi, si, f.cols] = f.C
        # The headline averages the same labels at every x: those fitted in every run and not
        # flagged by min_positives (see the module docstring).
        k = int(self.min_positives)
        pos_pat, neg_pat = class_patients(Y["test"], data.test_groups)
        present = test_ok & np.isfinite(per_label).all(axis=(0, 1))
        _, flagged, _ = headline_columns(test_ok, pos_pat, neg_pat, k)
        head, _, basis = headline_columns(present, pos_pat, neg_pat, k)
        use = np.zeros(L, dtype=bool)
        use[head] = True
        if not present.any():
            basis, use = "varying", test_ok

        def macro_of(a: np.ndarray) -> np.ndarray:
            return _nanmean(np.where(use, a, np.nan), -1)

        macro, macro_all = macro_of(per_label), _nanmean(per_label, -1)  # (F, S)
        curve, lab_mean = _nanmean(macro, -1), _nanmean(per_label, 1)
        full_labels = point[full_key][0]
        full = float(macro_of(full_labels))
        B, level = int(self.n_resamples), float(self.ci_level)
        rep_curve = np.full((B, F), np.nan)
        ci, lab_ci = np.full((F, 2), np.nan), np.full((F, L, 2), np.nan)
        if B:
            lab = stack(per_label_auc(resample_weights(data.test_groups, B, int(self.seed))))
            # second stage: the seeds (training subsets) are redrawn with replacement per resample
            draws = np.random.default_rng(int(self.seed)).integers(0, S, size=(B, S))
            lab = np.take_along_axis(lab, np.broadcast_to(draws[:, None, :, None], lab.shape), axis=2)
            rep_curve = _nanmean(macro_of(lab), -1)  # (B, F)
            jack = jack_lab = None
            if self.ci_method == "bca":  # acceleration from the test patients (seeds held fixed)
                jl = stack(per_label_auc(jackknife_weights(data.test_groups, seed=int(self.seed))))
                jack, jack_lab = _nanmean(macro_of(jl), -1), _nanmean(jl, 2)
            opts = {"method": self.ci_method}
            ci = confidence_interval(rep_curve, level, point=curve, jackknife=jack, **opts)
            lab_ci = confidence_interval(_nanmean(lab, 2), level, point=lab_mean, jackknife=jack_lab, **opts)
        x = grid
        cross, at_smallest = crossing_point(x, curve, 0.95 * full)
        cross_chance, _ = crossing_point(x, curve, 0.5 + 0.95 * (full - 0.5))
        name = "fraction_for_95pct" if mode == "fraction" else "samples_for_95pct"
        excluded = [
            [[names[j] for j in np.flatnonzero(test_ok & ~np.isfinite(per_label[fi, si]))] for si in range(S)]
            for fi in range(F)
        ]
        n_train = masks.sum(-1)
        train_groups_arr = np.asarray(train_groups, dtype=str)
        n_patients = np.array(
            [[len(set(train_groups_arr[masks[fi, si]])) for si in range(S)] for fi in range(F)]
        )
        n_used = (np.isfinite(per_label) & use).sum(-1)  # (F, S) labels in the headline macro
        curve_rows = [
            {
                "x": float(x[fi]),
                "n_train_mean": float(n_train[fi].mean()),
                "n_patients_mean": float(n_patients[fi].mean()),
                "macro_auroc_mean": float(curve[fi]),
                "macro_auroc_sd": _sd(macro[fi]),
                "macro_auroc_ci_low": float(ci[fi, 0]),
                "macro_auroc_ci_high": float(ci[fi, 1]),
                "n_labels": int(n_used[fi].min()),
                "macro_auroc_all_mean": float(_nanmean(macro_all[fi], -1)),
                "n_labels_min": int(np.isfinite(per_label[fi]).sum(-1).min()),
                "labels_excluded": sorted({lab for run in excluded[fi] for lab in run}),
            }
            for fi in range(F)
        ]
        label_rows = [
            {
                "x": float(x[fi]),
                "label": names[j],
                "auroc_mean": float(lab_mean[fi, j]),
                "auroc_ci_low": float(lab_ci[fi, j, 0]),
                "auroc_ci_high": float(lab_ci[fi, j, 1]),
                "n_seeds_evaluated": int(np.isfinite(per_label[fi, :, j]).sum()),
                "n_test_pos_patients": int(pos_pat[j]),
                "flagged": bool(j in set(flagged.tolist())),
                "in_headline": bool(use[j]),
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
                "macro_auroc_all": float(macro_all[fi, si]),
                "n_labels": int(np.isfinite(per_label[fi, si]).sum()),
                "labels_excluded": excluded[fi][si],
            }
            for fi in range(F)
            for si in range(S)
        ]
        headline = [names[j] for j in np.flatnonzero(use)]
        notes = list(data.notes) + scarcity_notes(
            curve_rows, names, test_ok, flagged, pos_pat, basis, headline, k
        )
        metrics = {
            "mode": mode,
            "grid": x.tolist(),
            "n_seeds": S,
            "labels": names,
            "full_macro_auroc": full,
            "full_macro_auroc_all": float(np.nanmean(full_labels)),
            name: cross,
            f"{name}_above_chance": cross_chance,
            "reached_at_smallest": at_smallest,
            "normalised_auc": normalised_area(x, curve, full),
            "normalised_auc_above_chance": normalised_area(x, curve, full, floor=0.5),
            "labels_headline": headline,
            "n_labels_headline": len(headline),
            "headline_basis": basis,
            "labels_common": [names[j] for j in np.flatnonzero(present)],
            "labels_flagged": [names[j] for j in flagged],
            "min_positives": k,
            "ci_method": self.ci_method,
            "n_resamples": B,
            "ci_level": level,
            "bootstrap_unit": bootstrap_unit(data.test_groups, data.test_ids),
            "n_train_total": n_tr,
            "n_val": len(Y["val"]),
            "n_test": len(Y["test"]),
        }
        arrays = {
            "grid": x,
            "seeds": np.asarray(seeds),
            "macro_auroc": macro,
            "macro_auroc_all": macro_all,
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
