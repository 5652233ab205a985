"""Nested, patient-wise, label-stratified subsets of a training split (for data-scarcity curves).

Two ways to shrink a labelled training set:

- :func:`nested_fraction_subsets`: a fraction of the records. The largest fraction is drawn from
  the whole set, each smaller one from the previous subset (so 1 % is inside 2 %, inside 5 %,
  ...), each step by the package's patient-wise iterative stratification
  (:func:`ecgprobe.data.splits.stratified_patient_split`), so that label proportions are kept
  and a patient's records stay together.
- :func:`nested_count_subsets`: at least ``n`` positive records per label. Labels are visited
  from the rarest; patients carrying a label are added in a seeded random order until it has
  ``n`` positives (all of them if it has fewer); larger ``n`` extend the smaller subsets.

Nesting makes the curve measure the value of *more* data rather than of *other* data, and the
seeds draw independent nestings.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ecgprobe.data.splits import stratified_patient_split
from ecgprobe.exceptions import ConfigError

__all__ = ["nested_count_subsets", "nested_fraction_subsets"]


def nested_fraction_subsets(
    y: np.ndarray, groups: Sequence[str] | np.ndarray, fractions: Sequence[float], *, seed: int
) -> list[np.ndarray]:
    """Boolean masks, one per fraction (in the order given), of nested stratified patient subsets.

    Args:
        y: ``(N, C)`` binary labels of the records to subsample.
        groups: patient id per record.
        fractions: shares of records in ``(0, 1]``; 1 gives all records.
        seed: seed of the draws.

    Raises:
        ConfigError: a fraction outside ``(0, 1]``.

    Example:
        >>> y = np.eye(2, dtype=np.uint8)[np.arange(100) % 2]
        >>> m = nested_fraction_subsets(y, np.arange(100).astype(str), [0.5, 0.2], seed=0)
        >>> int(m[0].sum()), int(m[1].sum()), bool(np.all(m[0] | ~m[1]))
        (50, 20, True)
    """
    f = np.asarray(fractions, dtype=np.float64)
    if not len(f) or np.any(~np.isfinite(f)) or np.any(f <= 0) or np.any(f > 1):
        raise ConfigError(f"training fractions must be in (0, 1], got {list(fractions)}")
    groups = np.asarray(groups, dtype=str)
    n = len(groups)
    masks: dict[float, np.ndarray] = {}
    current = np.ones(n, dtype=bool)
    prev = 1.0
    for i, frac in enumerate(sorted(set(f.tolist()), reverse=True)):
        if frac < prev:
            idx = np.flatnonzero(current)
            rel = frac / prev
            split = stratified_patient_split(
                y[idx], groups[idx], fractions=(rel, 1.0 - rel, 0.0), seed=seed * 1000 + i
            )
            current = np.zeros(n, dtype=bool)
            current[idx[split == "train"]] = True
            prev = frac
        masks[frac] = current.copy()
    return [masks[float(v)] for v in f]


def nested_count_subsets(
    y: np.ndarray, groups: Sequence[str] | np.ndarray, counts: Sequence[int], *, seed: int
) -> list[np.ndarray]:
    """Boolean masks, one per count (in the order given): nested patient subsets with at least
    ``count`` positive records of every label (all of a label's positives when it has fewer).

    Raises:
        ConfigError: a count below 1.
    """
    c = [int(v) for v in counts]
    if not c or min(c) < 1:
        raise ConfigError(f"samples per class must be positive integers, got {list(counts)}")
    yb = np.asarray(y) > 0
    _, inverse = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    n_groups = int(inverse.max()) + 1
    gy = np.zeros((n_groups, yb.shape[1]), dtype=np.int64)
    np.add.at(gy, inverse, yb.astype(np.int64))
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n_groups)
    label_order = np.argsort(gy.sum(0), kind="stable")  # rarest first
    chosen = np.zeros(n_groups, dtype=bool)
    have = np.zeros(yb.shape[1], dtype=np.int64)
    masks: dict[int, np.ndarray] = {}
    for target in sorted(set(c)):
        for lab in label_order:
            need = target - have[lab]
            if need <= 0:
                continue
            cand = perm[(gy[perm, lab] > 0) & ~chosen[perm]]
            if not len(cand):
                continue
            take = cand[: int(np.searchsorted(np.cumsum(gy[cand, lab]), need)) + 1]
            chosen[take] = True
            have += gy[take].sum(0)
        masks[target] = chosen[inverse].copy()
    return [masks[v] for v in c]
