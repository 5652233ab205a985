"""Study configs: encoders × datasets × label sets × analyses, from one YAML file.

::

    name: ptbxl-superclass
    title: Linear probes on PTB-XL superclasses      # optional
    out: ecgprobe-out/ptbxl-superclass               # relative paths: to the current folder
    cache_dir: ecgprobe-cache                        # embeddings and analyzer results
    seed: 0
    profile: full                                    # or quick
    datasets:
      - name: ptbxl
        root: ${PTBXL_ROOT}                          # ${VAR} and ${VAR:-default} are expanded
        options: {sampling_rate: 500}
        label_sets: [superclass, all]                # each becomes the loader option labels=...
    encoders:
      - name: random-resnet1d
        options: {seed: 0}
      - name: ecgfounder
        checkpoint: ${ECGFOUNDER_CKPT}
        optional: true                               # skipped (with a warning) when it cannot be created
    extraction: {batch_size: 64, window: fit, device: auto, precision: fp32}
    ci_level: 0.95                                   # optional: every analysis's interval level
    n_resamples: 1000                                # optional: every bootstrap's resamples
    analyses: {linear_probe: {}, scarcity: {n_seeds: 5}}   # default: every model analysis
    reports: [model, compare, scarcity]              # each for every encoder / every pair, or:
    # reports: {model: [ecgfounder], compare: [[ecgfounder, random-resnet1d]], scarcity: all}
    benchmark:                                       # optional: a leaderboard in out/benchmark/
      encoders: all                                  # or a list of encoder labels (two or more)
      tasks: all                                     # dataset labels ranked in-dataset (or [])
      transfer: [[ptbxl-scored, challenge-scored]]   # optional source -> target cells
      references: analyses/reference/ptbxl_linear_probe.csv   # optional published values
      probe: {Cs: [0.01, 0.1, 1.0]}                  # optional linear-probe settings
      min_positives: 10
      seeds: [0, 1, 2]                               # optional, with train_fraction < 1: one probe
      train_fraction: 0.25                           # per seed on its own train subsample; cells average them

With a ``benchmark:`` section and no ``reports:``, the study writes the benchmark only.

Datasets and encoders may have a ``title:`` (how report titles name them). Every combination's
results are cached by content, so running a config again re-renders the reports without
recomputing anything. :func:`~ecgprobe.workflows.study_runner.run_study` runs a study; the demo
and ``ecgprobe scarcity --encoders`` are studies too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

from ecgprobe.exceptions import ConfigError
from ecgprobe.outputs import safe_name
from ecgprobe.settings import RunSettings
from ecgprobe.workflows.study_checks import check_study

__all__ = ["REPORT_KINDS", "PlannedReport", "Study", "load_study", "planned_reports", "study_outputs"]

_KEYS = {
    "name",
    "title",
    "out",
    "cache_dir",
    "seed",
    "profile",
    "ci_level",
    "n_resamples",
    "datasets",
    "encoders",
    "extraction",
    "analyses",
    "reports",
    "compare_layers",
    "benchmark",
}
#: The reports a study can write (in this order, per dataset).
REPORT_KINDS = ("model", "scarcity", "compare")
_EXTRACTION = {"batch_size", "window", "hop", "device", "precision"}
_DATASET_KEYS = {"name", "root", "options", "label_sets", "label", "title"}
_ENCODER_KEYS = {"name", "checkpoint", "options", "optional", "label", "embeddings", "title"}


@dataclass
class Study:
    """A parsed study config (see the module docstring).

    Attributes:
        name: the study's name.
        datasets: entries ``{name, root, options, label, title}``; from Python also
            ``records`` (a loaded :class:`~ecgprobe.data.RecordSet`, used as is).
        encoders: entries ``{name, checkpoint, options, optional, label, title, embeddings}``.
        out: the output folder.
        settings: the run's settings (seed, profile, extraction, cache, intervals).
        title: the study's title (the index page's).
        analyses: the model analyses (names or ``{name: settings}``; ``None``: all).
        reports: ``{kind: "all" or a selection}``: the encoder labels of the ``model`` and
            ``scarcity`` reports, the label pairs of the ``compare`` reports.
        compare_layers: ``"all"`` (CKA over every layer) or ``"embedding"``.
        dataset_folders: each dataset's reports in a folder of its label (else directly in
            ``out``; one dataset only).
        folders: report folder names by kind, overriding the default (``"."``: ``out`` itself).
        index: write ``index.html`` listing the reports.
        intro: the index page's first line (default: the study, its seed and profile).
        benchmark: the ``benchmark:`` section, checked
            (:func:`~ecgprobe.workflows.study_checks.check_benchmark`); ``None``: no benchmark.
    """

    name: str
    datasets: list[dict[str, Any]]
    encoders: list[dict[str, Any]]
    out: Path
    settings: RunSettings = field(default_factory=RunSettings)
    title: str = ""
    analyses: Sequence[str] | Mapping[str, Any] | None = None
    reports: dict[str, Any] = field(default_factory=lambda: dict.fromkeys(REPORT_KINDS, "all"))
    compare_layers: str = "all"
    dataset_folders: bool = True
    folders: dict[str, str] = field(default_factory=dict)
    index: bool = True
    intro: str = ""
    benchmark: dict[str, Any] | None = None


@dataclass(frozen=True)
class PlannedReport:
    """One report a study writes: its kind, the encoder labels it is about, and its folder
    relative to the dataset's folder."""

    kind: str
    subjects: tuple[str, ...]
    folder: str


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(value: Any) -> Any:
    """Expand ``${VAR}`` and ``${VAR:-default}`` in strings (recursively).

    Raises:
        ConfigError: a variable without a default that is not set.
    """
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            if m.group(1) in os.environ:
                return os.environ[m.group(1)]
            if m.group(2) is not None:
                return m.group(2)
            raise ConfigError(
                f"{value!r} needs the environment variable {m.group(1)}, which is not set; export it"
            )

        return _VAR.sub(sub, value)
    if isinstance(value, list):
        return [_expand(v) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v) for k, v in value.items()}
    return value


