"""``ecgprobe demo``: the README's first command — reports on generated ECGs, no download.

On a synthetic 12-lead dataset whose labels have known physiological causes, with the reference
encoders (``random-resnet1d``: random weights, the floor any pretrained model must beat;
``handcrafted``: interpretable ECG features) and, when the ``openecg`` package is installed, the
real pretrained ``openecg-codec``, it writes:

- model reports of the pretrained encoder and of ``random-resnet1d`` (of ``random-resnet1d``
  alone without openecg): the planted site confounder and sex gap show in them;
- a comparison of the pretrained encoder with ``random-resnet1d`` (of ``random-resnet1d`` with
  ``handcrafted`` without openecg);
- a data-scarcity study over all of them (with ``scarcity.csv``).

Embeddings and analyzer results are cached under ``--out``/cache, so running it again
re-renders in seconds. The ``quick`` profile keeps it to a few minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

from ecgprobe.cli.common import non_negative_int, out_folder, plain, positive_int
from ecgprobe.outputs import parse_formats


def register(sub: argparse._SubParsersAction) -> None:
    """Add the demo command."""
    p = sub.add_parser(
        "demo",
        help="reports on generated 12-lead ECGs (no download): one model, a comparison, a scarcity study",
        description=plain("\n\n".join(__doc__.split("\n\n")[1:4])) if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--out",
        type=out_folder,
        default=Path("ecgprobe-out/demo"),
        help="output folder (default ecgprobe-out/demo)",
    )
    p.add_argument(
        "--n-records", type=positive_int, default=400, help="synthetic records to generate (default 400)"
    )
    p.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of the data and of every analysis (default 0)"
    )
    p.add_argument(
        "--profile", choices=("quick", "full"), default="quick", help="analysis settings (default quick)"
    )
    p.add_argument("--no-openecg", action="store_true", help="leave the pretrained openecg-codec out")
    p.add_argument("--format", default="html,pdf", help="html, pdf or html,pdf (default both)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--force", action="store_true", help="overwrite the reports of an earlier run")
    p.add_argument("--quiet", action="store_true", help="no progress bars or summary lines")
    p.set_defaults(handler=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    """Build the demo study and run it: three reports and an index."""
    from ecgprobe.workflows.demo import demo_study
    from ecgprobe.workflows.study_runner import run_study

    t0 = time.perf_counter()
    formats = parse_formats(args.format)
    study = demo_study(
        args.out,
        n_records=args.n_records,
        seed=args.seed,
        profile=args.profile,
        use_openecg=not args.no_openecg,
        device=args.device,
        progress=not args.quiet,
    )
    if not args.no_openecg and importlib.util.find_spec("openecg") is None and not args.quiet:
        print(
            "note: the openecg package is not installed (Python >= 3.11: pip install 'ecgprobe[openecg]'); "
            "the demo runs on the reference encoders only",
            file=sys.stderr,
        )
    written = run_study(study, force=args.force, formats=formats)
    if not args.quiet:
        for folder, report in zip(written, written.reports):
            title = {"model": "model report", "compare": "comparison", "scarcity": "data-scarcity study"}[
                report.mode
            ]
            print(f"{title:20s} {Path(folder) / 'report.html'}")
        print(f"{'index':20s} {Path(args.out) / 'index.html'}")
        print(f"done in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0
