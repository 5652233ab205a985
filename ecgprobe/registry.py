"""Name-to-object registries with ``@register`` decorators and "did you mean" lookups.

Datasets, encoders and analyzers are registered by name so that a new model family or
analyzer is one new file plus its registration. Lookups of unknown names suggest close
matches; registering a name twice is an error (it would silently shadow the first).

Example:
    >>> from ecgprobe.registry import Registry
    >>> shapes = Registry("shape")
    >>> @shapes.register("square", sides=4)
    ... def square(): return "[]"
    >>> shapes.get("sqare")
    Traceback (most recent call last):
    ...
    ecgprobe.exceptions.UnknownNameError: unknown shape 'sqare'; did you mean 'square'? ...
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ecgprobe.exceptions import ConfigError, UnknownNameError

T = TypeVar("T")

__all__ = ["Entry", "Registry", "name_hints"]


def name_hints(unknown: Iterable[str], known: Iterable[str]) -> str:
    """The ``unknown`` names quoted, each with its closest ``known`` one:
    ``"'n_record' (did you mean 'n_records'?), 'zz'"``, for messages refusing them."""
    known = list(known)
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1)
        hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return ", ".join(hints)


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered object with its name and free-form descriptive metadata."""

    name: str
    obj: T
    info: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """A registry of objects of one kind (e.g. ``"encoder"``), keyed by lower-case name.

    Args:
        kind: what is registered, used in messages ("unknown encoder 'x'").
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, *, aliases: tuple[str, ...] = (), **info: Any) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name`` (and optional aliases).

        Raises:
            ConfigError: if the name or an alias is already taken.
        """

        def decorator(obj: T) -> T:
            self.add(name, obj, aliases=aliases, **info)
            return obj

        return decorator

    def add(self, name: str, obj: T, *, aliases: tuple[str, ...] = (), **info: Any) -> None:
        """Register ``obj`` under ``name``; see :meth:`register`."""
        key = name.lower()
        for k in (key, *(a.lower() for a in aliases)):
            if k in self._entries or k in self._aliases:
                raise ConfigError(f"{self.kind} name {k!r} is registered twice; pick a unique name")
        self._entries[key] = Entry(name=key, obj=obj, info=dict(info))
        for a in aliases:
            self._aliases[a.lower()] = key

    def _resolve(self, name: str) -> str:
        if not isinstance(name, str):
            raise ConfigError(f"{self.kind} name must be a string, got {type(name).__name__}")
        key = name.lower().strip()
        key = self._aliases.get(key, key)
        if key not in self._entries:
            choices = sorted(self._entries) + sorted(self._aliases)
            close = difflib.get_close_matches(key, choices, n=3, cutoff=0.5)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}{hint} Available: {', '.join(sorted(self._entries)) or 'none'}."
            )
        return key

    def get(self, name: str) -> T:
        """Return the object registered under ``name`` (case-insensitive, aliases allowed).

        Raises:
            UnknownNameError: with close matches when the name is not registered.
        """
        return self._entries[self._resolve(name)].obj

    def entry(self, name: str) -> Entry[T]:
        """Return the full :class:`Entry` (name, object, info) for ``name``."""
        return self._entries[self._resolve(name)]

    def check_options(
        self,
        name: str,
        options: Mapping[str, Any],
        *,
        reserved: Collection[str] = (),
        from_string: bool = False,
    ) -> dict[str, Any]:
        """Check keyword options for the callable registered under ``name`` (a loader, an encoder
        factory or an analyzer class): refuse names its signature does not take (minus
        ``reserved`` arguments such as ``root`` or ``checkpoint``), then check every value against
        the parameter's annotation and declared range (:func:`ecgprobe.options.check_params`).

        Args:
            name: the registered name.
            options: ``{option: value}``.
            reserved: parameters that are not options (passed separately).
            from_string: the values are command-line text, parsed by type (``"9"`` -> ``9``).

        Returns:
            The options, checked and converted (text parsed; a single value for a list option
            becomes a one-element tuple).

        Raises:
            ConfigError: an unknown option (with its closest accepted one and the list of
                accepted options), or a value of the wrong type or out of range (naming the
                option, the value, what is allowed and the default).
        """
        from ecgprobe.options import check_params, param_types

        entry = self.entry(name)
        known = [p for p in param_types(entry.obj) if p not in reserved]
        unknown = [k for k in options if k not in known]
        if unknown:
            raise ConfigError(
                f"unknown option(s) {name_hints(unknown, known)} for {self.kind} {entry.name!r}; "
                f"its options are: {', '.join(known) or 'none'}"
            )
        return check_params(entry.obj, options, where=f"{self.kind} {entry.name!r}", from_string=from_string)

    def list(self, pattern: str | None = None) -> list[str]:
        """Registered names, sorted, optionally filtered by a glob ``pattern`` (``"ecg*"``)."""
        names = sorted(self._entries)
        return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern.lower())]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = name.lower()
        return key in self._entries or key in self._aliases

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries[n] for n in sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)
