"""``ecg-jepa``: ECG-JEPA (Kim 2024), a ViT-B over per-lead patches trained as a JEPA.

Official code: github.com/sehunfromdaegu/ECG_JEPA — ``ecg_jepa.py`` (``MaskTransformer``, its
``representation``), ``models.py`` (``load_encoder``: 768 wide, 12 blocks, 16 heads, 8 leads,
sin-cos positions), ``ecg_data.py`` (``waves_ptbxl``: PTB-XL 500 Hz resampled with
``scipy.signal.resample`` to 2,500 samples, leads I, II, V1-V6, no filtering, no scaling),
``downstream_tasks/linear_eval.py`` (features = ``encoder.representation``).

The network: each lead's 10 s at 250 Hz is cut into 50 patches of 50 samples, projected
(``W_P``, 50 -> 768) into 400 tokens. Before *every* block the (frozen, stored) 2-D sin-cos
position table is added again; attention is restricted to tokens of the same lead or the same
time patch. Embedding: the mean over all tokens of the final LayerNorm output.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ecgprobe.encoders._resample import resample_fft, windows_then_resample
from ecgprobe.encoders._vit import Block, mean_tokens
from ecgprobe.encoders._zoo import empty_module, save_torch
from ecgprobe.encoders.base import InputSpec, TorchEncoder, file_sha256
from ecgprobe.encoders.checkpoint import (
    load_strict,
    random_state_dict,
    read_state_dict,
    rename_keys,
    strip_prefix,
)
from ecgprobe.encoders.registry import ENCODERS
from ecgprobe.exceptions import ConfigError

__all__ = ["JEPA_LEADS", "SPEC", "ECGJEPAEncoder", "convert_state_dict", "make_test_checkpoint"]

FAMILY = "ecg-jepa"
#: The 8 independent leads, in the model's order (official ``reduced_lead``: rows 0, 1, 6-11).
JEPA_LEADS: tuple[str, ...] = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
_DIM, _DEPTH, _HEADS, _PATCH, _N_PATCHES = 768, 12, 16, 50, 50

SPEC = InputSpec(
    fs=250.0,
    leads=JEPA_LEADS,
    n_samples=_PATCH * _N_PATCHES,
    normalization="none",
    units="mV",
    notes=(
        "ECG-JEPA official linear evaluation (ecg_data.waves_ptbxl): 10 s cut at the record's rate, "
        "then Fourier-resampled (scipy.signal.resample) to 2,500 samples at 250 Hz; leads I, II, V1-V6; "
        "no filtering, no normalisation, millivolts."
    ),
)


class _JEPANet(nn.Module):
    """``MaskTransformer.representation`` with every attention block exposed."""

    def __init__(self, lead_idx: Sequence[int]) -> None:
        super().__init__()
        self.W_P = nn.Linear(_PATCH, _DIM)
        self.pos_embed = nn.Parameter(torch.zeros(len(JEPA_LEADS) * _N_PATCHES, _DIM), requires_grad=False)
        self.blocks = nn.ModuleList(
            Block(_DIM, _HEADS, _DIM // _HEADS, 4 * _DIM, qkv_bias=False) for _ in range(_DEPTH)
        )
        self.norm = nn.LayerNorm(_DIM)
        # Plain CPU tensors (not buffers): fixed by the lead choice, never in the checkpoint, and
        # untouched when the module is built on the meta device and materialised for loading.
        self.lead_idx = torch.as_tensor(list(lead_idx), device="cpu")
        lead = self.lead_idx.repeat_interleave(_N_PATCHES)
        patch = torch.arange(_N_PATCHES, device="cpu").repeat(len(self.lead_idx))
        # Official _cross_attention_mask: a token sees the tokens of its lead and of its time patch.
        self.attn_mask = (lead[:, None] == lead[None, :]) | (patch[:, None] == patch[None, :])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n_leads, t = x.shape
        if n_leads != self.lead_idx.numel() or t != _PATCH * _N_PATCHES:
            raise ConfigError(
                f"ECG-JEPA takes ({self.lead_idx.numel()} leads, {_PATCH * _N_PATCHES} samples), got {tuple(x.shape)}"
            )
        tokens = self.W_P(x.reshape(b, n_leads * _N_PATCHES, _PATCH))
        idx = self.lead_idx.to(x.device)
        pos = self.pos_embed.reshape(len(JEPA_LEADS), _N_PATCHES, _DIM)[idx].reshape(-1, _DIM)
        mask = self.attn_mask.to(x.device)
        for block in self.blocks:
            tokens = block(tokens + pos, mask)
        return self.norm(tokens).mean(dim=1)


_RULES = [(r"^encoder_blocks\.blocks\.", "blocks.")]


def convert_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Published ``MaskTransformer`` keys (``encoder_blocks.blocks.N.…``) -> this module's."""
    return rename_keys(strip_prefix(sd), _RULES)


def _published_template() -> dict[str, torch.Tensor]:
    """The published key names and shapes (inverse of :func:`convert_state_dict`)."""
    with torch.device("meta"):  # names and shapes only
        net = _JEPANet(range(len(JEPA_LEADS)))
    return rename_keys(net.state_dict(), [(r"^blocks\.", "encoder_blocks.blocks.")])


