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

__all__ = ["check_study"]


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
    return replace(study, settings=settings, datasets=datasets, encoders=encoders)


def _within(context: str, check: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``check(*args, **kwargs)``, its ConfigError prefixed with the config file and entry."""
    try:
        return check(*args, **kwargs)
    except UnknownNameError as exc:
        raise UnknownNameError(f"{context}: {exc}") from None
    except ConfigError as exc:
        raise ConfigError(f"{context}: {exc}") from None
