"""The model report: every analysis of one encoder's embeddings (cached), then the Report.

:func:`model_report` runs the plan (default :data:`~ecgprobe._defaults.MODEL_ANALYSES`: probes,
operating points, scarcity, geometry, neighbours, attributions, subgroup gaps) with
:func:`~ecgprobe.workflows.runner.run_analyses` and builds the
:class:`~ecgprobe.report.Report`; the report only renders what the results hold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ecgprobe.data.record import RecordSet
from ecgprobe.extract.embeddings import Embeddings
from ecgprobe.report.document import Report
from ecgprobe.settings import RunSettings, final_layer
from ecgprobe.workflows.cache import ResultCache
from ecgprobe.workflows.context import dataset_context, now_iso
from ecgprobe.workflows.plan import plan_analyses
from ecgprobe.workflows.runner import run_analyses

__all__ = ["display_name", "model_report", "report_context", "run_record"]


def display_name(name: str) -> str:
    """An encoder name usable as a report subject (no ``/``)."""
    return str(name).replace("/", "-").strip() or "encoder"


def encoder_identity(emb: Embeddings, encoder: Any, checkpoint: str | None = None) -> dict[str, Any]:
    """What the report says about the encoder: from the embeddings' provenance, else the encoder."""
    ident = dict(emb.provenance.get("encoder") or (encoder.identity() if encoder is not None else {}))
    if checkpoint:
        ident["checkpoint"] = str(checkpoint)
    return ident


def run_record(
    settings: RunSettings, cache: ResultCache, timings: Mapping[str, float], **extra: Any
) -> dict[str, Any]:
    """The report's ``run`` context: seed, profile, what else the workflow states, cache reuse
    and timings."""
    return {
        "seed": settings.seed,
        "profile": settings.profile,
        **extra,
        "results reused from cache": len(cache.hits),
        "timings": dict(timings),
    }


def report_context(
    records: RecordSet, encoders: Mapping[str, dict[str, Any]], run: dict[str, Any], skipped: dict[str, str]
) -> dict[str, Any]:
    """The facts a report states beside its results: dataset, encoders, run, skipped analyses."""
    return {
        "dataset": dataset_context(records),
        "encoders": dict(encoders),
        "run": run,
        "skipped": skipped,
        "created": now_iso(),
    }


def model_report(
    emb: Embeddings | Mapping[str, Embeddings],
    records: RecordSet,
    *,
    settings: RunSettings | None = None,
    encoder: Any = None,
    name: str | None = None,
    title: str | None = None,
    analyses: Sequence[str] | Mapping[str, Mapping[str, Any]] | None = None,
    checkpoint: str | None = None,
    extra_timings: Mapping[str, float] | None = None,
) -> Report:
    """The holistic report of one encoder.

    Args:
        emb: the encoder's embeddings of ``records`` (any ids order; aligned by id), or
            ``{layer: Embeddings}``: analyses that take layers (``layer_probe``) then probe every
            layer, the others the official embedding.
        records: the dataset, with its splits, labels and metadata.
        settings: the run's settings (seed, profile, cache, device, ...; default
            :class:`RunSettings()`).
        encoder: the encoder (needed for input attributions when it cannot be re-created from
            the embeddings' provenance, e.g. one loaded from a checkpoint).
        name: the encoder's display name (default: from the embeddings' provenance).
        title: the report title.
        analyses: which analyses (names, or ``{name: settings}``); default all.
        checkpoint: the checkpoint path, shown in the provenance.
        extra_timings: other timings to show (e.g. extraction).

    Raises:
        ConfigError: invalid analyses or settings.

    Example:
        >>> settings = RunSettings(cache_dir="~/.cache/ecgprobe", profile="quick")  # doctest: +SKIP
        >>> model_report(emb, records, settings=settings).write("out/")  # doctest: +SKIP
    """
    settings = settings or RunSettings()
    plan = plan_analyses(analyses, settings)
    ident = encoder_identity(emb if isinstance(emb, Embeddings) else final_layer(emb), encoder, checkpoint)
    name = display_name(name or ident.get("encoder") or "embeddings")
    cache = ResultCache(settings.cache_dir)
    done = run_analyses(emb, records, plan, settings=settings, encoder=encoder, cache=cache)
    run = run_record(settings, cache, {**(extra_timings or {}), **done.timings}, analyses=list(plan))
    return Report(
        done.results,
        title=title or f"{name} on {records.name}",
        mode="model",
        subjects=[name],
        context=report_context(records, {name: ident}, run, done.skipped),
    )
