"""xECG (Lunelli et al. 2025, "BenchECG and xECG", arXiv:2509.10151; dlaskalab/bench-xecg): a
bidirectional xLSTM over 25-sample patches of 12-lead ECGs at 100 Hz, pretrained with SimDINOv2.

Official code (bench-xecg): ``bench_xecg/models/xlstm_model.py`` (``pretrainedxLSTM``: linear patch
embedding ``Conv1d(12, 1024, 25, stride=25, bias=False)``, ``core`` = ``vanillaxLSTMWrapper`` around an
NX-AI ``xlstm.xLSTMBlockStack``, ``attn_pool`` CLS head for pretraining), ``bench_xecg/models/utils.py::
get_xlstm`` and ``configs/pretrain/pretrain_run_config.yaml`` (embedding 1024, blocks s,s,m,m,s,s,m,m,s,
4 heads, mLSTM proj_factor 2, qkv blocksize 4, causal conv 4, sLSTM gated FFN 1.3 x, no final norm),
``modules.py::vanillaxLSTMWrapper`` (bidirectional: the sequence is flipped before every block but the
first, never flipped back), ``models/classification.py`` + ``config_defaults/train_*_defaults.yaml``
(linear evaluation pools the patch tokens with ``cls_type: avg``, masking zero-padded patches; one task
config uses ``max``). The ``xlstm`` package (mLSTM parallel stabilised form, sLSTM pointwise recurrence)
is reimplemented here in pure torch; the sLSTM parameters are read in the CUDA-kernel layout the
released checkpoint was trained with.

Preprocessing (``bench_xecg/dataset/pretraining_dataset.py``): leads I..V6, no cleaning, FFT
resampling to 100 Hz (``neurokit2.signal_resample(method="FFT")`` = ``scipy.signal.resample``), no
normalisation (mV), zero-padding to a multiple of 25 samples.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ecgprobe.data.leads import LEADS_12
from ecgprobe.encoders._lightning import load_lightning_checkpoint
from ecgprobe.encoders._zoo import cut_window
from ecgprobe.encoders.base import InputSpec, TorchEncoder, file_sha256
from ecgprobe.encoders.checkpoint import extract_state_dict, load_strict, random_state_dict
from ecgprobe.encoders.registry import ENCODERS
from ecgprobe.exceptions import CheckpointError, ConfigError

__all__ = [
    "SPEC",
    "XECGEncoder",
    "XECGNet",
    "XLSTMConfig",
    "convert_state_dict",
    "make_test_checkpoint",
    "published_template",
]

FAMILY = "xecg"
FS, N_SAMPLES, PATCH = 100.0, 1000, 25
POOLINGS = ("avg", "max", "attn_pool")

SPEC = InputSpec(
    fs=FS,
    leads=LEADS_12,
    n_samples=N_SAMPLES,
    normalization="none",
    units="mV",
    notes="bench-xecg: FFT resampling to 100 Hz, no filtering or normalisation (mV), 25-sample patches",
)


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


class AttentionPooling(nn.Module):
    """Pretraining CLS head: one learned probe attends over the tokens, then a residual MLP
    (Perception-Encoder attention pooling, which bench-xecg imports from its ``pooling.py``)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.probe = nn.Parameter(torch.zeros(1, 1, dim))
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.layernorm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            OrderedDict(
                [("c_fc", nn.Linear(dim, 4 * dim)), ("gelu", nn.GELU()), ("c_proj", nn.Linear(4 * dim, dim))]
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.probe.expand(x.shape[0], -1, -1).to(x.dtype)
        y = self.attn(q, x, x, need_weights=False)[0]
        return (y + self.mlp(self.layernorm(y)))[:, 0]


class PatchEmbedding(nn.Module):
    def __init__(self, dim: int, leads: int = 12) -> None:
        super().__init__()
        self.conv = nn.Conv1d(leads, dim, PATCH, stride=PATCH, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 12, T) -> (B, T / 25, D)
        return self.conv(x).transpose(1, 2)


class XECGNet(nn.Module):
    """``(B, 12, T)`` (T a multiple of 25) -> pooled patch tokens ``(B, 1024)``."""

    def __init__(self, cfg: XLSTMConfig, pooling: str = "avg") -> None:
        super().__init__()
        self.pooling = pooling
        self.patch_embedding = PatchEmbedding(cfg.dim)
        self.core = BidirectionalCore(cfg)
        if pooling == "attn_pool":
            self.attn_pool = AttentionPooling(cfg.dim, cfg.heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % PATCH:
            x = F.pad(x, (0, PATCH - x.shape[-1] % PATCH))
        # a patch is padding when its first sample is zero on every lead (xlstm_model.get_padding_mask)
        pad = (x[:, :, ::PATCH].abs().sum(dim=1) == 0).unsqueeze(-1)  # (B, S, 1)
        out = self.core(self.patch_embedding(x))
        if self.pooling == "max":
            return out.masked_fill(pad, -math.inf).max(dim=1).values
        if self.pooling == "attn_pool":
            return self.attn_pool(out.masked_fill(pad, 0))
        return out.masked_fill(pad, 0).sum(dim=1) / (out.shape[1] - pad.sum(dim=1)).clamp(min=1)


# ----------------------------------------------------------------------------- checkpoint layout
def infer_config(sd: Mapping[str, torch.Tensor]) -> XLSTMConfig:
    """Sizes and block pattern from a converted (``core.model.``) state dict.

    Raises:
        CheckpointError: when no xLSTM blocks are found.
    """
    idx = sorted({int(m.group(1)) for k in sd if (m := re.match(r"core\.model\.blocks\.(\d+)\.", k))})
    if not idx:
        raise CheckpointError(
            "xecg checkpoint has no core.model.blocks.N keys; is it an xECG Lightning checkpoint?"
        )
    pattern = "".join(
        "s" if f"core.model.blocks.{i}.xlstm.slstm_cell._recurrent_kernel_" in sd else "m" for i in idx
    )
    dim = int(sd["patch_embedding.conv.weight"].shape[0]) if "patch_embedding.conv.weight" in sd else 1024
    cfg: dict[str, Any] = {
        "dim": dim,
        "pattern": pattern,
        "post_norm": "core.model.post_blocks_norm.weight" in sd,
    }
    if "s" in pattern:
        i = pattern.index("s")
        cfg["heads"] = int(sd[f"core.model.blocks.{i}.xlstm.slstm_cell._recurrent_kernel_"].shape[0])
        cfg["ffn"] = int(sd[f"core.model.blocks.{i}.ffn.proj_down.weight"].shape[1])
    if "m" in pattern:
        i = pattern.index("m")
        cfg["heads"] = int(sd[f"core.model.blocks.{i}.xlstm.mlstm_cell.igate.weight"].shape[0])
        inner = int(sd[f"core.model.blocks.{i}.xlstm.proj_up.weight"].shape[0]) // 2
        cfg["mlstm_inner"] = inner
        cfg["qkv_block"] = inner // int(sd[f"core.model.blocks.{i}.xlstm.q_proj.weight"].shape[0])
    return XLSTMConfig(**cfg)


def convert_state_dict(
    sd: Mapping[str, torch.Tensor], *, weights: str = "student"
) -> dict[str, torch.Tensor]:
    """Lightning ``state_dict`` of bench-xecg's ``PretrainedNetwork`` -> :class:`XECGNet` keys.

    ``model.`` is the student (what bench-xecg's downstream loader uses), ``model._teacher.`` the
    SimDINO EMA teacher; the other one keeps a ``_unused_`` prefix so that it is dropped by name.
    bench-xecg's ``format_keys`` rename ``xlstm.model`` -> ``core.model`` is applied.
    """
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        k2 = k[len("model.") :] if k.startswith("model.") else k
        teacher = k2.startswith("_teacher.")
        if teacher:
            k2 = k2[len("_teacher.") :]
        k2 = k2.replace("xlstm.model", "core.model")
        if teacher != (weights == "teacher"):
            k2 = "_unused_." + k2
        out[k2] = v
    return out


def drop_rules(pooling: str, weights: str) -> dict[str, str]:
    """Keys of the published checkpoint the chosen embedding does not use, with the reason."""
    other = "SimDINO EMA teacher copy" if weights == "student" else "student copy"
    rules = {
        r"^_unused_\.": f"{other} (weights={weights!r} selects the other one)",
        r"^mask_token$": "mask token, used only when masking during pretraining",
        r"^reconstruction\.": "signal reconstruction head of the pretraining objective",
        r"^head\.|\.fc\.|^fc\.": "downstream classification head",
    }
    if pooling != "attn_pool":
        rules[r"^attn_pool\."] = "pretraining CLS attention-pooling head (linear evaluation pools the tokens)"
    return rules


def published_template(cfg: XLSTMConfig = XLSTMConfig()) -> dict[str, tuple[int, ...]]:
    """Key names and shapes of the released Lightning checkpoint's ``state_dict``."""
    with torch.device("meta"):
        student = {k: tuple(v.shape) for k, v in XECGNet(cfg, pooling="attn_pool").state_dict().items()}
    student["mask_token"] = (cfg.dim,)
    out = {"model." + k: s for k, s in student.items()}
    out.update({"model._teacher." + k: s for k, s in student.items()})
    half = cfg.dim // 2
    rec = {
        "pre_head.head.0.weight": (half, cfg.dim),
        "pre_head.head.0.bias": (half,),
        "pre_head.head.3.weight": (half, half),
        "pre_head.head.3.bias": (half,),
        "pre_head.head.6.weight": (cfg.dim, half),
        "pre_head.head.6.bias": (cfg.dim,),
        "deconv.weight": (cfg.dim, 12, PATCH),
    }
    out.update({"model.reconstruction." + k: s for k, s in rec.items()})
    return out


# ----------------------------------------------------------------------------- encoder
class XECGEncoder(TorchEncoder):
    """xECG with its official preprocessing; every layer emits tokens ``(B, S, D)`` (mean over tokens)."""

    family = FAMILY

    def _prepare(self, x: np.ndarray, fs: float, window: str, hop: int | None) -> np.ndarray:
        """FFT resampling to 100 Hz (mV) -> ``(N, 12, 1000)`` (``"fit"``: first 10 s, zero-padded;
        padded patches are excluded from the pooling) or ``(N, W, 12, 1000)``."""
        from scipy import signal

        if fs != FS:
            x = signal.resample(x.astype(np.float64), int(np.round(x.shape[-1] * FS / fs)), axis=-1)
        return cut_window(np.asarray(x, dtype=np.float32), N_SAMPLES, window=window, hop=hop)

    def _pool(self, layer: str, output: Any) -> torch.Tensor:
        out = output[0] if isinstance(output, (tuple, list)) else output
        return out.mean(dim=1)


@ENCODERS.register(
    FAMILY,
    family=FAMILY,
    needs_checkpoint=True,
    checkpoint_format="PyTorch Lightning .ckpt of bench-xecg pretraining (state_dict with model. and model._teacher.)",
    embed_dim=1024,
    spec=SPEC,
    key_prefixes=(
        "model.core.model.blocks.",
        "model.patch_embedding.conv.",
        "model._teacher.",
        "model.attn_pool.",
    ),
    download="the authors' release linked from https://github.com/dlaskalab/bench-xecg",
    licence="MIT (bench-xecg code; see the authors' release for the weights)",
    details=(
        "xECG (Lunelli et al., arXiv:2509.10151; dlaskalab/bench-xecg). Linear patch embedding (25 samples, 1024-d), "
        "bidirectional xLSTM stack s,s,m,m,s,s,m,m,s (sequence flipped before every block but the first), 4 heads, "
        "sLSTM with gated FFN (1344), mLSTM with 2x up-projection; pure-torch reimplementation of the xlstm package "
        "reading the CUDA-kernel sLSTM layout. Embedding: mean over patch tokens excluding zero-padded patches "
        "(bench-xecg linear evaluation, cls_type avg); pooling='max' (CPSC2018 config) and 'attn_pool' (the "
        "pretraining SimDINO CLS head; its layout follows Perception-Encoder attention pooling, which bench-xecg's "
        "unpublished pooling.py is assumed to match) are options. weights='student' (the downstream loader's "
        "choice) or 'teacher' (EMA). Input: 12 leads I..V6 at 100 Hz, FFT resampling, no normalisation (mV); "
        "10 s windows (any multiple of 25 samples works). Layers: patch_embedding, block_1..block_9."
    ),
    make_test_checkpoint=lambda path, seed: make_test_checkpoint(path, seed),
)
def create_xecg(checkpoint: str | Path, *, pooling: str = "avg", weights: str = "student") -> XECGEncoder:
    """Load xECG from its Lightning checkpoint.

    Args:
        checkpoint: the ``.ckpt`` file.
        pooling: ``"avg"`` (official linear evaluation), ``"max"`` or ``"attn_pool"``.
        weights: ``"student"`` (as bench-xecg's downstream loader) or ``"teacher"`` (EMA).

    Raises:
        ConfigError: unknown pooling or weights.
        CheckpointError: unreadable or mismatching checkpoint.

    Example:
        >>> enc = ecgprobe.create_encoder("xecg", checkpoint="epoch=49-step=504700.ckpt")  # doctest: +SKIP
        >>> enc.spec.fs, enc.embed_dim  # doctest: +SKIP
        (100.0, 1024)
    """
    if pooling not in POOLINGS:
        raise ConfigError(f"xecg pooling {pooling!r} unknown; choose from {list(POOLINGS)}")
    if weights not in ("student", "teacher"):
        raise ConfigError(f"xecg weights {weights!r} unknown; choose 'student' or 'teacher'")
    obj = load_lightning_checkpoint(checkpoint, family=FAMILY)  # Lightning may pickle config objects
    sd = convert_state_dict(
        extract_state_dict(obj, ["state_dict"], path=checkpoint, family=FAMILY), weights=weights
    )
    cfg = infer_config(sd)
    with torch.device("meta"):  # skip random initialisation of weights that are loaded next
        net = XECGNet(cfg, pooling=pooling)
    net = net.to_empty(device="cpu").eval()
    report = load_strict(net, sd, family=FAMILY, path=checkpoint, drop=drop_rules(pooling, weights))
    layers = {
        "patch_embedding": net.patch_embedding,
        **{f"block_{i + 1}": b for i, b in enumerate(net.core.model.blocks)},
    }
    return XECGEncoder(
        net,
        layers=layers,
        name=FAMILY,
        spec=SPEC,
        embed_dim=cfg.dim,
        pooling={
            "avg": "mean over patch tokens (padded patches excluded; official linear evaluation)",
            "max": "max over patch tokens",
            "attn_pool": "pretraining CLS attention pooling",
        }[pooling],
        weights_sha256=file_sha256(checkpoint),
        options={"pooling": pooling, "weights": weights, "dropped_keys": len(report.dropped)},
    )


def make_test_checkpoint(path: Path, seed: int) -> Path:
    """Random full-size weights in the Lightning container (``state_dict`` + Lightning fields, no optimizer)."""
    path = Path(path)
    if path.suffix != ".ckpt":
        path = path / "epoch=49-step=504700.ckpt"
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "epoch": 49,
        "global_step": 504700,
        "pytorch-lightning_version": "2.5.0",
        "state_dict": random_state_dict(published_template(), seed=seed),
        "loops": {},
        "callbacks": {},
        "optimizer_states": [],
        "lr_schedulers": [],
        "hparams_name": "config",
        "hyper_parameters": {
            "embedding_size": 1024,
            "xlstm_config": list("ssmmssmms"),
            "num_heads": 4,
            "patch_size": PATCH,
            "sampling_freq": int(FS),
            "cls_type": "attn_pool",
            "bidirectional": True,
            "use_final_layer_norm": False,
        },
    }
    torch.save(state, path)
    return path
