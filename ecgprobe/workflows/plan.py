"""Which analyses a workflow runs, with which settings, in which order.

An analysis plan is ``{analysis: settings}``: the names a user asked for (or a workflow's
default), each with the settings of the chosen profile, the run-wide settings
(:class:`~ecgprobe.settings.RunSettings`: seed, device, interval level, resamples) and the
user's own, in that order of precedence, the last winning. :func:`order` sorts a plan so that
every analysis comes after those it ``requires`` (declared by the analyzer class, never known
here by name).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from ecgprobe._defaults import MODEL_ANALYSES
from ecgprobe.analyzers.base import ANALYZERS
from ecgprobe.exceptions import ConfigError
from ecgprobe.settings import RunSettings

__all__ = [
    "PROFILES",
    "Plan",
    "accepted_settings",
    "order",
    "plan_analyses",
    "resolve_analyses",
    "wants_layers",
]

#: ``{analysis: settings}``, each analysis once, in the order the report shows them.
Plan = dict[str, dict[str, Any]]

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
        "layer_probe": {"n_resamples": 300},
        "confounding": {"n_resamples": 300},
        "attentive_probe": {"n_resamples": 300},
    },
}


def wants_layers(
    analyses: Sequence[str] | Mapping[str, Mapping[str, Any] | None] | None,
    settings: RunSettings | None = None,
    *,
    default: Sequence[str] = MODEL_ANALYSES,
) -> bool:
    """Whether a model report of ``analyses`` needs every layer extracted (an analysis of one
    encoder that ``takes_layers``, such as ``layer_probe``)."""
    return any(
        ANALYZERS.get(n).takes_layers and not ANALYZERS.entry(n).info.get("pairwise")
        for n in plan_analyses(analyses, settings, default=default)
    )


def accepted_settings(name: str) -> set[str]:
    """The settings analysis ``name`` takes: its ``__init__`` keywords except its inputs (the
    upstream results it ``requires`` and the encoder)."""
    klass = ANALYZERS.get(name)
    return set(inspect.signature(klass.__init__).parameters) - {"self", "encoder", *klass.requires}


def plan_analyses(
    analyses: Sequence[str] | Mapping[str, Mapping[str, Any] | None] | None,
    settings: RunSettings | None = None,
    *,
    default: Sequence[str] = MODEL_ANALYSES,
) -> Plan:
    """The plan of ``analyses`` (names, ``{name: settings}``, or ``None`` for ``default``).

    Raises:
        ConfigError: an unknown analysis or setting (naming what is accepted).
    """
    run = settings or RunSettings()
    if analyses is None:
        wanted: dict[str, dict[str, Any]] = {a: {} for a in default}
    elif isinstance(analyses, Mapping):
        wanted = {str(k): dict(v or {}) for k, v in analyses.items()}
    else:
        wanted = {str(a): {} for a in analyses}
    out: Plan = {}
    for name, own in wanted.items():
        if name not in ANALYZERS:
            raise ConfigError(f"unknown analysis {name!r}; available: {sorted(ANALYZERS.list())}")
        accepted = accepted_settings(name)
        bad = sorted(set(own) - accepted)
        if bad:
            raise ConfigError(f"{name}: unknown settings {bad}; accepted: {sorted(accepted)}")
        profile = {k: v for k, v in PROFILES[run.profile].get(name, {}).items() if k in accepted}
        out[ANALYZERS.entry(name).name] = {**profile, **run.for_analysis(accepted), **own}
    return out


def resolve_analyses(
    analyses: Sequence[str] | Mapping[str, Mapping[str, Any] | None] | None,
    *,
    profile: str = "full",
    default: Sequence[str] = MODEL_ANALYSES,
) -> Plan:
    """:func:`plan_analyses` under the default run settings of ``profile`` (to check a plan
    before any work).

    Raises:
        ConfigError: an unknown profile, analysis or setting.
    """
    if profile not in PROFILES:
        raise ConfigError(f"profile {profile!r} is not one of {sorted(PROFILES)}")
    return plan_analyses(analyses, RunSettings(profile=profile), default=default)


def order(plan: Mapping[str, Any]) -> list[str]:
    """The analyses of ``plan`` with each after those it requires (a stable topological order;
    a requirement outside the plan does not constrain it: the runner skips the analysis).

    Raises:
        ConfigError: analyses that require each other in a cycle.
    """
    names = list(plan)
    done: list[str] = []
    while len(done) < len(names):
        ready = [
            n
            for n in names
            if n not in done and all(r in done or r not in plan for r in ANALYZERS.get(n).requires.values())
        ]
        if not ready:
            raise ConfigError(f"the analyses {sorted(set(names) - set(done))} require each other in a cycle")
        done.append(ready[0])
    return done
