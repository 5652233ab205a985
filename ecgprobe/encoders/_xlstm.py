"""Pure-torch xLSTM (Beck et al. 2024) as configured by xECG: mLSTM blocks (parallel stabilised
form, headwise q/k/v, causal conv) and sLSTM blocks (pointwise recurrence with the parameters in
the CUDA-kernel layout of NX-AI's ``xlstm`` package), a post-norm option, and bench-xecg's
bidirectional wrapper. Module names follow the published state dict after the conversion in
:mod:`ecgprobe.encoders.xecg`; numerics are checked against the official code by the xECG tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BidirectionalCore", "XLSTMConfig"]


@dataclass(frozen=True)
class XLSTMConfig:
    """xECG sizes (defaults: the released model)."""

    dim: int = 1024
    pattern: str = "ssmmssmms"
    heads: int = 4
    mlstm_inner: int = 2048
    qkv_block: int = 4
    conv_kernel: int = 4
    ffn: int = 1344
    post_norm: bool = False


# ----------------------------------------------------------------------------- xLSTM components
class ResidualLayerNorm(nn.Module):
    """xlstm ``LayerNorm``: weight stored as an offset from 1, no bias."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, (x.shape[-1],), 1.0 + self.weight, None, 1e-5)


def _head_norm(h: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """xlstm ``MultiHeadLayerNorm`` of ``(B, S, NH, DH)``: per-head normalisation, weight offset from 1."""
    b, s, nh, dh = h.shape
    out = F.group_norm(h.reshape(b * s, nh * dh), nh, 1.0 + weight, None, 1e-5)
    return out.view(b, s, nh * dh)


class CausalConv(nn.Module):
    """Depthwise causal convolution over ``(B, S, F)``."""

    def __init__(self, dim: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, kernel, padding=kernel - 1, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.transpose(1, 2))[:, :, : x.shape[1]].transpose(1, 2)


class HeadwiseLinear(nn.Module):
    """Block-diagonal projection: ``weight (heads, out_per_head, in_per_head)``, no bias."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(heads, dim // heads, dim // heads))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        y = torch.einsum("...hd,hod->...ho", x.view(*shape[:-1], self.weight.shape[0], -1), self.weight)
        return y.reshape(shape)


class MLSTMCell(nn.Module):
    def __init__(self, inner: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.igate = nn.Linear(3 * inner, heads)
        self.fgate = nn.Linear(3 * inner, heads)
        self.outnorm = nn.Module()
        self.outnorm.weight = nn.Parameter(torch.zeros(inner))

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        b, s, _ = q.shape
        gates_in = torch.cat([q, k, v], dim=-1)
        q, k, v = (t.view(b, s, self.heads, -1).transpose(1, 2) for t in (q, k, v))  # (B, NH, S, DH)
        i_pre = self.igate(gates_in).transpose(1, 2).unsqueeze(-1)  # (B, NH, S, 1)
        f_pre = self.fgate(gates_in).transpose(1, 2).unsqueeze(-1)
        # parallel stabilised mLSTM (xlstm blocks/mlstm/backends.py::parallel_stabilized_simple)
        log_f = F.logsigmoid(f_pre)
        cum = torch.cat(
            [torch.zeros_like(log_f[:, :, :1]), torch.cumsum(log_f, dim=-2)], dim=-2
        )  # (B, NH, S+1, 1)
        log_fg = (cum - cum.transpose(-2, -1))[:, :, 1:, 1:]
        causal = torch.ones(s, s, dtype=torch.bool, device=q.device).tril()
        log_d = torch.where(causal, log_fg, -math.inf) + i_pre.transpose(-2, -1)
        max_d = log_d.max(dim=-1, keepdim=True).values
        c = (q @ (k / math.sqrt(q.shape[-1])).transpose(-2, -1)) * torch.exp(log_d - max_d)
        norm = torch.maximum(c.sum(dim=-1, keepdim=True).abs(), torch.exp(-max_d))
        h = (c / (norm + 1e-6)) @ v  # (B, NH, S, DH)
        return _head_norm(h.transpose(1, 2), self.outnorm.weight)


class MLSTMLayer(nn.Module):
    def __init__(self, cfg: XLSTMConfig) -> None:
        super().__init__()
        inner = cfg.mlstm_inner
        self.inner = inner
        self.proj_up = nn.Linear(cfg.dim, 2 * inner, bias=False)
        self.q_proj = HeadwiseLinear(inner, inner // cfg.qkv_block)
        self.k_proj = HeadwiseLinear(inner, inner // cfg.qkv_block)
        self.v_proj = HeadwiseLinear(inner, inner // cfg.qkv_block)
        self.conv1d = CausalConv(inner, cfg.conv_kernel)
        self.mlstm_cell = MLSTMCell(inner, cfg.heads)
        self.learnable_skip = nn.Parameter(torch.ones(inner))
        self.proj_down = nn.Linear(inner, cfg.dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_m, z = self.proj_up(x).split(self.inner, dim=-1)
        x_c = F.silu(self.conv1d(x_m))
        h = self.mlstm_cell(self.q_proj(x_c), self.k_proj(x_c), self.v_proj(x_m))
        return self.proj_down((h + self.learnable_skip * x_c) * F.silu(z))


class SLSTMCell(nn.Module):
    """sLSTM recurrence with parameters in the CUDA-kernel layout of the released checkpoint:
    ``_recurrent_kernel_ (NH, DH_in, 4 * DH_out)`` and ``_bias_ (NH * 4 * DH)``, gates ordered i, f, z, o."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.dh = heads, dim // heads
        self._recurrent_kernel_ = nn.Parameter(torch.empty(heads, self.dh, 4 * self.dh))
        self._bias_ = nn.Parameter(torch.empty(4 * dim))

    def forward(self, wx: torch.Tensor) -> torch.Tensor:  # (B, S, 4, NH, DH) -> (B, S, NH, DH)
        b, s = wx.shape[:2]
        r = self._recurrent_kernel_.view(self.heads, self.dh, 4, self.dh)
        bias = self._bias_.view(self.heads, 4, self.dh).transpose(0, 1)  # (4, NH, DH)
        y = c = n = m = wx.new_zeros(b, self.heads, self.dh)
        out = []
        for t in range(s):
            raw = wx[:, t] + torch.einsum("bhi,higo->bgho", y, r) + bias
            i_raw, f_raw, z_raw, o_raw = raw.unbind(1)
            log_f_m = m + F.logsigmoid(f_raw)
            # xlstm vanilla pointwise: the stabiliser starts at the input gate while every n is 0
            m_new = i_raw if bool((n == 0).all()) else torch.maximum(i_raw, log_f_m)
            i_g = torch.exp(i_raw - m_new).clamp(max=1.0)
            f_g = torch.exp(log_f_m - m_new).clamp(max=1.0)
            c = f_g * c + i_g * torch.tanh(z_raw)
            n = f_g * n + i_g
            y = torch.sigmoid(o_raw) * c / n
            m = m_new
            out.append(y)
        return torch.stack(out, dim=1)


class SLSTMLayer(nn.Module):
    def __init__(self, cfg: XLSTMConfig) -> None:
        super().__init__()
        self.heads = cfg.heads
        self.conv1d = CausalConv(cfg.dim, cfg.conv_kernel)
        self.fgate = HeadwiseLinear(cfg.dim, cfg.heads)
        self.igate = HeadwiseLinear(cfg.dim, cfg.heads)
        self.zgate = HeadwiseLinear(cfg.dim, cfg.heads)
        self.ogate = HeadwiseLinear(cfg.dim, cfg.heads)
        self.slstm_cell = SLSTMCell(cfg.dim, cfg.heads)
        self.group_norm = nn.Module()
        self.group_norm.weight = nn.Parameter(torch.zeros(cfg.dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        x_c = F.silu(self.conv1d(x))
        # the package feeds [fgate, igate, zgate, ogate] into the cell's (i, f, z, o) slots, in that order
        wx = torch.cat([self.fgate(x_c), self.igate(x_c), self.zgate(x), self.ogate(x)], dim=-1)
        y = self.slstm_cell(wx.view(b, s, 4, self.heads, d // self.heads))
        return _head_norm(y, self.group_norm.weight)


class GatedFFN(nn.Module):
    def __init__(self, dim: int, ffn: int) -> None:
        super().__init__()
        self.ffn = ffn
        self.proj_up = nn.Linear(dim, 2 * ffn, bias=False)
        self.proj_down = nn.Linear(ffn, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.proj_up(x).split(self.ffn, dim=-1)
        return self.proj_down(F.gelu(gate) * up)


class XLSTMBlock(nn.Module):
    def __init__(self, cfg: XLSTMConfig, kind: str) -> None:
        super().__init__()
        self.xlstm_norm = ResidualLayerNorm(cfg.dim)
        self.xlstm = SLSTMLayer(cfg) if kind == "s" else MLSTMLayer(cfg)
        if kind == "s":
            self.ffn_norm = ResidualLayerNorm(cfg.dim)
            self.ffn = GatedFFN(cfg.dim, cfg.ffn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.xlstm(self.xlstm_norm(x))
        if hasattr(self, "ffn"):
            x = x + self.ffn(self.ffn_norm(x))
        return x


class _Stack(nn.Module):
    def __init__(self, cfg: XLSTMConfig) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(XLSTMBlock(cfg, kind) for kind in cfg.pattern)
        self.post_blocks_norm = ResidualLayerNorm(cfg.dim) if cfg.post_norm else nn.Identity()


class BidirectionalCore(nn.Module):
    """``vanillaxLSTMWrapper``: flip the token order before every block but the first."""

    def __init__(self, cfg: XLSTMConfig) -> None:
        super().__init__()
        self.model = _Stack(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.model.blocks):
            x = block(x.flip(1) if i > 0 else x)
        return self.model.post_blocks_norm(x)
