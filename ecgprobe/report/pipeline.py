"""From embeddings to reports: run the analyses a report needs (cached), then build the Report.

:func:`model_report` builds the report of one encoder (probes, calibration, scarcity, geometry,
attributions, subgroup gaps); the workflows over several encoders (:mod:`.multi`) share its
runner, :func:`run_model_analyses`.

Each analysis is stored in a :class:`~ecgprobe.report.cache.ResultCache` under a key of its
settings and inputs, so a second run (or another workflow on the same embeddings) reuses it and
re-rendering never recomputes. An analysis that cannot run on these inputs (e.g. attributions for
imported embeddings without their encoder) is skipped and the report says why.
"""

from __future__ import annotations

import inspect
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecgprobe._defaults import COMPARE_ANALYSES, MODEL_ANALYSES, PAIRWISE
from ecgprobe.analyzers.base import ANALYZERS, Result
from ecgprobe.data.record import RecordSet
from ecgprobe.exceptions import AnalysisError, ConfigError, DependencyError
from ecgprobe.extract.embeddings import Embeddings
from ecgprobe.report.cache import ResultCache, embeddings_identity
from ecgprobe.report.context import dataset_context, now_iso
from ecgprobe.report.document import Report

__all__ = [
    "COMPARE_ANALYSES",
    "MODEL_ANALYSES",
    "PAIRWISE",
    "PROFILES",
    "Analysed",
    "display_name",
    "model_report",
    "resolve_analyses",
    "run_model_analyses",
]

#: Settings profiles: ``full`` (the analyzers' defaults) and ``quick`` (fewer resamples, seeds
#: and examples: the demo and the tests; the numbers have wider intervals, never other meaning).
PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "full": {"input_attribution": {"n_examples": 4, "max_labels": 6}},
    "quick": {
        "linear_probe": {"n_resamples": 300},
        "knn_probe": {"n_resamples": 300},
        "scarcity": {"n_seeds": 2, "n_resamples": 100, "fractions": (0.02, 0.05, 0.1, 0.25, 0.5, 1.0)},
        "projection": {"n_eval": 1000},
        "probe_shap": {"n_resamples": 100},
        "operating_points": {"n_resamples": 300},
        "input_attribution": {"n_examples": 2, "max_labels": 3, "n_steps": 16, "batch_size": 16},
        "subgroups": {"n_resamples": 300},
        "cka": {"n_resamples": 50},
        "alignment": {"n_resamples": 50},
        "paired_bootstrap": {"n_resamples": 300},
    },
}


@dataclass
class Analysed:
    """What a run produced: results by name, analyses skipped (with the reason), wall times."""

    results: dict[str, Result] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)


def _accepted(name: str) -> set[str]:
    """The settings analysis ``name`` takes (its inputs, upstream results and encoder, are not)."""
    klass = ANALYZERS.get(name)
    return set(inspect.signature(klass.__init__).parameters) - {"self", "encoder", *klass.requires}


def resolve_analyses(
    analyses: Sequence[str] | Mapping[str, Mapping[str, Any]] | None,
    *,
    profile: str = "full",
    default: Sequence[str] = MODEL_ANALYSES,
) -> dict[str, dict[str, Any]]:
    """``{analysis: settings}``: the profile's settings overridden by the given ones.

    Raises:
        ConfigError: an unknown profile, analysis or setting (naming what is accepted).
    """
    if profile not in PROFILES:
        raise ConfigError(f"profile {profile!r} is not one of {sorted(PROFILES)}")
    if analyses is None:
        wanted: dict[str, dict[str, Any]] = {a: {} for a in default}
    elif isinstance(analyses, Mapping):
        wanted = {str(k): dict(v or {}) for k, v in analyses.items()}
    else:
        wanted = {str(a): {} for a in analyses}
    out = {}
    for name, settings in wanted.items():
        if name not in ANALYZERS:
            raise ConfigError(f"unknown analysis {name!r}; available: {sorted(ANALYZERS.list())}")
        merged = {**PROFILES[profile].get(name, {}), **settings}
        bad = sorted(set(settings) - _accepted(name))
        if bad:
            raise ConfigError(f"{name}: unknown settings {bad}; accepted: {sorted(_accepted(name))}")
        out[name] = {k: v for k, v in merged.items() if k in _accepted(name)}
    return out


