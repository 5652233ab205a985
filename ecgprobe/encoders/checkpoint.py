"""Safe checkpoint loading and strict, explicit state-dict conversion.

- Files are read with ``torch.load(weights_only=True)`` (no arbitrary code runs; a pickle that
  needs anything but tensors and plain containers is refused) or with safetensors.
- Before a file is used its container is verified (:func:`verify_checkpoint`): a torch zip
  archive's CRC-32 of every member (torch itself does not check them, so a corrupted byte would
  silently change the weights), a safetensors header and the byte length it declares for every
  tensor. What cannot be verified is said, not implied: a legacy (pre-1.6) torch pickle and the
  tensor bytes of a safetensors file carry no checksum; only the sha256 of the published file
  (``create_encoder(..., sha256=...)``, CLI ``--checkpoint-sha256``) proves those intact.
- :func:`extract_state_dict` finds the weights inside a published container (``state_dict``,
  ``model``, ``encoder``, ...); :func:`strip_prefix` removes wrapper prefixes (``module.``);
  :func:`rename_keys` and :func:`prefix_rules` rename keys (they live in ``_keys.py`` and are
  part of this module's API).
- Each model family converts its published key layout with its own mapping function, then
  :func:`load_strict` loads with ``strict=True`` semantics: every missing or unexpected key is
  an error that lists them and suggests which family the file most likely belongs to. Known
  harmless leftovers are dropped only when a family names them explicitly (``drop=``), never by
  a blanket ``strict=False``.
"""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ecgprobe.encoders._keys import (
    StateDict,
    prefix_rules,
    rename_keys,
    strip_prefix,
    weight_norm_to_parametrizations,
)
from ecgprobe.exceptions import CheckpointError

__all__ = [
    "LoadReport",
    "check_sha256",
    "extract_state_dict",
    "load_checkpoint",
    "load_strict",
    "prefix_rules",
    "random_state_dict",
    "read_state_dict",
    "rename_keys",
    "strip_prefix",
    "verify_checkpoint",
    "weight_norm_to_parametrizations",
]


def _numpy_scalar_globals() -> list[Any]:
    """The globals a pickled NumPy *numeric* scalar needs (NumPy 1 and 2 module paths).

    Training scripts store metrics beside the weights (``'val_auroc': np.float64(0.9)``), which a
    bare ``weights_only=True`` load refuses. Allowing these can only ever build numbers: object
    dtypes stay forbidden.
    """
    import numpy as np

    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # NumPy 1.x
        from numpy.core.multiarray import scalar
    numeric = [
        np.dtypes.BoolDType,
        *(getattr(np.dtypes, f"{kind}{bits}DType") for kind in ("Int", "UInt") for bits in (8, 16, 32, 64)),
        np.dtypes.Float16DType,
        np.dtypes.Float32DType,
        np.dtypes.Float64DType,
    ]
    # Files written under NumPy 1.x name the reconstructor numpy.core.multiarray.scalar.
    return [scalar, (scalar, "numpy.core.multiarray.scalar"), np.dtype, *numeric]


def load_checkpoint(path: str | Path, *, family: str = "") -> Any:
    """Read a checkpoint safely: ``.safetensors``, a folder with ``model.safetensors``, or a
    torch file (``.pt``, ``.pth``, ``.ckpt``, ``.bin``) via ``weights_only=True`` (tensors, plain
    containers and NumPy numeric scalars only).

    Raises:
        CheckpointError: missing, unreadable, or unsafe (a pickle that would execute code).
    """
    p = Path(path).expanduser()
    who = f"{family} checkpoint" if family else "checkpoint"
    if not p.exists():
        raise CheckpointError(f"{who} {p} does not exist; pass the path of the file you downloaded")
    if p.is_dir():
        candidates = sorted(p.glob("*.safetensors")) or sorted(
            q for q in p.iterdir() if q.suffix in (".bin", ".pt", ".pth", ".ckpt")
        )
        if not candidates:
            raise CheckpointError(f"{who} folder {p} holds no *.safetensors/*.bin/*.pt file")
        if len(candidates) > 1 and not all(c.suffix == ".safetensors" for c in candidates):
            raise CheckpointError(
                f"{who} folder {p} holds several weight files {[c.name for c in candidates]}; pass one"
            )
        if all(c.suffix == ".safetensors" for c in candidates):
            merged: StateDict = {}
            for c in candidates:
                merged.update(_load_safetensors(c, who))
            return merged
        p = candidates[0]
    if p.suffix == ".safetensors":
        return _load_safetensors(p, who)
    verify_checkpoint(p, who=who)
    try:
        with torch.serialization.safe_globals(_numpy_scalar_globals()):
            return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{who} {p} was refused: it contains Python objects beyond tensors and plain containers, and "
            "loading it could execute arbitrary code (torch.load weights_only=True). Prefer a safetensors or "
            "state-dict release from the model's authors. Converting it yourself means unpickling it with "
            "weights_only=False, which runs any code the file contains with your permissions: do that only "
            "for a file from a source you trust, ideally in a throwaway environment, and keep only the "
            "tensors: torch.save(torch.load(f, weights_only=False)['state_dict'], 'clean.pt'). "
            f"Detail: {str(exc).splitlines()[0]}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise CheckpointError(
            f"{who} {p} cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            "the file is truncated, corrupt or not a PyTorch/safetensors checkpoint"
        ) from None


