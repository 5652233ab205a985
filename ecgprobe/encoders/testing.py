"""``tiny-test``: a tiny, seeded, registered encoder for tests and examples (timm's ``test_*``
models play the same role). It behaves like a real family — an input contract, named layers,
forward hooks, a weights digest — and counts its forward calls so tests can prove cache hits.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from ecgprobe.data.leads import LEADS_12
from ecgprobe.encoders.base import InputSpec, TorchEncoder
from ecgprobe.encoders.registry import ENCODERS

__all__ = ["TINY_SPEC", "TinyTestEncoder"]

TINY_SPEC = InputSpec(
    fs=100.0, leads=LEADS_12, n_samples=250, normalization="zscore_lead", notes="test encoder"
)


class _TinyNet(nn.Module):
    def __init__(self, n_leads: int, width: int, dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv1d(n_leads, width, 7, stride=2, padding=3), nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv1d(width, width, 5, stride=2, padding=2), nn.ReLU())
        self.head = nn.Linear(width, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(self.conv1(x))
        return self.head(h.mean(dim=-1))


class TinyTestEncoder(TorchEncoder):
    """A 2-layer CNN on 2.5 s at 100 Hz; ``calls`` counts forward passes (all instances)."""

    family = "testing"
    calls: ClassVar[int] = 0

    def sequence_layer(self) -> str | None:
        """``conv2``: its map, read as time steps, is what the head's mean pools."""
        return "conv2"

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        TinyTestEncoder.calls += 1
        return super()._forward(x)


@ENCODERS.register(
    "tiny-test",
    family="testing",
    internal=True,
    sequence="conv2's map (B, 8, T) read as T time steps of 8 channels (what the embedding averages)",
    needs_checkpoint=False,
    checkpoint_format="none (seeded random weights)",
    embed_dim=16,
    spec=TINY_SPEC,
    download="none: generated from the seed",
    licence="part of ecgprobe",
    details="A tiny seeded CNN for tests: 12 leads, 100 Hz, 2.5 s windows, per-lead z-score; mean pooling.",
)
def create_tiny_test(*, seed: int = 0, dim: int = 16, fail_after: int | None = None) -> TinyTestEncoder:
    """Create the test encoder.

    Args:
        seed: weight initialisation seed.
        dim: embedding dimension.
        fail_after: raise RuntimeError after this many forward calls of this instance (tests of
            crash-resume and hook clean-up).
    """
    torch.manual_seed(seed)
    net = _TinyNet(len(TINY_SPEC.leads), 8, dim)
    options: dict[str, Any] = {"seed": seed, "dim": dim}
    enc = TinyTestEncoder(
        net,
        layers={"conv1": net.conv1, "conv2": net.conv2},
        name="tiny-test",
        spec=TINY_SPEC,
        embed_dim=dim,
        pooling="mean over time of the last conv map, then a linear layer",
        options=options,
    )
    enc.weights_sha256 = enc.parameters_sha256()
    if fail_after is not None:
        budget = {"left": fail_after}
        original = enc._forward

        def failing(x: torch.Tensor) -> torch.Tensor:
            if budget["left"] <= 0:
                raise RuntimeError("tiny-test: simulated crash")
            budget["left"] -= 1
            return original(x)

        enc._forward = failing  # type: ignore[method-assign]
    return enc
