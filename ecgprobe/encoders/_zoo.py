"""Helpers shared by the CNN zoo families (``ecgfounder``, ``merl``, ``ecgfm-ked``).

- :func:`cut_window`: the native-window step of preprocessing, for families whose official
  resampling or filtering cannot be expressed by an :class:`~ecgprobe.encoders.base.InputSpec`
  and who therefore override ``preprocess``.
- :func:`empty_module`: build an architecture without running its weight initialisation, for
  modules that :func:`~ecgprobe.encoders.checkpoint.load_strict` fills completely.
- :func:`save_torch`: write a test checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ecgprobe.data import preprocess as pp
from ecgprobe.exceptions import ConfigError

__all__ = ["cut_window", "empty_module", "save_torch"]


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