def _check_torch_file(p: Path, who: str) -> None:
    """Refuse, with the likely cause, a file that is neither a torch zip archive nor a pickle:
    a Git LFS pointer (cloned without ``git lfs pull``), a saved HTML page (a login or error page
    instead of the weights), an empty or other file."""
    try:
        with p.open("rb") as f:
            head = f.read(512)
    except OSError as exc:
        raise CheckpointError(f"{who} {p} cannot be read: {exc}") from None
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # torch.save zip archive / legacy pickle
        return
    if not head:
        cause = "the file is empty (an interrupted download?)"
    elif head.startswith(b"version https://git-lfs"):
        cause = "it is a Git LFS pointer, not the weights: run `git lfs pull` in the cloned repository"
    elif head.lstrip().lower().startswith((b"<!doctype html", b"<html", b"<?xml", b"{")):
        cause = "it is a text page (HTML/XML/JSON), not the weights: download the file itself"
    else:
        cause = "it is neither a torch.save archive nor a pickle: truncated, corrupt or another format"
    raise CheckpointError(f"{who} {p} is not a PyTorch checkpoint: {cause}")


_REDOWNLOAD = "re-download it and compare its sha256 with the published one (sha256sum FILE)"


def verify_checkpoint(path: str | Path, *, who: str = "checkpoint") -> None:
    """Verify a checkpoint file's container before its weights are used.

    * torch zip archive (``torch.save`` since 1.6, TorchScript): every member is read and its
      CRC-32 compared with the archive's (``zipfile.testzip``);
    * safetensors: the header length, the header JSON, and that each tensor's byte range fits
      its dtype and shape and that the ranges cover the data exactly (truncated, appended or
      mis-sized files are refused); the tensor bytes themselves carry no checksum;
    * legacy torch pickle: no checksum exists; a warning says so.

    Raises:
        CheckpointError: naming the file, what is damaged and the fix (re-download, compare the
            sha256 with the published one).
    """
    p = Path(path)
    if p.suffix == ".safetensors":
        _check_safetensors_layout(p, who)
        return
    _check_torch_file(p, who)
    with p.open("rb") as f:
        is_zip = f.read(4) == b"PK\x03\x04"
    if not is_zip:
        warnings.warn(
            f"{who} {p} is a legacy (non-zip) torch file, which carries no checksums: corruption inside it "
            "cannot be detected; pass its published sha256 (sha256=..., CLI --checkpoint-sha256) to verify it",
            UserWarning,
            stacklevel=3,
        )
        return
    try:
        with zipfile.ZipFile(p) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise CheckpointError(
            f"{who} {p} is truncated or damaged (not a complete zip archive: {exc}); {_REDOWNLOAD}"
        ) from None
    if bad is not None:
        raise CheckpointError(
            f"{who} {p} is corrupt: the CRC-32 of its member {bad!r} does not match the archive (the bytes were "
            f"changed after saving); {_REDOWNLOAD}"
        )


