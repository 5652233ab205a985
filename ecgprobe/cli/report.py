"""``ecgprobe report``, ``ecgprobe compare`` and ``ecgprobe run``: holistic reports as HTML, PDF
and ``results.json``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from ecgprobe._defaults import COMPARE_ANALYSES, MODEL_ANALYSES
from ecgprobe.cli import common
from ecgprobe.exceptions import ConfigError
from ecgprobe.outputs import parse_formats
from ecgprobe.settings import FINAL_LAYER, parse_layers, split_list

__all__ = ["register"]


def _report_args(p: argparse.ArgumentParser, default: tuple[str, ...]) -> None:
    g = p.add_argument_group("report")
    g.add_argument("--title", default=None, help="report title (default: encoder and dataset)")
    g.add_argument("--format", default="html,pdf", help="html, pdf or html,pdf (default both)")
    g.add_argument(
        "--profile",
        choices=("full", "quick"),
        default="full",
        help="analysis settings: full (the analyzers' defaults) or quick (fewer resamples and seeds)",
    )
    g.add_argument(
        "--seed", type=common.non_negative_int, default=0, help="seed of every analysis (default 0)"
    )
    g.add_argument(
        "--analyses",
        default=None,
        metavar="A,B,...",
        help=f"only these analyses (default all: {', '.join(default)})",
    )
    g.add_argument("--skip", default=None, metavar="A,B,...", help="leave these analyses out")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the report, compare and run commands."""
    p = sub.add_parser(
        "report",
        help="holistic report of one encoder (HTML + PDF + results.json)",
        description="Extract (cached), run every analysis (cached), write report.html, report.pdf, results.json. "
        "With --from DIR, re-render a saved report from its results.json alone.",
    )
    common.add_dataset_args(p, required=False)
    common.add_encoder_args(p)
    common.add_extraction_args(p)
    common.add_output_args(p, required=False)
    _report_args(p, MODEL_ANALYSES)
    p.add_argument(
        "--from", dest="from_dir", type=Path, metavar="DIR", help="re-render the report saved in DIR"
    )
    p.set_defaults(handler=cmd_report)

    p = sub.add_parser(
        "compare",
        help="two encoders side by side on the same records",
        description="Paired bootstrap differences per label and macro, layer-by-layer CKA, mutual kNN, Procrustes, "
        "UMAPs and scarcity curves of two encoders.",
    )
    common.add_dataset_args(p)
    common.add_encoder_args(p, suffix="-a")
    common.add_encoder_args(p, suffix="-b")
    common.add_extraction_args(p)
    common.add_output_args(p)
    _report_args(p, COMPARE_ANALYSES)
    p.add_argument(
        "--layers",
        default="all",
        help="layers for the CKA matrix: all (default), embedding, or a comma list valid for both encoders",
    )
    p.set_defaults(handler=cmd_compare)

    p = sub.add_parser(
        "run",
        help="run a study config (encoders x datasets x label sets x analyses)",
        description="Run analyses/NAME.yaml: every report it asks for, results cached so that a re-run re-renders.",
    )
    p.add_argument("config", type=Path, help="the study's YAML file (see analyses/)")
    p.add_argument(
        "--out", type=common.out_folder, default=None, help="output folder (default: the config's out:)"
    )
    p.add_argument("--force", action="store_true", help="overwrite existing reports")
    p.add_argument("--profile", choices=("full", "quick"), default=None, help="override the config's profile")
    p.add_argument("--format", default="html,pdf", help="html, pdf or html,pdf (default both)")
    p.add_argument(
        "--device", default=None, help="override the config's extraction device: auto, cpu or cuda[:N]"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars or summary lines")
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="run the benchmark's probe fits as Ray tasks (a local Ray without ADDRESS; needs ecgprobe[ray])",
    )
    p.set_defaults(handler=cmd_run)


def _plan(args: argparse.Namespace, default: tuple[str, ...]) -> list[str] | None:
    """The analyses ``--analyses``/``--skip`` leave, checked (names and profile) before any work."""
    from ecgprobe.workflows.plan import resolve_analyses

    chosen = split_list(args.analyses, option="--analyses")
    skip = set(split_list(args.skip, option="--skip") or ())
    if chosen is None and not skip:
        names = None
    else:
        names = [a for a in (chosen or list(default)) if a not in skip]
        if not names:
            raise ConfigError("no analysis left to run (check --analyses and --skip)")
    resolve_analyses(names, profile=args.profile, default=default)
    return names


