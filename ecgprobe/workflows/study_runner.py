"""Run a study: load each dataset, extract each encoder (cached), write every planned report.

The one runner of multi-report work: ``ecgprobe run CONFIG``, ``ecgprobe demo`` and
``ecgprobe scarcity --encoders A,B`` all build a :class:`~ecgprobe.workflows.study.Study` and
call :func:`run_study`. Every output path is checked before any work; each report folder is
written whole or not at all (staged, then moved into place), and the index, written last, lists
only reports that were written.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ecgprobe.exceptions import EcgprobeError
from ecgprobe.outputs import Output
from ecgprobe.settings import RunSettings
from ecgprobe.workflows.study import (
    PlannedReport,
    Study,
    _label,
    dataset_folder,
    planned_reports,
    study_outputs,
)

__all__ = ["Written", "run_study"]

_KIND_TITLES = {
    "model": "model report",
    "compare": "comparison",
    "scarcity": "data-scarcity study",
    "benchmark": "benchmark",
}


class Written(list):  # type: ignore[type-arg]
    """The report folders a study wrote (a list of paths), with the reports themselves
    (:attr:`reports`) and the files of each (:attr:`files`: ``{"json" | "html" | ...: path}``)."""

    def __init__(self) -> None:
        super().__init__()
        self.reports: list[Any] = []
        self.files: list[dict[str, Path]] = []


def _say(settings: RunSettings, text: str) -> None:
    if settings.progress:
        print(text, file=sys.stderr, flush=True)


def _load_records(ds: Mapping[str, Any]) -> Any:
    from ecgprobe.data import load_dataset

    if ds.get("records") is not None:
        return ds["records"]
    return load_dataset(ds["name"], ds.get("root"), **(ds.get("options") or {}))


def _extract_all(study: Study, records: Any, settings: RunSettings) -> tuple[dict, dict, dict]:
    """``({label: {layer: Embeddings}}, {label: encoder or None}, {"label: extraction": s})``;
    optional encoders that cannot be created are skipped with a warning."""
    from ecgprobe.encoders import ENCODERS, create_encoder
    from ecgprobe.extract import align_to_records, extract, load_embeddings
    from ecgprobe.options import parse_options
    from ecgprobe.workflows.plan import wants_layers

    compare_all = "compare" in study.reports and study.compare_layers == "all"
    compare_all = compare_all or ("model" in study.reports and wants_layers(study.analyses, study.settings))
    layers: dict[str, dict[str, Any]] = {}
    encoders: dict[str, Any] = {}
    timings: dict[str, float] = {}
    for spec in study.encoders:
        label = _label(spec, "encoder")
        t0 = time.perf_counter()
        if spec.get("unavailable"):
            _say(settings, f"[{study.name}] encoder {label} skipped (optional): {spec['unavailable']}")
            continue
        try:
            if spec.get("embeddings"):
                emb = align_to_records(load_embeddings(spec["embeddings"]), records)[0]
                layers[label], encoders[label] = {emb.layer: emb}, None
            else:
                opts = spec.get("options") or {}
                if isinstance(opts, list):
                    opts = parse_options(opts, ENCODERS.get(spec["name"]))
                enc = create_encoder(
                    spec["name"], checkpoint=spec.get("checkpoint"), device=settings.device, **opts
                )
                got = extract(enc, records, **settings.extraction(layers="all" if compare_all else "default"))
                layers[label] = got if isinstance(got, dict) else {got.layer: got}
                encoders[label] = enc
        except EcgprobeError as exc:
            if spec.get("optional"):
                _say(settings, f"[{study.name}] encoder {label} skipped (optional): {exc}")
                continue
            raise
        timings[f"{label}: extraction"] = round(time.perf_counter() - t0, 3)
        dim = next(iter(layers[label].values())).dim
        _say(
            settings, f"[{study.name}] {label}: {dim}-d embeddings in {timings[f'{label}: extraction']:.1f} s"
        )
    return layers, encoders, timings


def _build(
    planned: PlannedReport,
    study: Study,
    records: Any,
    ds: Mapping[str, Any],
    layers: Mapping[str, dict[str, Any]],
    encoders: Mapping[str, Any],
    timings: Mapping[str, float],
) -> Any:
    """The report ``planned`` asks for (``None`` when one of its encoders was skipped)."""
    from ecgprobe.settings import final_layer
    from ecgprobe.workflows.compare import compare_report, scarcity_report
    from ecgprobe.workflows.model import model_report

    subjects = [s for s in planned.subjects if s in layers]
    if not subjects or (planned.kind != "scarcity" and len(subjects) < len(planned.subjects)):
        return None
    titles = {e["label"]: e.get("title") or e["label"] for e in study.encoders if "label" in e}
    on = ds.get("title") or records.name
    mine = {k: v for k, v in timings.items() if k.split(":")[0] in subjects}
    settings = study.settings
    if planned.kind == "model":
        (label,) = subjects
        return model_report(
            layers[label],
            records,
            settings=settings,
            encoder=encoders[label],
            name=label,
            title=f"{titles.get(label, label)} on {on}",
            analyses=study.analyses,
            checkpoint=next((e.get("checkpoint") for e in study.encoders if e.get("label") == label), None),
            extra_timings=mine,
        )
    if planned.kind == "scarcity":
        chosen = study.analyses.get("scarcity") if isinstance(study.analyses, Mapping) else None
        return scarcity_report(
            {s: final_layer(layers[s]) for s in subjects},
            records,
            settings=settings,
            encoders={s: encoders[s] for s in subjects},
            title=f"Data scarcity on {on}: " + ", ".join(titles.get(s, s) for s in subjects),
            scarcity=chosen,
            extra_timings=mine,
        )
    a, b = subjects
    return compare_report(
        layers[a],
        layers[b],
        records,
        settings=settings,
        names=(a, b),
        encoders=(encoders[a], encoders[b]),
        title=f"{titles.get(a, a)} vs {titles.get(b, b)} on {on}",
        extra_timings=mine,
    )


def _benchmark_set(study: Study, ds: Mapping[str, Any], records: Any, layers: Mapping[str, Any]) -> Any:
    """The dataset's entry of the benchmark: its records and the final-layer embeddings of the
    benchmark's encoders that were extracted (optional ones may have been skipped)."""
    from ecgprobe.settings import final_layer
    from ecgprobe.workflows.benchmark import BenchmarkSet

    chosen = [e for e in (study.benchmark or {}).get("encoders", []) if e in layers]
    pool = f"{ds['name']}:{ds.get('root') or records.name}"  # label sets of one dataset share patients
    return BenchmarkSet(_label(ds, "dataset"), pool, records, {e: final_layer(layers[e]) for e in chosen})


