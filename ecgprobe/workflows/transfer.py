"""Transfer: fit a probe on one dataset, test it on others, and say how much is lost.

:func:`transfer` fits the linear probe on the source's train split (C chosen on its validation
split, exactly as ``ecgprobe probe`` does), scores the source's test split and every target with
that one head, and compares them on the labels present in both (the harmonised ``scored`` labels
give PTB-XL, the Challenge sources and CODE-15 % one label space): macro and per-label AUROC with
patient-bootstrap intervals per target, and the in-dataset minus out-of-dataset gap with its
interval (:mod:`ecgprobe.workflows.transfer_stats`). With ``matrix=True`` every dataset with
train/val/test splits is a source in turn: a train x test matrix of macro AUROC on the labels all
datasets share.

Beside the gap, site predictability: how well the same embeddings tell the datasets apart (a
probe on a balanced, pooled sample; overall and within each shared label), and what is known of
each dataset's acquisition (sampling rate, mains frequency, device) — the shortcuts an encoder
could learn instead of the diagnosis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from ecgprobe.analyzers._stats.heads import linear_head
from ecgprobe.analyzers.base import Result
from ecgprobe.analyzers.linear_probe import LinearProbe
from ecgprobe.data.pool import source_names
from ecgprobe.data.record import RecordSet
from ecgprobe.exceptions import AnalysisError, ConfigError
from ecgprobe.extract.embeddings import Embeddings
from ecgprobe.settings import RunSettings
from ecgprobe.workflows.transfer_stats import (
    Scored,
    compare,
    derive_seeds,
    sigmoid,
    site_predictability,
)

__all__ = ["MAINS_HZ", "TransferResult", "TransferSet", "acquisition", "transfer"]

#: Mains frequency by dataset (or Challenge source), from the country of recording (not measured
#: in the signals): Germany, China, Russia 50 Hz; USA, Brazil 60 Hz.
MAINS_HZ: dict[str, tuple[int, str]] = {
    "ptbxl": (50, "Germany"),
    "PTB-XL": (50, "Germany"),
    "PTB": (50, "Germany"),
    "CPSC2018": (50, "China"),
    "CPSC-Extra": (50, "China"),
    "Chapman-Shaoxing/Ningbo": (50, "China"),
    "INCART": (50, "Russia"),
    "Georgia": (60, "USA"),
    "code15": (60, "Brazil"),
}
#: The rate each loader's records were recorded at, where the loader may have resampled them.
_NATIVE_FS = {"ptbxl": 500.0, "code15": 400.0}


@dataclass(frozen=True)
class TransferSet:
    """One dataset of a transfer run: its name, records and the encoder's embeddings of them."""

    name: str
    records: RecordSet
    embeddings: Embeddings


class TransferResult(Result):
    """Result of :func:`transfer` (``kind = "transfer"``).

    Schema:
        metrics: ``source``, ``targets``, ``target_split``, ``n_resamples``, ``ci_level``,
            ``min_positives``, ``bootstrap_seeds`` ({set: seed}); ``labels_fitted``;
            ``per_target`` {target: macro_auroc_in/_out, gap (each ``_ci``; ``_all`` over every
            evaluated label), labels_evaluated/_headline/_flagged/_not_evaluated, n_records,
            n_patients}; ``site`` (macro_auroc, macro_auroc_ci, n_per_source, per_source_auroc)
            when there are two or more datasets; ``matrix_labels`` with ``matrix=True``.
        tables: ``targets`` (one row per target), ``per_label`` (target, label, abbreviation,
            AUROC in/out/gap with intervals, positives), ``matrix`` (train, test, macro_auroc,
            ci_low, ci_high, n_labels), ``site`` (scope, label, n_test, auroc, ci_low, ci_high),
            ``acquisition`` (dataset, records, fs, fs_recorded, mains_hz, mains_basis, devices).
        arrays: ``head_W`` (C x D), ``head_b`` (C,); per target k ``target{k}_ids``,
            ``target{k}_scores``, ``target{k}_macro_in_replicates``, ``target{k}_macro_out_replicates``.
    """

    KIND: ClassVar[str] = "transfer"


