"""``random-resnet1d``: a seeded, randomly initialised 1-D ResNet — what does the architecture
alone give, without any training?

A standard reference line in representation studies: if a probe on a foundation model's
embedding is not clearly better than the same probe on a random network of a common
architecture, the pre-training has not been shown to add anything.

Architecture (ResNet-18 layout in 1-D, the usual ECG ResNet shape):

- ``stem``: Conv1d(12, w, k=15, stride 2) -> BatchNorm -> ReLU -> MaxPool(3, stride 2)
- ``layer1`` .. ``layer4``: two basic residual blocks each (Conv k=7 -> BN -> ReLU -> Conv k=7
  -> BN, plus the identity or a strided 1x1 conv + BN shortcut), widths ``w, 2w, 4w, 8w``,
  strides 1, 2, 2, 2 (5000 samples -> 157 time steps)
- ``embedding``: global average pooling of ``layer4`` over time (``8w`` = 256 dimensions by
  default). There is deliberately no random linear head: it would only mix the pooled features
  by a random matrix. The ``layer4`` layer therefore equals the embedding.

Initialisation follows torchvision's ResNet (Kaiming-normal convolutions, fan-out, ReLU gain;
BatchNorm weight 1, bias 0) from a private ``torch.Generator`` seeded by ``seed`` (the global
RNG is untouched). The network runs in eval mode, where BatchNorm with its default running
statistics (mean 0, variance 1) is the identity: activations grow by about sqrt(2) per
residual block but stay finite and input-dependent (checked on real PTB-XL in the tests).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ecgprobe.data.leads import LEADS_12
from ecgprobe.encoders.base import InputSpec, TorchEncoder
from ecgprobe.encoders.registry import ENCODERS
from ecgprobe.exceptions import ConfigError

__all__ = ["RANDOM_RESNET_SPEC", "RandomResNet1d", "ResNet1d", "create_random_resnet1d"]

RANDOM_RESNET_SPEC = InputSpec(
    fs=500.0,
    leads=LEADS_12,
    n_samples=5000,
    normalization="zscore_lead",
    notes="random-weight reference: the common ECG-ResNet input (500 Hz, 10 s, 12 leads, per-lead z-score)",
)
_KERNEL = 7


class _BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        pad = _KERNEL // 2
        self.conv1 = nn.Conv1d(c_in, c_out, _KERNEL, stride=stride, padding=pad, bias=False)
        self.bn1 = nn.BatchNorm1d(c_out)
        self.conv2 = nn.Conv1d(c_out, c_out, _KERNEL, padding=pad, bias=False)
        self.bn2 = nn.BatchNorm1d(c_out)
        self.relu = nn.ReLU()
        self.downsample: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(
                nn.Conv1d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm1d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet1d(nn.Module):
    """The 1-D ResNet; ``forward`` maps ``(B, n_leads, T)`` to ``(B, 8 * width)``."""

    def __init__(self, n_leads: int = 12, width: int = 32) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv1d(n_leads, width, 15, stride=2, padding=7, bias=False),
            nn.BatchNorm1d(width),
            nn.ReLU(),
            nn.MaxPool1d(3, stride=2, padding=1),
        )
        widths = [width, 2 * width, 4 * width, 8 * width]
        c_in = width
        for i, (c_out, stride) in enumerate(zip(widths, (1, 2, 2, 2)), start=1):
            setattr(
                self,
                f"layer{i}",
                nn.Sequential(_BasicBlock(c_in, c_out, stride), _BasicBlock(c_out, c_out, 1)),
            )
            c_in = c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        h = self.layer4(self.layer3(self.layer2(self.layer1(h))))
        return h.mean(dim=-1)


class RandomResNet1d(TorchEncoder):
    """The ``random-resnet1d`` encoder (a :class:`TorchEncoder` around :class:`ResNet1d`)."""

    family = "random"

    def sequence_layer(self) -> str | None:
        """``layer4``: its conv map, read as time steps, is what the embedding averages."""
        return "layer4"


def _init_weights(net: nn.Module, generator: torch.Generator) -> None:
    """torchvision's ResNet initialisation, drawn from ``generator`` (reproducible, no global RNG)."""
    for m in net.modules():
        if isinstance(m, nn.Conv1d):
            fan_out = m.out_channels * m.kernel_size[0]
            std = math.sqrt(2.0) / math.sqrt(fan_out)  # kaiming_normal_(mode="fan_out", relu)
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=generator) * std)
        elif isinstance(m, nn.BatchNorm1d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


@ENCODERS.register(
    "random-resnet1d",
    family="random",
    needs_checkpoint=False,
    checkpoint_format="none (seeded random weights)",
    embed_dim=256,
    spec=RANDOM_RESNET_SPEC,
    pooling="global average over time of layer4 (no head); every layer mean-pooled over time",
    layers=("stem", "layer1", "layer2", "layer3", "layer4", "embedding"),
    sequence="layer4's conv map (B, 8w, T) read as T time steps of 8w channels (what the embedding averages)",
    licence="part of ecgprobe",
    download="none: generated from the seed",
    details=(
        "A randomly initialised 1-D ResNet-18 layout (stem k=15/2 + max-pool, four stages of two basic "
        "blocks with k=7, widths w,2w,4w,8w; w=32 by default), torchvision initialisation from a seeded "
        "generator, eval-mode BatchNorm with default statistics (the identity). The reference line "
        "'architecture alone, no training'. Options: seed (default 0), width (embedding = 8*width)."
    ),
)
def create_random_resnet1d(*, seed: int = 0, width: int = 32) -> RandomResNet1d:
    """Create the random 1-D ResNet reference encoder.

    Args:
        seed: seed of the weight generator (same seed, same weights, same ``weights_sha256``).
        width: channels of the first stage; the embedding has ``8 * width`` dimensions.

    Raises:
        ConfigError: for a non-integer seed or a width below 1.

    Example:
        >>> import ecgprobe
        >>> enc = ecgprobe.create_encoder("random-resnet1d", seed=0, device="cpu")
        >>> enc.embed_dim, enc.layer_names()[-1]
        (256, 'embedding')
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"random-resnet1d: seed must be an integer, got {seed!r}")
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ConfigError(f"random-resnet1d: width must be an integer >= 1, got {width!r}")
    # Build under a forked RNG so constructing the model does not advance the caller's global RNG,
    # then draw every weight from a private generator.
    with torch.random.fork_rng(devices=[]):
        net = ResNet1d(len(RANDOM_RESNET_SPEC.leads), width)
    _init_weights(net, torch.Generator().manual_seed(seed))
    enc = RandomResNet1d(
        net,
        layers={name: getattr(net, name) for name in ("stem", "layer1", "layer2", "layer3", "layer4")},
        name="random-resnet1d",
        spec=RANDOM_RESNET_SPEC,
        embed_dim=8 * width,
        pooling="global average over time of layer4 (no head); every layer mean-pooled over time",
        options={"seed": seed, "width": width},
    )
    enc.weights_sha256 = enc.parameters_sha256()
    return enc
