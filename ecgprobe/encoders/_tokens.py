"""Token sequences of an encoder layer, bounded for the cache (the attentive probe's input)."""

from __future__ import annotations

import torch

__all__ = ["pool_tokens"]


def pool_tokens(seq: torch.Tensor, max_tokens: int) -> torch.Tensor:
    """``(B, T, D)`` averaged along time to ``min(T, max_tokens)`` tokens (adaptive average
    pooling: token ``i`` is the mean of the ``i``-th of ``max_tokens`` near-equal time bins).

    Example:
        >>> pool_tokens(torch.arange(8.0).reshape(1, 4, 2), 2).tolist()
        [[[1.0, 2.0], [5.0, 6.0]]]
    """
    if seq.shape[1] <= max_tokens:
        return seq
    pooled = torch.nn.functional.adaptive_avg_pool1d(seq.transpose(1, 2).float(), max_tokens)
    return pooled.transpose(1, 2).to(seq.dtype)
