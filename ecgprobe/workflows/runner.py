"""Run a plan of analyses on one encoder's embeddings, or on a pair of encoders, with caching.

Each analysis starts as soon as the analyses it ``requires`` are done (independent ones run
side by side on a few threads: the numerical work releases the GIL) and receives their results
as the constructor arguments it declares; analyses that run the encoder get it. Every result is
stored in a :class:`~ecgprobe.workflows.cache.ResultCache` under a key of the analysis, its
settings and the identities of all its inputs, upstream results included, so that a second run,
or another workflow on the same embeddings, reuses it. An analysis that cannot run on these
inputs (its upstream failed or was not asked for, no encoder at hand) is skipped, and the
report says why.
"""

from __future__ import annotations

import inspect
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from ecgprobe.analyzers.base import ANALYZERS, Result
from ecgprobe.data.record import RecordSet
from ecgprobe.exceptions import AnalysisError, ConfigError, DependencyError
from ecgprobe.extract.embeddings import Embeddings
from ecgprobe.settings import RunSettings, final_layer
from ecgprobe.workflows.cache import ResultCache, embeddings_identity
from ecgprobe.workflows.plan import Plan, order

__all__ = ["Analysed", "final_layer", "run_analyses", "run_pairwise"]

#: Settings that choose where the work runs, not what it computes: not part of a cache key.
_PLACEMENT = ("device",)
#: What an analysis raises when its inputs do not allow it (it is skipped with the message).
_CANNOT = (AnalysisError, DependencyError, ConfigError)


@dataclass
class Analysed:
    """What a run produced: results by name, analyses skipped (with the reason), wall times and
    the cache key of each result."""

    results: dict[str, Result] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)


@dataclass
class _Job:
    """One analysis ready to run: its class, settings, inputs (kwargs) and cache key."""

    name: str
    klass: type
    settings: dict[str, Any]
    kwargs: dict[str, Any]
    inputs: list[str]
    key: str


def _execute(
    job: _Job, cache: ResultCache, call: Callable[[Any], Result]
) -> tuple[Result | None, str, float]:
    """The cached result of ``job``, else ``call(analyzer)`` stored; ``(result, why not, s)``."""
    t0 = time.perf_counter()
    result = cache.load(job.name, job.key)
    if result is None:
        try:
            result = call(job.klass(**job.settings, **job.kwargs))
        except _CANNOT as exc:
            return None, str(exc), 0.0
        cache.save(job.name, job.key, result, {"settings": job.settings, "inputs": job.inputs})
    return result, "", round(time.perf_counter() - t0, 3)


def _job(
    name: str,
    plan: Plan,
    upstream: Callable[[str], tuple[Any, list[str]] | None],
    base_inputs: Sequence[str],
    cache: ResultCache,
    encoder: Any,
    whose: str = "",
) -> _Job | str:
    """The job of ``name``, or why it cannot run (an upstream result ``whose`` is missing)."""
    klass = ANALYZERS.get(name)
    kwargs: dict[str, Any] = {}
    inputs = list(base_inputs)
    for arg, needed in klass.requires.items():
        got = upstream(needed)
        if got is None:
            return f"needs the {needed} result{whose}, which is not part of this run (or failed)"
        kwargs[arg], keys = got
        inputs += keys
    if encoder is not None and "encoder" in inspect.signature(klass.__init__).parameters:
        kwargs["encoder"] = encoder
    settings = dict(plan[name])
    keyed = {k: v for k, v in settings.items() if k not in _PLACEMENT}
    return _Job(name, klass, settings, kwargs, inputs, cache.key(name, keyed, inputs))


class _Progress:
    """One bar over a plan's analyses, naming those running now, with the elapsed time and ETA."""

    def __init__(self, names: Sequence[str], settings: RunSettings, desc: str) -> None:
        from tqdm.auto import tqdm

        self.running: list[str] = []
        self.bar = tqdm(
            total=len(names),
            desc=desc,
            disable=not settings.progress,
            leave=False,
            file=sys.stderr,
            unit="analysis",
        )

    def start(self, name: str) -> None:
        self.running.append(name)
        self.bar.set_postfix_str("running " + ", ".join(self.running), refresh=True)

    def done(self, name: str) -> None:
        if name in self.running:
            self.running.remove(name)
        self.bar.set_postfix_str(
            ("running " + ", ".join(self.running)) if self.running else "", refresh=False
        )
        self.bar.update()

    def close(self) -> None:
        self.bar.close()


