"""The linear probe: what a linear read-out of frozen embeddings can predict.

Protocol (nothing fitted ever sees a test record):

1. standardise every embedding dimension with the mean and standard deviation of the *train*
   split (constant dimensions get scale 1);
2. multi-label: one L2 logistic regression per label (one-vs-rest) for every C of a log-spaced
   grid (default 7 values, 1e-4 .. 1e2, scikit-learn's ``C``, intercept unpenalised); labels
   without a positive (or without a negative) in train cannot be fitted and are listed;
3. C is chosen **per label** on the validation split by AUROC (the path is solved from the
   smallest C up; a label leaves it once its choice has settled, ``patience`` C values without
   a strict improvement: see :mod:`ecgprobe.analyzers._stats.c_path`). Why per label: prevalences of ECG
   labels span three orders of magnitude (PTB-XL: 10 to 9,000 positives), and the best penalty
   grows with the amount of evidence, so one shared C over-regularises frequent labels or
   under-regularises rare ones (scikit-learn's ``LogisticRegressionCV`` chooses per class in
   one-vs-rest for the same reason). Labels without both classes in val take the shared choice
   (best mean validation AUROC). ``c_selection="shared"`` uses the shared C for all labels;
4. F1 thresholds are chosen per label on validation (maximum F1), then everything is evaluated
   once on test, with patient-bootstrap confidence intervals (:mod:`ecgprobe.analyzers._stats.bootstrap`).

Regression targets (``records.task == "regression"``, e.g. ``records.with_meta_target("age")``):
ridge regression with alpha chosen on validation by mean squared error; records without a
target value are dropped and counted in the notes.

The fitting runs on a CUDA GPU when one is present (``device="auto"``), else on the CPU, with
the batched Newton-CG solver of :mod:`ecgprobe.analyzers._stats.solvers`; ``solver="lbfgs"`` uses
scikit-learn instead (slower; the reference).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ecgprobe.analyzers._stats.bootstrap import DEFAULT_MIN_POSITIVES
from ecgprobe.analyzers._stats.c_path import SettledChoice, choose_on_path
from ecgprobe.analyzers._stats.evaluation import (
    check_common,
    check_grid,
    evaluate_probe,
    evaluate_regression,
    interval_settings,
    val_auroc,
)
from ecgprobe.analyzers._stats.probe_data import fit_scaler, fittable_targets, split_data
from ecgprobe.analyzers._stats.solvers import (
    LogisticPath,
    fit_logistic_path,
    fit_logistic_path_sklearn,
    resolve_device,
    ridge_path,
)
from ecgprobe.analyzers.base import ANALYZERS, Analyzer, Result, analyzer_settings
from ecgprobe.data.record import RecordSet
from ecgprobe.exceptions import ConfigError
from ecgprobe.extract.embeddings import Embeddings

__all__ = ["DEFAULT_ALPHAS", "DEFAULT_CS", "LinearProbe", "LinearProbeResult"]

DEFAULT_CS: tuple[float, ...] = tuple(float(c) for c in np.logspace(-4, 2, 7))
DEFAULT_ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(-1, 5, 7))


class LinearProbeResult(Result):
    """Result of :class:`LinearProbe` (``kind = "linear_probe"``).

    Schema, multi-label (the kNN probe shares everything but the linear head):
        metrics:
            ``task`` ("multilabel"); ``labels_fitted`` (row order of ``coef`` and columns of the
            score arrays); ``labels_skipped`` {label: reason} (not fittable: a class missing in
            train); ``labels_evaluated`` (both classes in test); ``labels_not_evaluated``
            {label: reason}; ``labels_headline`` (evaluated labels with at least
            ``min_positives`` positive and negative test patients: the headline macros average
            these) and ``labels_flagged`` (evaluated labels below it), ``n_labels_headline``,
            ``n_labels_evaluated``, ``headline_basis`` ("min_positives", or "all_evaluated" when
            every evaluated label is flagged and the headline falls back to all of them);
            ``macro_auroc``, ``macro_auprc``, ``macro_f1``, ``macro_brier``, ``macro_ece``
            (headline) each with ``<name>_ci`` [low, high], and ``macro_<name>_all`` (+ ``_ci``)
            over every evaluated label; ``min_positives``, ``ci_method`` ("percentile" or
            "bca"); ``c_selection``, ``shared_C``; ``n_train``, ``n_val``, ``n_test``,
            ``n_test_patients``, ``bootstrap_unit`` ("patient" or "record"), ``n_resamples``,
            ``ci_level``, ``ece_bins``, ``device``, ``not_converged`` (labels whose chosen fit
            hit the iteration limit). Results saved before these fields existed lack them:
            readers treat every evaluated label as headline (see the report sections).
        tables:
            ``per_label``: label, n_train_pos, n_val_pos, n_test_pos (records),
            n_test_pos_patients, n_test_neg_patients, evaluated, flagged, C, C_own_choice,
            val_auroc, auroc, auroc_ci_low, auroc_ci_high, auprc(_ci_low/_ci_high),
            f1(_ci_low/_ci_high), brier(_ci_low/_ci_high), ece(_ci_low/_ci_high), threshold;
            ``reliability`` (pooled over the headline labels): bin, bin_low, bin_high,
            mean_predicted, observed_frequency, count.
        arrays:
            ``coef`` (C x D, standardised space), ``intercept`` (C,), ``scaler_mean`` (D,),
            ``scaler_scale`` (D,), ``C`` (chosen per label), ``c_grid`` (K,),
            ``val_auroc_grid`` (K x C); ``test_ids``, ``test_patient_ids``, ``test_y`` (N x C),
            ``test_scores`` (N x C probabilities), ``val_thresholds`` (C,);
            ``reliability_bin_edges`` (bins+1,), ``reliability_mean_predicted``,
            ``reliability_observed_frequency``, ``reliability_count`` (C x bins);
            ``roc_fpr``, ``roc_tpr``, ``roc_thresholds`` (label j's points are
            ``[roc_offsets[j]:roc_offsets[j+1]]``; empty for labels not evaluated);
            ``macro_auroc_replicates`` (B,) of the headline macro.

    Schema, regression:
        metrics: ``task`` ("regression"), ``labels_fitted`` (targets), ``mae``, ``rmse``, ``r2``
            (mean over targets) each with ``<name>_ci``; ``alpha``; counts as above.
        tables: ``per_target``: target, alpha, mae(_ci_low/_ci_high), rmse(...), r2(...).
        arrays: ``coef`` (T x D), ``intercept`` (T,), ``scaler_mean``, ``scaler_scale``,
            ``alpha_grid`` (K,), ``val_mse_grid`` (K x T), ``test_ids``, ``test_patient_ids``,
            ``test_y`` (N x T), ``test_pred`` (N x T).
    """

    KIND: ClassVar[str] = "linear_probe"


@ANALYZERS.register("linear_probe", summary="logistic (or ridge) probe, C chosen on val, bootstrap CIs")
@analyzer_settings
class LinearProbe(Analyzer):
    """Linear probe of frozen embeddings (see the module docstring for the protocol).

    Args:
        Cs: C grid for the logistic regressions (sorted ascending).
        c_selection: ``"per_label"`` (default) or ``"shared"``.
        alphas: ridge alpha grid for regression targets.
        n_resamples: bootstrap resamples for the confidence intervals.
        ci_level: confidence level.
        ci_method: ``"percentile"`` (default) or ``"bca"`` (bias-corrected and accelerated, with
            a patient jackknife: better coverage with few positives, see
            :mod:`ecgprobe.analyzers._stats.bootstrap`).
        min_positives: labels with fewer positive (or negative) test patients are flagged and
            left out of the headline macro averages (reported beside them over all labels).
        n_bins: equal-width bins of the calibration error and reliability diagram.
        seed: seed of the bootstrap.
        device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
        solver: ``"newton"`` (batched Newton-CG, fast) or ``"lbfgs"`` (scikit-learn reference).
        tol: gradient tolerance of the solver (mean-loss scale; 1e-4 is scikit-learn's default
            ``tol`` on the same scale, the largest absolute gradient entry).
        max_iter: iteration limit per C and label.
        patience: a label leaves the C path after this many C values without a strict
            improvement of its validation AUROC (and once the shared choice has settled too);
            ``None`` solves every C for every label (as ``solver="lbfgs"`` always does).

    Example:
        >>> result = LinearProbe(n_resamples=200).run(emb, records)  # doctest: +SKIP
        >>> result.metrics["macro_auroc"], result.metrics["macro_auroc_ci"]  # doctest: +SKIP
    """

    Cs: tuple[float, ...] = DEFAULT_CS
    c_selection: str = "per_label"
    alphas: tuple[float, ...] = DEFAULT_ALPHAS
    n_resamples: int = 1000
    ci_level: float = 0.95
    ci_method: str = "percentile"
    min_positives: int = DEFAULT_MIN_POSITIVES
    n_bins: int = 10
    seed: int = 0
    device: str = "auto"
    solver: str = "newton"
    tol: float = 1e-4
    max_iter: int = 100
    patience: int | None = 2

    def _validate(self) -> None:
        self.Cs = check_grid(self.Cs, "Cs")
        self.alphas = check_grid(self.alphas, "alphas", allow_zero=True)
        if self.c_selection not in ("per_label", "shared"):
            raise ConfigError(f"c_selection must be 'per_label' or 'shared', got {self.c_selection!r}")
        if self.solver not in ("newton", "lbfgs"):
            raise ConfigError(f"solver must be 'newton' or 'lbfgs', got {self.solver!r}")
        if not (float(self.tol) > 0 and int(self.max_iter) >= 1):
            raise ConfigError(f"tol must be > 0 and max_iter >= 1, got {self.tol}, {self.max_iter}")
        if self.patience is not None and (isinstance(self.patience, bool) or int(self.patience) < 1):
            raise ConfigError(
                f"patience must be a positive integer or None (whole C grid), got {self.patience!r}"
            )
        check_common(self.n_resamples, self.ci_level, self.n_bins, self.ci_method, self.min_positives)

    def _run(self, emb: Embeddings, records: RecordSet) -> Result:
        data = split_data(emb.X, records)
        mean, scale, n_constant = fit_scaler(data.X["train"])
        Xs = {s: ((x - mean) / scale).astype(np.float32) for s, x in data.X.items()}
        common = {"n_train": len(Xs["train"]), "n_val": len(Xs["val"])}
        head = {"scaler_mean": mean, "scaler_scale": scale}
        if records.task == "regression":
            result = self._regression(Xs, data, records, head)
        else:
            result = self._multilabel(Xs, data, records, head)
        result.metrics.update(common)
        result.notes = data.notes + result.notes
        if n_constant:
            result.notes.append(f"{n_constant} embedding dimensions are constant on train (scale set to 1)")
        return result

    # ---------------------------------------------------------------- multi-label
    def fit_path(self, X: np.ndarray, Y: np.ndarray) -> Any:
        """The regularisation path on standardised ``X`` with this probe's solver settings."""
        if self.solver == "lbfgs":
            return fit_logistic_path_sklearn(X, Y, self.Cs, max_iter=int(self.max_iter))
        return fit_logistic_path(
            X,
            Y,
            self.Cs,
            tol=float(self.tol),
            max_newton=int(self.max_iter),
            device=resolve_device(self.device),
        )

    def fit_tuned(
        self, X: np.ndarray, Y: np.ndarray, X_val: np.ndarray, Y_val: np.ndarray
    ) -> tuple[LogisticPath, np.ndarray]:
        """The path on standardised ``X`` and its validation AUROC ``(K, L)`` on ``X_val``; with
        ``patience`` (Newton solver), labels leave the path once their choice has settled (NaN)."""
        if self.solver == "lbfgs" or self.patience is None:
            path = self.fit_path(X, Y)
            return path, val_auroc(Y_val, path.decision_function(X_val))
        rule = SettledChoice(
            X_val, Y_val, len(self.Cs), patience=int(self.patience), per_label=self.c_selection == "per_label"
        )
        path = fit_logistic_path(
            X,
            Y,
            self.Cs,
            tol=float(self.tol),
            max_newton=int(self.max_iter),
            device=resolve_device(self.device),
            keep_going=rule,
        )
        return path, rule.val_auc

    def choose(
        self, path: LogisticPath, val_auc: np.ndarray, Y_val: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """The C index per label (see :func:`~ecgprobe.analyzers._stats.c_path.choose_on_path`).

        Raises:
            AnalysisError: no label has both classes in ``Y_val``.
        """
        n_pos = np.asarray(Y_val).astype(bool).sum(0)
        has_val = (n_pos > 0) & (n_pos < len(Y_val))
        return choose_on_path(val_auc, path.fitted, has_val, per_label=self.c_selection == "per_label")

    def _multilabel(self, Xs: dict, data: Any, records: RecordSet, head: dict) -> Result:
        targets = fittable_targets(list(records.label_names), data.y)
        fitted, Y = targets.fitted, targets.Y
        path, val_auc = self.fit_tuned(Xs["train"], Y["train"], Xs["val"], Y["val"])
        idx, own, shared = self.choose(path, val_auc, Y["val"])
        cols = np.arange(len(fitted))
        coef, intercept = path.coef[idx, cols], path.intercept[idx, cols]
        p_val = _sigmoid(Xs["val"] @ coef.T + intercept)
        p_test = _sigmoid(Xs["test"] @ coef.T + intercept)
        ev = evaluate_probe(self, targets, p_val, p_test, data, val_auc[idx, cols])
        Cs = np.asarray(self.Cs)
        for j, row in enumerate(ev.tables["per_label"]):
            row.update(C=float(Cs[idx[j]]), C_own_choice=bool(own[j]))
        notes = list(ev.notes)
        no_val = [fitted[j] for j in np.flatnonzero(~own)] if self.c_selection == "per_label" else []
        if no_val:
            notes.append(
                f"shared C={Cs[shared]:g} used for labels without both classes in val: {', '.join(no_val)}"
            )
        left = int((~path.fitted).any(0).sum())
        if left:
            notes.append(
                f"{left} of {len(fitted)} labels left the C path early (validation choice settled, "
                f"patience={self.patience}); their skipped C values are NaN in val_auroc_grid"
            )
        not_conv = [fitted[j] for j in cols if not path.converged[idx[j], j]]
        if not_conv:
            notes.append(f"solver hit max_iter={self.max_iter} for: {', '.join(not_conv)}")
        metrics = {
            **ev.metrics,
            "c_selection": self.c_selection,
            "shared_C": float(Cs[shared]),
            "device": path.device,
            "not_converged": not_conv,
        }
        arrays = {
            "coef": coef,
            "intercept": intercept,
            **head,
            "C": Cs[idx],
            "c_grid": Cs,
            "val_auroc_grid": val_auc,
            **ev.arrays,
        }
        return LinearProbeResult(
            kind=LinearProbeResult.KIND,
            metrics=metrics,
            tables=ev.tables,
            arrays=arrays,
            seed=int(self.seed),
            notes=notes,
        )

    # ----------------------------------------------------------------- regression
    def _regression(self, Xs: dict, data: Any, records: RecordSet, head: dict) -> Result:
        names = list(records.label_names)
        alphas = np.asarray(self.alphas)
        coef_path, icpt_path = ridge_path(Xs["train"], data.y["train"], alphas)
        pred_val = np.einsum("nd,ktd->knt", Xs["val"].astype(np.float64), coef_path) + icpt_path[:, None, :]
        val_mse = ((pred_val - data.y["val"][None]) ** 2).mean(1)  # (K, T)
        best = np.argmin(val_mse, axis=0)  # ties: the smallest alpha
        t = np.arange(len(names))
        coef, intercept = coef_path[best, t], icpt_path[best, t]
        pred_test = Xs["test"].astype(np.float64) @ coef.T + intercept
        ev = evaluate_regression(
            names, data.y["test"], pred_test, data.test_ids, data.test_groups, **interval_settings(self)
        )
        for j, row in enumerate(ev.tables["per_target"]):
            row["alpha"] = float(alphas[best[j]])
        metrics = {
            "task": "regression",
            "labels_fitted": names,
            "labels_skipped": {},
            **ev.metrics,
            "alpha": [float(alphas[b]) for b in best],
        }
        arrays = {
            "coef": coef,
            "intercept": intercept,
            **head,
            "alpha_grid": alphas,
            "val_mse_grid": val_mse,
            **ev.arrays,
        }
        return LinearProbeResult(
            kind=LinearProbeResult.KIND, metrics=metrics, tables=ev.tables, arrays=arrays, seed=int(self.seed)
        )


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))
