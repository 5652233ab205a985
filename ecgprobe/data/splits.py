"""Seeded, patient-wise, label-stratified splits.

Records of one patient always land in the same split (no patient leaks between train and test).
Labels are balanced across splits by iterative stratification (Sechidis, Tsoumakas & Vlahavas,
2011) applied to patients rather than records, the procedure PTB-XL's ``strat_fold`` was built
with: repeatedly take the label with the fewest unassigned positives and give each patient
carrying it to the split that most lacks that label.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ecgprobe.data.record import SPLITS
from ecgprobe.exceptions import ConfigError

__all__ = ["check_fractions", "stratified_patient_folds", "stratified_patient_split"]


def check_fractions(fractions: Sequence[float]) -> np.ndarray:
    """Validate split fractions: three non-negative numbers summing to 1 (train, val, test)."""
    f = np.asarray(fractions, dtype=np.float64)
    if f.shape != (3,) or (f < 0).any() or not np.isclose(f.sum(), 1.0):
        raise ConfigError(
            f"split fractions must be three non-negative numbers (train, val, test) summing to 1, got {list(fractions)}"
        )
    return f


def stratified_patient_split(
    y: np.ndarray,
    patient_ids: Sequence[str],
    *,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> np.ndarray:
    """Assign each record to ``'train'``, ``'val'`` or ``'test'``, patient-wise and stratified.

    Args:
        y: ``(N, C)`` binary label matrix (for a continuous target pass quantile-bin indicators).
        patient_ids: patient per record; records without one should carry their own record id.
        fractions: target share of records per split (train, val, test).
        seed: seed of the tie-breaking order; the same inputs and seed give the same split.

    Returns:
        An ``(N,)`` object array of split names.
    """
    frac = check_fractions(fractions)
    return np.asarray(SPLITS, dtype=object)[_stratify(y, patient_ids, frac, seed)]


def stratified_patient_folds(
    y: np.ndarray, patient_ids: Sequence[str], k: int, *, seed: int = 0
) -> np.ndarray:
    """Assign each record to one of ``k`` equal, patient-wise, label-stratified folds.

    The same procedure as :func:`stratified_patient_split` with ``k`` equal shares: PTB-XL's
    ``strat_fold`` is this construction with ``k = 10``, so rotating over these folds treats a
    dataset without folds as PTB-XL's are treated.

    Args:
        y: ``(N, C)`` binary label matrix (for a continuous target pass quantile-bin indicators).
        patient_ids: patient per record.
        k: number of folds, at least 3 (a rotation needs a train, a validation and a test fold).
        seed: seed of the tie-breaking order.

    Returns:
        An ``(N,)`` int array of fold numbers ``1..k``.

    Raises:
        ConfigError: ``k`` not an integer >= 3, or more folds than patients.

    Example:
        >>> folds = stratified_patient_folds(np.eye(2)[[0, 1] * 10], [str(i) for i in range(20)], 5)
        >>> sorted(np.bincount(folds)[1:].tolist())
        [4, 4, 4, 4, 4]
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 3:
        raise ConfigError(
            f"the number of folds must be an integer >= 3 (train, val and test folds), got {k!r}"
        )
    n_patients = len(set(map(str, patient_ids)))
    if k > n_patients:
        raise ConfigError(f"{k} folds for {n_patients} patients: use at most {n_patients} folds")
    return _stratify(y, patient_ids, np.full(int(k), 1.0 / k), seed) + 1


def _stratify(y: np.ndarray, patient_ids: Sequence[str], frac: np.ndarray, seed: int) -> np.ndarray:
    """Iterative stratification of patients into ``len(frac)`` shares; the share index per record."""
    y = np.asarray(y)
    if y.ndim == 1:
        y = y[:, None]
    pids = np.asarray([str(p) for p in patient_ids], dtype=object)
    if len(pids) != len(y):
        raise ConfigError(f"{len(pids)} patient ids for {len(y)} records")
    rng = np.random.default_rng(seed)
    groups, inverse = np.unique(pids, return_inverse=True)
    n_groups = len(groups)
    size = np.bincount(inverse, minlength=n_groups).astype(np.float64)
    gy = np.zeros((n_groups, y.shape[1]), dtype=np.float64)
    np.add.at(gy, inverse, (y > 0).astype(np.float64))

    want_total = frac * len(y)
    want_label = frac[:, None] * gy.sum(axis=0)[None, :]
    fold = np.full(n_groups, -1, dtype=np.int64)
    order = rng.permutation(n_groups)  # random tie-breaking order over patients

    def assign(g: int, label: int | None) -> None:
        if label is None:
            score = want_total
        else:
            score = want_label[:, label] + 1e-9 * want_total  # ties -> split wanting more records
        best = np.flatnonzero(np.isclose(score, score.max()))
        j = int(best[0] if len(best) == 1 else rng.choice(best))
        fold[g] = j
        want_total[j] -= size[g]
        want_label[j] -= gy[g]

    # label counts over unassigned patients, updated as patients are assigned (O(G*C) overall)
    counts = gy.sum(axis=0)
    unassigned = np.ones(n_groups, dtype=bool)
    carriers = [order[gy[order, c] > 0] for c in range(gy.shape[1])]  # per label, in tie-break order
    while True:
        active = np.flatnonzero(counts > 1e-12)
        if not len(active):
            break
        label = int(active[np.argmin(counts[active])])
        for g in carriers[label]:
            if unassigned[g]:
                assign(int(g), label)
                unassigned[g] = False
                counts -= gy[g]
    for g in order:
        if unassigned[g]:
            assign(int(g), None)
            unassigned[g] = False
    return fold[inverse]
