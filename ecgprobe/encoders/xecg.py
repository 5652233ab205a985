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
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ecgprobe.data.leads import LEADS_12
from ecgprobe.data.loading import check_choice
from ecgprobe.encoders._lightning import lightning_container, load_lightning_checkpoint
from ecgprobe.encoders._xlstm import BidirectionalCore, XLSTMConfig
from ecgprobe.encoders._zoo import cut_window, empty_module, save_torch
from ecgprobe.encoders.base import InputSpec, TorchEncoder, file_sha256
from ecgprobe.encoders.checkpoint import extract_state_dict, load_strict, random_state_dict
from ecgprobe.encoders.registry import ENCODERS
from ecgprobe.exceptions import CheckpointError

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


def published_template(cfg: XLSTMConfig | None = None) -> dict[str, tuple[int, ...]]:
    """Key names and shapes of the released Lightning checkpoint's ``state_dict`` (default sizes:
    the released model)."""
    cfg = cfg or XLSTMConfig()
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
    check_choice(pooling, tuple(POOLINGS), "xecg option pooling")
    check_choice(weights, ("student", "teacher"), "xecg option weights")
    obj = load_lightning_checkpoint(checkpoint, family=FAMILY)  # Lightning may pickle config objects
    sd = convert_state_dict(
        extract_state_dict(obj, ["state_dict"], path=checkpoint, family=FAMILY), weights=weights
    )
    cfg = infer_config(sd)
    net = empty_module(lambda: XECGNet(cfg, pooling=pooling)).eval()  # the checkpoint supplies every weight
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
    hyper_parameters = {
        "embedding_size": 1024,
        "xlstm_config": list("ssmmssmms"),
        "num_heads": 4,
        "patch_size": PATCH,
        "sampling_freq": int(FS),
        "cls_type": "attn_pool",
        "bidirectional": True,
        "use_final_layer_norm": False,
    }
    sd = random_state_dict(published_template(), seed=seed)
    state = lightning_container(
        sd, hyper_parameters, epoch=49, global_step=504700, version="2.5.0", hparams_name="config"
    )
    return save_torch(state, path)
