"""Choosing C on validation while the regularisation path is solved.

The probes choose C per label by validation AUROC over a grid solved from the strongest
regularisation to the weakest. The weak end is the expensive end (the logistic problem is worst
conditioned there), and for most labels it is also past the validation optimum: AUROC rises, peaks
and then falls as C grows. :class:`SettledChoice` scores every label on validation as soon as its
C is solved and takes a label off the path once its choice has *settled*: ``patience``
consecutive C values after its best without a strict improvement (ties go to the first, as in
:func:`~ecgprobe.analyzers._stats.evaluation.select_by_val`). The shared choice (the best mean
AUROC over the labels with both classes in val, used for the labels without them and reported as
``shared_C``) settles the same way, and until it has, every label stays on the path, so the mean
is always taken over the same labels.

The choice then equals the full-grid choice unless a label's validation AUROC rises again, after
``patience`` non-improving C values, above its earlier best; ``patience=None`` solves the whole
grid. Entries of labels taken off the path are NaN in the validation grid.
"""

from __future__ import annotations

import numpy as np

from ecgprobe.analyzers._stats.evaluation import select_by_val
from ecgprobe.analyzers._stats.metrics import rank_metrics
from ecgprobe.exceptions import ConfigError

__all__ = ["SettledChoice", "choose_on_path"]


class SettledChoice:
    """A ``keep_going`` rule for :func:`~ecgprobe.analyzers._stats.solvers.fit_logistic_path`
    that records validation AUROC per C and label and stops the labels whose choice has settled.

    Args:
        X_val: ``(n_val, D)`` validation features, standardised like the training data.
        Y_val: ``(n_val, L)`` 0/1 validation labels (columns as the fitted labels).
        n_grid: number of C values ``K``.
        patience: non-improving C values after the best before a label leaves the path.
        per_label: labels choose their own C (False: the shared choice decides for all).

    Attributes:
        val_auc: ``(K, L)`` validation AUROC (NaN where not solved or a class is missing in val).

    Raises:
        ConfigError: ``patience`` below 1.

    Example:
        >>> rule = SettledChoice(Xs_val, Y_val, 7, patience=2, per_label=True)  # doctest: +SKIP
        >>> path = fit_logistic_path(Xs_tr, Y_tr, Cs, keep_going=rule)  # doctest: +SKIP
    """

    def __init__(
        self, X_val: np.ndarray, Y_val: np.ndarray, n_grid: int, *, patience: int, per_label: bool
    ) -> None:
        if int(patience) < 1:
            raise ConfigError(
                f"patience must be a positive integer (or None for the whole grid), got {patience}"
            )
        self.X_val = np.asarray(X_val, dtype=np.float64)
        self.Y_val = np.asarray(Y_val)
        n_pos = self.Y_val.astype(bool).sum(0)
        self.has_val = (n_pos > 0) & (n_pos < len(self.Y_val))
        L = self.Y_val.shape[1]
        self.val_auc = np.full((int(n_grid), L), np.nan)
        self.patience, self.per_label = int(patience), bool(per_label)
        self._best, self._since = np.full(L, -np.inf), np.zeros(L, dtype=np.int64)
        self._mean_best, self._mean_since = -np.inf, 0

    def __call__(self, k: int, labels: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
        """Record the validation AUROC of ``labels`` at grid index ``k``; the mask of those to go on."""
        auc = rank_metrics(self.Y_val[:, labels], self.X_val @ coef.T + intercept, ap=False)[0][0]
        self.val_auc[k, labels] = auc
        improved = auc > self._best[labels]
        self._best[labels] = np.where(improved, auc, self._best[labels])
        self._since[labels] = np.where(improved, 0, self._since[labels] + 1)
        settled_mean = self._mean_since >= self.patience
        if not settled_mean and self.has_val.any() and self.has_val[labels].sum() == self.has_val.sum():
            mean = float(np.mean(auc[self.has_val[labels]]))
            self._mean_since = 0 if mean > self._mean_best else self._mean_since + 1
            self._mean_best = max(mean, self._mean_best)
            settled_mean = self._mean_since >= self.patience
        if not settled_mean:
            return np.ones(len(labels), dtype=bool)
        if not self.per_label:
            return np.zeros(len(labels), dtype=bool)
        own = self.has_val[labels]
        return own & (self._since[labels] < self.patience)


def choose_on_path(
    val_auc: np.ndarray, fitted: np.ndarray, has_val: np.ndarray, *, per_label: bool
) -> tuple[np.ndarray, np.ndarray, int]:
    """:func:`~ecgprobe.analyzers._stats.evaluation.select_by_val` over a path some labels left early:
    C values a label was not solved at are never chosen for it (nor for the shared choice).

    Args:
        val_auc: ``(K, L)`` validation AUROC, NaN where not solved.
        fitted: ``(K, L)`` where each label was solved.
        has_val: ``(L,)`` labels with both classes in val.
        per_label: per-label choice (else the shared one for all).

    Returns:
        ``(index per label, whether it was the label's own choice, shared index)``.

    Raises:
        AnalysisError: no label has both classes in the validation split.
    """
    # -1 is below every AUROC, so an unsolved C never wins, and the column stays finite (a label
    # with both classes in val keeps its own choice).
    filled = np.where(~fitted & has_val[None, :], -1.0, val_auc)
    return select_by_val(filled, per_label=per_label)
