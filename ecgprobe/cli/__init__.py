"""The ``ecgprobe`` command line: thin wrappers that parse arguments, call the public API,
print, and set the exit code.

Each command group lives in its own module of this package exposing ``register(subparsers)``;
modules are discovered, so a new command is one new file. Errors ecgprobe raises on purpose, usage
errors (unknown options, values of the wrong type) and operating-system failures are printed as one
clear line (exit code 1); Python warnings are printed as one line each, without source paths;
anything unexpected is reported briefly with a hint to rerun with ``ECGPROBE_DEBUG=1`` for the
traceback (exit code 3).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from ecgprobe._version import __version__
from ecgprobe.exceptions import ConfigError, EcgprobeError
from ecgprobe.outputs import describe_os_error

__all__ = ["build_parser", "main"]

_NOT_COMMANDS = ("common", "probe_runs")

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class UsageError(ConfigError):
    """A command line argparse cannot parse; ``prog`` is the (sub)command it belongs to."""

    def __init__(self, message: str, prog: str) -> None:
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit code 1, like every other error."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)", self.prog)


def _warning_printer(command: str) -> Callable[..., None]:
    """A ``warnings.showwarning`` printing each distinct warning once, as one line, without the
    source path and line Python would show (those mean nothing to a user of the command line)."""
    seen: set[str] = set()

    def show(
        message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None, line: Any = None
    ) -> None:
        text = " ".join(str(message).split())
        if text in seen:
            return
        seen.add(text)
        origin = "" if f"{os.sep}ecgprobe{os.sep}" in str(filename) else _library(filename)
        print(f"ecgprobe {command}: warning: {text}{origin}", file=sys.stderr)

    return show


def _library(filename: str) -> str:
    """`` (from <package>)`` for a warning raised in a third-party file, '' if unknown."""
    parts = Path(os.path.normpath(str(filename))).parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts and parts.index(marker) + 1 < len(parts):
            return f" (from {parts[parts.index(marker) + 1].removesuffix('.py')})"
    return ""


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered command."""
    parser = _Parser(
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
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if any("\x00" in a for a in argv):
            raise UsageError(
                "an argument contains a NUL byte, which no file name or value may hold", "ecgprobe"
            )
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        print(f"{exc.prog}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    command = args.command
    debug = bool(os.environ.get("ECGPROBE_DEBUG"))
    try:
        with warnings.catch_warnings():
            if not debug:
                warnings.showwarning = _warning_printer(command)
            code = args.handler(args)
        return EXIT_OK if code is None else int(code)
    except EcgprobeError as exc:
        print(f"ecgprobe {command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # e.g. `ecgprobe datasets | head`: the reader left, nothing is wrong
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115  silence the flush at interpreter exit
        return EXIT_OK
    except OSError as exc:  # the file system, not ecgprobe: a full disk, a vanished or unreadable file
        if debug:
            traceback.print_exc()
        print(f"ecgprobe {command}: error: {describe_os_error(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"ecgprobe {command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # the last line of defence: no bare tracebacks for users
        if debug:
            traceback.print_exc()
        print(
            f"ecgprobe {command}: internal error: {type(exc).__name__}: {_one_line(exc)}. "
            "This is a bug in ecgprobe; rerun with ECGPROBE_DEBUG=1 for the traceback and report it.",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def _one_line(exc: BaseException) -> str:
    """The message on one line (a multi-line message would read as several errors)."""
    return " ".join(str(exc).split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
