"""Key renaming for state dicts, re-exported by :mod:`ecgprobe.encoders.checkpoint`: wrapper
prefixes removed, regex renames, renames from a table of prefixes in either direction, and the two
weight-norm naming conventions of torch reconciled."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import torch
from torch import nn

__all__ = ["StateDict", "prefix_rules", "rename_keys", "strip_prefix", "weight_norm_to_parametrizations"]

StateDict = dict[str, torch.Tensor]


def strip_prefix(
    sd: Mapping[str, torch.Tensor], prefixes: Iterable[str] = ("module.", "_orig_mod.")
) -> StateDict:
    """Remove wrapper prefixes from every key that has them (``module.conv.weight`` -> ``conv.weight``)."""
    out: StateDict = {}
    for k, v in sd.items():
        changed = True
        while changed:
            changed = False
            for pre in prefixes:
                if k.startswith(pre):
                    k, changed = k[len(pre) :], True
        out[k] = v
    return out


def rename_keys(sd: Mapping[str, torch.Tensor], rules: Iterable[tuple[str, str]]) -> StateDict:
    """Apply regex substitutions ``(pattern, replacement)`` to every key, in order."""
    compiled = [(re.compile(p), r) for p, r in rules]
    out: StateDict = {}
    for k, v in sd.items():
        for pat, rep in compiled:
            k = pat.sub(rep, k)
        out[k] = v
    return out


def prefix_rules(pairs: Iterable[tuple[str, str]], *, inverse: bool = False) -> list[tuple[str, str]]:
    r""":func:`rename_keys` rules from ``(published, ours)`` key prefixes, in either direction.

    ``{n}`` in a prefix stands for a number (a block index) that the other side keeps, so one
    table gives both the conversion of a published checkpoint and its inverse (the published
    template a test checkpoint is written in).

    Example:
        >>> print(*prefix_rules([("block{n}.ff.norm.", "blocks.{n}.norm2.")])[0])
        ^block(\d+)\.ff\.norm\. blocks.\1.norm2.
        >>> print(*prefix_rules([("block{n}.ff.norm.", "blocks.{n}.norm2.")], inverse=True)[0])
        ^blocks\.(\d+)\.norm2\. block\1.ff.norm.
    """
    rules = []
    for published, ours in pairs:
        src, dst = (ours, published) if inverse else (published, ours)
        rules.append(("^" + re.escape(src).replace(re.escape("{n}"), r"(\d+)"), dst.replace("{n}", r"\1")))
    return rules


#: Weight-norm tensor names: old ``nn.utils.weight_norm`` and the parametrization API.
_WEIGHT_NORM_NAMES = (
    (".weight_g", ".parametrizations.weight.original0"),
    (".weight_v", ".parametrizations.weight.original1"),
)


def weight_norm_to_parametrizations(sd: Mapping[str, torch.Tensor], module: nn.Module) -> StateDict:
    """Reconcile weight-norm naming across torch versions, in whichever direction ``module`` needs.

    Old ``nn.utils.weight_norm`` stores ``x.weight_g``/``x.weight_v``; the parametrization API
    stores ``x.parametrizations.weight.original0``/``original1``. Same tensors, other names.
    """
    target = set(module.state_dict().keys())
    renames = (*_WEIGHT_NORM_NAMES, *((new, old) for old, new in _WEIGHT_NORM_NAMES))
    out: StateDict = {}
    for k, v in sd.items():
        if k not in target:
            for old, new in renames:
                if k.endswith(old):
                    k2 = k[: -len(old)] + new
                    k = k2 if k2 in target else k
                    break
        out[k] = v
    return out
