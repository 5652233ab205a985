"""``subgroups``: the probe's test AUROC by sex, age band and any categorical grouping attribute
(default: ``site`` where the records' metadata has it), each group compared with the rest.

Computed from a probe result's per-record test scores (``test_ids``, ``test_patient_ids``,
``test_y``, ``test_scores``) and the records' metadata, with the probes' own patient-bootstrap
machinery (:mod:`ecgprobe.analyzers._stats.bootstrap`, :func:`ecgprobe.analyzers._stats.metrics.rank_metrics`):
one set of patient draws is shared by every group, so a group and the rest of the test set are
resampled together and the interval of their difference is a paired one. A gap compares the
group with the rest on the labels that have both classes in both, so a different label mix
cannot masquerade as a gap.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np
import pandas as pd

from ecgprobe.analyzers._stats.bootstrap import check_resampling
from ecgprobe.analyzers.base import ANALYZERS, Analyzer, Result, analyzer_settings
from ecgprobe.data.record import RecordSet
from ecgprobe.exceptions import AnalysisError, ConfigError
from ecgprobe.extract.embeddings import Embeddings

__all__ = [
    "DEFAULT_ATTRIBUTES",
    "SubgroupGaps",
    "SubgroupResult",
    "age_band_names",
    "group_values",
    "subgroup_gaps",
]

DEFAULT_AGE_EDGES: tuple[float, ...] = (40.0, 60.0, 80.0)
#: The grouping attributes analysed by default, each where the metadata has the column: ``age``
#: is cut into bands, every other attribute is categorical (``site``: the recording site, a
#: classic confounder).
DEFAULT_ATTRIBUTES: tuple[str, ...] = ("sex", "age", "site")
#: Values that mean "unknown" in a categorical metadata column.
_UNKNOWN = ("", "nan", "none", "unknown", "<na>")


class SubgroupResult(Result):
    """Result of :func:`subgroup_gaps` (``kind = "subgroups"``).

    Schema:
        metrics: ``overall_macro_auroc``, ``attributes`` (those analysed), ``n_resamples``,
            ``ci_level``, ``bootstrap_unit``, ``min_records``, ``probe`` (the probe's kind).
        tables:
            ``groups``: attribute, group, n_records, n_patients, n_labels, macro_auroc, ci_low,
            ci_high, gap (group minus rest, on the labels evaluable in both), gap_ci_low,
            gap_ci_high, n_labels_gap.
            ``per_label``: attribute, group, label, n_pos, auroc, ci_low, ci_high.
        arrays: ``gap_replicates`` (groups x B), rows in the order of table ``groups``.
    """

    KIND: ClassVar[str] = "subgroups"


def age_band_names(edges: Sequence[float]) -> list[str]:
    """``["<40", "40–59", "60–79", "≥80"]`` for edges (40, 60, 80)."""
    e = [int(x) for x in edges]
    return [f"<{e[0]}"] + [f"{a}–{b - 1}" for a, b in itertools.pairwise(e)] + [f"≥{e[-1]}"]


def group_values(column: pd.Series) -> np.ndarray:
    """A categorical metadata column as text per record, ``""`` where unknown.

    Whole numbers are written without a decimal part (PTB-XL's ``site`` 2.0 -> ``"2"``), text is
    stripped, and ``sex`` is lower-cased (loaders spell it ``Male``/``male``/``M``...).

    Example:
        >>> group_values(pd.Series(["A", " B", None, "unknown"])).tolist()
        ['A', 'B', '', '']
    """
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        num = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
        whole = np.isfinite(num) & (num == np.round(num))
        text = np.where(
            whole, np.round(np.where(whole, num, 0)).astype(np.int64).astype(str), num.astype(str)
        )
        return np.where(np.isfinite(num), text, "").astype(str)
    values = column.astype("string").str.strip()
    if column.name == "sex":
        values = values.str.lower()
    return values.where(~values.str.lower().isin(_UNKNOWN)).fillna("").to_numpy(dtype=str)


def _attributes(
    meta: pd.DataFrame, names: Sequence[str], edges: Sequence[float], max_levels: int, notes: list[str]
) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name in names:
        if name not in meta:
            continue
        if name == "age":
            age = pd.to_numeric(meta["age"], errors="coerce").to_numpy(dtype=float)
            bands = np.asarray(age_band_names(edges))
            idx = np.searchsorted(np.asarray(edges, dtype=float), age, side="right")
            out["age"] = np.where(np.isfinite(age), bands[np.minimum(idx, len(bands) - 1)], "")
            continue
        values = group_values(meta[name])
        levels = set(values) - {""}
        if len(levels) > max_levels:
            notes.append(
                f"{name} has {len(levels)} distinct values among the test records (more than max_levels="
                f"{max_levels}): not analysed as groups"
            )
            continue
        out[name] = values
    return out


def subgroup_gaps(
    probe: Result,
    records: RecordSet,
    *,
    attributes: Sequence[str] = DEFAULT_ATTRIBUTES,
    age_edges: Sequence[float] = DEFAULT_AGE_EDGES,
    max_levels: int = 12,
    min_records: int = 20,
    n_resamples: int = 1000,
    seed: int = 0,
    ci_level: float = 0.95,
) -> SubgroupResult:
    """Macro AUROC per group (sex, age band, site, ...) with patient-bootstrap CIs, and each
    group's gap to the rest.

    Args:
        probe: a ``linear_probe`` or ``knn_probe`` result (multi-label, with its arrays).
        records: the dataset the probe was run on (its metadata gives the attributes by record id).
        attributes: metadata columns to group by, each where the metadata has it; ``age`` is cut
            into bands, the others are categorical.
        age_edges: age band boundaries in years.
        max_levels: a categorical attribute with more distinct values among the test records is
            listed in the notes, not analysed.
        min_records: groups with fewer test records are listed in the notes, not analysed.
        n_resamples: bootstrap resamples (patients drawn with replacement, shared by all groups).
        seed: seed of the draws.
        ci_level: confidence level.

    Returns:
        A :class:`SubgroupResult`.

    Raises:
        ConfigError: a regression probe, or a probe result without its per-record test arrays.
        AnalysisError: the test records have none of ``attributes`` (naming them and the columns
            there are).

    Example:
        >>> gaps = subgroup_gaps(probe_result, records)  # doctest: +SKIP
        >>> gaps.table("groups")[["attribute", "group", "macro_auroc", "gap"]]  # doctest: +SKIP
    """
    from ecgprobe.analyzers._stats.bootstrap import (
        bootstrap_unit,
        macro_replicates,
        percentile_ci,
        resample_weights,
    )
    from ecgprobe.analyzers._stats.metrics import rank_metrics

    missing = [k for k in ("test_ids", "test_patient_ids", "test_y", "test_scores") if k not in probe.arrays]
    if missing or probe.metrics.get("task") == "regression":
        raise ConfigError(
            f"subgroup gaps need a multi-label probe result with its test arrays (missing {missing}); "
            "pass a linear_probe or knn_probe result loaded with its .npz"
        )
    ids = np.asarray(probe.arrays["test_ids"], dtype=str)
    groups = np.asarray(probe.arrays["test_patient_ids"], dtype=str)
    y = np.asarray(probe.arrays["test_y"])
    s = np.asarray(probe.arrays["test_scores"], dtype=np.float64)
    labels = [str(v) for v in probe.metrics.get("labels_fitted", [])]
    meta = records.meta.reindex(ids)
    notes: list[str] = []
    attrs = _attributes(meta, attributes, age_edges, max_levels, notes)
    if not attrs or all((a == "").all() for a in attrs.values()):
        raise AnalysisError(
            f"the test records have none of the grouping attributes {list(attributes)} (dataset "
            f"{records.name!r} has metadata columns {list(records.meta.columns)}); pass attributes= naming "
            "categorical columns, or skip subgroups"
        )
    weights = resample_weights(groups, n_resamples, seed)
    rows, lab_rows, gap_reps = [], [], []

    def evaluate(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        point = rank_metrics(y[mask], s[mask], ap=False)[0][0]
        reps = rank_metrics(y, s, weights * mask[None, :].astype(np.float32), ap=False)[0]
        return point, reps

    overall = rank_metrics(y, s, ap=False)[0][0]
    for attr, values in attrs.items():
        for g in sorted(set(values) - {""}):
            m = values == g
            if m.sum() < min_records:
                notes.append(f"{attr} = {g}: {int(m.sum())} test records (< {min_records}), not analysed")
                continue
            point, reps = evaluate(m)
            rest_point, rest_reps = evaluate(~m & (values != ""))
            cols = np.flatnonzero(np.isfinite(point))
            both = np.flatnonzero(np.isfinite(point) & np.isfinite(rest_point))
            macro = macro_replicates(reps, cols) if len(cols) else np.full(n_resamples, np.nan)
            gap = (
                macro_replicates(reps, both) - macro_replicates(rest_reps, both)
                if len(both)
                else np.full(n_resamples, np.nan)
            )
            ci = percentile_ci(macro, ci_level) if len(cols) else np.array([np.nan, np.nan])
            gci = percentile_ci(gap, ci_level) if len(both) else np.array([np.nan, np.nan])
            rows.append(
                {
                    "attribute": attr,
                    "group": g,
                    "n_records": int(m.sum()),
                    "n_patients": len(set(groups[m])),
                    "n_labels": len(cols),
                    "macro_auroc": float(np.mean(point[cols])) if len(cols) else None,
                    "ci_low": float(ci[0]),
                    "ci_high": float(ci[1]),
                    "gap": float(np.mean(point[both]) - np.mean(rest_point[both])) if len(both) else None,
                    "gap_ci_low": float(gci[0]),
                    "gap_ci_high": float(gci[1]),
                    "n_labels_gap": len(both),
                }
            )
            gap_reps.append(gap)
            lab_ci = percentile_ci(reps, ci_level)
            for j in cols:
                lab_rows.append(
                    {
                        "attribute": attr,
                        "group": g,
                        "label": labels[j] if j < len(labels) else str(j),
                        "n_pos": int(y[m, j].sum()),
                        "auroc": float(point[j]),
                        "ci_low": float(lab_ci[j, 0]),
                        "ci_high": float(lab_ci[j, 1]),
                    }
                )
    unknown = {a: int((v == "").sum()) for a, v in attrs.items() if (v == "").any()}
    notes += [f"{n} test records without {a} are left out of the {a} groups" for a, n in unknown.items()]
    ok = np.isfinite(overall)
    return SubgroupResult(
        kind=SubgroupResult.KIND,
        metrics={
            "overall_macro_auroc": float(np.mean(overall[ok])) if ok.any() else None,
            "attributes": list(attrs),
            "n_resamples": int(n_resamples),
            "ci_level": ci_level,
            "bootstrap_unit": bootstrap_unit(groups, ids),
            "min_records": int(min_records),
            "probe": probe.kind,
        },
        tables={"groups": rows, "per_label": lab_rows},
        arrays={"gap_replicates": np.asarray(gap_reps, dtype=np.float64).reshape(len(gap_reps), n_resamples)},
        params={
            "attributes": [str(a) for a in attributes],
            "age_edges": [float(e) for e in age_edges],
            "max_levels": max_levels,
            "min_records": min_records,
            "n_resamples": n_resamples,
            "seed": seed,
            "ci_level": ci_level,
        },
        seed=seed,
        provenance={"probe": {"kind": probe.kind, "created": probe.created, **probe.provenance}},
        notes=notes,
    )


@ANALYZERS.register(
    "subgroups", summary="probe AUROC by sex, age band and site, each group's gap to the rest, paired CIs"
)
@analyzer_settings
class SubgroupGaps(Analyzer):
    """The linear probe's test AUROC per sex, age band and site (or other grouping attributes),
    and each group's gap to the rest.

    The analyzer form of :func:`subgroup_gaps`, so that a workflow runs it after the probe it
    reads (``requires``) and caches it like any other analysis.

    Args:
        probe: the ``linear_probe`` (or ``knn_probe``) result to break down; ``None`` fits a
            linear probe with default settings on the given embeddings.
        attributes: metadata columns to group by (default ``sex``, ``age``, ``site``), each where
            the metadata has it; ``age`` is banded, any other column is categorical.
        age_edges: age band boundaries in years.
        max_levels: categorical attributes with more distinct test values are not analysed.
        min_records: groups with fewer test records are listed in the notes, not analysed.
        n_resamples: bootstrap resamples (patients drawn with replacement, shared by all groups).
        ci_level: confidence level.
        seed: seed of the draws.

    Example:
        >>> res = SubgroupGaps(probe=probe_result).run(emb, records)  # doctest: +SKIP
        >>> res.table("groups")[["attribute", "group", "gap", "gap_ci_low", "gap_ci_high"]]  # doctest: +SKIP
    """

    name = "subgroups"
    requires: ClassVar[Mapping[str, str]] = {"probe": "linear_probe"}

    probe: Result | None = None
    attributes: Sequence[str] = DEFAULT_ATTRIBUTES
    age_edges: Sequence[float] = DEFAULT_AGE_EDGES
    max_levels: int = 12
    min_records: int = 20
    n_resamples: int = 1000
    ci_level: float = 0.95
    seed: int = 0

    def _validate(self) -> None:
        edges = [float(e) for e in self.age_edges]
        if not edges or any(b <= a for a, b in itertools.pairwise(edges)):
            raise ConfigError(f"age_edges must be increasing ages in years, got {list(self.age_edges)!r}")
        if (
            isinstance(self.attributes, str)
            or not self.attributes
            or not all(isinstance(a, str) and a for a in self.attributes)
        ):
            raise ConfigError(
                f"attributes must be a list of metadata column names, e.g. ['sex', 'age', 'site'], "
                f"got {self.attributes!r}"
            )
        for name in ("min_records", "max_levels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        check_resampling(self.n_resamples, self.ci_level)

    def _run(self, emb: Embeddings, records: RecordSet) -> Result:
        probe = self.probe
        if probe is None:
            from ecgprobe.analyzers.linear_probe import LinearProbe

            probe = LinearProbe(seed=self.seed).run(emb, records)
        result = subgroup_gaps(
            probe,
            records,
            attributes=self.attributes,
            age_edges=self.age_edges,
            max_levels=self.max_levels,
            min_records=self.min_records,
            n_resamples=self.n_resamples,
            seed=self.seed,
            ci_level=self.ci_level,
        )
        result.params = {k: v for k, v in result.params.items() if k != "probe"}
        return result