class ECGJEPAEncoder(TorchEncoder):
    """ECG-JEPA: official Fourier-resampling preprocessing, token-mean pooling per block."""

    family: ClassVar[str] = FAMILY

    def _prepare(self, x: np.ndarray, fs: float, window: str, hop: int | None) -> np.ndarray:
        """10 s windows cut at the records' rate, Fourier-resampled to 2,500 samples (mV)."""
        return windows_then_resample(
            x, fs, self.spec.fs, self.spec.n_samples, resample_fft, window=window, hop=hop
        )

    def _pool(self, layer: str, output: Any) -> torch.Tensor:
        return mean_tokens(output)


def _spec_for(leads: Sequence[str] | None) -> tuple[InputSpec, list[int]]:
    if leads is None:
        return SPEC, list(range(len(JEPA_LEADS)))
    from ecgprobe.data.leads import canonical_leads

    chosen = canonical_leads(list(leads))
    bad = [lead for lead in chosen if lead not in JEPA_LEADS]
    if bad or not chosen or len(set(chosen)) != len(chosen):
        raise ConfigError(
            f"ECG-JEPA leads must be distinct leads among {list(JEPA_LEADS)}, got {list(leads)}"
        )
    ordered = [lead for lead in JEPA_LEADS if lead in chosen]
    spec = dataclasses.replace(SPEC, leads=tuple(ordered))
    return spec, [JEPA_LEADS.index(lead) for lead in ordered]


def _details() -> str:
    return (
        "ECG-JEPA (Kim, 'Learning general representation of 12-lead electrocardiogram with a joint-embedding "
        "predictive architecture', arXiv:2410.08559). ViT-B, 12 blocks x 768, 16 heads, no qkv bias; each lead "
        "cut into 50 patches of 50 samples (400 tokens for 8 leads); the stored 2-D sin-cos position table is "
        "re-added before every block; attention only within a lead or within a time patch. Embedding: mean over "
        "tokens of the final LayerNorm (official MaskTransformer.representation). Input contract: "
        f"{SPEC.notes} Option leads=[...] uses a subset of the 8 leads (official load_encoder(leads=...)). "
        "Layers block0..block11: token means of each block's output. The issue's table matches the official "
        "code; it does not say that resampling is Fourier-based (implemented exactly here)."
    )


@ENCODERS.register(
    "ecg-jepa",
    family=FAMILY,
    needs_checkpoint=True,
    checkpoint_format=".pth dict {'encoder': MaskTransformer state dict, 'epoch': int} (keys W_P., pos_embed, "
    "encoder_blocks.blocks.N., norm.)",
    embed_dim=_DIM,
    spec=SPEC,
    key_prefixes=("encoder_blocks.blocks.", "W_P.", "pos_embed"),
    download="github.com/sehunfromdaegu/ECG_JEPA README: multiblock_epoch100.pth or randomblock_epoch100.pth "
    "(Google Drive)",
    licence="MIT (code and released weights, github.com/sehunfromdaegu/ECG_JEPA)",
    details=_details(),
    make_test_checkpoint=lambda path, seed: make_test_checkpoint(path, seed),
)
def create_ecg_jepa(checkpoint: str | Path, *, leads: Sequence[str] | None = None) -> ECGJEPAEncoder:
    """Load ECG-JEPA from its published ``.pth``.

    Args:
        checkpoint: ``multiblock_epoch100.pth`` / ``randomblock_epoch100.pth`` (``{'encoder': ...}``).
        leads: optional subset of I, II, V1-V6 (official ``load_encoder(leads=...)``).

    Raises:
        CheckpointError: unreadable, unsafe or mismatching checkpoint.
        ConfigError: invalid ``leads``.

    Example:
        >>> enc = ecgprobe.create_encoder("ecg-jepa", checkpoint="multiblock_epoch100.pth")  # doctest: +SKIP
        >>> enc.embed(enc.preprocess(rs.signals, rs.fs, rs.leads)).shape  # doctest: +SKIP
        torch.Size([N, 768])
    """
    spec, idx = _spec_for(leads)
    sd = convert_state_dict(read_state_dict(checkpoint, ["encoder"], family=FAMILY))
    net = empty_module(lambda: _JEPANet(idx))  # the checkpoint supplies every weight
    load_strict(net, sd, family=FAMILY, path=checkpoint)
    layers = {f"block{i}": block for i, block in enumerate(net.blocks)}
    return ECGJEPAEncoder(
        net,
        layers=layers,
        name="ecg-jepa",
        spec=spec,
        embed_dim=_DIM,
        pooling="mean over the 50 x leads tokens of the final LayerNorm output",
        weights_sha256=file_sha256(checkpoint),
        options={"leads": list(spec.leads)} if leads is not None else {},
    )


def make_test_checkpoint(path: str | Path, seed: int = 0) -> Path:
    """Random full-size weights in the published container ``{'encoder': sd, 'epoch': 99}``."""
    return save_torch({"encoder": random_state_dict(_published_template(), seed=seed), "epoch": 99}, path)
