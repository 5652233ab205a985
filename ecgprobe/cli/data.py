"""``ecgprobe datasets`` and ``ecgprobe info``."""

from __future__ import annotations

import argparse
import textwrap

from ecgprobe.cli.common import add_dataset_args, dataset_from_args, plain


def register(sub: argparse._SubParsersAction) -> None:
    """Add the data commands."""
    p = sub.add_parser(
        "datasets",
        help="list dataset loaders and their options",
        description="List every dataset loader with its -o options, their defaults and what they do.",
    )
    p.set_defaults(handler=cmd_datasets)
    p = sub.add_parser(
        "info",
        help="load a dataset and print counts, fs, leads and label prevalence per split",
        description="Load a dataset (with its -o options) and print what was loaded: records, patients, "
        "sampling rate, leads, label prevalence per split and the loader's notes.",
    )
    add_dataset_args(p)
    p.set_defaults(handler=cmd_info)


def cmd_datasets(args: argparse.Namespace) -> int:
    """Print every loader with its options and defaults."""
    from ecgprobe.data import DATASETS, dataset_options

    for entry in DATASETS:
        root = "" if entry.info.get("needs_root", True) else "  (generated: no --root)"
        print(f"{entry.name}: {entry.info.get('summary', '')}{root}")
        for opt in dataset_options(entry.name):
            doc = textwrap.shorten(plain(opt.doc), 90, placeholder="...") if opt.doc else ""
            arg = f"{opt.name}={opt.default!r}"
            print(f"    -o {arg:<30} {doc}" if len(arg) <= 30 else f"    -o {arg}\n       {'':<30} {doc}")
        print()
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """Print a dataset's summary."""
    print(dataset_from_args(args).summary())
    return 0
