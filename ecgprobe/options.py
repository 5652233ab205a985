"""Typed option checking, driven by the annotations and defaults that signatures already declare.

Every option a user gives — a loader's ``-o key=value``, an encoder's ``-E key=value``, an
analyzer's setting, a value in a study config or a keyword of the Python API — is checked
against the annotation of the parameter it fills, by one function, :func:`check_params`:

* ``bool`` takes ``True``/``False`` (from text: ``true/false/yes/no/1/0`` only);
* ``int`` takes integers (text must be a whole number: ``"nine"`` and ``"9.5"`` are refused);
* ``float`` takes finite numbers;
* ``Literal[...]`` lists its allowed values in the message;
* ``tuple[X, ...]`` / ``Sequence[X]`` take a list (text: ``8,9`` or ``[8, 9]``) or one value;
* ``X | None`` takes ``None`` (text: ``none``);
* ``Annotated[X, Range(ge=..., le=...)]`` adds a declared range (checked on each element of
  a tuple).

Example:
    >>> from typing import Annotated
    >>> def load(*, folds: Annotated[tuple[int, ...], Range(ge=1, le=10)] = (9,)): ...
    >>> check_params(load, {"folds": "8,9"}, where="dataset 'x'", from_string=True)
    {'folds': (8, 9)}
    >>> check_params(load, {"folds": "nine"}, where="dataset 'x'", from_string=True)
    Traceback (most recent call last):
    ...
    ecgprobe.exceptions.ConfigError: dataset 'x': folds='nine' is not valid; expected a comma-separated list, each value an integer ...
"""

from __future__ import annotations

import ast
import collections.abc as cabc
import inspect
import json
import math
import os
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePath
from typing import Annotated, Any, Literal, Union

import numpy as np

from ecgprobe.exceptions import ArgumentTypeError, ConfigError

__all__ = [
    "Range",
    "check_instance",
    "check_params",
    "check_value",
    "describe_type",
    "param_types",
    "parse_options",
    "split_pairs",
]

_TRUE = ("true", "yes", "1")
_FALSE = ("false", "no", "0")
_NONE = ("none", "null")
_INT = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class Range:
    """A declared numeric range, used as ``Annotated[int, Range(ge=1, le=10)]``.

    Applied to a number, or to every element of a tuple.
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def holds(self, value: Any) -> bool:
        """Whether ``value`` (a number, or a tuple of numbers; ``None`` passes) is in range."""
        if isinstance(value, (tuple, list)):
            return all(self.holds(v) for v in value)
        if value is None or not isinstance(value, (int, float)):
            return True
        return not (
            (self.ge is not None and value < self.ge)
            or (self.gt is not None and value <= self.gt)
            or (self.le is not None and value > self.le)
            or (self.lt is not None and value >= self.lt)
        )

    def describe(self) -> str:
        """``"between 1 and 10"``, ``">= 0"``, ``"> 0 and < 1"``."""
        if self.ge is not None and self.le is not None:
            return f"between {self.ge:g} and {self.le:g}"
        parts = [
            f"{op} {bound:g}"
            for op, bound in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
            if bound is not None
        ]
        return " and ".join(parts)


class _Mismatch(Exception):
    """Internal: the value does not fit the annotation (the caller words the error)."""


def _is_union(t: Any) -> bool:
    return typing.get_origin(t) in (Union, types.UnionType)


def describe_type(t: Any) -> str:
    """What a value of annotation ``t`` must be, in words for a message."""
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin is Annotated:
        extra = [m.describe() for m in args[1:] if isinstance(m, Range)]
        return " ".join([describe_type(args[0]), *extra])
    if _is_union(t):
        return " or ".join(describe_type(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin in (tuple, list, cabc.Sequence):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)} values ({'; '.join(describe_type(a) for a in args)})"
        return "a comma-separated list" + (f", each value {describe_type(args[0])}" if args else "")
    if origin in (dict, cabc.Mapping):
        return "a mapping {key: value}"
    names = {
        bool: "true or false (also yes/no, 1/0)",
        int: "an integer",
        float: "a number",
        str: "a string",
        type(None): "none",
        Path: "a path",
    }
    return names.get(t, getattr(t, "__name__", str(t)))


def _split_list(text: str) -> list[str]:
    body = text.strip()
    if body[:1] in "[(" and body[-1:] in "])":
        body = body[1:-1]
    items = [s.strip().strip("'\"") for s in body.split(",")]
    return items[:-1] if len(items) > 1 and items[-1] == "" else items


def _order(t: Any) -> int:
    """Text is tried against the specific members of a union first and against ``str`` last."""
    return {type(None): 0, bool: 1, int: 2, float: 3}.get(t, 5 if t is str else 4)


def _kind(v: Any) -> str:
    """bool, number or other: a Literal[100, 500] takes 500 or numpy's 500, never True or "500"."""
    if isinstance(v, (bool, np.bool_)):
        return "bool"
    return "number" if isinstance(v, (int, float, np.integer, np.floating)) else type(v).__name__


