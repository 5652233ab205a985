"""``ecgprobe demo``: the README's first command, on generated data (no download)."""

from __future__ import annotations

import argparse

import ecgprobe


def register(sub: argparse._SubParsersAction) -> None:
    """Add the demo command."""
    p = sub.add_parser("demo", help="run the bundled demo on generated 12-lead ECGs (no download)")
    p.add_argument("--n-records", type=int, default=600, help="synthetic records to generate (default 600)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    """Generate the synthetic dataset and summarise it."""
    records = ecgprobe.load_dataset("synthetic", n_records=args.n_records, seed=args.seed)
    print(records.summary())
    return 0
