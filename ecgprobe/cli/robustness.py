"""``ecgprobe robustness``: the robustness card of one encoder (noise at the noise stress test's
SNRs, reduced lead sets, sampling-rate round trips, amplitude scaling), written as
``results.json`` (+ ``.npz``), ``conditions.csv`` and the report (HTML and/or PDF)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from ecgprobe.cli import common
from ecgprobe.exceptions import ConfigError
from ecgprobe.outputs import Output, parse_formats
from ecgprobe.settings import split_list

__all__ = ["register"]

_KINDS = "baseline_wander, muscle, electrode_motion, mains, leads, resample, amplitude (or 'noise')"


def register(sub: argparse._SubParsersAction) -> None:
    """Add the robustness command."""
    p = sub.add_parser(
        "robustness",
        help="robustness card: a clean-trained probe on noisy, lead-reduced, resampled test records",
        description="Fit the linear probe once on clean embeddings, perturb the test records (MIT-BIH noise "
        "stress test SNRs 24..-6 dB of baseline wander, muscle, electrode motion and mains noise; lead sets "
        "6 limb, I/II/V2, I; sampling-rate round trips; amplitude x0.5, x2), embed them through the cache "
        "and report macro AUROC and its paired-bootstrap drop from clean per condition.",
    )
    common.add_dataset_args(p)
    common.add_encoder_args(p, embeddings=False)
    common.add_extraction_args(p)
    common.add_output_args(p)
    g = p.add_argument_group("robustness")
    g.add_argument(
        "--perturbations",
        default=None,
        metavar="A,B,...",
        help=f"which perturbations (default all: {_KINDS})",
    )
    g.add_argument(
        "--levels",
        default=None,
        metavar="L,L,...",
        help="SNR levels in dB of the noise perturbations (default 24,18,12,6,0,-6)",
    )
    g.add_argument(
        "--noise-records",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder with the MIT-BIH noise stress test records bw, em, ma (real noise; default: generated)",
    )
    g.add_argument(
        "--mains-hz", type=float, choices=(50.0, 60.0), default=50.0, help="mains frequency (default 50)"
    )
    g.add_argument(
        "--n-resamples", type=common.positive_int, default=None, help="bootstrap resamples (default 1000)"
    )
    g.add_argument(
        "--ci-level", type=common.open_interval, default=None, help="confidence level (default 0.95)"
    )
    g.add_argument(
        "--seed", type=common.non_negative_int, default=0, help="seed of the noise and the bootstrap"
    )
    g.add_argument(
        "--profile", choices=("full", "quick"), default="full", help="probe settings profile (default full)"
    )
    g.add_argument("--title", default=None, help="report title")
    g.add_argument("--format", default="html,pdf", help="html, pdf or html,pdf (default both)")
    p.set_defaults(handler=cmd_robustness)


def _levels(text: str | None) -> list[float] | None:
    items = split_list(text, option="--levels")
    if items is None:
        return None
    try:
        return [float(v) for v in items]
    except ValueError:
        raise ConfigError(f"--levels {text!r} must be numbers in dB, e.g. 24,12,0,-6") from None


def cmd_robustness(args: argparse.Namespace) -> int:
    """Build the robustness card and its report."""
    from ecgprobe.report import Report
    from ecgprobe.workflows.robustness import conditions_csv, plan_conditions, robustness_report

    t0 = time.perf_counter()
    formats = parse_formats(args.format)
    settings = common.settings_from_args(args)
    perturbations = split_list(args.perturbations, option="--perturbations")
    levels = _levels(args.levels)
    names = [*Report.output_names(formats), "conditions.csv"]
    output = Output(args.out, names, force=args.force).check()  # fail before any work
    records = common.dataset_from_args(args)
    plan_conditions(perturbations, levels, records.fs)  # unknown names fail before any extraction
    encoder = common.encoder_from_args(args)
    report = robustness_report(
        encoder,
        records,
        settings=settings,
        title=args.title,
        checkpoint=args.checkpoint,
        perturbations=perturbations,
        levels=levels,
        noise_records=args.noise_records,
        mains_hz=args.mains_hz,
    )
    card = report.require("robustness")
    with output.staged() as tmp:
        written: dict[str, Any] = report.write_files(tmp, formats)
        written["csv"] = conditions_csv(card, tmp / "conditions.csv")
    if not args.quiet:
        for kind, path in written.items():
            print(f"{kind:5s} {output.path(Path(path).name)}")
        m = card.metrics
        print(
            f"{m['encoder']}: clean macro AUROC {m['clean_macro_auroc']:.4f}; {m['n_conditions']} conditions, "
            f"{m['n_skipped']} skipped; done in {time.perf_counter() - t0:.1f} s",
            file=sys.stderr,
        )
    return 0
