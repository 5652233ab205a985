"""The values of a study config, checked before any work starts.

:func:`ecgprobe.workflows.study.load_study` checks the config's *shape* (known keys, lists where
lists belong); :func:`check_study` checks its *values* with the same typed mechanism as the
command line and the Python API (:func:`ecgprobe.options.check_params`, driven by the
annotations of the loaders, encoder factories, analyzers and ``extract``), so that
``seed: zero`` or ``options: {sampling_rate: abc}`` is refused with the file, the entry and the
allowed values, instead of failing midway through a long run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecgprobe.exceptions import ConfigError, UnknownNameError
from ecgprobe.options import check_value, split_pairs
from ecgprobe.settings import RunSettings

if TYPE_CHECKING:
    from ecgprobe.workflows.study import Study

__all__ = ["check_benchmark", "check_study"]

_BENCHMARK_KEYS = {
    "encoders",
    "tasks",
    "transfer",
    "references",
    "probe",
    "min_positives",
    "seeds",
    "train_fraction",
}


def check_study(
    study: Study,
    path: str | Path,
    run: Mapping[str, Any] | None = None,
    extraction: Mapping[str, Any] | None = None,
) -> Study:
    """``study`` with every value checked against its declared type and range (and converted,
    e.g. a single value for a list option made a one-element tuple), and its
    :class:`~ecgprobe.settings.RunSettings` built from the top-level ``run`` values (seed,
    profile, cache_dir, ci_level, n_resamples) and the ``extraction`` settings.

    Checks the top-level ``seed``; each dataset's ``options`` against its loader; each encoder's
    ``options`` against its factory (``KEY=VALUE`` text lists are parsed by type); the
    ``extraction`` settings against :func:`ecgprobe.extract`; each analysis's settings against
    its analyzer. Optional encoders whose name is not registered are left to the runner, which
    skips them with a warning.

    Raises:
        ConfigError: naming the config file, the entry (``datasets[0]``, ``encoders[1]``,
            ``extraction``, ``analyses.linear_probe``), the value and what is allowed.
    """
    from ecgprobe.analyzers.base import ANALYZERS
    from ecgprobe.data import DATASETS
    from ecgprobe.encoders import ENCODERS
    from ecgprobe.extract.extractor import extract
    from ecgprobe.options import check_params

    p = Path(path)
    run = dict(run or {})
    run["seed"] = check_value(run.get("seed", 0), int, name="seed", where=str(p), default=0)
    datasets = []
    for i, ds in enumerate(study.datasets):
        options = _within(
            f"{p}: datasets[{i}]",
            DATASETS.check_options,
            ds["name"],
            ds.get("options") or {},
            reserved=("root",),
        )
        datasets.append({**ds, "options": options})
    encoders = []
    for i, enc in enumerate(study.encoders):
        if enc.get("unavailable") or (enc.get("optional") and enc["name"] not in ENCODERS):
            encoders.append(enc)
            continue
        opts = enc.get("options") or {}
        text = isinstance(opts, list)
        if text:
            opts = split_pairs(opts, where=f"{p}: encoders[{i}] option")
        checked = _within(
            f"{p}: encoders[{i}]",
            ENCODERS.check_options,
            enc["name"],
            opts,
            reserved=("checkpoint",),
            from_string=text,
        )
        encoders.append({**enc, "options": checked})
    checked = _within(str(p), check_params, extract, dict(extraction or {}), where="extraction")
    settings = _within(str(p), RunSettings.from_mapping, {**run, **checked}, where="study settings")
    for name, given in (study.analyses or {}).items() if isinstance(study.analyses, dict) else ():
        if name in ANALYZERS and isinstance(given, dict):  # checked here; converted when the analyzer runs
            _within(
                f"{p}: analyses.{name}",
                check_params,
                ANALYZERS.get(name),
                given,
                where=f"analyzer {name!r}",
            )
    study = replace(study, settings=settings, datasets=datasets, encoders=encoders)
    if study.benchmark is not None:
        study = replace(study, benchmark=check_benchmark(study, p))
    return study


def _labels(value: Any, known: list[str], what: str, where: str) -> list[str]:
    if value in (None, "all"):
        return list(known)
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}: {what} must be 'all' or a list of labels from {known}; got {value!r}")
    unknown = [str(v) for v in value if str(v) not in known]
    if unknown:
        raise ConfigError(f"{where}: {what} names {unknown}, which are not labels of this study: {known}")
    return [str(v) for v in value]


def check_benchmark(study: Study, path: str | Path) -> dict[str, Any]:
    """The ``benchmark:`` section with defaults filled in: ``encoders`` and ``tasks`` (labels;
    ``all`` by default), ``transfer`` (``[source, target]`` dataset labels), ``references`` (a
    CSV path, relative to the current folder), ``probe`` (linear-probe settings), ``min_positives``,
    ``seeds`` and ``train_fraction`` (each seed fits the probe on its own subsample of the train split).

    Raises:
        ConfigError: naming the file, the key, the value and what is allowed (an unknown key or
            label, fewer than two encoders, no task, a malformed transfer cell, a missing
            reference table, probe settings the linear probe does not accept).

    Example:
        >>> check_benchmark(study, "analyses/bench.yaml")["tasks"]  # doctest: +SKIP
        ['ptbxl-superclass']
    """
    from ecgprobe.analyzers.base import ANALYZERS
    from ecgprobe.options import check_params, param_types
    from ecgprobe.workflows.benchmark_io import load_references

    where = f"{path}: benchmark"
    b = study.benchmark
    if b is None:
        b = {}
    if not isinstance(b, Mapping):
        raise ConfigError(f"{where} must be a mapping with keys {sorted(_BENCHMARK_KEYS)}; got {b!r}")
    bad = sorted(set(b) - _BENCHMARK_KEYS)
    if bad:
        raise ConfigError(f"{where} has unknown keys {bad}; allowed: {sorted(_BENCHMARK_KEYS)}")
    encs = [e["label"] for e in study.encoders]
    sets = [d["label"] for d in study.datasets]
    out: dict[str, Any] = {
        "encoders": _labels(b.get("encoders"), encs, "encoders", where),
        "tasks": _labels(b.get("tasks"), sets, "tasks", where),
    }
    if len(out["encoders"]) < 2:
        raise ConfigError(f"{where}: a benchmark ranks two or more encoders; got {out['encoders']}")
    cells = b.get("transfer") or []
    if not isinstance(cells, list):
        raise ConfigError(
            f"{where}: transfer must be a list of [source, target] dataset labels; got {cells!r}"
        )
    out["transfer"] = []
    for i, cell in enumerate(cells):
        if (
            isinstance(cell, str)
            or not isinstance(cell, (list, tuple))
            or len(cell) != 2
            or cell[0] == cell[1]
        ):
            raise ConfigError(
                f"{where}.transfer[{i}] must be [source, target], two different dataset labels; got {cell!r}"
            )
        out["transfer"].append(_labels(list(cell), sets, f"transfer[{i}]", where))
    if not out["tasks"] and not out["transfer"]:
        raise ConfigError(f"{where}: no task and no transfer cell; name at least one of {sets}")
    probe = b.get("probe") or {}
    if not isinstance(probe, Mapping):
        raise ConfigError(f"{where}.probe must be a mapping of linear_probe settings; got {probe!r}")
    lp = ANALYZERS.get("linear_probe")
    unknown = sorted(set(probe) - set(param_types(lp)))
    if unknown:
        raise ConfigError(
            f"{where}.probe: linear_probe has no settings {unknown}; it has {sorted(param_types(lp))}"
        )
    out["probe"] = _within(f"{where}.probe", check_params, lp, dict(probe), where="analyzer 'linear_probe'")
    out["min_positives"] = check_value(
        b.get("min_positives", 10), int, name="min_positives", where=where, default=10
    )
    if out["min_positives"] < 0:
        raise ConfigError(f"{where}: min_positives must be >= 0, got {out['min_positives']}")
    seeds = b.get("seeds", [0])
    seeds = [seeds] if isinstance(seeds, int) and not isinstance(seeds, bool) else seeds
    if (
        not isinstance(seeds, list)
        or not seeds
        or any(isinstance(x, bool) or not isinstance(x, int) for x in seeds)
    ):
        raise ConfigError(f"{where}: seeds must be a list of integers, e.g. [0, 1, 2]; got {seeds!r}")
    frac = b.get("train_fraction", 1.0)
    if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 < frac <= 1:
        raise ConfigError(f"{where}: train_fraction must lie in (0, 1], e.g. 0.25; got {frac!r}")
    if len(seeds) != len(set(seeds)) or (frac >= 1 and len(seeds) > 1):
        raise ConfigError(
            f"{where}: seeds {seeds} must be distinct, and several seeds need train_fraction below 1 (each seed "
            "fits the probe on its own train subsample; on the whole train split every seed fits the same probe)"
        )
    out["seeds"], out["train_fraction"] = seeds, float(frac)
    ref = b.get("references")
    out["references"] = None if ref is None else str(ref)
    if ref is not None:
        _within(where, load_references, ref)
    return out


def _within(context: str, check: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``check(*args, **kwargs)``, its ConfigError prefixed with the config file and entry."""
    try:
        return check(*args, **kwargs)
    except UnknownNameError as exc:
        raise UnknownNameError(f"{context}: {exc}") from None
    except ConfigError as exc:
        raise ConfigError(f"{context}: {exc}") from None
