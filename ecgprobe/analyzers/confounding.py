"""``confounding``: does the probe read the label, or the site the record was made at?

A label whose prevalence differs between recording sites (an arrhythmia clinic sees more AF
than a general hospital) can be scored from anything that tells the sites apart: mains hum, the
cart's noise, the filter settings. A probe that has learned the site then looks better pooled
over sites than it is within any one site. For a categorical metadata column (``site`` by
default, else the first of :data:`SITE_COLUMNS` the records have), per label:

- the **pooled** test AUROC over the analysed sites;
- the **within-site** AUROC: the probability that a positive scores above a negative *of the
  same site* (the per-site AUROCs weighted by their positive x negative pairs; a stratified
  AUROC), and each site's own AUROC;
- their **difference**, pooled minus within-site. If the scores' distribution given the label
  does not depend on the site, the two AUROCs are equal (every positive-negative pair, across
  sites or not, compares draws from the same two distributions), so a difference whose interval
  lies above 0 says that part of the pooled AUROC comes from telling the sites apart;
- the AUROC of **the site alone** as a score (each test record scored by its site's label
  prevalence in the train split): how much a site detector could gain;

and, over the records, how well **the embedding predicts the site**: a linear probe
(:class:`~ecgprobe.analyzers.linear_probe.LinearProbe`, the same protocol) for each site against
the others (one probe for two sites).

Intervals come from the probes' patient bootstrap (:mod:`ecgprobe.analyzers._stats.bootstrap`):
one set of patient draws is shared by the pooled, the within-site and every per-site AUROC, so
the interval of the difference is a paired one. Its coverage is measured by
``benchmarks/coverage_confounding.py`` (fast version in ``tests/analyzers/test_confounding.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from ecgprobe.analyzers._stats.bootstrap import check_resampling
from ecgprobe.analyzers.base import ANALYZERS, Analyzer, Result, analyzer_settings
from ecgprobe.analyzers.subgroups import group_values
from ecgprobe.data.record import RecordSet
from ecgprobe.exceptions import AnalysisError, ConfigError
from ecgprobe.extract.embeddings import Embeddings

__all__ = ["SITE_COLUMNS", "Confounding", "ConfoundingResult", "site_confounding", "within_auroc"]

#: Metadata columns taken for a recording site when ``attribute`` is not given, in this order.
SITE_COLUMNS: tuple[str, ...] = ("site", "centre", "center", "hospital", "institution", "device")


class ConfoundingResult(Result):
    """Result of :func:`site_confounding` (``kind = "confounding"``).

    Schema:
        metrics: ``attribute`` (the column), ``levels`` (the sites analysed), ``n_test_records``,
            ``n_test_patients``, ``n_resamples``, ``ci_level``, ``bootstrap_unit``,
            ``min_records``, ``probe`` (its kind), ``site_decodability_auroc`` (+ ``_ci``: the
            site probe's macro test AUROC; None without it), ``labels_confounded`` (labels
            whose difference interval lies above 0).
        tables:
            ``labels``: label, n_patients, n_pos, pooled_auroc, pooled_ci_low, pooled_ci_high,
            within_auroc, within_ci_low, within_ci_high, difference, difference_ci_low,
            difference_ci_high, site_alone_auroc, site_alone_ci_low, site_alone_ci_high,
            n_levels_evaluable.
            ``per_level``: label, level, n_records, n_patients, n_pos, prevalence,
            train_prevalence, auroc, ci_low, ci_high.
            ``site_probe``: level, n_test_pos, auroc, ci_low, ci_high.
        arrays: ``difference_replicates`` (B, C), columns in the order of table ``labels``.
    """

    KIND: ClassVar[str] = "confounding"


def within_auroc(auroc: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """The stratified AUROC: per-stratum AUROCs ``(S, ...)`` weighted by their positive x negative
    pairs ``(S, ...)``; strata without a pair (NaN AUROC) are left out; NaN where none has one.

    Example:
        >>> within_auroc(np.array([0.5, 1.0]), np.array([2.0, 6.0])).item()
        0.875
    """
    a = np.asarray(auroc, dtype=np.float64)
    w = np.where(np.isfinite(a), np.asarray(pairs, dtype=np.float64), 0.0)
    total = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, np.nansum(np.where(w > 0, a, 0.0) * w, axis=0) / total, np.nan)


def _site_column(meta: Any, attribute: str | None) -> str:
    if attribute is not None:
        if attribute not in meta:
            raise AnalysisError(
                f"the records have no metadata column {attribute!r} (they have {list(meta.columns)}); "
                "set attribute= to one of them"
            )
        return attribute
    for name in SITE_COLUMNS:
        if name in meta and (group_values(meta[name]) != "").any():
            return name
    raise AnalysisError(
        f"no site-like metadata column (looked for {', '.join(SITE_COLUMNS)}; the records have "
        f"{', '.join(map(str, meta.columns)) or 'none'}); set attribute= to a categorical column to check "
        "confounding by it"
    )


def site_confounding(
    probe: Result,
    records: RecordSet,
    emb: Embeddings | None = None,
    *,
    attribute: str | None = None,
    min_records: int = 20,
    n_resamples: int = 1000,
    seed: int = 0,
    ci_level: float = 0.95,
) -> ConfoundingResult:
    """Per label, pooled vs within-site test AUROC (paired patient bootstrap), the site alone as a
    score, and (with ``emb``) how well the embedding predicts the site.

    Args:
        probe: a ``linear_probe`` or ``knn_probe`` result (multi-label, with its test arrays).
        records: the dataset the probe was run on (its metadata gives the site by record id).
        emb: the embeddings (for the site probe); ``None`` leaves it out.
        attribute: the site column; default the first of :data:`SITE_COLUMNS` present.
        min_records: sites with fewer test records are listed in the notes, not analysed.
        n_resamples: bootstrap resamples (patients drawn with replacement, shared by all AUROCs).
        seed: seed of the draws (and of the site probe).
        ci_level: confidence level.

    Returns:
        A :class:`ConfoundingResult`.

    Raises:
        ConfigError: a regression probe, or one without its per-record test arrays.
        AnalysisError: no site-like column, or fewer than two sites with ``min_records`` test
            records (the message names the column and the counts).

    Example:
        >>> res = site_confounding(probe_result, records, emb)  # doctest: +SKIP
        >>> res.table("labels")[["label", "pooled_auroc", "within_auroc", "difference"]]  # doctest: +SKIP
    """
    from ecgprobe.analyzers._stats.bootstrap import bootstrap_unit, percentile_ci, resample_weights
    from ecgprobe.analyzers._stats.metrics import rank_metrics

    missing = [k for k in ("test_ids", "test_patient_ids", "test_y", "test_scores") if k not in probe.arrays]
    if missing or probe.metrics.get("task") == "regression":
        raise ConfigError(
            f"the confounding check needs a multi-label probe result with its test arrays (missing {missing}); "
            "pass a linear_probe or knn_probe result loaded with its .npz"
        )
    column = _site_column(records.meta, attribute)
    ids = np.asarray(probe.arrays["test_ids"], dtype=str)
    site = group_values(records.meta[column].reindex(ids))
    counts = {lv: int((site == lv).sum()) for lv in sorted(set(site) - {""})}
    levels = [str(lv) for lv, n in counts.items() if n >= min_records]
    notes = [
        f"{column} = {lv}: {n} test records (< {min_records}), not analysed"
        for lv, n in counts.items()
        if n < min_records
    ]
    if len(levels) < 2:
        raise AnalysisError(
            f"column {column!r} has {len(levels)} value(s) with >= {min_records} test records "
            f"({counts or 'none known'}); a confounding check needs two sites"
        )
    if (site == "").any():
        notes.append(f"{int((site == '').sum())} test records without {column} are left out")
    keep = np.isin(site, levels)
    site, ids = site[keep], ids[keep]
    groups = np.asarray(probe.arrays["test_patient_ids"], dtype=str)[keep]
    y = np.asarray(probe.arrays["test_y"])[keep]
    s = np.asarray(probe.arrays["test_scores"], dtype=np.float64)[keep]
    labels = [str(v) for v in probe.metrics.get("labels_fitted", [])]
    w = resample_weights(groups, n_resamples, seed)

    pooled, pooled_r = rank_metrics(y, s, ap=False)[0][0], rank_metrics(y, s, w, ap=False)[0]
    # the site alone: each record scored by its site's train prevalence of the label
    all_site = group_values(records.meta[column])
    train = records.split == "train"
    lab_idx = [records.label_names.index(lab) for lab in labels]
    overall = records.y[train][:, lab_idx].mean(0) if train.any() else np.full(len(labels), 0.5)
    train_prev = {
        lv: records.y[train & (all_site == lv)][:, lab_idx].mean(0)
        if (train & (all_site == lv)).any()
        else overall  # a site without train records: no site-specific information
        for lv in levels
    }
    alone = np.stack([train_prev[lv] for lv in site])
    alone_pt, alone_r = rank_metrics(y, alone, ap=False)[0][0], rank_metrics(y, alone, w, ap=False)[0]

    per_pt, per_r, pairs_pt, pairs_r, level_rows = [], [], [], [], []
    yb = y.astype(np.float64)
    for lv in levels:
        m = site == lv
        wm = w * m[None, :].astype(np.float32)
        pt, reps = rank_metrics(y[m], s[m], ap=False)[0][0], rank_metrics(y, s, wm, ap=False)[0]
        per_pt.append(pt)
        per_r.append(reps)
        pairs_pt.append(yb[m].sum(0) * (1 - yb[m]).sum(0))
        pairs_r.append((wm @ yb) * (wm @ (1 - yb)))
        ci = percentile_ci(reps, ci_level)
        for j, lab in enumerate(labels):
            level_rows.append(
                {
                    "label": lab,
                    "level": lv,
                    "n_records": int(m.sum()),
                    "n_patients": len(set(groups[m])),
                    "n_pos": int(y[m, j].sum()),
                    "prevalence": float(y[m, j].mean()),
                    "train_prevalence": float(train_prev[lv][j]),
                    "auroc": float(pt[j]),
                    "ci_low": float(ci[j, 0]),
                    "ci_high": float(ci[j, 1]),
                }
            )
    within = within_auroc(np.stack(per_pt), np.stack(pairs_pt))
    within_r = within_auroc(np.stack(per_r), np.stack(pairs_r))
    diff, diff_r = pooled - within, pooled_r - within_r
    cis = {k: percentile_ci(v, ci_level) for k, v in (("p", pooled_r), ("w", within_r), ("d", diff_r))}
    cis["a"] = percentile_ci(alone_r, ci_level)
    n_eval = np.isfinite(np.stack(per_pt)).sum(0)
    rows = []
    for j, lab in enumerate(labels):
        rows.append(
            {
                "label": lab,
                "n_patients": len(set(groups)),
                "n_pos": int(y[:, j].sum()),
                "pooled_auroc": float(pooled[j]),
                "pooled_ci_low": float(cis["p"][j, 0]),
                "pooled_ci_high": float(cis["p"][j, 1]),
                "within_auroc": float(within[j]),
                "within_ci_low": float(cis["w"][j, 0]),
                "within_ci_high": float(cis["w"][j, 1]),
                "difference": float(diff[j]),
                "difference_ci_low": float(cis["d"][j, 0]),
                "difference_ci_high": float(cis["d"][j, 1]),
                "site_alone_auroc": float(alone_pt[j]),
                "site_alone_ci_low": float(cis["a"][j, 0]),
                "site_alone_ci_high": float(cis["a"][j, 1]),
                "n_levels_evaluable": int(n_eval[j]),
            }
        )
    site_rows: list[dict[str, Any]] = []
    decod = None
    if emb is not None:
        site_rows, decod = _site_probe(emb, records, all_site, levels, column, n_resamples, seed, ci_level)
    else:
        notes.append("how well the embedding predicts the site is not measured (site_probe=False)")
    return ConfoundingResult(
        kind=ConfoundingResult.KIND,
        metrics={
            "attribute": column,
            "levels": levels,
            "n_test_records": int(keep.sum()),
            "n_test_patients": len(set(groups)),
            "n_resamples": int(n_resamples),
            "ci_level": ci_level,
            "bootstrap_unit": bootstrap_unit(groups, ids),
            "min_records": int(min_records),
            "probe": probe.kind,
            "site_decodability_auroc": None if decod is None else decod[0],
            "site_decodability_auroc_ci": None if decod is None else decod[1],
            "labels_confounded": [r["label"] for r in rows if r["difference_ci_low"] > 0],
        },
        tables={"labels": rows, "per_level": level_rows, "site_probe": site_rows},
        arrays={"difference_replicates": np.asarray(diff_r, dtype=np.float64)},
        params={
            "attribute": attribute,
            "min_records": min_records,
            "n_resamples": n_resamples,
            "seed": seed,
            "ci_level": ci_level,
        },
        seed=seed,
        provenance={"probe": {"kind": probe.kind, "created": probe.created, **probe.provenance}},
        notes=notes,
    )


def _site_probe(
    emb: Embeddings,
    records: RecordSet,
    site: np.ndarray,
    levels: Sequence[str],
    column: str,
    n_resamples: int,
    seed: int,
    ci_level: float,
) -> tuple[list[dict[str, Any]], tuple[float, list[float]] | None]:
    """A linear probe for each site against the others (one for two sites), on the records of the
    analysed sites, with the linear probe's own protocol; ``(rows, (macro, ci))``."""
    from ecgprobe.analyzers.linear_probe import LinearProbe

    keep = np.flatnonzero(np.isin(site, levels))
    targets = list(levels[1:]) if len(levels) == 2 else list(levels)
    y = np.stack([site[keep] == lv for lv in targets], axis=1).astype(np.uint8)
    sub = records.subset(keep).with_labels([f"{column} = {lv}" for lv in targets], y, "multilabel")
    try:
        res = LinearProbe(n_resamples=n_resamples, seed=seed, ci_level=ci_level).run(
            emb.take(list(sub.ids)), sub
        )
    except AnalysisError:
        return [], None
    rows = [
        {
            "level": lv,
            "n_test_pos": r.get("n_test_pos"),
            "auroc": r.get("auroc"),
            "ci_low": r.get("auroc_ci_low"),
            "ci_high": r.get("auroc_ci_high"),
        }
        for lv, r in zip(targets, res.tables.get("per_label", []))
    ]
    macro = res.metrics.get("macro_auroc_all", res.metrics.get("macro_auroc"))
    ci = res.metrics.get("macro_auroc_all_ci", res.metrics.get("macro_auroc_ci"))
    return rows, (None if macro is None else (float(macro), [float(c) for c in ci]))


