"""``ecgprobe report``, ``ecgprobe compare`` and ``ecgprobe run``: holistic reports as HTML, PDF
and ``results.json``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from ecgprobe.cli.common import (
    add_dataset_args,
    add_encoder_args,
    add_extraction_args,
    add_output_args,
    check_output,
    dataset_from_args,
    default_cache_dir,
    embeddings_from_args,
    encoder_from_args,
    non_negative_int,
    out_folder,
)
from ecgprobe.exceptions import ConfigError

__all__ = ["register"]


def _csv(text: str | None) -> list[str] | None:
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


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
    g.add_argument("--seed", type=non_negative_int, default=0, help="seed of every analysis (default 0)")
    g.add_argument(
        "--analyses",
        default=None,
        metavar="A,B,...",
        help=f"only these analyses (default all: {', '.join(default)})",
    )
    g.add_argument("--skip", default=None, metavar="A,B,...", help="leave these analyses out")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the report, compare and run commands."""
    from ecgprobe._defaults import COMPARE_ANALYSES, MODEL_ANALYSES

    p = sub.add_parser(
        "report",
        help="holistic report of one encoder (HTML + PDF + results.json)",
        description="Extract (cached), run every analysis (cached), write report.html, report.pdf, results.json. "
        "With --from DIR, re-render a saved report from its results.json alone.",
    )
    add_dataset_args(p, required=False)
    add_encoder_args(p)
    add_extraction_args(p)
    add_output_args(p, required=False)
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
    add_dataset_args(p)
    add_encoder_args(p, suffix="-a")
    add_encoder_args(p, suffix="-b")
    add_extraction_args(p)
    add_output_args(p)
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
    p.add_argument("--out", type=out_folder, default=None, help="output folder (default: the config's out:)")
    p.add_argument("--force", action="store_true", help="overwrite existing reports")
    p.add_argument("--profile", choices=("full", "quick"), default=None, help="override the config's profile")
    p.add_argument("--format", default="html,pdf", help="html, pdf or html,pdf (default both)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or summary lines")
    p.set_defaults(handler=cmd_run)


def _formats(args: argparse.Namespace) -> tuple[str, ...]:
    formats = tuple(_csv(args.format) or ())
    bad = [f for f in formats if f not in ("html", "pdf")]
    if bad or not formats:
        raise ConfigError(f"--format must be html, pdf or html,pdf; got {args.format!r}")
    return formats


def _plan(args: argparse.Namespace, default: tuple[str, ...]) -> list[str] | None:
    """The analyses ``--analyses``/``--skip`` leave, checked (names and profile) before any work."""
    from ecgprobe.report.pipeline import resolve_analyses

    chosen = _csv(args.analyses)
    skip = set(_csv(args.skip) or ())
    if chosen is None and not skip:
        names = None
    else:
        names = [a for a in (chosen or list(default)) if a not in skip]
        if not names:
            raise ConfigError("no analysis left to run (check --analyses and --skip)")
    resolve_analyses(names, profile=args.profile, default=default)
    return names


def _cache_root(args: argparse.Namespace) -> Path | None:
    return None if args.no_cache else (args.cache_dir or default_cache_dir())


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
    from ecgprobe.report.pipeline import MODEL_ANALYSES, model_report

    t0 = time.perf_counter()
    formats = _formats(args)
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
    check_output(args, Report.output_names(formats))  # fail before any work
    plan = _plan(args, MODEL_ANALYSES)
    records = dataset_from_args(args)
    # created once: it extracts, and the input attributions differentiate through it
    encoder = encoder_from_args(args) if args.encoder else None
    t1 = time.perf_counter()
    emb = embeddings_from_args(args, records, encoder=encoder)
    extract_s = time.perf_counter() - t1
    report = model_report(
        emb,
        records,
        encoder=encoder,
        name=args.encoder or (args.embeddings.name if args.embeddings else None),
        title=args.title,
        analyses=plan,
        profile=args.profile,
        seed=args.seed,
        cache_dir=_cache_root(args),
        checkpoint=args.checkpoint,
        progress=not args.quiet,
        extra_timings={"extraction": round(extract_s, 3)},
    )
    return _done(args, report, report.write(args.out, formats=formats, force=args.force), t0)


