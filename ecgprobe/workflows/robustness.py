"""The robustness card: a linear probe fitted once on clean embeddings, evaluated on perturbed test
records (noise at the MIT-BIH noise stress test's SNRs, reduced lead sets, sampling-rate round
trips, amplitude scaling), with the drop from clean by a paired patient bootstrap.

Order of work: the clean records are extracted once (cached), the linear probe is fitted on them
(C chosen on val, through the result cache: the same probe a model report holds), then, per
condition, only the *test* records are perturbed (:func:`ecgprobe.data.perturb.perturbed_view`,
lazily, batch by batch) and extracted through the embedding cache, whose key carries the
perturbation, its level and seed; the probe's head scores them and
:class:`~ecgprobe.analyzers.robustness.ConditionStats` turns the scores into the row. The clean
train split is never extracted again, and each test record's QRS size (the SNR's reference) is
measured once for all noise conditions.
"""

from __future__ import annotations

import csv
import io
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ecgprobe._io import atomic_write
from ecgprobe.analyzers._stats.bootstrap import bootstrap_unit
from ecgprobe.analyzers._stats.heads import resolve_head
from ecgprobe.analyzers.base import Result
from ecgprobe.analyzers.robustness import CONDITION_COLUMNS, ConditionStats, RobustnessResult, sigmoid
from ecgprobe.data.noise import NOISE_KINDS, NST_LEVELS_DB, load_nst_noise
from ecgprobe.data.perturb import FAMILIES, LEAD_SETS, Perturbation, PerturbMemo, perturbed_view
from ecgprobe.data.record import RecordSet
from ecgprobe.exceptions import AnalysisError, ConfigError, IncompatibleInputError
from ecgprobe.extract import extract
from ecgprobe.report.document import Report
from ecgprobe.settings import RunSettings
from ecgprobe.workflows.cache import ResultCache
from ecgprobe.workflows.model import display_name, report_context, run_record
from ecgprobe.workflows.plan import plan_analyses
from ecgprobe.workflows.runner import run_analyses

__all__ = [
    "DEFAULT_PERTURBATIONS",
    "conditions_csv",
    "default_levels",
    "plan_conditions",
    "robustness_card",
    "robustness_report",
]

#: Every perturbation kind, in the card's order.
DEFAULT_PERTURBATIONS: tuple[str, ...] = (*NOISE_KINDS, "leads", "resample", "amplitude")


def default_levels(kind: str, fs: float) -> tuple[Any, ...]:
    """The card's levels of ``kind`` for records at ``fs`` Hz: the NST SNRs (24 ... -6 dB), the
    lead sets 6 limb / I, II, V2 / I, round trips via 250 and 100 Hz (those below ``fs``; ``fs/2``
    when none is), amplitude x0.5 and x2.

    Raises:
        ConfigError: an unknown kind.
    """
    if kind in NOISE_KINDS:
        return NST_LEVELS_DB
    if kind == "leads":
        return tuple(k for k in LEAD_SETS if k != "12")
    if kind == "resample":
        below = tuple(float(r) for r in (250, 100) if r < fs)
        return below or (fs / 2,)
    if kind == "amplitude":
        return (0.5, 2.0)
    raise ConfigError(f"unknown perturbation {kind!r}; use one of {list(DEFAULT_PERTURBATIONS)}")


def plan_conditions(
    perturbations: Sequence[str] | None,
    levels: Mapping[str, Sequence[Any]] | Sequence[Any] | None,
    fs: float,
    *,
    seed: int = 0,
    mains_hz: float = 50.0,
) -> list[Perturbation]:
    """The conditions of a card: each perturbation (default all, :data:`DEFAULT_PERTURBATIONS`, or
    a family name: ``noise``) at its levels (``{kind: levels}``; a plain list applies to the noise
    kinds; default :func:`default_levels`).

    Raises:
        ConfigError: an unknown perturbation or family, or a level that does not fit it.
    """
    kinds: list[str] = []
    for name in perturbations or DEFAULT_PERTURBATIONS:
        add = FAMILIES.get(name, (name,))
        kinds += [k for k in add if k not in kinds]
    by_kind: dict[str, Sequence[Any]] = {}
    if isinstance(levels, Mapping):
        unknown = sorted(set(levels) - set(kinds))
        if unknown:
            raise ConfigError(f"levels given for {unknown}, which are not among the perturbations {kinds}")
        by_kind = dict(levels)
    elif levels is not None:
        by_kind = {k: levels for k in kinds if k in NOISE_KINDS}
    return [
        Perturbation(kind, level, seed=seed, mains_hz=mains_hz)
        for kind in kinds
        for level in by_kind.get(kind) or default_levels(kind, fs)
    ]


def _row(pert: Perturbation | None, **values: Any) -> dict[str, Any]:
    base = {
        "perturbation": "clean" if pert is None else pert.kind,
        "family": "clean" if pert is None else pert.family,
        "level": None if pert is None else pert.level,
        "label": "clean" if pert is None else pert.label,
    }
    row = {**base, **values}
    return {c: row.get(c) for c in CONDITION_COLUMNS}


