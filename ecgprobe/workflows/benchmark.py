"""Multi-model benchmark: encoders × tasks → a leaderboard that says which differences are real.

A *task* is a dataset entry of a study (a dataset with one label set) evaluated in-dataset (probe
fitted on its train split, C on its validation split, scored on its test split), or a transfer
cell ``source→target`` (the source's probe scored on every target record, on the labels both
have), fitted and scored by the transfer workflow's own code
(:mod:`ecgprobe.workflows.transfer`). One probe per encoder and source serves the source's
in-dataset task and all its transfer cells.

Each cell is the macro AUROC over the task's headline labels (at least ``min_positives`` positive
and negative patients) with a patient-bootstrap interval. Every encoder of a task is evaluated on
the *same* resamples (same patients, same seed), so differences and ranks are paired. The
bootstrap seed of a task is derived from the run's seed and the name of the dataset it is
evaluated on: label sets of one dataset share their resamples, different datasets are resampled
independently. Per task and for the aggregate (mean AUROC and mean rank over tasks) the rank
statistics of :mod:`ecgprobe.analyzers._stats.ranking` give rank intervals, the top group
(Holm-adjusted paired tests against the best) and how many adjacent ranks are significant.

Caveat recorded in the result: a transfer cell evaluated on all records of a dataset that is also
an in-dataset task overlaps that task's test patients but is resampled independently of it, so
the aggregate treats the two as independent (a slight understatement of its variance).

With ``ray=True`` (``ecgprobe run --ray [ADDRESS]``) each probe fit runs as a Ray task; the fits
are deterministic, so the leaderboard is identical to the local run.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ecgprobe.analyzers._stats.bootstrap import (
    DEFAULT_MIN_POSITIVES,
    class_patients,
    headline_columns,
    percentile_ci,
    resample_weights,
)
from ecgprobe.analyzers._stats.metrics import rank_metrics
from ecgprobe.analyzers._stats.ranking import aggregate, rank_table
from ecgprobe.analyzers.base import Result
from ecgprobe.data.record import RecordSet
from ecgprobe.exceptions import ConfigError
from ecgprobe.extract.embeddings import Embeddings
from ecgprobe.settings import RunSettings
from ecgprobe.workflows.transfer import TransferSet, _fit, _probe, _scored
from ecgprobe.workflows.transfer_stats import macro_with_interval

__all__ = ["BenchmarkResult", "BenchmarkSet", "benchmark", "leaderboard_by_encoder", "task_seed"]


@dataclass(frozen=True)
class BenchmarkSet:
    """One dataset entry of a benchmark: its label (the task name), the dataset it comes from
    (label sets of one dataset share bootstrap resamples), its records and each encoder's
    embeddings of them."""

    label: str
    dataset: str
    records: RecordSet
    embeddings: Mapping[str, Embeddings] = field(default_factory=dict)

    def of(self, encoder: str) -> TransferSet:
        """The set as the transfer workflow takes it, for one encoder."""
        return TransferSet(self.label, self.records, self.embeddings[encoder])


class BenchmarkResult(Result):
    """Result of :func:`benchmark` (``kind = "benchmark"``).

    Schema:
        metrics: ``encoders``, ``tasks`` (per task: name, kind ``in_dataset``/``transfer``, source,
            target, labels, n_records, n_patients, bootstrap_seed), ``per_task`` {task: rank
            table of :func:`~ecgprobe.analyzers._stats.ranking.rank_table`}, ``aggregate``
            (:func:`~ecgprobe.analyzers._stats.ranking.aggregate`), ``n_resamples``,
            ``ci_level``, ``min_positives``, ``n_fits``, ``fit_s``, ``ray``.
        tables: ``cells`` (encoder, task, macro_auroc, ci_low, ci_high, rank, rank_ci_low,
            rank_ci_high, top_group, n_labels, n_records), ``leaderboard`` (one row per encoder,
            keyed by ``encoder``: mean_auroc with interval, mean_rank with interval, top_group,
            tasks_in_top_group), ``adjacent`` (task, upper, lower, diff, ci, p_holm, significant),
            ``reference`` (published values beside ours, when a table was given),
            ``label_free`` (encoder, task: RankMe, TwoNN, IsoScore) and
            ``label_free_correlation`` (task, statistic: Spearman ρ with AUROC across encoders,
            interval, verdict; :mod:`ecgprobe.workflows.benchmark_geometry`).
        arrays: ``task{k}_replicates`` (B x M macro AUROC replicates of task k, encoders in order).
    """

    KIND: ClassVar[str] = "benchmark"


def task_seed(seed: int, dataset: str) -> int:
    """The bootstrap seed of every task evaluated on ``dataset`` (stable across runs and encoders).

    Example:
        >>> task_seed(0, "ptbxl") == task_seed(0, "ptbxl") != task_seed(0, "challenge")
        True
    """
    ss = np.random.SeedSequence([int(seed), zlib.crc32(dataset.encode())])
    return int(ss.generate_state(1, dtype=np.uint32)[0])


def _universe(sets: Mapping[str, BenchmarkSet], dataset: str, split: str) -> np.ndarray:
    """Every patient of ``dataset``'s evaluation records (its test split, or all records) over
    all its label sets: the pool each resample of a task on that dataset draws from, so that
    tasks on one dataset are paired patient by patient even where their records differ slightly
    (a record without a label of one label set). A task whose patients are a subset of the pool
    sees a resample size close to, not exactly, its own patient count."""
    pool: set[str] = set()
    for s in sets.values():
        if s.dataset == dataset:
            rs = s.records.by_split("test") if split == "test" else s.records
            pool.update(str(g) for g in rs.patient_ids)
    return np.array(sorted(pool))


def _paired_weights(groups: np.ndarray, pool: np.ndarray, n_res: int, seed: int) -> np.ndarray:
    """Bootstrap weights ``(B, N)`` of records with patients ``groups``, drawn over ``pool``."""
    counts = resample_weights(pool, n_res, seed)  # one entry per patient: its draw count
    return counts[:, np.searchsorted(pool, np.asarray(groups, dtype=str))]


def _train_subsample(ts: TransferSet, fraction: float, seed: int) -> TransferSet:
    """``ts`` with a seeded, patient-wise, label-stratified ``fraction`` of its train split (val
    and test kept whole); ``fraction`` 1 returns ``ts``."""
    if fraction >= 1:
        return ts
    from ecgprobe.analyzers._stats.subsets import nested_fraction_subsets

    rs = ts.records
    train = np.flatnonzero(rs.split == "train")
    keep = nested_fraction_subsets(rs.y[train], rs.patient_ids[train], [fraction], seed=seed)[0]
    mask = rs.split != "train"
    mask[train[keep]] = True
    sub = rs.subset(mask)
    return TransferSet(ts.name, sub, ts.embeddings.take(list(sub.ids)))


def _fit_job(
    ts: TransferSet, probe: Mapping[str, Any], settings: RunSettings, fraction: float = 1.0, seed: int = 0
) -> dict[str, Any]:
    """One probe fit (a Ray task under ``ray=True``): the head and the labels it fitted."""
    ts = _train_subsample(ts, fraction, seed)
    res, W, b = _fit(ts, list(ts.records.label_names), _probe(settings, probe))
    return {"W": W, "b": b, "fitted": [str(x) for x in res.metrics["labels_fitted"]], "notes": res.notes}


def _run_fits(
    jobs: Sequence[tuple[str, BenchmarkSet, int]],
    probe: Mapping[str, Any],
    settings: RunSettings,
    fraction: float,
    ray: bool,
    address: str | None,
) -> list[dict[str, Any]]:
    if not ray:
        return [_fit_job(s.of(enc), probe, settings, fraction, seed) for enc, s, seed in jobs]
    from ecgprobe.extract.distributed import init_ray

    rt = init_ray(address)
    task = rt.remote(num_cpus=1, max_retries=0)(_fit_job)
    return rt.get([task.remote(s.of(enc), dict(probe), settings, fraction, seed) for enc, s, seed in jobs])


def _check(
    sets: Mapping[str, BenchmarkSet], encoders: Sequence[str], tasks: Sequence[str], transfer: Sequence[Any]
) -> list[tuple[str, str]]:
    if len(encoders) < 2:
        raise ConfigError(f"a benchmark ranks at least two encoders; got {list(encoders)}")
    if not tasks and not transfer:
        raise ConfigError("a benchmark needs at least one task (a dataset label) or transfer cell")
    pairs = []
    for t in transfer:
        if isinstance(t, str) or len(t) != 2:
            raise ConfigError(f"a transfer cell is [source, target] (two dataset labels), got {t!r}")
        pairs.append((str(t[0]), str(t[1])))
    for name in [*tasks, *(x for p in pairs for x in p)]:
        if name not in sets:
            raise ConfigError(f"benchmark task {name!r} is not a dataset label; known: {sorted(sets)}")
        missing = [e for e in encoders if e not in sets[name].embeddings]
        if missing:
            raise ConfigError(f"benchmark: no embeddings of {name!r} for encoders {missing}")
    return pairs


def benchmark(
    sets: Mapping[str, BenchmarkSet],
    encoders: Sequence[str],
    *,
    tasks: Sequence[str] | None = None,
    transfer: Sequence[Sequence[str]] = (),
    settings: RunSettings | None = None,
    probe: Mapping[str, Any] | None = None,
    min_positives: int = DEFAULT_MIN_POSITIVES,
    references: Sequence[Mapping[str, Any]] = (),
    seeds: Sequence[int] = (0,),
    train_fraction: float = 1.0,
    ray: bool = False,
    ray_address: str | None = None,
) -> BenchmarkResult:
    """Fit, score and rank every encoder on every task (see the module docstring).

    Args:
        sets: the dataset entries by label.
        encoders: the encoder labels to rank (each must have embeddings in every set used).
        tasks: in-dataset tasks (dataset labels; default: every set).
        transfer: transfer cells ``[source, target]``.
        settings: the run's settings (seed, device, ``n_resamples``, ``ci_level``).
        probe: :class:`~ecgprobe.analyzers.linear_probe.LinearProbe` settings.
        min_positives: labels with fewer positive (or negative) patients are left out of a
            task's headline macro.
        references: published values (:func:`ecgprobe.workflows.benchmark_io.load_references`).
        seeds: with ``train_fraction < 1``, one probe per seed, each fitted on its own seeded
            patient-wise stratified subsample of the train split; a cell is the mean over seeds
            (its replicates the mean of the seeds' replicates on the same test resamples, so
            the interval is the test-sampling interval of that mean).
        train_fraction: share of the train split each probe is fitted on (1: all of it; the
            probe is deterministic, so several seeds then need a fraction below 1).
        ray: run each probe fit as a Ray task.
        ray_address: the Ray cluster (``None``: a local Ray).

    Returns:
        The :class:`BenchmarkResult`.

    Raises:
        ConfigError: fewer than two encoders, no task, an unknown task or missing embeddings.
        DependencyError: ``ray=True`` without Ray installed.

    Example:
        >>> sets = {"ptbxl": BenchmarkSet("ptbxl", "ptbxl", rs, {"a": emb_a, "b": emb_b})}  # doctest: +SKIP
        >>> res = benchmark(sets, ["a", "b"])  # doctest: +SKIP
        >>> res.tables["leaderboard"][0]["encoder"]  # doctest: +SKIP
    """
    import time

    settings = settings or RunSettings()
    tasks = list(sets) if tasks is None else list(tasks)
    encoders = [str(e) for e in encoders]
    pairs = _check(sets, encoders, tasks, transfer)
    seeds = [int(x) for x in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"benchmark seeds must be distinct integers, at least one; got {seeds}")
    if not 0 < float(train_fraction) <= 1:
        raise ConfigError(f"train_fraction must lie in (0, 1], got {train_fraction!r}")
    if train_fraction >= 1 and len(seeds) > 1:
        raise ConfigError(
            f"seeds {seeds} would fit the same probe {len(seeds)} times: the probe is deterministic on the whole "
            "train split; set train_fraction below 1 (each seed draws its own train subsample) or give one seed"
        )
    level, n_res = float(settings.ci_level or 0.95), int(settings.n_resamples or 1000)
    probe = {"n_resamples": 1, **dict(probe or {})}  # the probe's own bootstrap is not used here
    sources = list(dict.fromkeys([*tasks, *(s for s, _ in pairs)]))
    jobs = [(enc, sets[s], seed) for s in sources for enc in encoders for seed in seeds]
    t0 = time.perf_counter()
    fits = _run_fits(jobs, probe, settings, float(train_fraction), ray, ray_address)
    heads: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for (enc, s, _), head in zip(jobs, fits):
        heads.setdefault((enc, s.label), []).append(head)
    fit_s = time.perf_counter() - t0
    specs = [(t, t, t) for t in tasks] + [(f"{s}->{t}", s, t) for s, t in pairs]
    notes: list[str] = []
    task_meta, per_task, cells, adjacent, arrays = [], {}, [], [], {}
    points, reps_all, patients = [], [], {}
    for name, src, tgt in specs:
        fitted = [set(h["fitted"]) for e in encoders for h in heads[(e, src)]]
        target = sets[tgt]
        rs = target.records.by_split("test") if src == tgt else target.records
        labels = [n for n in target.records.label_names if all(n in f for f in fitted)]
        if not labels:
            notes.append(f"{name}: no label fitted by every encoder is present in {tgt}; not ranked")
            continue
        split = "test" if src == tgt else "all"
        universe = f"{target.dataset}/{split}"
        if universe not in patients:
            patients[universe] = _universe(sets, target.dataset, split)
        seed = task_seed(settings.seed, universe)
        weights = _paired_weights(rs.patient_ids, patients[universe], n_res, seed)
        y = np.asarray(rs.y[:, [rs.label_names.index(n) for n in labels]])
        ok = (y.sum(0) > 0) & (y.sum(0) < len(y))
        cols = headline_columns(ok, *class_patients(y, rs.patient_ids), int(min_positives))[0]
        point, reps = np.zeros(len(encoders)), np.zeros((n_res, len(encoders)))
        cis = []
        for j, enc in enumerate(encoders):
            for h in heads[(enc, src)]:  # one head per seed: the cell is their mean
                scored = _scored(h["W"], h["b"], h["fitted"], target.of(enc), rs, labels)
                p_lab = rank_metrics(scored.y, scored.scores, ap=False)[0][0]
                r_lab = rank_metrics(scored.y, scored.scores, weights, ap=False)[0]
                m, _, r = macro_with_interval(p_lab, r_lab, cols, level)
                point[j] += m / len(seeds)
                reps[:, j] += r / len(seeds)
            cis.append(percentile_ci(reps[:, j], level).tolist())
        table = rank_table(point, reps, encoders, level=level)
        per_task[name] = table
        by = {r["name"]: r for r in table["rows"]}
        for j, enc in enumerate(encoders):
            r = by[enc]
            cells.append({"encoder": enc, "task": name, "macro_auroc": float(point[j]), "ci_low": cis[j][0],
                          "ci_high": cis[j][1], "rank": r["rank"], "rank_ci_low": r["rank_ci"][0],
                          "rank_ci_high": r["rank_ci"][1], "top_group": r["top_group"],
                          "p_holm_vs_best": r["p_holm"], "n_labels": len(cols), "n_records": len(rs)})  # fmt: skip
        adjacent += [{"task": name, **a, "ci_low": a["diff_ci"][0], "ci_high": a["diff_ci"][1]}
                     for a in table["adjacent"]]  # fmt: skip
        task_meta.append({"name": name, "kind": "in_dataset" if src == tgt else "transfer", "source": src,
                          "target": tgt, "labels": [labels[c] for c in cols], "n_records": len(rs),
                          "n_patients": len(set(rs.patient_ids)), "bootstrap_seed": seed,
                          "resampled_with": universe})  # fmt: skip
        arrays[f"task{len(points)}_replicates"] = reps.astype(np.float32)
        points.append(point)
        reps_all.append(reps)
    if not points:
        raise ConfigError("benchmark: no task could be ranked (see the notes: no shared labels)")
    agg = aggregate(np.stack(points), np.stack(reps_all, axis=1), encoders, level=level)
    top_count = {e: sum(c["top_group"] for c in cells if c["encoder"] == e) for e in encoders}
    leaderboard = [{"encoder": r["name"], "mean_auroc": r["mean"], "ci_low": r["mean_ci"][0],
                    "ci_high": r["mean_ci"][1], "mean_rank": r["mean_rank"], "rank_ci_low": r["mean_rank_ci"][0],
                    "rank_ci_high": r["mean_rank_ci"][1], "top_group": r["top_group"],
                    "tasks_in_top_group": top_count[r["name"]], "n_tasks": len(points)}
                   for r in agg["rows"]]  # fmt: skip
    if any(t in tasks for _, t in pairs):
        notes.append(
            "transfer cells are scored on every record of the target and resampled independently of the "
            "target's own in-dataset task, although they share patients: the aggregate interval treats them "
            "as independent"
        )
    from ecgprobe.workflows.benchmark_geometry import label_free_correlation
    from ecgprobe.workflows.benchmark_io import reference_rows

    geometry, correlation = label_free_correlation(
        sets, encoders, cells, task_meta, level=level, seed=int(settings.seed)
    )
    tables = {"cells": cells, "leaderboard": leaderboard, "adjacent": adjacent,
              "reference": reference_rows(references, cells, task_meta, sets),
              "label_free": geometry, "label_free_correlation": correlation}  # fmt: skip
    return BenchmarkResult(
        kind=BenchmarkResult.KIND,
        metrics={
            "encoders": encoders,
            "tasks": task_meta,
            "per_task": per_task,
            "aggregate": agg,
            "n_resamples": n_res,
            "ci_level": level,
            "min_positives": int(min_positives),
            "n_fits": len(jobs),
            "fit_s": round(fit_s, 3),
            "ray": bool(ray),
            "seeds": seeds,
            "train_fraction": float(train_fraction),
            "bootstrap_unit": "patient (paired across encoders within a task)",
        },
        tables=tables,
        arrays=arrays,
        params={
            "probe": probe,
            "min_positives": int(min_positives),
            "transfer": [list(p) for p in pairs],
            "tasks": tasks,
            "seeds": seeds,
            "train_fraction": float(train_fraction),
        },
        seed=int(settings.seed),
        provenance={f"{e}/{s}": sets[s].embeddings[e].key for e in encoders for s in sources},
        notes=notes,
    )


def leaderboard_by_encoder(result: Result) -> dict[str, dict[str, Any]]:
    """The leaderboard rows keyed by encoder label: the hook for per-encoder columns computed
    elsewhere (e.g. a rank correlation of label-free geometry with mean AUROC)."""
    return {r["encoder"]: dict(r) for r in result.tables.get("leaderboard", [])}