def _coerce(v: Any, t: Any, text: bool) -> Any:  # one branch per kind of annotation
    origin, args = typing.get_origin(t), typing.get_args(t)
    if t is Any or t is inspect.Parameter.empty or isinstance(t, (str, typing.TypeVar)):
        return v
    if origin is Annotated:
        out = _coerce(v, args[0], text)
        if not all(m.holds(out) for m in args[1:] if isinstance(m, Range)):
            raise _Mismatch
        return out
    if _is_union(t):
        members = sorted(args, key=_order) if text and isinstance(v, str) else args
        for member in members:
            try:
                return _coerce(v, member, text)
            except _Mismatch:
                continue
        raise _Mismatch
    if t is type(None):
        if v is None or (text and isinstance(v, str) and v.strip().lower() in _NONE):
            return None
        raise _Mismatch
    if origin is Literal:
        for choice in args:
            if text and isinstance(v, str) and v.strip() == str(choice):
                return choice
            if _kind(v) == _kind(choice) and v == choice:
                return choice
        raise _Mismatch
    if t is bool:
        if isinstance(v, (bool, np.bool_)):
            return bool(v)
        if text and isinstance(v, str) and v.strip().lower() in _TRUE + _FALSE:
            return v.strip().lower() in _TRUE
        raise _Mismatch
    if t is int:
        if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
            return int(v)
        if text and isinstance(v, str) and _INT.fullmatch(v.strip()):
            return int(v)
        raise _Mismatch
    if t is float:
        if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)):
            f = float(v)
        elif text and isinstance(v, str):
            try:
                f = float(v)
            except ValueError:
                raise _Mismatch from None
        else:
            raise _Mismatch
        if not math.isfinite(f):
            raise _Mismatch
        return f
    if t is str:
        if isinstance(v, str):
            return v
        raise _Mismatch
    if t in (Path, PurePath, os.PathLike):
        if isinstance(v, (str, os.PathLike)):
            return v
        raise _Mismatch
    if origin in (tuple, list, cabc.Sequence):
        if text and isinstance(v, str):
            items = _split_list(v)
        elif isinstance(v, (list, tuple)) or (isinstance(v, np.ndarray) and v.ndim == 1):
            items = list(v)
        elif isinstance(v, (str, int, float, bool, np.generic, os.PathLike)):
            items = [v]  # one value for a list option: -o val_folds=9 means (9,)
        else:
            raise _Mismatch
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(items) != len(args):
                raise _Mismatch
            out = [_coerce(x, a, text) for x, a in zip(items, args)]
        else:
            out = [_coerce(x, args[0], text) for x in items] if args else items
        return list(out) if origin is list else tuple(out)
    if origin in (dict, cabc.Mapping) or t in (dict, cabc.Mapping):
        if text and isinstance(v, str):
            v = _parse_mapping(v)
        if not isinstance(v, Mapping):
            raise _Mismatch
        kt, vt = args if len(args) == 2 else (Any, Any)
        return {_coerce(k, kt, False): _coerce(x, vt, False) for k, x in v.items()}
    if isinstance(t, type):
        if isinstance(v, t):
            return v
        raise _Mismatch
    return v  # an annotation this checker does not model: left to the callee