_ST_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2}
_ST_BYTES.update({"I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8})


def _check_safetensors_layout(p: Path, who: str) -> None:
    """The safetensors layout checks of :func:`verify_checkpoint`."""
    import json
    import math

    size = p.stat().st_size
    with p.open("rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if n < 2 or n > size - 8 or n > 100 * 1024**2:
            raise CheckpointError(
                f"{who} {p} is not a readable safetensors file: its {size} bytes cannot hold the header "
                f"length it declares ({n}); the file is truncated or another format; {_REDOWNLOAD}"
            )
        try:
            header = json.loads(f.read(n))
        except ValueError as exc:
            raise CheckpointError(
                f"{who} {p} is not a readable safetensors file: its header is damaged ({exc}); {_REDOWNLOAD}"
            ) from None
    data = size - 8 - n
    end_max = 0
    for name, t in header.items() if isinstance(header, dict) else ():
        if name == "__metadata__":
            continue
        try:
            begin, end = (int(v) for v in t["data_offsets"])
            want = math.prod(int(d) for d in t["shape"]) * _ST_BYTES[str(t["dtype"])]
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(
                f"{who} {p} is not a readable safetensors file: entry {name!r} is malformed ({t!r}); {_REDOWNLOAD}"
            ) from None
        if end - begin != want or not 0 <= begin <= end <= data:
            raise CheckpointError(
                f"{who} {p} is not a readable safetensors file: tensor {name!r} ({t['dtype']} {t['shape']}) should occupy {want} bytes but its "
                f"range is {begin}..{end} of {data} data bytes; the file is truncated or damaged; {_REDOWNLOAD}"
            )
        end_max = max(end_max, end)
    if not isinstance(header, dict) or end_max != data:
        raise CheckpointError(
            f"{who} {p} is not a readable safetensors file: its tensors cover {end_max} bytes but the file holds {data} data bytes (truncated, "
            f"appended to, or not a safetensors file); {_REDOWNLOAD}"
        )


def check_sha256(path: str | Path, expected: str, *, who: str = "checkpoint") -> str:
    """Compare a checkpoint's sha256 (a folder: all its files, as in the provenance) with
    ``expected``; returns the digest.

    Raises:
        ConfigError: ``expected`` is not 64 hexadecimal digits.
        CheckpointError: the digests differ, naming both and the fix.
    """
    from ecgprobe.encoders.base import file_sha256
    from ecgprobe.exceptions import ConfigError

    want = str(expected).strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", want):
        raise ConfigError(f"sha256={expected!r} is not a sha256 digest (64 hexadecimal digits)")
    got = file_sha256(Path(path).expanduser())
    if got != want:
        raise CheckpointError(
            f"{who} {path} has sha256 {got}, not the expected {want}: the file is corrupt, incomplete or another "
            "file; re-download it from the published source (or pass the sha256 that matches the file you mean)"
        )
    return got


def _load_safetensors(p: Path, who: str) -> StateDict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    _check_safetensors_layout(p, who)
    try:
        return load_file(str(p), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{who} {p} is not a readable safetensors file: {exc}") from None


def extract_state_dict(
    obj: Any, keys: Iterable[str], *, path: str | Path = "", family: str = ""
) -> StateDict:
    """The state dict inside a published container: the first of ``keys`` present (nested keys
    as ``"a.b"``), or ``obj`` itself when it already maps names to tensors.

    Raises:
        CheckpointError: when no state dict is found, listing the container's top-level keys.
    """
    if _is_state_dict(obj):
        return dict(obj)
    if isinstance(obj, Mapping):
        for key in keys:
            node: Any = obj
            for part in key.split("."):
                node = node.get(part) if isinstance(node, Mapping) else None
            if node is not None and _is_state_dict(node):
                return dict(node)
    top = list(obj.keys())[:12] if isinstance(obj, Mapping) else type(obj).__name__
    message = (
        f"{family + ' ' if family else ''}checkpoint {path}: no state dict under {list(keys)}; the file holds {top}. "
        "Is it the right file for this model?"
    )
    nested = [v for v in obj.values() if _is_state_dict(v)] if isinstance(obj, Mapping) else []
    for sd in nested:  # a container of another model: say which family it looks like
        guess = family_guesser(sd.keys()) if family_guesser else None
        if guess and guess != family:
            message += f"\n  The file looks like a '{guess}' checkpoint: try --encoder {guess}."
            break
    raise CheckpointError(message)


def read_state_dict(path: str | Path, keys: Iterable[str], *, family: str) -> StateDict:
    """:func:`load_checkpoint` then :func:`extract_state_dict`: the weights of a published file.

    Args:
        path: the checkpoint file.
        keys: where the container may hold the state dict, in order (``"a.b"`` for nested keys).
        family: the model family, for messages.

    Raises:
        CheckpointError: missing, unreadable or unsafe file, or no state dict under ``keys``.
    """
    keys = list(keys)
    return extract_state_dict(load_checkpoint(path, family=family), keys, path=path, family=family)


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping) and len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())
    )


@dataclass
class LoadReport:
    """What :func:`load_strict` did: keys dropped on purpose (with why), loaded count."""

    loaded: int
    dropped: dict[str, str] = field(default_factory=dict)


#: Set by the encoder registry: maps a key set to the most likely family name.
family_guesser: Callable[[Iterable[str]], str | None] | None = None


def load_strict(
    module: nn.Module,
    sd: Mapping[str, torch.Tensor],
    *,
    family: str,
    path: str | Path = "",
    drop: Mapping[str, str] | None = None,
) -> LoadReport:
    """Load ``sd`` into ``module`` requiring an exact key and shape match.

    Args:
        module: the architecture.
        sd: the converted state dict.
        family: the model family (for messages).
        path: the checkpoint path (for messages).
        drop: ``{regex: reason}`` for keys known to be harmless leftovers in the published files
            (e.g. ``{"^linear\\.": "untrained 10-way head of the pretraining script"}``); these
            are removed before loading and listed in the report.

    Raises:
        CheckpointError: listing missing keys, unexpected keys and shape mismatches, with a guess
            of the family the file belongs to when it does not look like ``family``.
    """
    sd = dict(sd)
    dropped: dict[str, str] = {}
    for pattern, reason in (drop or {}).items():
        rx = re.compile(pattern)
        for k in [k for k in sd if rx.search(k)]:
            dropped[k] = reason
            del sd[k]
    expected = module.state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    mismatched = [
        f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in sd and tuple(sd[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or mismatched:
        lines = [f"{family} checkpoint {path} does not match the {family} architecture:"]
        if missing:
            lines.append(f"  {len(missing)} missing key(s): {_short(missing)}")
        if unexpected:
            lines.append(f"  {len(unexpected)} unexpected key(s): {_short(unexpected)}")
        if mismatched:
            lines.append(f"  {len(mismatched)} shape mismatch(es): {_short(mismatched)}")
        guess = family_guesser(sd.keys()) if family_guesser else None
        if guess and guess != family:
            lines.append(f"  The keys look like a '{guess}' checkpoint: try --encoder {guess}.")
        else:
            lines.append(
                "  Check that the file is the published checkpoint of this model and its size variant."
            )
        raise CheckpointError("\n".join(lines))
    module.load_state_dict(sd, strict=True)
    return LoadReport(loaded=len(sd), dropped=dropped)


def _short(items: list[str], n: int = 8) -> str:
    return ", ".join(items[:n]) + (f", ... (+{len(items) - n} more)" if len(items) > n else "")


def random_state_dict(template: Mapping[str, Any], seed: int = 0) -> StateDict:
    """Deterministic, platform-independent random weights with the names and shapes of ``template``.

    Used to write test checkpoints in a family's published format and to compute reference
    outputs with the official code on exactly the same weights. Each tensor is drawn from NumPy's
    PCG64 seeded by ``(seed, sha256(name))``, so the values depend only on the key name, shape
    and seed — not on key order, torch version or platform. Initialisation by role: matrices and
    kernels N(0, 1/fan_in); biases N(0, 0.02); 1-D norm weights 1 + N(0, 0.1); BatchNorm running
    variances U(0.5, 1.5) and means N(0, 0.1); integer buffers (``num_batches_tracked``) 0.

    Args:
        template: ``{name: tensor}`` (only names, shapes and dtypes are used) or ``{name: shape}``.
        seed: the seed.
    """
    import hashlib as _hashlib

    import numpy as np

    out: StateDict = {}
    for name, ref in template.items():
        shape = tuple(ref.shape) if hasattr(ref, "shape") else tuple(ref)
        dtype = ref.dtype if isinstance(ref, torch.Tensor) else torch.float32
        digest = int.from_bytes(_hashlib.sha256(name.encode()).digest()[:8], "little")
        rng = np.random.default_rng([seed, digest])
        leaf = name.rsplit(".", 1)[-1]
        if not dtype.is_floating_point:
            out[name] = torch.zeros(shape, dtype=dtype)
            continue
        if leaf == "running_var":
            arr = rng.uniform(0.5, 1.5, size=shape)
        elif leaf == "running_mean":
            arr = rng.normal(0.0, 0.1, size=shape)
        elif len(shape) <= 1 and (leaf in ("bias", "beta") or leaf.endswith("_bias")):
            arr = rng.normal(0.0, 0.02, size=shape)
        elif len(shape) == 1 and (
            leaf in ("weight", "gamma", "scale") or "norm" in name.lower() or "ln" in leaf
        ):
            arr = 1.0 + rng.normal(0.0, 0.1, size=shape)
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else max(int(np.prod(shape)), 1)
            arr = rng.normal(0.0, 1.0 / np.sqrt(max(fan_in, 1)), size=shape)
        out[name] = torch.from_numpy(np.asarray(arr, dtype=np.float64)).to(dtype)
    return out
