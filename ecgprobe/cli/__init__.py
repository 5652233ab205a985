"""The ``ecgprobe`` command line: thin wrappers that parse arguments, call the public API,
print, and set the exit code.

Each command group lives in its own module of this package exposing ``register(subparsers)``;
modules are discovered, so a new command is one new file. Errors ecgprobe raises on purpose are printed as one
clear message (exit code 1); anything unexpected is reported briefly with a hint to rerun with
``ECGPROBE_DEBUG=1`` for the traceback (exit code 3).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import traceback
from collections.abc import Sequence

from ecgprobe import __version__
from ecgprobe.exceptions import EcgprobeError

__all__ = ["build_parser", "main"]

_NOT_COMMANDS = ("common",)

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered command."""
    parser = argparse.ArgumentParser(
        prog="ecgprobe",
        description="What has an ECG foundation model really learned? Extract embeddings, probe, compare, report.",
    )
    parser.add_argument("--version", action="version", version=f"ecgprobe {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
        if name not in _NOT_COMMANDS:
            importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (also used by the console script)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.handler(args)
        return EXIT_OK if code is None else int(code)
    except EcgprobeError as exc:
        print(f"ecgprobe {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # e.g. `ecgprobe datasets | head`: the reader left, nothing is wrong
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115  silence the flush at interpreter exit
        return EXIT_OK
    except KeyboardInterrupt:
        print(f"ecgprobe {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # the last line of defence: no bare tracebacks for users
        if os.environ.get("ECGPROBE_DEBUG"):
            traceback.print_exc()
        print(
            f"ecgprobe {args.command}: internal error: {type(exc).__name__}: {exc}\n"
            "This is a bug in ecgprobe; rerun with ECGPROBE_DEBUG=1 for the traceback and report it.",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
