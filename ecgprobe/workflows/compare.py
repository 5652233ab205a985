"""Workflows over several encoders: a comparison of two, and a data-scarcity study of any number.

Both run each encoder's analyses with :func:`~ecgprobe.workflows.runner.run_analyses` and its
result cache, so the per-encoder results are shared with (and reused from) the encoders' model
reports; the comparison then runs the pairwise analyses (:func:`~.runner.run_pairwise`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ecgprobe._defaults import COMPARE_ANALYSES
from ecgprobe._io import atomic_write
from ecgprobe.analyzers.base import ANALYZERS, Result
from ecgprobe.data.record import RecordSet
from ecgprobe.extract.embeddings import Embeddings, align_to_records
from ecgprobe.report.document import Report
from ecgprobe.settings import RunSettings, final_layer
from ecgprobe.workflows.cache import ResultCache
from ecgprobe.workflows.model import display_name, encoder_identity, report_context, run_record
from ecgprobe.workflows.plan import plan_analyses
from ecgprobe.workflows.runner import Analysed, run_analyses, run_pairwise

__all__ = ["compare_report", "scarcity_report", "scarcity_rows", "subject_names", "write_scarcity_csv"]


def subject_names(names: Sequence[str]) -> list[str]:
    """Display names of the encoders, made distinct (``x (A)``, ``x (B)``) when they repeat."""
    clean = [display_name(n) for n in names]
    return [f"{n} ({chr(65 + i)})" if clean.count(n) > 1 else n for i, n in enumerate(clean)]


def _per_subject(
    subjects: Sequence[str],
    finals: Sequence[Embeddings],
    encoders: Sequence[Any],
    records: RecordSet,
    plan: dict[str, dict[str, Any]],
    settings: RunSettings,
    cache: ResultCache,
    timings: dict[str, float],
) -> tuple[list[Analysed], dict[str, Result], dict[str, str]]:
    """Each encoder's analyses; results and skips keyed ``subject/analysis``."""
    runs, results, skipped = [], {}, {}
    for subject, emb, enc in zip(subjects, finals, encoders):
        done = run_analyses(emb, records, plan, settings=settings, encoder=enc, cache=cache, desc=subject)
        results.update({f"{subject}/{k}": r for k, r in done.results.items()})
        skipped.update({f"{subject}: {k}": v for k, v in done.skipped.items()})
        timings.update({f"{subject}: {k}": v for k, v in done.timings.items()})
        runs.append(done)
    return runs, results, skipped


def compare_report(
    layers_a: Mapping[str, Embeddings] | Embeddings,
    layers_b: Mapping[str, Embeddings] | Embeddings,
    records: RecordSet,
    *,
    settings: RunSettings | None = None,
    names: Sequence[str] = ("A", "B"),
    encoders: Sequence[Any] = (None, None),
    title: str | None = None,
    analyses: Sequence[str] | Mapping[str, Mapping[str, Any]] | None = None,
    extra_timings: Mapping[str, float] | None = None,
) -> Report:
    """Two encoders side by side on the same records.

    Per encoder: linear and kNN probes, scarcity curve, projection (cached like the model
    report's). Pairwise: paired bootstrap of the linear probes (macro and per label), CKA between
    every layer of A and of B, mutual-kNN overlap and Procrustes of the final embeddings.

    Raises:
        ConfigError: invalid analyses or settings.
        DataError: the two sides do not cover the same records.
    """
    settings = settings or RunSettings()
    sides = [
        {
            layer: align_to_records(e, records)[0]
            for layer, e in ({x.layer: x} if isinstance(x, Embeddings) else x).items()
        }
        for x in (layers_a, layers_b)
    ]
    finals = [final_layer(s) for s in sides]
    subjects = subject_names(names)
    plan = plan_analyses(analyses, settings, default=COMPARE_ANALYSES)
    pairwise = {k: v for k, v in plan.items() if ANALYZERS.entry(k).info.get("pairwise")}
    cache = ResultCache(settings.cache_dir)
    timings: dict[str, float] = dict(extra_timings or {})
    runs, results, skipped = _per_subject(
        subjects,
        finals,
        encoders,
        records,
        {k: v for k, v in plan.items() if k not in pairwise},
        settings,
        cache,
        timings,
    )
    pair = run_pairwise(sides, records, pairwise, runs, settings=settings, cache=cache)
    results.update(pair.results)
    skipped.update(pair.skipped)
    timings.update(pair.timings)
    run = run_record(
        settings, cache, timings, **{"layers compared": {s: list(side) for s, side in zip(subjects, sides)}}
    )
    idents = {s: encoder_identity(e, enc) for s, e, enc in zip(subjects, finals, encoders)}
    return Report(
        results,
        title=title or f"{subjects[0]} vs {subjects[1]} on {records.name}",
        mode="compare",
        subjects=subjects,
        context=report_context(records, idents, run, skipped),
    )


def scarcity_report(
    embeddings: Mapping[str, Embeddings],
    records: RecordSet,
    *,
    settings: RunSettings | None = None,
    encoders: Mapping[str, Any] | None = None,
    title: str | None = None,
    scarcity: Mapping[str, Any] | None = None,
    extra_timings: Mapping[str, float] | None = None,
) -> Report:
    """A data-scarcity study: the scarcity curve of each encoder, on the same records and subsets.

    Args:
        embeddings: ``{encoder name: its embeddings of records}``.
        records: the dataset.
        settings: the run's settings.
        encoders: the encoders by name (for their identity in the provenance).
        title: the report title.
        scarcity: settings of the scarcity analysis.
        extra_timings: other timings to show (e.g. extraction).

    Raises:
        ConfigError: invalid settings.
    """
    settings = settings or RunSettings()
    plan = plan_analyses({"scarcity": dict(scarcity or {})}, settings)
    subjects = subject_names(list(embeddings))
    cache = ResultCache(settings.cache_dir)
    timings: dict[str, float] = dict(extra_timings or {})
    finals = list(embeddings.values())
    chosen = [(encoders or {}).get(n) for n in embeddings]
    _, results, skipped = _per_subject(
        subjects, finals, [None] * len(finals), records, plan, settings, cache, timings
    )
    idents = {s: encoder_identity(e, enc) for s, e, enc in zip(subjects, finals, chosen)}
    return Report(
        results,
        title=title or f"Data scarcity on {records.name}: " + ", ".join(subjects),
        mode="scarcity",
        subjects=subjects,
        context=report_context(records, idents, run_record(settings, cache, timings), skipped),
    )


def scarcity_rows(report: Report) -> list[dict[str, Any]]:
    """The curves of a scarcity (or comparison) report as flat rows, for CSV export."""
    rows = []
    for subject, res in report.by_subject("scarcity").items():
        for r in res.tables.get("curve", []):
            rows.append(
                {
                    "encoder": subject,
                    "mode": res.metrics.get("mode", "fraction"),
                    **{k: v for k, v in r.items() if not isinstance(v, list)},
                    "full_macro_auroc": res.metrics.get("full_macro_auroc"),
                }
            )
    return rows


def write_scarcity_csv(report: Report, path: str | Path) -> Path:
    """Write :func:`scarcity_rows` of ``report`` as CSV (atomically)."""
    import csv
    import io

    rows = scarcity_rows(report)
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return atomic_write(Path(path), buf.getvalue().encode())