def _parse_mapping(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise _Mismatch from None


def _show(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    return str(value)


def check_value(
    value: Any, annotation: Any, *, name: str, where: str, default: Any = None, text: bool = False
) -> Any:
    """``value`` checked (and, for text or a single value given to a list option, converted)
    against ``annotation``.

    Args:
        value: the value given.
        annotation: the parameter's resolved annotation.
        name: the parameter name, for the message.
        where: what the parameter belongs to (``"dataset 'ptbxl'"``), for the message.
        default: the parameter's default, shown as a valid example.
        text: ``value`` came from the command line or another text source (parse it).

    Raises:
        ConfigError: naming the parameter, the value, what is expected and a valid example.
    """
    try:
        return _coerce(value, annotation, text)
    except _Mismatch:
        example = "" if default is inspect.Parameter.empty else f" (default: {name}={_show(default)})"
        raise ConfigError(
            f"{where}: {name}={value!r} is not valid; expected {describe_type(annotation)}{example}"
        ) from None


@lru_cache(maxsize=512)
def param_types(func: Callable[..., Any]) -> dict[str, tuple[Any, Any]]:
    """``{parameter: (resolved annotation, default)}`` of ``func`` (a class: its ``__init__``)."""
    target = func.__init__ if inspect.isclass(func) else func
    try:
        hints = typing.get_type_hints(target, include_extras=True)
    except Exception:  # an annotation that cannot be resolved is simply not checked
        hints = {}
    return {
        p.name: (hints.get(p.name, Any), p.default)
        for p in inspect.signature(target).parameters.values()
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def check_params(
    func: Callable[..., Any], values: Mapping[str, Any], *, where: str, from_string: bool = False
) -> dict[str, Any]:
    """Check every value of ``values`` against the annotation of ``func``'s parameter of that
    name; names ``func`` does not have are returned unchanged (unknown names are the caller's
    to refuse, with close matches).

    Args:
        func: the loader, encoder factory, analyzer class or function whose parameters these are.
        values: ``{parameter: value}``.
        where: what the parameters belong to, for messages (``"dataset 'ptbxl'"``).
        from_string: the values are text (``-o key=value``) to be parsed by type.

    Returns:
        The checked values, converted where needed (text parsed, one value for a list option
        made a one-element tuple).

    Raises:
        ConfigError: the first value that does not fit, naming it, the expected type or range
            and a valid example.
    """
    types_ = param_types(func)
    out = {}
    for key, value in values.items():
        if key not in types_:
            out[key] = value
            continue
        annotation, default = types_[key]
        text = from_string and isinstance(value, str)
        out[key] = check_value(value, annotation, name=key, where=where, default=default, text=text)
    return out


def check_instance(value: Any, expected: type | tuple[type, ...], *, name: str, what: str) -> Any:
    """Return ``value`` if it is an instance of ``expected``; otherwise refuse it.

    Args:
        value: the argument given.
        expected: the accepted type(s).
        name: the argument's name (``"embeddings"``).
        what: what to pass and where it comes from (``"an Embeddings (from ecgprobe.extract)"``).

    Raises:
        ArgumentTypeError: naming the argument, the type given and what to pass instead.
    """
    if isinstance(value, expected):
        return value
    got = "None" if value is None else type(value).__name__
    raise ArgumentTypeError(f"{name} must be {what}; got {got}")


def split_pairs(pairs: Sequence[str], *, where: str = "option") -> dict[str, str]:
    """``["key=value", ...]`` as ``{key: "value"}`` (dashes in keys read as underscores); the
    values stay text, for :func:`check_params` with ``from_string=True``.

    Raises:
        ConfigError: a pair that is not ``KEY=VALUE``.
    """
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = str(pair).partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{where} {pair!r} is not KEY=VALUE (e.g. -o sampling_rate=100)")
        out[key.strip().replace("-", "_")] = value.strip()
    return out


def parse_options(
    pairs: Sequence[str], target: Callable[..., Any], *, where: str | None = None
) -> dict[str, Any]:
    """Turn ``["key=value", ...]`` into keyword options, each parsed by the annotation of the
    parameter it fills in ``target`` (a dataset loader or an encoder factory):
    ``-o sampling_rate=abc`` or ``-o drop_unlabeled=maybe`` is refused here, naming what is
    allowed (:func:`check_params`). Names ``target`` does not take are left as text for the
    registry's unknown-option check, which suggests close matches.

    Raises:
        ConfigError: a pair that is not ``KEY=VALUE``, or a value that does not fit its option.
    """
    raw = split_pairs(pairs)
    return check_params(
        target, raw, where=where or f"options of {getattr(target, '__name__', target)!s}", from_string=True
    )