def acquisition(ts: TransferSet) -> dict[str, Any]:
    """What is known of a dataset's acquisition: sampling rates, mains frequency, devices."""
    rs, meta = ts.records, ts.records.meta
    subs = sorted(set(meta["source"].astype(str))) if "source" in meta.columns else [rs.name]
    mains = sorted({MAINS_HZ[s][0] for s in subs if s in MAINS_HZ})
    where = sorted({MAINS_HZ[s][1] for s in subs if s in MAINS_HZ})
    if "fs_original" in meta.columns:
        recorded = sorted({float(f) for f in meta["fs_original"]})
    else:
        recorded = [_NATIVE_FS.get(rs.name, rs.fs)]
    devices = sorted({str(d).strip() for d in meta["device"].dropna()}) if "device" in meta.columns else []
    return {
        "dataset": ts.name,
        "records": len(rs),
        "sources": ";".join(subs),
        "fs": rs.fs,
        "fs_recorded": ";".join(f"{f:g}" for f in recorded),
        "mains_hz": ";".join(str(m) for m in mains) or "unknown",
        "mains_basis": f"country of recording ({', '.join(where)})" if where else "unknown",
        "devices": ";".join(devices) or "unknown",
    }


def _probe(settings: RunSettings, probe: Mapping[str, Any] | None) -> LinearProbe:
    opts = settings.for_analysis({"seed", "device", "ci_level", "n_resamples"})
    return LinearProbe(**{**opts, **dict(probe or {})})


def _fit(ts: TransferSet, labels: Sequence[str], probe: LinearProbe) -> tuple[Result, np.ndarray, np.ndarray]:
    rs = ts.records
    cols = [rs.label_names.index(n) for n in labels]
    res = probe.run(ts.embeddings, rs.with_labels(list(labels), rs.y[:, cols], "multilabel"))
    W, b = linear_head(res)
    return res, np.atleast_2d(W), np.atleast_1d(b)


def _scored(
    W: np.ndarray, b: np.ndarray, fitted: Sequence[str], ts: TransferSet, rs: RecordSet, labels: Sequence[str]
) -> Scored:
    """The head's logits for ``labels`` on records ``rs`` of ``ts`` (same arithmetic for every
    set, so identical embeddings give identical scores). AUROC ranks logits: the same order as
    the probabilities, without the ties that saturated probabilities (1.0 in float64) would make."""
    X = ts.embeddings.take(list(rs.ids)).X.astype(np.float64)
    rows = [list(fitted).index(n) for n in labels]
    z = X @ W[rows].T + b[rows]
    y = rs.y[:, [rs.label_names.index(n) for n in labels]]
    return Scored(np.asarray(y, dtype=np.uint8), z, rs.patient_ids)


def _eval_set(ts: TransferSet, target_split: str, notes: list[str]) -> RecordSet:
    if target_split == "all":
        return ts.records
    test = ts.records.by_split("test")
    if not len(test):
        notes.append(f"{ts.name} has no test split: all its {len(ts.records)} records are evaluated")
        return ts.records
    return test


def _check(source: TransferSet, targets: Sequence[TransferSet], target_split: str) -> None:
    if not targets:
        raise ConfigError("transfer needs at least one target dataset (--target NAME:ROOT)")
    if target_split not in ("all", "test"):
        raise ConfigError(f"target_split must be 'all' or 'test', got {target_split!r}")
    for ts in (source, *targets):
        if not isinstance(ts, TransferSet):
            raise ConfigError("transfer takes TransferSet(name, records, embeddings) values")
        if ts.records.task != "multilabel":
            raise ConfigError(
                f"transfer evaluates classification labels; {ts.name} is a {ts.records.task} set"
            )
    names = [ts.name for ts in (source, *targets)]
    if len(set(names)) != len(names):
        raise ConfigError(f"transfer: dataset names must be unique, got {names}")