@ANALYZERS.register(
    "confounding",
    summary="per label, pooled vs within-site AUROC (paired patient bootstrap); the site decoded from the embedding",
)
@analyzer_settings
class Confounding(Analyzer):
    """Confounding by recording site: pooled vs within-site AUROC per label, the site alone as a
    score, and how well the embedding predicts the site.

    The analyzer form of :func:`site_confounding`: a workflow runs it after the probe it reads
    (``requires``). On records without a site-like column it raises an AnalysisError, which the
    workflows turn into a one-line skip.

    Args:
        probe: the ``linear_probe`` (or ``knn_probe``) result to check; ``None`` fits a linear
            probe with default settings.
        attribute: the site column (default: the first of :data:`SITE_COLUMNS` present).
        min_records: sites with fewer test records are not analysed.
        site_probe: also measure how well the embedding predicts the site.
        n_resamples: bootstrap resamples (patients drawn with replacement, shared by all AUROCs).
        ci_level: confidence level.
        seed: seed of the draws.

    Example:
        >>> res = Confounding(probe=probe_result).run(emb, records)  # doctest: +SKIP
        >>> res.metrics["labels_confounded"]  # doctest: +SKIP
        ['afib']
    """

    name = "confounding"
    requires: ClassVar[Mapping[str, str]] = {"probe": "linear_probe"}

    probe: Result | None = None
    attribute: str | None = None
    min_records: int = 20
    site_probe: bool = True
    n_resamples: int = 1000
    ci_level: float = 0.95
    seed: int = 0

    def _validate(self) -> None:
        if self.attribute is not None and (not isinstance(self.attribute, str) or not self.attribute):
            raise ConfigError(f"attribute must be a metadata column name or None, got {self.attribute!r}")
        if (
            isinstance(self.min_records, bool)
            or not isinstance(self.min_records, int)
            or self.min_records < 1
        ):
            raise ConfigError(f"min_records must be an integer >= 1, got {self.min_records!r}")
        check_resampling(self.n_resamples, self.ci_level)

    def _run(self, emb: Embeddings, records: RecordSet) -> Result:
        _site_column(records.meta, self.attribute)  # skip before fitting anything
        probe = self.probe
        if probe is None:
            from ecgprobe.analyzers.linear_probe import LinearProbe

            probe = LinearProbe(seed=self.seed).run(emb, records)
        return site_confounding(
            probe,
            records,
            emb if self.site_probe else None,
            attribute=self.attribute,
            min_records=self.min_records,
            n_resamples=self.n_resamples,
            seed=self.seed,
            ci_level=self.ci_level,
        )
