"""The dataset registry, ``load_dataset`` and helpers shared by the loaders."""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecgprobe.data.record import RecordSet, SignalSource
from ecgprobe.exceptions import ConfigError, DataError
from ecgprobe.registry import Registry

__all__ = ["DATASETS", "LoaderOption", "check_root", "dataset_options", "list_datasets", "load_dataset"]

Loader = Callable[..., RecordSet]
#: Registered dataset loaders: ``@DATASETS.register("name", needs_root=True, summary="...")``.
DATASETS: Registry[Loader] = Registry("dataset")


@dataclass(frozen=True)
class LoaderOption:
    """One keyword option of a loader, as listed by ``ecgprobe datasets``."""

    name: str
    default: Any
    doc: str


def _arg_docs(func: Callable[..., Any]) -> dict[str, str]:
    doc = inspect.getdoc(func) or ""
    m = re.search(r"^Args:\n(.*?)(?:^\S|\Z)", doc, flags=re.S | re.M)
    if not m:
        return {}
    out: dict[str, str] = {}
    current = None
    for line in m.group(1).splitlines():
        hit = re.match(r"^\s{4}(\w+)(?: \(.*?\))?:\s*(.*)$", line)
        if hit:
            current = hit.group(1)
            out[current] = hit.group(2)
        elif current and line.strip():
            out[current] += " " + line.strip()
    return out


def dataset_options(name: str) -> list[LoaderOption]:
    """The keyword options of dataset ``name`` with defaults and descriptions."""
    func = DATASETS.get(name)
    docs = _arg_docs(func)
    opts = []
    for p in inspect.signature(func).parameters.values():
        if p.name == "root" or p.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        opts.append(LoaderOption(p.name, p.default, docs.get(p.name, "")))
    return opts


def list_datasets() -> list[str]:
    """Names of the registered dataset loaders."""
    return DATASETS.list()


def load_dataset(name: str, root: str | Path | None = None, **options: Any) -> RecordSet:
    """Load a registered dataset as a :class:`RecordSet`.

    Args:
        name: loader name (``"ptbxl"``, ``"challenge"``, ``"folder"``, ``"synthetic"``, ...);
            ``ecgprobe datasets`` lists them with their options.
        root: the dataset folder (not needed for ``"synthetic"``).
        **options: loader options, e.g. ``sampling_rate=100, labels="superclass"``.

    Raises:
        UnknownNameError: unknown dataset name (with close matches).
        ConfigError: unknown or invalid option.
        DataError: missing/corrupt files, named, with the fix.

    Example:
        >>> import ecgprobe
        >>> rs = ecgprobe.load_dataset("synthetic", n_records=10, seed=1)
        >>> len(rs)
        10
    """
    entry = DATASETS.entry(name)
    func = entry.obj
    options = DATASETS.check_options(name, options, reserved=("root",))
    if entry.info.get("needs_root", True):
        if root is None:
            raise ConfigError(f"dataset {entry.name!r} needs root=<folder of the dataset>")
        return func(root, **options)
    if root is not None:
        raise ConfigError(f"dataset {entry.name!r} is generated and takes no root (got {root!r})")
    return func(**options)


def check_root(root: str | Path, dataset: str, required: tuple[str, ...] = ()) -> Path:
    """Resolve a dataset root and check that it and its ``required`` files exist.

    Raises:
        DataError: naming the missing folder or file and what the loader expects there.
    """
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(
            f"{dataset}: dataset root {path} does not exist or is not a folder; pass --root <folder>"
        )
    for rel in required:
        if not (path / rel).exists():
            raise DataError(
                f"{dataset}: {rel} not found in {path}; is this the dataset's root folder "
                "(the one holding the official metadata files)?"
            )
    return path.resolve()


def check_choice(value: Any, choices: tuple[Any, ...], name: str) -> Any:
    """Raise ConfigError unless ``value`` is one of ``choices``."""
    if value not in choices:
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{name}={value!r} is not valid{hint}; choose one of {list(choices)}")
    return value


def missing_files(paths: list[Path]) -> list[Path]:
    """The paths that do not exist (stat only; used to fail early with the full list)."""
    return [p for p in paths if not p.exists()]


def finish(
    *,
    source: SignalSource,
    keep: np.ndarray,
    fs: float,
    leads: tuple[str, ...],
    ids: np.ndarray,
    patient_ids: np.ndarray,
    label_names: tuple[str, ...],
    y: np.ndarray,
    split: np.ndarray,
    meta: pd.DataFrame,
    name: str,
    params: dict[str, Any],
    notes: list[str],
    task: str = "multilabel",
) -> RecordSet:
    """Assemble a RecordSet, applying the ``keep`` mask to everything but the (already filtered) source."""
    k = np.asarray(keep, dtype=bool)
    if not k.all() and len(source) == len(k):
        source = source.take(np.flatnonzero(k))
    return RecordSet(
        source=source,
        fs=fs,
        leads=leads,
        ids=ids[k],
        patient_ids=patient_ids[k],
        label_names=label_names,
        y=y[k],
        split=split[k],
        meta=meta.iloc[np.flatnonzero(k)].reset_index(drop=True),
        task=task,  # type: ignore[arg-type]
        name=name,
        params=params,
        notes=tuple(notes),
    )
