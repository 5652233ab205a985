"""Argument helpers shared by the commands: dataset selection and ``-o key=value`` options."""

from __future__ import annotations

import argparse
import ast
import inspect
from typing import Any

from ecgprobe.data import DATASETS, RecordSet, load_dataset
from ecgprobe.exceptions import ConfigError

__all__ = ["add_dataset_args", "dataset_from_args", "parse_options"]


def add_dataset_args(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``--dataset NAME --root DIR -o key=value ...``."""
    g = parser.add_argument_group("dataset")
    g.add_argument(
        "--dataset", required=required, metavar="NAME", help="dataset loader (see `ecgprobe datasets`)"
    )
    g.add_argument("--root", metavar="DIR", help="dataset folder (not needed for synthetic)")
    g.add_argument(
        "-o",
        "--option",
        dest="options",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="loader option, repeatable, e.g. -o sampling_rate=100 -o labels=all",
    )


def _coerce(raw: str, default: Any) -> Any:
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    if isinstance(default, bool) and isinstance(value, str):
        low = value.lower()
        if low in ("true", "yes", "1"):
            return True
        if low in ("false", "no", "0"):
            return False
    if isinstance(default, tuple):
        if isinstance(value, str) and "," in value:
            value = tuple(v.strip() for v in value.split(","))
        return tuple(value) if isinstance(value, (list, tuple)) else (value,)
    return value


def parse_options(pairs: list[str], dataset: str) -> dict[str, Any]:
    """Turn ``["key=value", ...]`` into loader keyword options, typed by the loader's defaults."""
    params = inspect.signature(DATASETS.get(dataset)).parameters
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"option {pair!r} is not KEY=VALUE (e.g. -o sampling_rate=100)")
        key = key.strip().replace("-", "_")
        default = params[key].default if key in params else None
        out[key] = _coerce(raw.strip(), default)
    return out


def dataset_from_args(args: argparse.Namespace) -> RecordSet:
    """Load the dataset named by ``--dataset/--root/-o``."""
    options = parse_options(args.options, args.dataset)
    return load_dataset(args.dataset, args.root, **options)