def _datasets(p: Path, entries: list[Any]) -> list[dict[str, Any]]:
    datasets = []
    for i, d in enumerate(entries):
        d = {"name": d} if isinstance(d, str) else dict(d)
        if "name" not in d:
            raise ConfigError(f"{p}: datasets[{i}] has no 'name'")
        bad = sorted(set(d) - _DATASET_KEYS)
        if bad:
            raise ConfigError(f"{p}: datasets[{i}] has unknown keys {bad}; allowed: {sorted(_DATASET_KEYS)}")
        sets = d.pop("label_sets", None) or [None]
        for ls in sets:
            entry = _expand({**d, "options": {**(d.get("options") or {}), **({"labels": ls} if ls else {})}})
            label = str(entry.get("label") or entry["name"]) + (f"-{ls}" if ls else "")
            entry["label"] = safe_name(label, what=f"{p}: datasets[{i}] label")  # it becomes a folder
            datasets.append(entry)
    return datasets


def _encoders(p: Path, entries: list[Any]) -> list[dict[str, Any]]:
    encoders = []
    for i, e in enumerate(entries):
        e = {"name": e} if isinstance(e, str) else dict(e)
        bad = sorted(set(e) - _ENCODER_KEYS)
        if bad or "name" not in e:
            raise ConfigError(
                f"{p}: encoders[{i}] needs 'name' and accepts {sorted(_ENCODER_KEYS - {'name'})}; got {sorted(e)}"
            )
        label = safe_name(e.get("label") or e["name"], what=f"{p}: encoders[{i}] label")
        try:
            encoders.append({**_expand(e), "label": label})
        except ConfigError as exc:  # e.g. the checkpoint's environment variable is not set
            if not e.get("optional"):
                raise ConfigError(f"{p}: encoders[{i}] ({e['name']}): {exc}") from None
            encoders.append({"name": e["name"], "label": label, "optional": True, "unavailable": str(exc)})
    return encoders


def _reports(p: Path, value: Any) -> dict[str, Any]:
    """``reports:`` as ``{kind: "all" or a selection}`` (a list of kinds means each for all)."""
    if value is None:
        return dict.fromkeys(REPORT_KINDS, "all")
    if isinstance(value, (list, tuple)):
        value = dict.fromkeys(value, "all")
    if not isinstance(value, Mapping) or set(value) - set(REPORT_KINDS) or not value:
        raise ConfigError(
            f"{p}: reports must be a list of {list(REPORT_KINDS)} or a mapping of them to 'all' or a "
            f"selection of encoder labels (compare: label pairs); got {value!r}"
        )
    return {k: v if v in (None, "all") else list(v) for k, v in value.items()}


