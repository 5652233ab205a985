"""Reports over several encoders: a comparison of two, and a data-scarcity study of any number.

Both reuse :func:`ecgprobe.report.pipeline.run_model_analyses` and its result cache, so the
per-encoder analyses are shared with (and reused from) the encoders' model reports.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ecgprobe._io import atomic_write
from ecgprobe.analyzers.base import ANALYZERS, Result
from ecgprobe.data.record import RecordSet
from ecgprobe.exceptions import AnalysisError, ConfigError, DependencyError
from ecgprobe.extract.embeddings import Embeddings
from ecgprobe.report.cache import ResultCache, embeddings_identity
from ecgprobe.report.document import Report
from ecgprobe.report.pipeline import (
    COMPARE_ANALYSES,
    PAIRWISE,
    _bar,
    _context,
    _identity,
    _with_seed,
    display_name,
    resolve_analyses,
    run_model_analyses,
)

__all__ = ["compare_report", "scarcity_report", "scarcity_rows", "write_scarcity_csv"]


def _subject_names(names: Sequence[str]) -> list[str]:
    clean = [display_name(n) for n in names]
    return [f"{n} ({chr(65 + i)})" if clean.count(n) > 1 else n for i, n in enumerate(clean)]


def compare_report(
    layers_a: Mapping[str, Embeddings] | Embeddings,
    layers_b: Mapping[str, Embeddings] | Embeddings,
    records: RecordSet,
    *,
    names: Sequence[str] = ("A", "B"),
    encoders: Sequence[Any] = (None, None),
    title: str | None = None,
    analyses: Sequence[str] | Mapping[str, Mapping[str, Any]] | None = None,
    profile: str = "full",
    seed: int = 0,
    cache_dir: str | Path | None = None,
    progress: bool = True,
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
    from ecgprobe.extract.embeddings import align_to_records

    sides = [
        {e.layer: e for e in [x]} if isinstance(x, Embeddings) else dict(x) for x in (layers_a, layers_b)
    ]
    for side in sides:
        for layer, e in list(side.items()):
            side[layer] = align_to_records(e, records)[0]
    finals = [s.get("embedding") or list(s.values())[-1] for s in sides]
    subjects = _subject_names(names)
    plan = resolve_analyses(analyses, profile=profile, default=COMPARE_ANALYSES)
    per_encoder = {k: v for k, v in plan.items() if k not in PAIRWISE}
    pair = {k: v for k, v in plan.items() if k in PAIRWISE}
    cache = ResultCache(cache_dir)
    results: dict[str, Result] = {}
    skipped: dict[str, str] = {}
    timings: dict[str, float] = dict(extra_timings or {})
    keys: dict[str, dict[str, str]] = {}
    for subject, emb, enc in zip(subjects, finals, encoders):
        done = run_model_analyses(
            emb, records, per_encoder, encoder=enc, seed=seed, cache=cache, progress=progress, desc=subject
        )
        results.update({f"{subject}/{k}": r for k, r in done.results.items()})
        skipped.update({f"{subject}: {k}": v for k, v in done.skipped.items()})
        timings.update({f"{subject}: {k}": v for k, v in done.timings.items()})
        keys[subject] = done.keys
    for name in (bar := _bar(list(pair), progress, "comparison")):
        bar.set_postfix_str(name)
        settings = _with_seed(name, pair[name], seed)
        t0 = time.perf_counter()
        try:
            if name == "paired_bootstrap":
                probes = [results.get(f"{s}/linear_probe") for s in subjects]
                if any(p is None for p in probes):
                    skipped[name] = "needs the linear probe of both encoders"
                    continue
                inputs = [keys[s]["linear_probe"] for s in subjects]
                key = cache.key(name, settings, inputs)
                res = cache.load(name, key)
                if res is None:
                    res = cache.save(
                        name, key, ANALYZERS.get(name)(probes=tuple(probes), **settings).run(*finals, records)
                    )
            else:
                a_in = sides[0] if name == "cka" else finals[0]
                b_in = sides[1] if name == "cka" else finals[1]
                ids = [
                    ",".join(
                        sorted(embeddings_identity(e) for e in (x.values() if isinstance(x, dict) else [x]))
                    )
                    for x in (a_in, b_in)
                ]
                key = cache.key(name, settings, [*ids, records.fingerprint])
                res = cache.load(name, key)
                if res is None:
                    res = cache.save(name, key, ANALYZERS.get(name)(**settings).run(a_in, b_in, records))
        except (AnalysisError, DependencyError, ConfigError) as exc:
            skipped[name] = str(exc)
            continue
        results[name] = res
        timings[name] = round(time.perf_counter() - t0, 3)
    run = {
        "seed": seed,
        "profile": profile,
        "layers compared": {s: list(side) for s, side in zip(subjects, sides)},
        "results reused from cache": len(cache.hits),
        "timings": timings,
    }
    idents = {s: _identity(e, enc, None) for s, e, enc in zip(subjects, finals, encoders)}
    return Report(
        results,
        title=title or f"{subjects[0]} vs {subjects[1]} on {records.name}",
        mode="compare",
        subjects=subjects,
        context=_context(records, idents, run, skipped),
    )


def scarcity_report(
    embeddings: Mapping[str, Embeddings],
    records: RecordSet,
    *,
    encoders: Mapping[str, Any] | None = None,
    title: str | None = None,
    settings: Mapping[str, Any] | None = None,
    profile: str = "full",
    seed: int = 0,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    extra_timings: Mapping[str, float] | None = None,
) -> Report:
    """A data-scarcity study: the scarcity curve of each encoder, on the same records and subsets.

    Raises:
        ConfigError: invalid settings.
    """
    plan = resolve_analyses({"scarcity": dict(settings or {})}, profile=profile)
    subjects = _subject_names(list(embeddings))
    cache = ResultCache(cache_dir)
    results: dict[str, Result] = {}
    skipped: dict[str, str] = {}
    timings: dict[str, float] = dict(extra_timings or {})
    for subject, emb in zip(subjects, embeddings.values()):
        done = run_model_analyses(emb, records, plan, seed=seed, cache=cache, progress=progress, desc=subject)
        results.update({f"{subject}/{k}": r for k, r in done.results.items()})
        skipped.update({f"{subject}: {k}": v for k, v in done.skipped.items()})
        timings.update({f"{subject}: {k}": v for k, v in done.timings.items()})
    run = {"seed": seed, "profile": profile, "results reused from cache": len(cache.hits), "timings": timings}
    idents = {
        s: _identity(e, (encoders or {}).get(n), None) for s, (n, e) in zip(subjects, embeddings.items())
    }
    return Report(
        results,
        title=title or f"Data scarcity on {records.name}: " + ", ".join(subjects),
        mode="scarcity",
        subjects=subjects,
        context=_context(records, idents, run, skipped),
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