def transfer(
    source: TransferSet,
    targets: Sequence[TransferSet],
    *,
    settings: RunSettings | None = None,
    target_split: Literal["all", "test"] = "all",
    matrix: bool = False,
    probe: Mapping[str, Any] | None = None,
    min_positives: int = 10,
    site: bool = True,
    n_per_source: int = 2000,
) -> TransferResult:
    """Fit on ``source``, evaluate on its test split and on every target (see the module docstring).

    Args:
        source: the dataset the probe is fitted on (its train/val/test splits).
        targets: the datasets it is tested on (all their records, or their test split).
        settings: the run's settings (seed, device, ``n_resamples``, ``ci_level``).
        target_split: ``"all"`` (every target record) or ``"test"`` (a target's test split,
            where it has one).
        matrix: also fit on every target with splits: the train x test matrix.
        probe: :class:`~ecgprobe.analyzers.linear_probe.LinearProbe` settings (``Cs``, ...).
        min_positives: labels with fewer positive (or negative) patients in either set are
            flagged and left out of the headline macros.
        site: compute site predictability (two or more datasets).
        n_per_source: records per dataset in the site-predictability sample, at most.

    Returns:
        The :class:`TransferResult`.

    Raises:
        ConfigError: no target, duplicate names, a regression set, bad options.
        AnalysisError: no label shared by the source and a target, or none the probe can fit.

    Example:
        >>> src = TransferSet("ptbxl", ptb, extract(enc, ptb))  # doctest: +SKIP
        >>> res = transfer(src, [TransferSet("challenge", cinc, extract(enc, cinc))])  # doctest: +SKIP
        >>> res.metrics["per_target"]["challenge"]["gap"]  # doctest: +SKIP
    """
    settings = settings or RunSettings()
    _check(source, targets, target_split)
    level = float(settings.ci_level or 0.95)
    n_res = int(settings.n_resamples or 1000)
    everyone = [source, *targets]
    seeds = dict(zip([ts.name for ts in everyone], derive_seeds(settings.seed, len(everyone))))
    wanted = [n for n in source.records.label_names if any(n in t.records.label_names for t in targets)]
    if not wanted:
        raise AnalysisError(
            f"no label of {source.name} is present in any target ({[t.name for t in targets]}); load them in one "
            "label space, e.g. -o labels=scored (PTB-XL, Challenge, CODE-15 %)"
        )
    lp = _probe(settings, probe)
    fitted_res, W, b = _fit(source, wanted, lp)
    fitted = [str(x) for x in fitted_res.metrics["labels_fitted"]]
    test = source.records.by_split("test")
    notes = [f"{source.name}: {n}" for n in fitted_res.notes]
    per_target, rows, target_rows, arrays = {}, [], [], {"head_W": W, "head_b": b}
    for k, ts in enumerate(targets):
        shared = [n for n in fitted if n in ts.records.label_names]
        if not shared:
            notes.append(f"{ts.name}: no label shared with the fitted probe; not evaluated")
            continue
        ev = _eval_set(ts, target_split, notes)
        out = compare(
            _scored(W, b, fitted, source, test, shared),
            _scored(W, b, fitted, ts, ev, shared),
            shared,
            n_resamples=n_res,
            seeds=(seeds[source.name], seeds[ts.name]),
            level=level,
            min_positives=min_positives,
        )
        m = {**out["metrics"], "n_records": len(ev), "n_patients": len(set(ev.patient_ids))}
        per_target[ts.name] = m
        rows += [{"target": ts.name, **r} for r in out["rows"]]
        target_rows.append(_target_row(ts.name, m))
        arrays[f"target{k}_ids"] = np.asarray(ev.ids, dtype=str)
        arrays[f"target{k}_scores"] = sigmoid(_scored(W, b, fitted, ts, ev, shared).scores).astype(np.float32)
        arrays[f"target{k}_macro_in_replicates"] = out["arrays"]["macro_in_replicates"]
        arrays[f"target{k}_macro_out_replicates"] = out["arrays"]["macro_out_replicates"]
    if not per_target:
        raise AnalysisError(f"no target shares a fitted label with {source.name}; nothing was evaluated")
    tables: dict[str, list[dict[str, Any]]] = {"targets": target_rows, "per_label": rows}
    metrics: dict[str, Any] = {
        "source": source.name,
        "targets": [t.name for t in targets],
        "target_split": target_split,
        "n_resamples": n_res,
        "ci_level": level,
        "min_positives": int(min_positives),
        "bootstrap_seeds": seeds,
        "labels_fitted": fitted,
        "per_target": per_target,
        "bootstrap_unit": "patient (independent resamples of the source test set and of each target)",
    }
    tables["acquisition"] = [acquisition(ts) for ts in everyone]
    if matrix:
        labels, cells = _matrix(everyone, lp, seeds, n_res, level, notes)
        metrics["matrix_labels"], tables["matrix"] = labels, cells
    if site:
        shared_all = [n for n in fitted if all(n in t.records.label_names for t in targets)]
        site_out = _site(everyone, shared_all, lp, settings.seed, n_res, level, n_per_source)
        metrics["site"], tables["site"] = site_out["metrics"], site_out["rows"]
    return TransferResult(
        kind=TransferResult.KIND,
        metrics=metrics,
        tables=tables,
        arrays=arrays,
        params={
            "target_split": target_split,
            "matrix": matrix,
            "probe": dict(probe or {}),
            "min_positives": int(min_positives),
            "site": site,
            "n_per_source": int(n_per_source),
        },
        seed=int(settings.seed),
        provenance={
            ts.name: {"dataset": ts.records.identity, "embeddings": ts.embeddings.key} for ts in everyone
        },
        notes=notes,
    )


