"""The values of a study config, checked before any work starts.

:func:`ecgprobe.report.study.load_study` checks the config's *shape* (known keys, lists where
lists belong); :func:`check_study` checks its *values* with the same typed mechanism as the
command line and the Python API (:func:`ecgprobe.options.check_params`, driven by the
annotations of the loaders, encoder factories, analyzers and ``extract``), so that
``seed: zero`` or ``options: {sampling_rate: abc}`` is refused with the file, the entry and the
allowed values, instead of failing midway through a long run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecgprobe.exceptions import ConfigError, UnknownNameError
from ecgprobe.options import check_value, split_pairs

if TYPE_CHECKING:
    from ecgprobe.report.study import Study

__all__ = ["check_study"]


def check_study(study: Study, path: str | Path) -> Study:
    """``study`` with every value checked against its declared type and range (and converted,
    e.g. a single value for a list option made a one-element tuple).

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
    seed = check_value(study.seed, int, name="seed", where=str(p), default=0)
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
    extraction = _within(str(p), check_params, extract, study.extraction, where="extraction")
    for name, settings in (study.analyses or {}).items() if isinstance(study.analyses, dict) else ():
        if name in ANALYZERS and isinstance(settings, dict):  # checked here; converted when the analyzer runs
            _within(
                f"{p}: analyses.{name}",
                check_params,
                ANALYZERS.get(name),
                settings,
                where=f"analyzer {name!r}",
            )
    return replace(study, seed=seed, datasets=datasets, encoders=encoders, extraction=extraction)


def _within(context: str, check: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``check(*args, **kwargs)``, its ConfigError prefixed with the config file and entry."""
    try:
        return check(*args, **kwargs)
    except UnknownNameError as exc:
        raise UnknownNameError(f"{context}: {exc}") from None
    except ConfigError as exc:
        raise ConfigError(f"{context}: {exc}") from None
