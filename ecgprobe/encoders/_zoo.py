"""Helpers shared by the CNN zoo families (``ecgfounder``, ``merl``, ``ecgfm-ked``).

- :func:`read_checkpoint`: :func:`~ecgprobe.encoders.checkpoint.load_checkpoint` that also
  accepts NumPy *numeric* scalars, which training scripts store as metrics beside the weights
  (``'val_auroc': np.float64(...)``); still ``weights_only=True``, nothing else is allowed.
- :func:`find_state_dict`: :func:`~ecgprobe.encoders.checkpoint.extract_state_dict` whose error
  also names the family a container of another model belongs to.
- :func:`cut_window`: the native-window step of preprocessing, for families whose official
  resampling or filtering cannot be expressed by an :class:`~ecgprobe.encoders.base.InputSpec`
  and who therefore override ``preprocess``.
- :func:`empty_module`: build an architecture without running its weight initialisation, for
  modules that :func:`~ecgprobe.encoders.checkpoint.load_strict` fills completely.
- :func:`save_torch`: write a test checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ecgprobe.data import preprocess as pp
from ecgprobe.encoders import checkpoint as ckpt
from ecgprobe.encoders.checkpoint import extract_state_dict, load_checkpoint
from ecgprobe.exceptions import CheckpointError, ConfigError

__all__ = ["cut_window", "empty_module", "find_state_dict", "read_checkpoint", "save_torch"]


def _numpy_scalar_globals() -> list[Any]:
    """The globals a pickled NumPy numeric scalar needs (both the NumPy 1 and 2 module paths)."""
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


def read_checkpoint(path: str | Path, *, family: str) -> Any:
    """Read a published checkpoint safely, allowing NumPy numeric scalars among its metadata.

    Object dtypes stay forbidden, so the allow-list cannot build anything but numbers.

    Raises:
        CheckpointError: missing, unreadable, truncated or unsafe file.
    """
    with torch.serialization.safe_globals(_numpy_scalar_globals()):
        return load_checkpoint(path, family=family)


def find_state_dict(
    obj: Any, keys: Iterable[str], *, path: str | Path, family: str
) -> dict[str, torch.Tensor]:
    """The state dict inside a published container (:func:`extract_state_dict`).

    Raises:
        CheckpointError: when none is found; if a nested state dict looks like another registered
            family's, the message says which.
    """
    keys = tuple(keys)
    try:
        return extract_state_dict(obj, keys, path=path, family=family)
    except CheckpointError as err:
        nested = [v for v in obj.values() if isinstance(v, Mapping)] if isinstance(obj, Mapping) else []
        for sd in nested:
            guess = ckpt.family_guesser(sd.keys()) if ckpt.family_guesser and sd else None
            if guess and guess != family:
                raise CheckpointError(
                    f"{err}\n  The file looks like a '{guess}' checkpoint: try --encoder {guess}."
                ) from None
        raise


def cut_window(
    x: np.ndarray,
    n_samples: int,
    *,
    window: Literal["fit", "sliding"],
    hop: int | None,
    pad: Literal["end", "center"] = "end",
) -> np.ndarray:
    """Cut ``(N, L, T)`` records to the model's window, as :meth:`Encoder.preprocess` does.

    ``"fit"`` keeps the first ``n_samples`` (``pad="end"``: shorter records zero-padded at the
    end; ``pad="center"``: zero-padded equally on both sides, as ECGFM-KED's loaders do);
    ``"sliding"`` returns ``(N, W, L, n_samples)`` windows every ``hop`` samples.

    Raises:
        ConfigError: unknown ``window``.
    """
    if window == "sliding":
        return pp.sliding_windows(x, n_samples, hop=hop, pad_last=True)
    if window != "fit":
        raise ConfigError(f"window must be 'fit' or 'sliding', got {window!r}")
    t = x.shape[-1]
    if pad == "center" and t < n_samples:
        start = (n_samples - t) // 2
        widths = [(0, 0)] * (x.ndim - 1) + [(start, n_samples - t - start)]
        return np.pad(np.asarray(x, dtype=np.float32), widths)
    return pp.fit_length(x, n_samples)


def empty_module(build: Callable[[], nn.Module]) -> nn.Module:
    """``build()`` on the CPU with uninitialised storage (no random initialisation of ~30M weights).

    Only for modules loaded by ``load_strict`` right after: it requires every entry of the
    state dict, so no uninitialised value survives. Non-persistent buffers would not be loaded;
    a module that has any is refused.

    Raises:
        RuntimeError: the module has buffers outside its state dict.
    """
    with torch.device("meta"):
        module = build()
    saved = set(module.state_dict())
    transient = [n for n, _ in module.named_buffers() if n not in saved]
    if transient:
        raise RuntimeError(
            f"{type(module).__name__} has non-persistent buffers {transient}; build it normally"
        )
    return module.to_empty(device="cpu")


def save_torch(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj, path)`` creating the parent folder; returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, p)
    return p