def _target_row(name: str, m: dict[str, Any]) -> dict[str, Any]:
    def ci(key: str) -> tuple[Any, Any]:
        lo, hi = m.get(f"{key}_ci") or (None, None)
        return lo, hi

    return {
        "target": name,
        "n_records": m["n_records"],
        "n_patients": m["n_patients"],
        "n_labels": m["n_labels_headline"],
        "macro_auroc_in": m["macro_auroc_in"],
        "in_ci_low": ci("macro_auroc_in")[0],
        "in_ci_high": ci("macro_auroc_in")[1],
        "macro_auroc_out": m["macro_auroc_out"],
        "out_ci_low": ci("macro_auroc_out")[0],
        "out_ci_high": ci("macro_auroc_out")[1],
        "gap": m["gap"],
        "gap_ci_low": ci("gap")[0],
        "gap_ci_high": ci("gap")[1],
        "labels": ";".join(m["labels_headline"]),
    }


def _matrix(
    sets: Sequence[TransferSet],
    lp: LinearProbe,
    seeds: Mapping[str, int],
    n_res: int,
    level: float,
    notes: list[str],
) -> tuple[list[str], list[dict[str, Any]]]:
    """Macro test AUROC of a probe fitted on each dataset (rows) on each test split (columns)."""
    from ecgprobe.workflows.transfer_stats import auroc_replicates, macro_with_interval

    labels = [n for n in sets[0].records.label_names if all(n in s.records.label_names for s in sets[1:])]
    cells: list[dict[str, Any]] = []
    if not labels:
        notes.append("matrix: no label is present in every dataset; no train x test matrix")
        return labels, cells
    for tr in sets:
        sizes = tr.records.split_sizes()
        if min(sizes.values()) == 0:
            notes.append(
                f"matrix: {tr.name} has no full train/val/test split ({sizes}); not used for training"
            )
            continue
        try:
            res, W, b = _fit(tr, labels, lp)
        except AnalysisError as exc:
            notes.append(f"matrix: cannot fit on {tr.name}: {exc}")
            continue
        fitted = [str(x) for x in res.metrics["labels_fitted"]]
        for te in sets:
            ev = te.records.by_split("test")
            if not len(ev):
                continue
            scored = _scored(W, b, fitted, te, ev, [n for n in fitted if n in labels])
            point, reps = auroc_replicates(scored, n_res, seeds[te.name])
            cols = np.flatnonzero(np.isfinite(point))
            macro, ci, _ = macro_with_interval(point, reps, cols, level)
            cells.append({"train": tr.name, "test": te.name, "macro_auroc": macro, "ci_low": ci[0],
                          "ci_high": ci[1], "n_labels": len(cols), "n_test": len(ev)})  # fmt: skip
    return labels, cells


def _site(
    sets: Sequence[TransferSet],
    labels: Sequence[str],
    lp: LinearProbe,
    seed: int,
    n_res: int,
    level: float,
    n_per_source: int,
) -> dict[str, Any]:
    names = source_names([ts.records for ts in sets], [ts.name for ts in sets])
    X = [ts.embeddings.take(list(ts.records.ids)).X for ts in sets]
    groups = [np.asarray([f"{n}/{p}" for p in ts.records.patient_ids]) for n, ts in zip(names, sets)]
    y = [ts.records.y[:, [ts.records.label_names.index(n) for n in labels]] for ts in sets]
    return site_predictability(
        X, groups, y, sources=names, labels=labels, probe=lp, n_per_source=n_per_source,
        n_resamples=n_res, seed=seed, level=level,
    )  # fmt: skip