def load_study(path: str | Path) -> Study:
    """Parse and check a study config.

    Raises:
        ConfigError: a missing file, invalid YAML, unknown keys or values (naming them).
    """
    import yaml

    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"study config {p} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level (name:, datasets:, encoders:, ...)")
    unknown = sorted(set(doc) - _KEYS)
    if unknown:
        raise ConfigError(f"{p}: unknown keys {unknown}; allowed: {sorted(_KEYS)}")
    for key in ("datasets", "encoders"):
        if not isinstance(doc.get(key), list) or not doc[key]:
            raise ConfigError(f"{p}: '{key}' must be a non-empty list")
    extraction = dict(doc.get("extraction") or {})
    if set(extraction) - _EXTRACTION:
        raise ConfigError(f"{p}: extraction accepts {sorted(_EXTRACTION)}, got {sorted(extraction)}")
    cache = doc.get("cache_dir", "ecgprobe-cache")
    datasets, encoders = _datasets(p, doc["datasets"]), _encoders(p, doc["encoders"])
    for kind, entries in (("datasets", datasets), ("encoders", encoders)):
        labels = [x["label"] for x in entries]
        twice = sorted({x for x in labels if labels.count(x) > 1})
        if twice:
            raise ConfigError(
                f"{p}: {kind} {twice} appear twice (their reports would share a folder); "
                "give each a distinct 'label:'"
            )
    study = Study(
        name=str(doc.get("name") or p.stem),
        title=str(doc.get("title") or ""),
        datasets=datasets,
        encoders=encoders,
        out=Path(_expand(str(doc.get("out") or f"ecgprobe-out/{p.stem}"))),
        analyses=doc.get("analyses"),
        reports={} if "benchmark" in doc and "reports" not in doc else _reports(p, doc.get("reports")),
        compare_layers=str(doc.get("compare_layers", "all")),
        benchmark=doc.get("benchmark"),
    )
    run = {k: doc[k] for k in ("seed", "profile", "ci_level", "n_resamples") if k in doc}
    run["cache_dir"] = None if cache is None else Path(_expand(str(cache))).expanduser()
    return check_study(study, p, run, extraction)


def _label(entry: Mapping[str, Any], kind: str) -> str:
    """The folder name of a dataset or encoder entry (sanitised by :func:`load_study` already;
    again here for studies built in Python)."""
    return safe_name(entry.get("label") or entry["name"], what=f"{kind} label")


def _chosen(study: Study, kind: str, labels: list[str]) -> list[str]:
    want = study.reports.get(kind)
    if want in (None, "all"):
        return labels
    unknown = sorted(set(want) - set(labels))
    if unknown:
        raise ConfigError(
            f"study {study.name}: reports.{kind} names {unknown}, which are not encoder labels {labels}"
        )
    return [x for x in labels if x in want]


def planned_reports(study: Study) -> list[PlannedReport]:
    """The reports the study writes for each dataset (the same for every dataset).

    Raises:
        ConfigError: a selection naming an unknown encoder label, or two reports sharing a folder.
    """
    labels = [_label(e, "encoder") for e in study.encoders]
    plan = []
    if "model" in study.reports:
        plan += [PlannedReport("model", (x,), x) for x in _chosen(study, "model", labels)]
    if "scarcity" in study.reports:
        plan.append(PlannedReport("scarcity", tuple(_chosen(study, "scarcity", labels)), "scarcity"))
    if "compare" in study.reports:
        want = study.reports["compare"]
        pairs = list(combinations(labels, 2)) if want in (None, "all") else [tuple(x) for x in want]
        for pair in pairs:
            if len(pair) != 2 or set(pair) - set(labels) or pair[0] == pair[1]:
                raise ConfigError(
                    f"study {study.name}: reports.compare: {list(pair)} is not a pair of encoder labels {labels}"
                )
            plan.append(PlannedReport("compare", pair, f"{pair[0]}-vs-{pair[1]}"))
    plan = [PlannedReport(r.kind, r.subjects, study.folders.get(r.kind, r.folder)) for r in plan]
    folders = [r.folder for r in plan]
    twice = sorted({f for f in folders if folders.count(f) > 1})
    if twice:
        raise ConfigError(
            f"study {study.name}: the report folders {twice} would collide; rename the encoder labels that cause it"
        )
    return plan


def dataset_folder(study: Study, dataset: Mapping[str, Any]) -> str:
    """The folder of a dataset's reports, relative to ``study.out``."""
    if not study.dataset_folders:
        if len(study.datasets) > 1:
            raise ConfigError(
                f"study {study.name}: several datasets need a folder each (dataset_folders=True)"
            )
        return "."
    return _label(dataset, "dataset")


def study_outputs(study: Study, formats: tuple[str, ...] = ("html", "pdf")) -> list[str]:
    """Every file the study may write, relative to ``study.out`` (checked before any work).

    Raises:
        ConfigError: two reports would share a folder.
    """
    from ecgprobe.report.document import Report

    names = Report.output_names(formats)
    out = [
        (Path(dataset_folder(study, ds)) / r.folder / name).as_posix()
        for ds in study.datasets
        for r in planned_reports(study)
        for name in [*names, *(["scarcity.csv"] if r.kind == "scarcity" else [])]
    ]
    if study.benchmark is not None:
        out += [f"benchmark/{name}" for name in [*names, "leaderboard.csv", "cells.csv"]]
    return [*out, *(["index.html"] if study.index else [])]
