"""``ecgprobe datasets`` and ``ecgprobe info``."""

from __future__ import annotations

import argparse
import textwrap

from ecgprobe.cli.common import add_dataset_args, dataset_from_args
from ecgprobe.data import DATASETS, dataset_options


def register(sub: argparse._SubParsersAction) -> None:
    """Add the data commands."""
    p = sub.add_parser("datasets", help="list dataset loaders and their options")
    p.set_defaults(handler=cmd_datasets)
    p = sub.add_parser(
        "info", help="load a dataset and print counts, fs, leads and label prevalence per split"
    )
    add_dataset_args(p)
    p.set_defaults(handler=cmd_info)


def cmd_datasets(args: argparse.Namespace) -> int:
    """Print every loader with its options and defaults."""
    for entry in DATASETS:
        root = "" if entry.info.get("needs_root", True) else "  (generated: no --root)"
        print(f"{entry.name}: {entry.info.get('summary', '')}{root}")
        for opt in dataset_options(entry.name):
            doc = textwrap.shorten(opt.doc, 90, placeholder="...") if opt.doc else ""
            arg = f"{opt.name}={opt.default!r}"
            print(f"    -o {arg:<30} {doc}" if len(arg) <= 30 else f"    -o {arg}\n       {'':<30} {doc}")
        print()
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """Print a dataset's summary."""
    print(dataset_from_args(args).summary())
    return 0