def robustness_card(
    encoder: Any,
    records: RecordSet,
    *,
    settings: RunSettings | None = None,
    perturbations: Sequence[str] | None = None,
    levels: Mapping[str, Sequence[Any]] | Sequence[Any] | None = None,
    noise_records: str | Path | None = None,
    mains_hz: float = 50.0,
    probe: Mapping[str, Any] | None = None,
) -> tuple[RobustnessResult, Result]:
    """The robustness card of ``encoder`` on ``records`` (see the module docstring).

    Args:
        encoder: from :func:`ecgprobe.create_encoder`.
        records: a labelled dataset with train, val and test splits.
        settings: the run's settings (seed of the noise and the bootstrap, resamples, interval
            level, cache, device, batch size, window).
        perturbations: kinds or families to apply (default all of :data:`DEFAULT_PERTURBATIONS`).
        levels: ``{kind: levels}`` (or one list for the noise kinds); default :func:`default_levels`.
        noise_records: a folder with the NST noise records ``bw``, ``em``, ``ma`` (real noise);
            ``None``: generated noise.
        mains_hz: mains frequency, 50 or 60 Hz.
        probe: settings of the linear probe (default: the run's profile and settings).

    Returns:
        ``(card, clean_probe)``: the :class:`RobustnessResult` and the clean linear probe.

    Raises:
        ConfigError: unknown perturbations or levels.
        DataError: missing noise records.
        AnalysisError: the probe cannot be fitted or evaluated (no test positives, ...).

    Example:
        >>> card, probe = robustness_card(enc, records, perturbations=["muscle"], levels=[24, 0])  # doctest: +SKIP
        >>> [r["macro_auroc"] for r in card.tables["conditions"]]  # doctest: +SKIP
    """
    settings = settings or RunSettings()
    if records.task != "multilabel":
        raise ConfigError(
            f"the robustness card compares macro AUROC, so it needs labels; dataset {records.name!r} holds "
            "regression targets: load it with its diagnostic labels"
        )
    conditions = plan_conditions(perturbations, levels, records.fs, seed=settings.seed, mains_hz=mains_hz)
    bank = load_nst_noise(noise_records, records.fs) if noise_records is not None else None
    t0 = time.perf_counter()
    clean = extract(encoder, records, **settings.extraction(layers=None))
    clean_s = time.perf_counter() - t0
    plan = plan_analyses({"linear_probe": dict(probe or {})}, settings)
    done = run_analyses(clean, records, plan, settings=settings, cache=ResultCache(settings.cache_dir))
    if "linear_probe" not in done.results:
        raise AnalysisError(f"the clean linear probe could not be fitted: {done.skipped.get('linear_probe')}")
    fitted = done.results["linear_probe"]
    m = fitted.metrics
    labels = list(m["labels_headline"])
    head = resolve_head(fitted, clean, records, labels=labels)
    test = records.by_split("test")
    order = [list(m["labels_fitted"]).index(lab) for lab in labels]
    if not np.array_equal(np.asarray(fitted.arrays["test_ids"], dtype=str), test.ids.astype(str)):
        raise ConfigError("the probe's test records are not the dataset's test split; refit the probe")
    y = np.asarray(fitted.arrays["test_y"])[:, order]
    p_clean = np.asarray(fitted.arrays["test_scores"], dtype=np.float64)[:, order]
    stats = ConditionStats(
        y,
        test.patient_ids,
        p_clean,
        n_resamples=int(fitted.params.get("n_resamples", m["n_resamples"])),
        seed=int(fitted.seed or 0),
        ci_level=float(m["ci_level"]),
        ci_method=str(m.get("ci_method", "percentile")),
    )
    clean_row = _row(
        None,
        macro_auroc=m["macro_auroc"],
        ci_low=m["macro_auroc_ci"][0],
        ci_high=m["macro_auroc_ci"][1],
        drop=0.0,
        drop_ci_low=0.0,
        drop_ci_high=0.0,
        n_test=len(test),
        seconds=round(clean_s, 3),
        status="ok",
    )
    rows, scores, reps = [clean_row], [p_clean], [stats.clean["reps"]]
    memo = PerturbMemo()
    ex = {**settings.extraction(layers=None), "progress": False}
    for pert in conditions:
        t1 = time.perf_counter()
        try:
            view = perturbed_view(test, pert, required_leads=encoder.spec.leads, bank=bank, memo=memo)
            emb = extract(encoder, view, **ex)
        except (IncompatibleInputError, ConfigError) as exc:  # e.g. mains above Nyquist, a lead not recorded
            rows.append(_row(pert, n_test=len(test), status=f"skipped: {exc}"))
            continue
        p = sigmoid(head.logits(emb.X))
        ev = stats.evaluate(p)
        info = view.params["perturbation"]
        computed = int(emb.provenance.get("extraction", {}).get("computed", len(test)))
        rows.append(
            _row(
                pert,
                **{k: v for k, v in ev.items() if k != "replicates"},
                handling=info.get("handling") and f"{info['handling']} ({info['plan']})",
                noise=info.get("noise"),
                n_test=len(test),
                seconds=round(time.perf_counter() - t1, 3),
                computed=computed,
                status="ok",
            )
        )
        scores.append(p)
        reps.append(ev["replicates"])
        if settings.progress:
            print(
                f"robustness {pert.label}: macro AUROC {ev['macro_auroc']:.3f}, drop {ev['drop']:+.3f} "
                f"[{ev['drop_ci_low']:+.3f}, {ev['drop_ci_high']:+.3f}]" + ("" if computed else " (cached)"),
                file=sys.stderr,
            )
    ok = [r for r in rows[1:] if r["status"] == "ok"]
    per_record = clean_s / max(len(records), 1) * len(test)
    computed_rows = [r for r in ok if r["computed"]]
    metrics = {
        "encoder": encoder.name,
        "clean_macro_auroc": m["macro_auroc"],
        "clean_macro_auroc_ci": m["macro_auroc_ci"],
        "labels_headline": labels,
        "n_test": len(test),
        "n_test_patients": len(set(test.patient_ids)),
        "bootstrap_unit": bootstrap_unit(test.patient_ids, test.ids),
        "n_resamples": int(stats.weights.shape[0]),
        "ci_level": float(m["ci_level"]),
        "ci_method": stats.method,
        "seed": int(settings.seed),
        "noise_source": f"NST records ({bank.digest[:12]})" if bank else "generated",
        "mains_hz": mains_hz,
        "clean_extraction_s": round(clean_s, 3),
        "perturbed_extraction_s": round(sum(r["seconds"] for r in ok), 3),
        "cost_per_condition": (
            round(float(np.mean([r["seconds"] for r in computed_rows])) / per_record, 3)
            if computed_rows and per_record > 0
            else None
        ),
        "n_conditions": len(conditions),
        "n_skipped": len(rows) - 1 - len(ok),
    }
    skipped: dict[str, list[str]] = {}
    for r in rows[1:]:
        if r["status"] != "ok":
            skipped.setdefault(r["status"], []).append(r["label"])
    notes = [f"{', '.join(labels)}: {why}" for why, labels in skipped.items()]
    card = RobustnessResult(
        kind=RobustnessResult.KIND,
        metrics=metrics,
        tables={"conditions": rows},
        arrays={
            "test_ids": test.ids.astype(str),
            "test_patient_ids": test.patient_ids.astype(str),
            "test_y": y.astype(np.uint8),
            "scores": np.stack(scores).astype(np.float32),
            "macro_auroc_replicates": np.stack(reps),
        },
        params={
            "perturbations": [c.to_dict() for c in conditions],
            "noise_records": None if noise_records is None else str(noise_records),
            "probe": plan["linear_probe"],
            "window": settings.window,
        },
        seed=int(settings.seed),
        provenance={"embeddings": {"key": clean.key, **clean.provenance}, "dataset": records.identity},
        notes=notes,
    )
    return card, fitted


