"""Helpers shared by the CNN zoo families (``ecgfounder``, ``merl``, ``ecgfm-ked``).

- :func:`read_checkpoint`: :func:`~ecgprobe.encoders.checkpoint.load_checkpoint` that also
  accepts NumPy *numeric* scalars, which training scripts store as metrics beside the weights
  (``'val_auroc': np.float64(...)``); still ``weights_only=True``, nothing else is allowed.
- :func:`cut_window`: the native-window step of preprocessing, for families whose official
  resampling or filtering cannot be expressed by an :class:`~ecgprobe.encoders.base.InputSpec`
  and who therefore override ``preprocess``.
- :func:`save_torch`: write a test checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ecgprobe.data import preprocess as pp
from ecgprobe.encoders.checkpoint import load_checkpoint
from ecgprobe.exceptions import ConfigError

__all__ = ["cut_window", "read_checkpoint", "save_torch"]


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


def save_torch(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj, path)`` creating the parent folder; returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, p)
    return p