def run_analyses(
    emb: Embeddings | Mapping[str, Embeddings],
    records: RecordSet,
    plan: Plan,
    *,
    settings: RunSettings | None = None,
    encoder: Any = None,
    cache: ResultCache | None = None,
    desc: str = "analyses",
) -> Analysed:
    """Run ``plan`` (from :func:`~ecgprobe.workflows.plan.plan_analyses`) on one encoder's
    embeddings, each analysis after those it requires, reusing and filling ``cache``.

    ``emb`` is the official embedding, or ``{layer: Embeddings}`` (every extracted layer, the
    official one as :func:`~ecgprobe.settings.final_layer` picks it): an analysis that ``takes_layers``
    then gets every layer, the others the official embedding. Results are stored in plan order
    whatever the schedule (every analysis is seeded, so the numbers do not depend on it).

    Raises:
        ConfigError: analyses that require each other in a cycle. Analyses that cannot run on
            these inputs are skipped (:attr:`Analysed.skipped` says why).
    """
    settings = settings or RunSettings()
    cache = cache or ResultCache(None)
    layers, emb = _layers_and_final(emb)
    base = [embeddings_identity(emb), records.fingerprint]
    layered = [*sorted(embeddings_identity(e) for e in layers.values()), records.fingerprint]
    outcome: dict[str, tuple[Result | None, str, str, float]] = {}  # result, key, why not, s

    def upstream(needed: str) -> tuple[Any, list[str]] | None:
        result, key, _, _ = outcome.get(needed, (None, "", "", 0.0))
        return None if result is None else (result, [key])

    names = order(plan)
    wanted = {r for n in plan for r in ANALYZERS.get(n).requires.values()}
    waiting = sorted(names, key=lambda n: n not in wanted)  # what others wait for starts first
    bar = _Progress(names, settings, desc)
    n_workers = max(1, min(settings.workers or min(2, os.cpu_count() or 1), len(names) or 1))
    with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="ecgprobe-analysis") as pool:
        running: dict[Future[Any], tuple[str, str]] = {}
        while waiting or running:
            for name in list(waiting):
                needs = [r for r in ANALYZERS.get(name).requires.values() if r in plan]
                if any(r not in outcome for r in needs):
                    continue  # an upstream analysis is still to come
                waiting.remove(name)
                many = ANALYZERS.get(name).takes_layers
                job = _job(name, plan, upstream, layered if many else base, cache, encoder)
                if isinstance(job, str):
                    outcome[name] = (None, "", job, 0.0)
                    bar.done(name)
                    continue
                bar.start(name)
                given: Any = layers if many else emb
                future = pool.submit(_execute, job, cache, lambda a, x=given: a.run(x, records))
                running[future] = (name, job.key)
            if not running:
                continue
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                name, key = running.pop(future)
                result, why, secs = future.result()
                outcome[name] = (result, key, why, secs)
                bar.done(name)
    bar.close()
    return _collect(plan, outcome, settings)


def _layers_and_final(emb: Embeddings | Mapping[str, Embeddings]) -> tuple[dict[str, Embeddings], Embeddings]:
    """``({layer: Embeddings}, the official embedding)`` of what a workflow was given (the
    official one: :func:`~ecgprobe.settings.final_layer`, as for pairwise analyses)."""
    if isinstance(emb, Embeddings):
        return {emb.layer: emb}, emb
    layers = dict(emb)
    if not layers:
        raise ConfigError("no embeddings given: pass an Embeddings or a non-empty {layer: Embeddings}")
    return layers, final_layer(layers)


def _collect(
    plan: Plan, outcome: Mapping[str, tuple[Result | None, str, str, float]], settings: RunSettings
) -> Analysed:
    out = Analysed()
    for name in plan:
        result, key, why, secs = outcome[name]
        if result is None:
            out.skipped[name] = why
            if settings.progress:
                print(f"ecgprobe: {name} skipped: {why}", file=sys.stderr)
            continue
        out.results[name], out.keys[name], out.timings[name] = result, key, secs
    return out


def run_pairwise(
    sides: Sequence[Mapping[str, Embeddings]],
    records: RecordSet,
    plan: Plan,
    per_side: Sequence[Analysed],
    *,
    settings: RunSettings | None = None,
    cache: ResultCache | None = None,
    desc: str = "comparison",
) -> Analysed:
    """Run the pairwise analyses of ``plan`` on two encoders' layers (``{layer: Embeddings}``
    each, aligned to ``records``): an analysis that ``takes_layers`` compares every layer, the
    others the final embeddings; what one ``requires`` comes from ``per_side`` (each side's
    :func:`run_analyses`), passed as the pair (side A's, side B's).

    Raises:
        ConfigError: analyses that require each other in a cycle.
    """
    settings = settings or RunSettings()
    cache = cache or ResultCache(None)
    finals = [final_layer(s) for s in sides]
    outcome: dict[str, tuple[Result | None, str, str, float]] = {}

    def upstream(needed: str) -> tuple[Any, list[str]] | None:
        got = [side.results.get(needed) for side in per_side]
        if any(g is None for g in got):
            return None
        return tuple(got), [side.keys[needed] for side in per_side]

    names = order(plan)
    bar = _Progress(names, settings, desc)
    for name in names:
        klass = ANALYZERS.get(name)
        inputs = [
            ",".join(
                sorted(embeddings_identity(e) for e in (side.values() if klass.takes_layers else [final]))
            )
            for side, final in zip(sides, finals)
        ]
        job = _job(name, plan, upstream, [*inputs, records.fingerprint], cache, None, " of both encoders")
        if isinstance(job, str):
            outcome[name] = (None, "", job, 0.0)
            bar.done(name)
            continue
        a, b = (dict(s) for s in sides) if klass.takes_layers else finals
        bar.start(name)
        result, why, secs = _execute(job, cache, lambda an, a=a, b=b: an.run(a, b, records))
        outcome[name] = (result, job.key, why, secs)
        bar.done(name)
    bar.close()
    return _collect(plan, outcome, settings)
