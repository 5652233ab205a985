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
    extraction: {batch_size: 64, window: fit, device: auto}
    analyses: {linear_probe: {}, scarcity: {n_seeds: 5}}   # default: every model analysis
    reports: [model, compare, scarcity]

Every combination's results are cached by content, so running a config again re-renders the
reports without recomputing anything.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

from ecgprobe.exceptions import ConfigError, EcgprobeError
from ecgprobe.outputs import Output, safe_name
from ecgprobe.report.study_checks import check_study

__all__ = ["Study", "load_study", "run_study", "study_outputs"]

_KEYS = {
    "name",
    "title",
    "out",
    "cache_dir",
    "seed",
    "profile",
    "datasets",
    "encoders",
    "extraction",
    "analyses",
    "reports",
    "compare_layers",
}
_REPORTS = ("model", "compare", "scarcity")
_EXTRACTION = {"batch_size", "window", "hop", "device", "precision"}


@dataclass
class Study:
    """A parsed study config (see the module docstring)."""

    name: str
    datasets: list[dict[str, Any]]
    encoders: list[dict[str, Any]]
    out: Path
    cache_dir: Path | None
    title: str = ""
    seed: int = 0
    profile: str = "full"
    extraction: dict[str, Any] = field(default_factory=dict)
    analyses: dict[str, dict[str, Any]] | None = None
    reports: tuple[str, ...] = _REPORTS
    compare_layers: str = "all"


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
    datasets = []
    for i, d in enumerate(doc["datasets"]):
        d = {"name": d} if isinstance(d, str) else dict(d)
        if "name" not in d:
            raise ConfigError(f"{p}: datasets[{i}] has no 'name'")
        bad = sorted(set(d) - {"name", "root", "options", "label_sets", "label"})
        if bad:
            raise ConfigError(f"{p}: datasets[{i}] has unknown keys {bad}")
        sets = d.pop("label_sets", None) or [None]
        for ls in sets:
            entry = _expand({**d, "options": {**(d.get("options") or {}), **({"labels": ls} if ls else {})}})
            label = str(entry.get("label") or entry["name"]) + (f"-{ls}" if ls else "")
            entry["label"] = safe_name(label, what=f"{p}: datasets[{i}] label")  # it becomes a folder
            datasets.append(entry)
    encoders = []
    for i, e in enumerate(doc["encoders"]):
        e = {"name": e} if isinstance(e, str) else dict(e)
        bad = sorted(set(e) - {"name", "checkpoint", "options", "optional", "label", "embeddings"})
        if bad or "name" not in e:
            raise ConfigError(
                f"{p}: encoders[{i}] needs 'name' and accepts checkpoint, options, optional, label, embeddings; got {sorted(e)}"
            )
        label = safe_name(e.get("label") or e["name"], what=f"{p}: encoders[{i}] label")
        try:
            encoders.append({**_expand(e), "label": label})
        except ConfigError as exc:  # e.g. the checkpoint's environment variable is not set
            if not e.get("optional"):
                raise ConfigError(f"{p}: encoders[{i}] ({e['name']}): {exc}") from None
            encoders.append({"name": e["name"], "label": label, "optional": True, "unavailable": str(exc)})
    for kind, entries in (("datasets", datasets), ("encoders", encoders)):
        labels = [x["label"] for x in entries]
        twice = sorted({x for x in labels if labels.count(x) > 1})
        if twice:
            raise ConfigError(
                f"{p}: {kind} {twice} appear twice (their reports would share a folder); "
                "give each a distinct 'label:'"
            )
    reports = tuple(doc.get("reports") or _REPORTS)
    if set(reports) - set(_REPORTS):
        raise ConfigError(f"{p}: reports must be among {list(_REPORTS)}, got {list(reports)}")
    extraction = dict(doc.get("extraction") or {})
    if set(extraction) - _EXTRACTION:
        raise ConfigError(f"{p}: extraction accepts {sorted(_EXTRACTION)}, got {sorted(extraction)}")
    cache = doc.get("cache_dir", "ecgprobe-cache")
    study = Study(
        name=str(doc.get("name") or p.stem),
        title=str(doc.get("title") or ""),
        datasets=datasets,
        encoders=encoders,
        out=Path(_expand(str(doc.get("out") or f"ecgprobe-out/{p.stem}"))),
        cache_dir=None if cache is None else Path(_expand(str(cache))).expanduser(),
        seed=doc.get("seed", 0),
        profile=str(doc.get("profile", "full")),
        extraction=extraction,
        analyses=doc.get("analyses"),
        reports=reports,
        compare_layers=str(doc.get("compare_layers", "all")),
    )
    return check_study(study, p)


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, file=sys.stderr)


def _label(entry: Mapping[str, Any], kind: str) -> str:
    """The folder name of a dataset or encoder entry (sanitised by :func:`load_study` already;
    again here for studies built in Python)."""
    return safe_name(entry.get("label") or entry["name"], what=f"{kind} label")


def _folders(study: Study) -> dict[str, list[str]]:
    """``{dataset label: [report folder, ...]}`` of every report the study may write."""
    labels = [_label(e, "encoder") for e in study.encoders]
    out = {}
    for ds in study.datasets:
        folders = []
        if "model" in study.reports:
            folders += labels
        if "scarcity" in study.reports:
            folders.append("scarcity")
        if "compare" in study.reports:
            folders += [f"{a}-vs-{b}" for a, b in combinations(labels, 2)]
        twice = sorted({f for f in folders if folders.count(f) > 1})
        if twice:
            raise ConfigError(
                f"study {study.name}: the report folders {twice} of {_label(ds, 'dataset')} would collide; "
                "rename the encoder labels that cause it"
            )
        out[_label(ds, "dataset")] = folders
    return out