def robustness_report(
    encoder: Any,
    records: RecordSet,
    *,
    settings: RunSettings | None = None,
    title: str | None = None,
    checkpoint: str | None = None,
    **card: Any,
) -> Report:
    """The card as a report: the clean probe's accuracy, the robustness section and provenance.

    Args:
        encoder: the encoder.
        records: the dataset.
        settings: the run's settings.
        title: the report title.
        checkpoint: the checkpoint path, shown in the provenance.
        **card: keywords of :func:`robustness_card`.

    Raises:
        ConfigError, DataError, AnalysisError: as :func:`robustness_card`.
    """
    settings = settings or RunSettings()
    t0 = time.perf_counter()
    result, probe = robustness_card(encoder, records, settings=settings, **card)
    name = display_name(encoder.name)
    ident = dict(result.provenance["embeddings"].get("encoder") or encoder.identity())
    if checkpoint:
        ident["checkpoint"] = str(checkpoint)
    timings = {"robustness card": round(time.perf_counter() - t0, 3)}
    run = run_record(settings, ResultCache(None), timings, analyses=["linear_probe", "robustness"])
    return Report(
        {"linear_probe": probe, "robustness": result},
        title=title or f"Robustness of {name} on {records.name}",
        mode="model",
        subjects=[name],
        context=report_context(records, {name: ident}, run, {}),
    )


def conditions_csv(result: Result, path: str | Path) -> Path:
    """Write the card's ``conditions`` table as CSV (atomically)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CONDITION_COLUMNS))
    writer.writeheader()
    writer.writerows({c: r.get(c) for c in CONDITION_COLUMNS} for r in result.tables["conditions"])
    return atomic_write(Path(path), buf.getvalue().encode())