def cmd_compare(args: argparse.Namespace) -> int:
    """Compare two encoders on the same records."""
    from ecgprobe.report import Report
    from ecgprobe.report.multi import compare_report
    from ecgprobe.report.pipeline import COMPARE_ANALYSES

    t0 = time.perf_counter()
    formats = _formats(args)
    check_output(args, Report.output_names(formats))
    plan = _plan(args, COMPARE_ANALYSES)
    records = dataset_from_args(args)
    layers: Any = "all" if args.layers == "all" else None if args.layers == "embedding" else _csv(args.layers)
    sides, names, encoders, timings = [], [], [], {}
    for suffix in ("-a", "-b"):
        dest = suffix.replace("-", "_")
        t1 = time.perf_counter()
        enc = encoder_from_args(args, suffix=suffix) if getattr(args, f"encoder{dest}") else None
        got = embeddings_from_args(args, records, layers=layers, suffix=suffix, encoder=enc)
        sides.append(got if isinstance(got, dict) else {got.layer: got})
        name = getattr(args, f"encoder{dest}") or Path(getattr(args, f"embeddings{dest}") or suffix).name
        names.append(name)
        timings[f"{name}: extraction"] = round(time.perf_counter() - t1, 3)
        encoders.append(enc)
    report = compare_report(
        sides[0],
        sides[1],
        records,
        names=names,
        encoders=encoders,
        title=args.title,
        analyses=plan,
        profile=args.profile,
        seed=args.seed,
        cache_dir=_cache_root(args),
        progress=not args.quiet,
        extra_timings=timings,
    )
    return _done(args, report, report.write(args.out, formats=formats, force=args.force), t0)


def cmd_run(args: argparse.Namespace) -> int:
    """Run a study config."""
    from ecgprobe.report.study import load_study, run_study

    t0 = time.perf_counter()
    study = load_study(args.config)
    if args.out is not None:
        study.out = args.out
    if args.profile is not None:
        study.profile = args.profile
    folders = run_study(study, force=args.force, quiet=args.quiet, formats=_formats(args))
    if not args.quiet:
        for folder in folders:
            print(folder)
        print(f"done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


def scarcity_study(args: argparse.Namespace, settings: dict[str, Any]) -> int:
    """``ecgprobe scarcity --encoders A,B,...``: one curve per encoder, rendered as a study report."""
    import copy

    from ecgprobe.report import Report
    from ecgprobe.report.multi import scarcity_report, write_scarcity_csv

    t0 = time.perf_counter()
    names = _csv(args.encoders) or []
    if args.encoder or args.embeddings:
        raise ConfigError(
            "pass either --encoders A,B,... (a study) or --encoder/--embeddings (one curve), not both"
        )
    if len(set(names)) != len(names):
        raise ConfigError(f"--encoders lists an encoder twice: {names}")
    formats = _formats(args)
    output = check_output(args, [*Report.output_names(formats), "scarcity.csv"])
    records = dataset_from_args(args)
    embeddings, timings = {}, {}
    for name in names:
        one = copy.copy(args)
        one.encoder = name
        t1 = time.perf_counter()
        embeddings[name] = embeddings_from_args(one, records, layers=args.layer)
        timings[f"{name}: extraction"] = round(time.perf_counter() - t1, 3)
    report = scarcity_report(
        embeddings,
        records,
        settings=settings,
        seed=args.seed,
        cache_dir=_cache_root(args),
        progress=not args.quiet,
        extra_timings=timings,
    )
    with output.staged() as tmp:  # the report and its CSV together, or neither
        files = report.write_files(tmp, formats)
        files["csv"] = write_scarcity_csv(report, tmp / "scarcity.csv")
    written = {kind: output.path(path.name) for kind, path in files.items()}
    if not args.quiet:
        for subject, res in report.by_subject("scarcity").items():
            m = res.metrics
            key = "fraction_for_95pct" if m.get("mode") == "fraction" else "samples_for_95pct"
            print(f"{subject}: full macro AUROC {m['full_macro_auroc']:.4f}; {key} {m.get(key)}")
    return _done(args, report, written, t0)