def study_outputs(study: Study, formats: tuple[str, ...] = ("html", "pdf")) -> list[str]:
    """Every file the study may write, relative to ``study.out`` (checked before any work).

    Raises:
        ConfigError: two reports would share a folder.
    """
    from ecgprobe.report.document import Report

    names = Report.output_names(formats)
    return [
        f"{ds}/{folder}/{name}"
        for ds, folders in _folders(study).items()
        for folder in folders
        for name in [*names, *(["scarcity.csv"] if folder == "scarcity" else [])]
    ]


def run_study(
    study: Study, *, force: bool = False, quiet: bool = False, formats: tuple[str, ...] = ("html", "pdf")
) -> list[Path]:
    """Run every combination of the study and write its reports; returns the report folders.

    Raises:
        ConfigError: invalid settings, or outputs that exist without ``force``.
        EcgprobeError: a dataset or a non-optional encoder that cannot be loaded.
    """
    import ecgprobe
    from ecgprobe.encoders import ENCODERS, create_encoder
    from ecgprobe.extract import align_to_records, extract, load_embeddings
    from ecgprobe.report.multi import compare_report, scarcity_report, write_scarcity_csv
    from ecgprobe.report.pipeline import model_report, resolve_analyses

    resolve_analyses(study.analyses, profile=study.profile)  # fail on bad settings before any work
    index_file = study.out / "index.html"
    Output(study.out, [*study_outputs(study, formats), "index.html"], force=force, option="out:").check()
    written: list[Path] = []
    reports: list[Any] = []  # the report written in each folder of ``written``, for the index
    want_layers = "all" if "compare" in study.reports and study.compare_layers == "all" else None
    for ds in study.datasets:
        records = ecgprobe.load_dataset(ds["name"], ds.get("root"), **(ds.get("options") or {}))
        _say(quiet, f"[{study.name}] {_label(ds, 'dataset')}: {len(records)} records")
        layers: dict[str, dict[str, Any]] = {}
        encoders: dict[str, Any] = {}
        timings: dict[str, float] = {}
        for spec in study.encoders:
            label = _label(spec, "encoder")
            t0 = time.perf_counter()
            if spec.get("unavailable"):
                _say(quiet, f"[{study.name}] encoder {label} skipped (optional): {spec['unavailable']}")
                continue
            try:
                if spec.get("embeddings"):
                    emb = align_to_records(load_embeddings(spec["embeddings"]), records)[0]
                    layers[label] = {emb.layer: emb}
                    encoders[label] = None
                else:
                    factory = ENCODERS.get(spec["name"])
                    from ecgprobe.cli.common import parse_options

                    opts = spec.get("options") or {}
                    if isinstance(opts, list):
                        opts = parse_options(opts, factory)
                    enc = create_encoder(
                        spec["name"],
                        checkpoint=spec.get("checkpoint"),
                        device=study.extraction.get("device", "auto"),
                        **opts,
                    )
                    got = extract(
                        enc,
                        records,
                        layers=want_layers,
                        cache_dir=study.cache_dir,
                        progress=not quiet,
                        **{k: v for k, v in study.extraction.items() if k != "device"},
                    )
                    layers[label] = got if isinstance(got, dict) else {got.layer: got}
                    encoders[label] = enc
            except EcgprobeError as exc:
                if spec.get("optional"):
                    _say(quiet, f"[{study.name}] encoder {label} skipped (optional): {exc}")
                    continue
                raise
            timings[f"{label}: extraction"] = round(time.perf_counter() - t0, 3)
        common = {
            "profile": study.profile,
            "seed": study.seed,
            "cache_dir": study.cache_dir,
            "progress": not quiet,
        }
        base = study.out / _label(ds, "dataset")
        finals = {k: v.get("embedding") or list(v.values())[-1] for k, v in layers.items()}
        if "model" in study.reports:
            for label, emb in finals.items():
                rep = model_report(
                    emb,
                    records,
                    encoder=encoders[label],
                    name=label,
                    analyses=study.analyses,
                    extra_timings={f"{label}: extraction": timings.get(f"{label}: extraction", 0.0)},
                    **common,
                )
                rep.write(base / label, force=force, formats=formats, option="out:")
                written.append(base / label)
                reports.append(rep)
        if "scarcity" in study.reports and len(finals) >= 1:
            settings = (study.analyses or {}).get("scarcity") if isinstance(study.analyses, Mapping) else None
            rep = scarcity_report(
                finals, records, encoders=encoders, settings=settings, extra_timings=timings, **common
            )
            names = [*rep.output_names(formats), "scarcity.csv"]
            with Output(base / "scarcity", names, force=force, option="out:").staged() as tmp:
                rep.write_files(tmp, formats)
                write_scarcity_csv(rep, tmp / "scarcity.csv")
            written.append(base / "scarcity")
            reports.append(rep)
        if "compare" in study.reports:
            for a, b in combinations(list(layers), 2):
                rep = compare_report(
                    layers[a],
                    layers[b],
                    records,
                    names=(a, b),
                    encoders=(encoders[a], encoders[b]),
                    extra_timings=timings,
                    **common,
                )
                rep.write(base / f"{a}-vs-{b}", force=force, formats=formats, option="out:")
                written.append(base / f"{a}-vs-{b}")
                reports.append(rep)
    if written:
        from ecgprobe._io import atomic_write
        from ecgprobe.report.index import render_index

        entries = [(p.relative_to(study.out).as_posix(), p, r) for p, r in zip(written, reports)]
        intro = f"Study {study.name}: {len(written)} reports (seed {study.seed}, profile {study.profile})."
        atomic_write(
            index_file, render_index(f"ecgprobe study {study.name}", intro, entries, study.out).encode()
        )
    return written