def _bar(names: Sequence[str], progress: bool, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(list(names), desc=desc, disable=not progress, leave=False, file=sys.stderr, unit="analysis")


def _with_seed(name: str, settings: dict[str, Any], seed: int) -> dict[str, Any]:
    return {**settings, "seed": settings.get("seed", seed)} if "seed" in _accepted(name) else dict(settings)


def run_model_analyses(
    emb: Embeddings,
    records: RecordSet,
    analyses: Mapping[str, Mapping[str, Any]],
    *,
    encoder: Any = None,
    seed: int = 0,
    cache: ResultCache | None = None,
    progress: bool = True,
    desc: str = "analyses",
    workers: int | None = None,
) -> Analysed:
    """Run ``analyses`` (from :func:`resolve_analyses`) on one encoder's embeddings, with caching.

    Independent analyses run concurrently on ``workers`` threads (default: up to 2, one per CPU
    core; the numerical work releases the GIL); those that read the linear probe start when it
    is done. Every analysis is seeded, so results do not depend on the schedule, and they are
    stored in ``analyses`` order.

    Raises:
        ConfigError: invalid settings. Analyses that cannot run on these inputs are skipped.
    """
    from concurrent.futures import ThreadPoolExecutor

    cache = cache or ResultCache(None)
    out = Analysed()
    names = list(analyses)
    base_inputs = [embeddings_identity(emb), records.fingerprint]
    done: dict[str, tuple[Result | None, str, str, float]] = {}

    def run_one(name: str) -> tuple[Result | None, str, str, float]:
        klass = ANALYZERS.get(name)
        settings = _with_seed(name, dict(analyses[name]), seed)
        inputs = list(base_inputs)
        kwargs: dict[str, Any] = {}
        for arg, upstream in klass.requires.items():
            got, got_key, _, _ = done.get(upstream, (None, "", "", 0.0))
            if got is None:
                return (
                    None,
                    "",
                    f"needs the {upstream} result, which is not part of this run (or failed)",
                    0.0,
                )
            inputs.append(got_key)
            kwargs[arg] = got
        if encoder is not None and "encoder" in inspect.signature(klass.__init__).parameters:
            kwargs["encoder"] = encoder
        key = cache.key(name, settings, inputs)
        t0 = time.perf_counter()
        result = cache.load(name, key)
        if result is None:
            try:
                result = klass(**settings, **kwargs).run(emb, records)
            except (AnalysisError, DependencyError, ConfigError) as exc:
                return None, key, str(exc), 0.0
            cache.save(name, key, result, {"settings": settings, "inputs": inputs})
        return result, key, "", round(time.perf_counter() - t0, 3)

    downstream = [n for n in names if ANALYZERS.get(n).requires]
    first = [n for n in names if n not in downstream]
    later = [n for n in names if n in downstream]
    n_workers = max(1, min(workers or min(2, os.cpu_count() or 1), len(names) or 1))
    bar = _bar(names, progress, desc)
    with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="ecgprobe-analysis") as pool:
        # The probe first (the later analyses wait for it), then the others, longest first.
        order = sorted(first, key=lambda n: (n != "linear_probe", n != "scarcity"))
        futures = {n: pool.submit(run_one, n) for n in order}
        if "linear_probe" in futures:
            done["linear_probe"] = futures.pop("linear_probe").result()
            bar.update()
        futures.update({n: pool.submit(run_one, n) for n in later})
        for name in [n for n in names if n in futures]:
            bar.set_postfix_str(f"running {name}")  # the one waited on is the one still running
            done[name] = futures[name].result()
            bar.update()
    bar.close()
    for name in names:
        result, key, reason, secs = done[name]
        if result is None:
            out.skipped[name] = reason
            if progress:
                print(f"ecgprobe: {name} skipped: {reason}", file=sys.stderr)
            continue
        out.results[name], out.keys[name], out.timings[name] = result, key, secs
    return out


def _identity(emb: Embeddings, encoder: Any, checkpoint: str | None) -> dict[str, Any]:
    ident = dict(emb.provenance.get("encoder") or (encoder.identity() if encoder is not None else {}))
    if checkpoint:
        ident["checkpoint"] = str(checkpoint)
    return ident


def _context(
    records: RecordSet, encoders: Mapping[str, dict[str, Any]], run: dict[str, Any], skipped: dict[str, str]
) -> dict[str, Any]:
    return {
        "dataset": dataset_context(records),
        "encoders": dict(encoders),
        "run": run,
        "skipped": skipped,
        "created": now_iso(),
    }


def model_report(
    emb: Embeddings,
    records: RecordSet,
    *,
    encoder: Any = None,
    name: str | None = None,
    title: str | None = None,
    analyses: Sequence[str] | Mapping[str, Mapping[str, Any]] | None = None,
    profile: str = "full",
    seed: int = 0,
    cache_dir: str | Path | None = None,
    checkpoint: str | None = None,
    progress: bool = True,
    extra_timings: Mapping[str, float] | None = None,
    workers: int | None = None,
) -> Report:
    """The holistic report of one encoder (see :data:`MODEL_ANALYSES`).

    Args:
        emb: the encoder's embeddings of ``records`` (any ids order; aligned by id).
        records: the dataset, with its splits, labels and metadata.
        encoder: the encoder (needed for input attributions when it cannot be re-created from
            the embeddings' provenance, e.g. one loaded from a checkpoint).
        name: the encoder's display name (default: from the embeddings' provenance).
        title: the report title.
        analyses: which analyses (names, or ``{name: settings}``); default all.
        profile: ``"full"`` or ``"quick"`` settings.
        seed: the seed of every analysis without its own.
        cache_dir: where results are cached (``None``: not cached).
        checkpoint: the checkpoint path, shown in the provenance.
        progress: progress bars on stderr.
        extra_timings: other timings to show (e.g. extraction).
        workers: threads running independent analyses at once (default: up to 2).

    Raises:
        ConfigError: invalid analyses or settings.

    Example:
        >>> report = model_report(emb, records, cache_dir="~/.cache/ecgprobe")  # doctest: +SKIP
        >>> report.write("out/")  # doctest: +SKIP
    """
    plan = resolve_analyses(analyses, profile=profile)
    ident = _identity(emb, encoder, checkpoint)
    name = display_name(name or ident.get("encoder") or "embeddings")
    cache = ResultCache(cache_dir)
    done = run_model_analyses(
        emb, records, plan, encoder=encoder, seed=seed, cache=cache, progress=progress, workers=workers
    )
    run = {
        "seed": seed,
        "profile": profile,
        "analyses": list(plan),
        "results reused from cache": len(cache.hits),
        "timings": {**(extra_timings or {}), **done.timings},
    }
    return Report(
        done.results,
        title=title or f"{name} on {records.name}",
        mode="model",
        subjects=[name],
        context=_context(records, {name: ident}, run, done.skipped),
    )


def display_name(name: str) -> str:
    """An encoder name usable as a report subject (no ``/``)."""
    return str(name).replace("/", "-").strip() or "encoder"