def _write_benchmark(
    study: Study,
    sets: Mapping[str, Any],
    formats: tuple[str, ...],
    force: bool,
    ray: bool,
    ray_address: str | None,
) -> tuple[Path, Any, dict[str, Path]] | None:
    """Run the benchmark over the collected sets and write ``out/benchmark/`` (None when fewer
    than two of its encoders could be extracted)."""
    from ecgprobe.report.document import Report
    from ecgprobe.workflows.benchmark import benchmark
    from ecgprobe.workflows.benchmark_io import load_references, write_benchmark_csv

    spec = study.benchmark or {}
    have = [e for e in spec["encoders"] if all(e in s.embeddings for s in sets.values())]
    if len(have) < 2:
        _say(
            study.settings,
            f"[{study.name}] benchmark not written: fewer than two of its encoders were extracted",
        )
        return None
    t0 = time.perf_counter()
    res = benchmark(
        sets,
        have,
        tasks=spec["tasks"],
        transfer=spec["transfer"],
        settings=study.settings,
        probe=spec.get("probe"),
        min_positives=spec["min_positives"],
        seeds=spec.get("seeds", [0]),
        train_fraction=spec.get("train_fraction", 1.0),
        references=load_references(spec["references"]) if spec.get("references") else (),
        ray=ray,
        ray_address=ray_address,
    )
    skipped = sorted(set(spec["encoders"]) - set(have))
    if skipped:
        res.notes.append(f"encoders skipped (could not be created or extracted): {', '.join(skipped)}")
    _say(
        study.settings,
        f"[{study.name}] benchmark: {res.metrics['n_fits']} probe fits in {time.perf_counter() - t0:.1f} s",
    )
    report = Report(
        {"benchmark": res},
        title=study.title or f"ecgprobe benchmark {study.name}",
        mode="benchmark",
        subjects=have,
        context={"run": {"seed": study.settings.seed, "command": "run", "ray": ray}},
    )
    folder = study.out / "benchmark"
    names = [*Report.output_names(formats), "leaderboard.csv", "cells.csv"]
    with Output(folder, names, force=force, option="out:").staged() as tmp:
        files = report.write_files(tmp, formats)
        files.update(write_benchmark_csv(res, tmp))
    return folder, report, {kind: folder / path.name for kind, path in files.items()}


