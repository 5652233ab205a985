"""``merl``: MERL (Liu et al., ICML 2024), the ECG encoder of a multimodal ECG-report model.

Official code: github.com/cheliu-computation/MERL-ICML2024. The released ``*_encoder.pth`` files
hold ``ECGCLIP.ecg_encoder.state_dict()`` (``utils/utils_trainer.py``), "the ecg encoder only for
linear probing"; ``*_ckpt.pth`` hold the whole model (encoder under ``ecg_encoder.``, plus the
text model and projection heads).

- ``variant="resnet18"`` (``utils/resnet1d.py``): a 1-D ResNet-18 — conv 7/2 (64) + BN + ReLU
  (no max-pool), four stages of two basic blocks (64, 128, 256, 512; kernel 3; 1x1 conv + BN
  shortcuts). The file also holds ``linear.`` (10 x 512), the untrained head of
  ``ResNet(num_classes=10)``. Embedding: average pooling over time (512), the input of the
  linear probe in ``finetune/models/resnet1d.py``.
- ``variant="vit_tiny"`` (``utils/vit1d.py``, the variant of ``pretrain/config.yaml``): patches
  of 50 samples embedded by a conv (192), learned positions, 12 pre-norm blocks (3 heads of 64,
  MLP 768, GELU); embedding: LayerNorm of the mean over the 100 tokens (192).

Input contract (``finetune/finetune_dataset.py``, the linear-probing loader): 500 Hz, the first
5000 samples (10 s), 12 leads in the MIMIC-IV-ECG order I, II, III, aVR, aVF, aVL, V1-V6 (the
loader swaps aVL and aVF of downstream records), min-max over the whole record to [0, 1]
(``(x - min) / (max - min + 1e-8)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ecgprobe.data.loading import check_choice
from ecgprobe.encoders._zoo import empty_module, save_torch
from ecgprobe.encoders.base import InputSpec, TorchEncoder, file_sha256
from ecgprobe.encoders.checkpoint import load_strict, random_state_dict, read_state_dict, strip_prefix
from ecgprobe.encoders.registry import ENCODERS
from ecgprobe.exceptions import CheckpointError

__all__ = ["MERL_SPEC", "MERLEncoder", "MERLResNet18", "MERLViT", "convert_merl_state_dict"]

FAMILY = "merl"
#: MIMIC-IV-ECG's lead order, which MERL was pretrained on and its downstream loader restores.
MIMIC_LEADS = ("I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6")
MERL_SPEC = InputSpec(
    fs=500.0,
    leads=MIMIC_LEADS,
    n_samples=5000,
    normalization="minmax_global",
    notes="MERL finetune/finetune_dataset.py: first 5000 samples, (x - min) / (max - min + 1e-8) over the whole "
    "record, aVL and aVF swapped into the MIMIC-IV-ECG order",
)
EMBED_DIMS = {"resnet18": 512, "vit_tiny": 192}
_HEAD_CLASSES = 10  # ResNet(num_classes=10): the pretraining encoder's untrained default head
DROP = {
    r"^linear\.": "untrained 10-way head of the pretraining ResNet (num_classes=10 default), never used by MERL",
    r"^(lm_model|proj_t|proj_e|downconv|att_pool_head|linear1|linear2)\.": (
        "text encoder and projection heads of the whole CLIP model (zero-shot); linear probing uses the ECG encoder"
    ),
}


# ----------------------------------------------------------------------------- ResNet18-1D
class _BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm1d(c_out)
        self.conv2 = nn.Conv1d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm1d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv1d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm1d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class MERLResNet18(nn.Module):
    """MERL's ResNet-18 encoder without its unused head: ``(B, 12, T) -> (B, 512)``."""

    def __init__(self, n_leads: int = 12) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(n_leads, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm1d(64)
        widths, c_in = (64, 128, 256, 512), 64
        for i, c_out in enumerate(widths):
            stride = 1 if i == 0 else 2
            setattr(
                self,
                f"layer{i + 1}",
                nn.Sequential(_BasicBlock(c_in, c_out, stride), _BasicBlock(c_out, c_out, 1)),
            )
            c_in = c_out

    def stages(self) -> list[nn.Module]:
        return [self.layer1, self.layer2, self.layer3, self.layer4]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        for stage in self.stages():
            out = stage(out)
        return out.mean(-1)


# ----------------------------------------------------------------------------- ViT-tiny
class _PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int) -> None:
        super().__init__()
        self.heads = heads
        self.to_qkv = nn.Linear(dim, 3 * heads * dim_head)
        self.to_out = nn.Sequential(nn.Linear(heads * dim_head, dim), nn.Dropout(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = (t.reshape(b, n, self.heads, -1).transpose(1, 2) for t in self.to_qkv(x).chunk(3, dim=-1))
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(dim_head)) v
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class _FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(0.0), nn.Linear(hidden, dim), nn.Dropout(0.0)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int, mlp_dim: int) -> None:
        super().__init__()
        self.attn = _PreNorm(dim, _Attention(dim, heads, dim_head))
        self.ff = _PreNorm(dim, _FeedForward(dim, mlp_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.attn(x) + x
        return self.ff(x) + x


class MERLViT(nn.Module):
    """MERL's 1-D ViT (``vit_tiny``: width 192, depth 12, 3 heads): ``(B, 12, 5000) -> (B, 192)``."""

    def __init__(
        self,
        n_leads: int = 12,
        seq_len: int = 5000,
        patch: int = 50,
        width: int = 192,
        depth: int = 12,
        heads: int = 3,
        dim_head: int = 64,
        mlp_dim: int = 768,
    ) -> None:
        super().__init__()
        self.depth = depth
        self.to_patch_embedding = nn.Conv1d(n_leads, width, patch, stride=patch, bias=False)
        self.pos_embedding = nn.Parameter(torch.zeros(1, seq_len // patch, width))
        for i in range(depth):
            self.add_module(f"block{i}", _TransformerBlock(width, heads, dim_head, mlp_dim))
        self.norm = nn.LayerNorm(width)

    def blocks(self) -> list[nn.Module]:
        return [getattr(self, f"block{i}") for i in range(self.depth)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.to_patch_embedding(x).transpose(1, 2) + self.pos_embedding
        for block in self.blocks():
            tokens = block(tokens)
        return self.norm(tokens.mean(dim=1))


# ----------------------------------------------------------------------------- loading
def build_merl(variant: str) -> nn.Module:
    """Our module for a variant (``"resnet18"`` or ``"vit_tiny"``)."""
    return MERLResNet18() if variant == "resnet18" else MERLViT()


def published_template(variant: str = "resnet18") -> dict[str, torch.Tensor]:
    """Names and shapes (meta tensors) of a published ``*_encoder.pth``: ours plus, for the
    ResNet, the untrained 10-way ``linear.`` head."""
    with torch.device("meta"):
        sd = dict(build_merl(variant).state_dict())
        if variant == "resnet18":
            sd["linear.weight"] = torch.empty(_HEAD_CLASSES, 512)
            sd["linear.bias"] = torch.empty(_HEAD_CLASSES)
    return sd


def convert_merl_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Published layout -> our names: ``*_encoder.pth`` keys are ours already; in a whole-model
    file (``*_ckpt.pth``, possibly DDP-wrapped) the encoder sits under ``ecg_encoder.`` and the
    other parts keep their names so that :data:`DROP` lists them."""
    sd = strip_prefix(sd, ("module.",))
    if any(k.startswith("ecg_encoder.") for k in sd):
        return {k.removeprefix("ecg_encoder."): v for k, v in sd.items()}
    return sd


def infer_variant(sd: dict[str, torch.Tensor]) -> str | None:
    """``"vit_tiny"``/``"resnet18"`` from distinctive keys, ``None`` when neither fits."""
    patch = sd.get("to_patch_embedding.weight")
    if patch is not None:
        return "vit_tiny" if patch.shape[0] == EMBED_DIMS["vit_tiny"] else None
    return "resnet18" if "layer4.1.conv2.weight" in sd else None


class MERLEncoder(TorchEncoder):
    """MERL's ECG encoder (ResNet-18 or ViT-tiny); token layers of the ViT are mean-pooled."""

    family = FAMILY

    def __init__(self, module: nn.Module, **kwargs: Any) -> None:
        super().__init__(module, **kwargs)
        self._tokens = isinstance(module, MERLViT)

    def _pool(self, layer: str, output: Any) -> torch.Tensor:
        if self._tokens and layer.startswith("block"):
            return output.mean(dim=1)  # (B, tokens, C): mean over tokens, as the model pools
        return super()._pool(layer, output)


def make_merl_checkpoint(path: Path, seed: int, *, variant: str = "resnet18") -> Path:
    """Write random full-size weights as a published ``*_encoder.pth``: a plain state dict
    (``torch.save(model.module.ecg_encoder.state_dict())``), with the ResNet's 10-way ``linear.``."""
    return save_torch(random_state_dict(published_template(variant), seed=seed), path)


@ENCODERS.register(
    "merl",
    family=FAMILY,
    needs_checkpoint=True,
    checkpoint_format=(
        "*_encoder.pth: plain state dict of the ECG encoder (ResNet: conv1., layerN., unused 10-way linear.; "
        "ViT: to_patch_embedding., blockN.); *_ckpt.pth (whole model, encoder under ecg_encoder.) is accepted too"
    ),
    embed_dim=EMBED_DIMS["resnet18"],
    spec=MERL_SPEC,
    key_prefixes=("layer2.0.shortcut.0.", "layer4.1.conv2.", "to_patch_embedding.", "block11.ff.fn.net.3."),
    download="https://drive.google.com/drive/folders/13wb4DppUciMn-Y_qC2JRWTbZdz3xX0w2 (MERL README)",
    licence="see the MERL-ICML2024 repository LICENSE and the release folder",
    details=(
        "MERL ECG encoder. variant='resnet18' (default, 512: average pooling of the last stage) or 'vit_tiny' (192: "
        "LayerNorm of the mean token), inferred from the file. Input: 500 Hz, 10 s, 12 leads in the MIMIC-IV-ECG order "
        "I, II, III, aVR, aVF, aVL, V1-V6 (the downstream loader swaps aVL/aVF; the issue's table omits this), global "
        "min-max to [0, 1]. Liu et al., 'Zero-Shot ECG Classification with Multimodal Learning and Test-time "
        "Clinical Knowledge Enhancement', ICML 2024."
    ),
    make_test_checkpoint=make_merl_checkpoint,
)
def create_merl(
    checkpoint: str | Path, *, variant: Literal["resnet18", "vit_tiny"] | None = None
) -> MERLEncoder:
    """Load MERL's ECG encoder from a published ``*_encoder.pth`` (or whole-model ``*_ckpt.pth``).

    Args:
        checkpoint: the file.
        variant: ``"resnet18"`` or ``"vit_tiny"``; inferred from the weights when omitted.

    Raises:
        CheckpointError: unreadable file, wrong layout, or a variant that contradicts the weights.
        ConfigError: unknown variant.

    Example:
        >>> enc = ecgprobe.create_encoder("merl", checkpoint="res18_best_encoder.pth")  # doctest: +SKIP
        >>> enc.embed_dim
        512
    """
    check_choice(variant, (None, *EMBED_DIMS), "merl option variant")
    sd = convert_merl_state_dict(
        read_state_dict(checkpoint, ("model_state_dict", "state_dict"), family=FAMILY)
    )
    inferred = infer_variant(sd)
    if variant is None:
        variant = inferred or "resnet18"  # unknown layouts fall through to load_strict's report
    elif inferred is not None and inferred != variant:
        raise CheckpointError(
            f"merl checkpoint {checkpoint} holds the {inferred} encoder but variant={variant!r} was requested; "
            f"omit variant or pass variant={inferred!r}"
        )
    net = empty_module(lambda: build_merl(variant))
    report = load_strict(net, sd, family=FAMILY, path=checkpoint, drop=DROP)
    if isinstance(net, MERLViT):
        layers = {f"block{i}": b for i, b in enumerate(net.blocks())}
        pooling = "LayerNorm of the mean over the 100 patch tokens"
    else:
        layers = {f"layer{i + 1}": s for i, s in enumerate(net.stages())}
        pooling = "average over time of the last stage (input of MERL's linear probe)"
    return MERLEncoder(
        net,
        load_report=report,
        layers=layers,
        name="merl",
        spec=MERL_SPEC,
        embed_dim=EMBED_DIMS[variant],
        pooling=pooling,
        weights_sha256=file_sha256(checkpoint),
        options={"variant": variant},
    )
