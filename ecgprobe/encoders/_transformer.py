"""The wav2vec 2.0 / HuBERT backbone shared by ECG-FM (fairseq-signals) and HuBERT-ECG (transformers).

Both published models are the same network: a strided convolutional feature extractor (GroupNorm
in the first block only, GELU, no bias), a LayerNorm on the conv features, a linear projection,
a weight-normalised grouped convolutional positional embedding added to the tokens, a LayerNorm,
and post-LN transformer layers (self-attention -> residual -> LayerNorm -> GELU FFN -> residual ->
LayerNorm). This module holds that arithmetic once, under neutral parameter names; each family
maps its published key layout onto these names in its own module.

- fairseq-signals: ``modules/conv_feature_extraction.py`` (mode ``default``),
  ``modules/conv_positional_encoding.py``, ``modules/transformer_encoder.py`` and
  ``transformer_encoder_layer.py`` (``layer_norm_first=False``), ``models/ecg_transformer.py``.
- transformers: ``models/hubert/modeling_hubert.py`` with ``feat_extract_norm="group"`` and
  ``do_stable_layer_norm=False``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ecgprobe.encoders.base import TorchEncoder

__all__ = ["BackboneConfig", "TokenEncoder", "Wav2Vec2Backbone"]


@dataclass(frozen=True)
class BackboneConfig:
    """Sizes of a wav2vec 2.0-style backbone.

    Attributes:
        in_channels: input channels of the first convolution (12 leads, or 1 for a flat sequence).
        conv_layers: ``(channels, kernel, stride)`` per convolution block.
        conv_bias: whether the convolutions have a bias.
        hidden: transformer width.
        layers: number of transformer layers.
        heads: attention heads.
        ffn: feed-forward width.
        pos_kernel: kernel of the convolutional positional embedding.
        pos_groups: groups of that convolution.
        eps: LayerNorm epsilon.
        projection: whether a linear layer maps the conv features to ``hidden``.
    """

    in_channels: int
    conv_layers: tuple[tuple[int, int, int], ...]
    conv_bias: bool
    hidden: int
    layers: int
    heads: int
    ffn: int
    pos_kernel: int = 128
    pos_groups: int = 16
    eps: float = 1e-5
    projection: bool = True


class _ConvBlock(nn.Module):
    def __init__(
        self, n_in: int, n_out: int, kernel: int, stride: int, *, group_norm: bool, bias: bool
    ) -> None:
        super().__init__()
        self.conv = nn.Conv1d(n_in, n_out, kernel, stride=stride, bias=bias)
        # one group per channel: a per-channel normalisation over time (fairseq Fp32GroupNorm(dim, dim))
        self.norm = nn.GroupNorm(n_out, n_out, affine=True) if group_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.norm is not None:
            x = F.group_norm(
                x.float(), self.norm.num_groups, self.norm.weight, self.norm.bias, self.norm.eps
            ).type_as(x)
        return F.gelu(x)


class ConvFeatureExtractor(nn.Module):
    """Strided convolutions ``(B, C_in, T) -> (B, C, T')``."""

    def __init__(self, cfg: BackboneConfig) -> None:
        super().__init__()
        blocks, n_in = [], cfg.in_channels
        for i, (dim, kernel, stride) in enumerate(cfg.conv_layers):
            blocks.append(_ConvBlock(n_in, dim, kernel, stride, group_norm=i == 0, bias=cfg.conv_bias))
            n_in = dim
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class PositionalConv(nn.Module):
    """Grouped convolution over tokens with weight normalisation over the kernel axis (``dim=2``),
    trimmed to the input length ("same" padding for an even kernel), then GELU."""

    def __init__(self, cfg: BackboneConfig) -> None:
        super().__init__()
        conv = nn.Conv1d(
            cfg.hidden, cfg.hidden, cfg.pos_kernel, padding=cfg.pos_kernel // 2, groups=cfg.pos_groups
        )
        self.conv = nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2)
        self.trim = 1 if cfg.pos_kernel % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D)
        y = self.conv(x.transpose(1, 2))
        if self.trim:
            y = y[:, :, : -self.trim]
        return F.gelu(y).transpose(1, 2)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = (
            p(x).view(b, t, self.heads, d // self.heads).transpose(1, 2)
            for p in (self.q_proj, self.k_proj, self.v_proj)
        )
        y = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(y.transpose(1, 2).reshape(b, t, d))


class EncoderLayer(nn.Module):
    """Post-LN transformer layer (wav2vec 2.0 base / BERT)."""

    def __init__(self, cfg: BackboneConfig) -> None:
        super().__init__()
        self.attention = SelfAttention(cfg.hidden, cfg.heads)
        self.attention_norm = nn.LayerNorm(cfg.hidden, eps=cfg.eps)
        self.ffn_in = nn.Linear(cfg.hidden, cfg.ffn)
        self.ffn_out = nn.Linear(cfg.ffn, cfg.hidden)
        self.ffn_norm = nn.LayerNorm(cfg.hidden, eps=cfg.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.attention_norm(x + self.attention(x))
        return self.ffn_norm(x + self.ffn_out(F.gelu(self.ffn_in(x))))


class Wav2Vec2Backbone(nn.Module):
    """``(B, C_in, T)`` -> transformer tokens ``(B, T', hidden)`` (eval-mode arithmetic, no masking)."""

    def __init__(self, cfg: BackboneConfig) -> None:
        super().__init__()
        self.cfg = cfg
        conv_dim = cfg.conv_layers[-1][0]
        self.feature_extractor = ConvFeatureExtractor(cfg)
        self.feature_norm = nn.LayerNorm(conv_dim, eps=cfg.eps)
        self.projection = nn.Linear(conv_dim, cfg.hidden) if cfg.projection else None
        self.pos_conv = PositionalConv(cfg)
        self.encoder_norm = nn.LayerNorm(cfg.hidden, eps=cfg.eps)
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.feature_norm(self.feature_extractor(x).transpose(1, 2))
        if self.projection is not None:
            h = self.projection(h)
        h = self.encoder_norm(h + self.pos_conv(h))
        for layer in self.layers:
            h = layer(h)
        return h

    def layer_modules(self) -> dict[str, nn.Module]:
        """Exposed layers: ``features`` (conv output, ``(B, C, T')``) and ``layer_1`` ... ``layer_N``."""
        return {
            "features": self.feature_extractor,
            **{f"layer_{i + 1}": m for i, m in enumerate(self.layers)},
        }


def parse_conv_layers(spec: Any) -> tuple[tuple[int, int, int], ...]:
    """fairseq's ``conv_feature_layers`` string (``"[(256, 2, 2)] * 4"``) or a list, parsed without eval.

    Raises:
        ValueError: for anything but lists/tuples of integers combined with ``+`` and ``* int``.
    """
    import ast

    if not isinstance(spec, str):
        return tuple(tuple(int(v) for v in layer) for layer in spec)

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [ev(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mult, ast.Add)):
            left, right = ev(node.left), ev(node.right)
            return left * right if isinstance(node.op, ast.Mult) else left + right
        raise ValueError(f"unsupported conv_feature_layers expression: {spec!r}")

    return parse_conv_layers(ev(ast.parse(spec, mode="eval")))


class TokenEncoder(TorchEncoder):
    """A :class:`TorchEncoder` whose layers emit tokens ``(B, T, C)`` (mean over tokens), except the
    conv ``features`` map ``(B, C, T)`` (mean over time)."""

    def _pool(self, layer: str, output: Any) -> torch.Tensor:
        out = output[0] if isinstance(output, (tuple, list)) else output
        return out.mean(dim=-1) if layer == "features" else out.mean(dim=1)

    def sequence_layer(self) -> str | None:
        """The last transformer layer: its tokens ``(B, T, hidden)`` are what the embedding pools."""
        blocks = [name for name in self._layer_modules() if name.startswith("layer_")]
        return blocks[-1] if blocks else None

    def _sequence(self, layer: str, output: Any) -> torch.Tensor:
        """Transformer layers emit tokens ``(B, T, C)`` as they are; the conv ``features`` map
        ``(B, C, T)`` is read as ``T`` steps of ``C`` channels."""
        out = output[0] if isinstance(output, (tuple, list)) else output
        return out.transpose(1, 2) if layer == "features" else out


def count_layers(keys: Sequence[str], prefix: str) -> int:
    """Number of ``prefix{i}.`` blocks among ``keys`` (0 when none)."""
    idx = {
        int(k[len(prefix) :].split(".", 1)[0])
        for k in keys
        if k.startswith(prefix) and k[len(prefix) :].split(".", 1)[0].isdigit()
    }
    return max(idx) + 1 if idx else 0
