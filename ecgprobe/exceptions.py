"""The exceptions ecgprobe raises at its boundary.

Every user-facing failure is an :class:`EcgprobeError` whose message names the offending
record, file or parameter, says what was expected and how to fix it. The command line prints
the message (no traceback) and exits with a non-zero status.

Subclasses also derive from the matching built-in (``ValueError``, ``TypeError``,
``ImportError``, ``OSError``) so that callers catching the standard exceptions still work.
"""

from __future__ import annotations

__all__ = [
    "AnalysisError",
    "ArgumentTypeError",
    "CacheError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DependencyError",
    "EcgprobeError",
    "IncompatibleInputError",
    "OutputError",
    "UnknownNameError",
]


class EcgprobeError(Exception):
    """Base class of every error ecgprobe raises on purpose."""


class ConfigError(EcgprobeError, ValueError):
    """A parameter or option has a value ecgprobe cannot use."""


class ArgumentTypeError(ConfigError, TypeError):
    """A function of the Python API was given an argument of the wrong type (e.g. an array
    where :class:`~ecgprobe.extract.Embeddings` is expected); the message says what to pass."""


class UnknownNameError(ConfigError, KeyError):
    """A registry lookup (dataset, encoder, analyzer, ...) found no such name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataError(EcgprobeError, ValueError):
    """A dataset, record or label file is missing, malformed or inconsistent."""


class IncompatibleInputError(DataError):
    """Records cannot honestly be converted to what an encoder's input contract requires."""


class CheckpointError(EcgprobeError, ValueError):
    """A model checkpoint is missing, unreadable, unsafe or does not match the architecture."""


class CacheError(EcgprobeError, OSError):
    """The embedding cache cannot be read or written."""


class AnalysisError(EcgprobeError, ValueError):
    """An analyzer cannot run on the inputs it was given."""


class DependencyError(EcgprobeError, ImportError):
    """An optional dependency needed for a feature is not installed."""


class OutputError(EcgprobeError, OSError):
    """An output folder or file cannot be written: read-only, not a folder, or the disk is full."""