def _done(args: argparse.Namespace, report: Any, written: dict[str, Path], t0: float) -> int:
    if not args.quiet:
        for kind, path in written.items():
            print(f"{kind:5s} {path}")
        for name, why in report.context.get("skipped", {}).items():
            print(f"note  {name} not computed: {why}", file=sys.stderr)
        print(f"done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Build (or re-render) the report of one encoder."""
    from ecgprobe.report import Report
    from ecgprobe.workflows.model import model_report
    from ecgprobe.workflows.plan import wants_layers

    t0 = time.perf_counter()
    formats = parse_formats(args.format)
    if args.from_dir is not None:
        if args.dataset or args.encoder or args.embeddings:
            raise ConfigError(
                "--from re-renders saved results: do not pass --dataset/--encoder/--embeddings with it"
            )
        report = Report.load(args.from_dir)
        return _done(
            args, report, report.write(args.out or args.from_dir, formats=formats, force=args.force), t0
        )
    if not args.dataset:
        raise ConfigError(
            "pass --dataset (and --root) with --encoder or --embeddings, or --from DIR to re-render"
        )
    if args.out is None:
        raise ConfigError("pass --out DIR for the report")
    settings = common.settings_from_args(args)
    common.check_output(args, Report.output_names(formats))  # fail before any work
    plan = _plan(args, MODEL_ANALYSES)
    records = common.dataset_from_args(args)
    # created once: it extracts, and the input attributions differentiate through it
    encoder = common.encoder_from_args(args) if args.encoder else None
    t1 = time.perf_counter()
    layers = "all" if wants_layers(plan, settings) else "default"  # layer_probe: every layer
    emb = common.embeddings_from_args(args, records, settings, layers=layers, encoder=encoder)
    extract_s = time.perf_counter() - t1
    report = model_report(
        emb,
        records,
        settings=settings,
        encoder=encoder,
        name=args.encoder or (args.embeddings.name if args.embeddings else None),
        title=args.title,
        analyses=plan,
        checkpoint=args.checkpoint,
        extra_timings={"extraction": round(extract_s, 3)},
    )
    return _done(args, report, report.write(args.out, formats=formats, force=args.force), t0)


def cmd_compare(args: argparse.Namespace) -> int:
    """Compare two encoders on the same records."""
    from ecgprobe.report import Report
    from ecgprobe.workflows.compare import compare_report

    t0 = time.perf_counter()
    formats = parse_formats(args.format)
    settings = common.settings_from_args(args, layers=parse_layers(args.layers, option="--layers"))
    common.check_output(args, Report.output_names(formats))
    plan = _plan(args, COMPARE_ANALYSES)
    records = common.dataset_from_args(args)
    sides, names, encoders, timings = [], [], [], {}
    for suffix in ("-a", "-b"):
        dest = suffix.replace("-", "_")
        t1 = time.perf_counter()
        enc = common.encoder_from_args(args, suffix=suffix) if getattr(args, f"encoder{dest}") else None
        got = common.embeddings_from_args(args, records, settings, suffix=suffix, encoder=enc)
        sides.append(got if isinstance(got, dict) else {got.layer: got})
        name = getattr(args, f"encoder{dest}") or Path(getattr(args, f"embeddings{dest}") or suffix).name
        names.append(name)
        timings[f"{name}: extraction"] = round(time.perf_counter() - t1, 3)
        encoders.append(enc)
    report = compare_report(
        sides[0],
        sides[1],
        records,
        settings=settings,
        names=names,
        encoders=encoders,
        title=args.title,
        analyses=plan,
        extra_timings=timings,
    )
    return _done(args, report, report.write(args.out, formats=formats, force=args.force), t0)


def cmd_run(args: argparse.Namespace) -> int:
    """Run a study config."""
    from ecgprobe.workflows.study import load_study
    from ecgprobe.workflows.study_runner import run_study

    t0 = time.perf_counter()
    formats = parse_formats(args.format)
    study = load_study(args.config)
    if args.out is not None:
        study.out = args.out
    changes: dict[str, Any] = {"progress": not args.quiet}
    if args.profile is not None:
        changes["profile"] = args.profile
    if args.device is not None:
        changes["device"] = args.device
    study.settings = study.settings.replace(**changes)
    ray = args.ray is not None
    folders = run_study(
        study,
        force=args.force,
        formats=formats,
        ray=ray,
        ray_address=None if args.ray in (None, "local") else args.ray,
    )
    if not args.quiet:
        for folder in folders:
            print(folder)
        print(f"done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


def scarcity_study(args: argparse.Namespace, scarcity: dict[str, Any]) -> int:
    """``ecgprobe scarcity --encoders A,B,...``: one curve per encoder, rendered as a study report
    (a study of one dataset and one scarcity report, written into ``--out`` itself)."""
    from ecgprobe.workflows.study import Study
    from ecgprobe.workflows.study_runner import run_study

    t0 = time.perf_counter()
    names = split_list(args.encoders, option="--encoders") or []
    if args.encoder or args.embeddings:
        raise ConfigError(
            "pass either --encoders A,B,... (a study) or --encoder/--embeddings (one curve), not both"
        )
    formats = parse_formats(args.format)
    settings = common.settings_from_args(args, layers=parse_layers(args.layer, option="--layer"))
    study = Study(
        name="scarcity",
        datasets=[{"name": args.dataset, "label": "dataset", "records": common.dataset_from_args(args)}],
        encoders=[
            {"name": n, "label": n, "options": list(args.encoder_options), "checkpoint": args.checkpoint}
            for n in names
        ],
        out=args.out,
        settings=settings,
        analyses={"scarcity": scarcity},
        reports={"scarcity": "all"},
        compare_layers=FINAL_LAYER,
        dataset_folders=False,
        folders={"scarcity": "."},
        index=False,
    )
    written = run_study(study, force=args.force, formats=formats)
    report = written.reports[0]
    if not args.quiet:
        for subject, res in report.by_subject("scarcity").items():
            m = res.metrics
            key = "fraction_for_95pct" if m.get("mode") == "fraction" else "samples_for_95pct"
            print(f"{subject}: full macro AUROC {m['full_macro_auroc']:.4f}; {key} {m.get(key)}")
    return _done(args, report, written.files[0], t0)
