"""``ecgprobe encoders``: every registered encoder with its input contract, or one in detail.

Everything shown comes from the encoder's card (:class:`~ecgprobe.encoders.EncoderCard`: ``spec``,
``embed_dim``, ``checkpoint_format``, ``download``, ``licence``, ``pooling``, ``layers``,
``details``) and the factory's signature; no encoder is instantiated, so families whose weights or optional
dependencies are absent are listed too.
"""

from __future__ import annotations

import argparse
import inspect
import json
import shutil
import textwrap
from typing import Any

from ecgprobe.cli.common import plain

__all__ = ["compact_spec", "encoder_rows", "register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``encoders`` command."""
    p = sub.add_parser(
        "encoders",
        help="list the registered encoders with their input contracts (or --details NAME)",
        description="List every registered encoder: family, input contract, embedding dimension and the "
        "checkpoint it expects. --details NAME prints everything registered for one encoder.",
    )
    p.add_argument("--details", metavar="NAME", help="print everything known about one encoder")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--all", action="store_true", help="also list internal encoders (the test encoder)")
    p.set_defaults(handler=cmd_encoders)


def compact_spec(spec: Any) -> str:
    """``500 Hz, 10 s, 12 leads, zscore_lead`` (plus filters when the contract has them)."""
    from ecgprobe.encoders.base import InputSpec

    if spec is None:
        return "declared by the user (-E fs=... -E leads=...)"
    if not isinstance(spec, InputSpec):
        return "depends on the options"
    win = "any length" if spec.n_samples is None else f"{spec.window_s:g} s"
    leads = f"{spec.n_leads} leads" if spec.n_leads != 1 else f"lead {spec.leads[0]}"
    parts = [f"{spec.fs:g} Hz", win, leads]
    if spec.baseline:
        parts.append(f"baseline {spec.baseline}")
    if spec.bandpass:
        lo, hi = spec.bandpass
        parts.append(f"{lo if lo is not None else 0:g}-{hi if hi is not None else 'Nyq'} Hz")
    if spec.notch:
        parts.append(f"notch {spec.notch:g}")
    parts.append(spec.normalization if spec.normalization != "none" else spec.units)
    return ", ".join(parts)


def encoder_rows(internal: bool = False) -> list[dict[str, Any]]:
    """One dict per registered encoder: name, family, contract, embed_dim, checkpoint (encoders
    registered as ``internal``, such as the test encoder, only with ``internal=True``)."""
    from ecgprobe.encoders import ENCODERS

    rows = []
    for card in ENCODERS.cards():
        if card.internal and not internal:
            continue
        needs = card.needs_checkpoint
        fmt = card.checkpoint_format
        rows.append(
            {
                "name": card.name,
                "family": card.family,
                "contract": compact_spec(card.spec),
                "embed_dim": "inferred" if card.embed_dim is None else card.embed_dim,
                "checkpoint": fmt if needs or fmt.startswith("optional") else "none",
                "needs_checkpoint": needs,
            }
        )
    return rows


def _print_table(rows: list[dict[str, Any]]) -> None:
    cols = [("name", "NAME"), ("family", "FAMILY"), ("contract", "INPUT CONTRACT"), ("embed_dim", "DIM")]
    width = {k: max(len(h), *(len(str(r[k])) for r in rows)) for k, h in cols}
    used = sum(width.values()) + 2 * len(cols)
    ck_width = max(shutil.get_terminal_size((120, 20)).columns - used, 24)
    print("  ".join(h.ljust(width[k]) for k, h in cols) + "  CHECKPOINT")
    for r in rows:
        # the checkpoint column wraps onto continuation lines instead of being cut
        lines = textwrap.wrap(
            plain(str(r["checkpoint"])), width=ck_width, break_long_words=False, break_on_hyphens=False
        ) or [""]
        print("  ".join(str(r[k]).ljust(width[k]) for k, _ in cols) + "  " + lines[0])
        for line in lines[1:]:
            print(" " * used + line)
    print(f"\n{len(rows)} encoders; `ecgprobe encoders --details NAME` for one in full.")


def _options(factory: Any) -> list[str]:
    out = []
    for p in inspect.signature(factory).parameters.values():
        if p.name == "checkpoint" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        out.append(p.name if p.default is p.empty else f"{p.name}={p.default!r}")
    return out


def _details(name: str) -> dict[str, Any]:
    from ecgprobe.encoders import ENCODERS

    card = ENCODERS.card(name)
    spec = card.spec
    out: dict[str, Any] = {
        "name": card.name,
        "family": card.family,
        "needs_checkpoint": card.needs_checkpoint,
        "checkpoint_format": card.checkpoint_format,
        "download": card.download,
        "licence": card.licence,
        "embed_dim": "inferred from the model (one dummy batch)"
        if card.embed_dim is None
        else card.embed_dim,
    }
    if card.pooling:
        out["pooling"] = card.pooling
    out["input_contract"] = compact_spec(spec) if spec is None else spec.describe()
    if spec is not None and spec.notes:
        out["contract_source"] = spec.notes
    if spec is not None and spec.crops is not None and spec.n_samples is not None:
        crops = spec.crops
        out["record_level"] = (
            f"{crops.describe(spec.n_samples, spec.fs)} (default window='official'; window='fit' for the first "
            "window only)" + (f"; source: {crops.source}" if crops.source else "")
        )
    if card.layers:
        out["layers"] = list(card.layers)
    out["options"] = _options(ENCODERS.get(name))
    if card.key_prefixes:
        out["checkpoint_keys"] = list(card.key_prefixes)
    out["details"] = card.details
    if card.internal:
        out["internal"] = True
    return out


def cmd_encoders(args: argparse.Namespace) -> int:
    """Print the encoder table, or one encoder's details."""
    if args.details:
        d = _details(args.details)
        if args.json:
            print(json.dumps(d, indent=2, default=str))
            return 0
        label = max(len(k) for k in d) + 1
        for key, value in d.items():
            text = ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
            if key == "options" and not value:
                text = "none"
            lines = textwrap.wrap(text, width=100 - label - 2) or [""]
            print(f"{key.replace('_', ' ') + ':':<{label + 1}} {lines[0]}")
            for line in lines[1:]:
                print(" " * (label + 2) + line)
        return 0
    rows = encoder_rows(internal=args.all)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
    else:
        _print_table(rows)
    return 0