def run_study(
    study: Study,
    *,
    force: bool = False,
    formats: tuple[str, ...] = ("html", "pdf"),
    ray: bool = False,
    ray_address: str | None = None,
) -> Written:
    """Run every dataset × report of the study (and its benchmark); returns the report folders
    written.

    Args:
        study: the study.
        force: overwrite existing outputs.
        formats: report formats.
        ray: run the benchmark's probe fits as Ray tasks (``ecgprobe run --ray``).
        ray_address: the Ray cluster (``None``: a local Ray).

    Raises:
        ConfigError: invalid settings, or outputs that exist without ``force``.
        EcgprobeError: a dataset or a non-optional encoder that cannot be loaded.
    """
    from ecgprobe._io import atomic_write
    from ecgprobe.report.document import Report
    from ecgprobe.report.index import render_index
    from ecgprobe.workflows.compare import write_scarcity_csv
    from ecgprobe.workflows.plan import plan_analyses

    settings = study.settings
    plan_analyses(study.analyses, settings)  # fail on bad settings before any work
    Output(study.out, study_outputs(study, formats), force=force, option="out:").check()
    from tqdm.auto import tqdm

    written = Written()
    plan = planned_reports(study)
    bench_sets: dict[str, Any] = {}
    # the outer bar of the nested ones (extraction, then each report's analyses below it)
    bar = tqdm(
        total=len(study.datasets) * len(plan),
        desc=study.name,
        unit="report",
        disable=not settings.progress,
        file=sys.stderr,
    )
    for ds in study.datasets:
        records = _load_records(ds)
        _say(settings, f"[{study.name}] {_label(ds, 'dataset')}: {len(records)} records")
        bar.set_postfix_str(f"extracting for {_label(ds, 'dataset')}")
        layers, encoders, timings = _extract_all(study, records, settings)
        if study.benchmark is not None:
            bench_sets[_label(ds, "dataset")] = _benchmark_set(study, ds, records, layers)
        base = study.out / dataset_folder(study, ds)
        for planned in plan:
            bar.set_postfix_str(f"{planned.kind} {planned.folder}")
            report = _build(planned, study, records, ds, layers, encoders, timings)
            bar.update()
            if report is None:
                _say(
                    settings, f"[{study.name}] {planned.folder} not written: one of its encoders was skipped"
                )
                continue
            folder = base / planned.folder
            extra = ["scarcity.csv"] if planned.kind == "scarcity" else []
            with Output(
                folder, [*Report.output_names(formats), *extra], force=force, option="out:"
            ).staged() as tmp:
                files = report.write_files(tmp, formats)
                if extra:
                    files["csv"] = write_scarcity_csv(report, tmp / "scarcity.csv")
            written.append(folder)
            written.reports.append(report)
            written.files.append({kind: folder / path.name for kind, path in files.items()})
    bar.close()
    if study.benchmark is not None:
        got = _write_benchmark(study, bench_sets, formats, force, ray, ray_address)
        if got is not None:
            written.append(got[0])
            written.reports.append(got[1])
            written.files.append(got[2])
    if written and study.index:
        root = study.out
        entries = [
            (f"{_KIND_TITLES[r.mode]}: {Path(p).resolve().relative_to(root.resolve()).as_posix()}", p, r)
            for p, r in zip(written, written.reports)
        ]
        intro = study.intro or (
            f"Study {study.name}: {len(written)} reports (seed {settings.seed}, profile {settings.profile})."
        )
        atomic_write(
            root / "index.html",
            render_index(study.title or f"ecgprobe study {study.name}", intro, entries, root).encode(),
        )
    return written
