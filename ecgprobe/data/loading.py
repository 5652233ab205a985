"""The dataset registry, ``load_dataset`` and helpers shared by the loaders."""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ecgprobe.data.record import RecordSet
from ecgprobe.data.sources import LoadedSignals
from ecgprobe.data.splits import stratified_patient_split
from ecgprobe.exceptions import ConfigError, DataError
from ecgprobe.registry import Registry

if TYPE_CHECKING:  # pandas is imported where it is used (light commands stay light)
    import pandas as pd

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


def multi_hot(per_record: Sequence[Iterable[str]], vocab: Sequence[str]) -> np.ndarray:
    """The ``(N, len(vocab))`` uint8 label matrix of records given as lists of labels; labels
    outside ``vocab`` are ignored."""
    col = {label: j for j, label in enumerate(vocab)}
    y = np.zeros((len(per_record), len(vocab)), dtype=np.uint8)
    for i, labels in enumerate(per_record):
        for label in labels:
            if label in col:
                y[i, col[label]] = 1
    return y


def finish(
    signals: LoadedSignals,
    *,
    fs: float,
    leads: tuple[str, ...],
    ids: np.ndarray,
    patient_ids: np.ndarray,
    label_names: tuple[str, ...],
    y: np.ndarray,
    meta: pd.DataFrame,
    name: str,
    params: dict[str, Any],
    notes: Sequence[str] = (),
    split: np.ndarray | None = None,
    fractions: Sequence[float] | None = None,
    seed: int = 0,
    task: str = "multilabel",
) -> RecordSet:
    """Assemble a loader's RecordSet.

    Args:
        signals: from :func:`~ecgprobe.data.sources.load_signals` (or built in memory): the source
            of the kept records, the mask of records kept, and notes that follow ``notes``.
        fs, leads, ids, patient_ids, label_names, y, meta: per listed record (``keep`` is applied).
        name, params: the loader and its options (they identify the dataset).
        notes: the loader's notes for the user.
        split: predefined ``train``/``val``/``test`` per listed record; ``None`` splits the records
            by patient, stratified by label (:func:`stratified_patient_split` with ``fractions``
            and ``seed``; unstratified for a continuous target).
        fractions, seed: the split's fractions and seed; recorded in ``params`` when given.
        task: ``"multilabel"`` or a continuous target (see :class:`RecordSet`).
    """
    if split is None:
        if fractions is None:
            raise ValueError("finish: without a predefined split, pass fractions= to split by patient")
        strat = y if task == "multilabel" else np.zeros((len(ids), 0))
        split = stratified_patient_split(strat, patient_ids, fractions=fractions, seed=seed)
    if fractions is not None:
        params = {**params, "fractions": list(fractions), "seed": seed}
    source, k = signals.source, np.asarray(signals.keep, dtype=bool)
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
        split=np.asarray(split)[k],
        meta=meta.iloc[np.flatnonzero(k)].reset_index(drop=True),
        task=task,  # type: ignore[arg-type]
        name=name,
        params=params,
        notes=(*notes, *signals.notes),
    )
