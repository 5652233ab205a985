"""``st-mem``: ST-MEM (Na et al., ICLR 2024), a ViT-B/75 with lead embeddings and SEP tokens.

Official code: github.com/bakqui/ST-MEM — ``models/encoder/st_mem_vit.py`` (``ST_MEM_ViT``,
``forward_encoding``), ``models/encoder/vit.py`` (``TransformerBlock``: ``PreNorm`` attention
with ``to_qkv``/``to_out``, ``FeedForward``), ``models/st_mem.py`` (the pre-training model whose
``encoder.`` this is), ``util/dataset.py`` + ``util/transforms.py`` and
``configs/downstream/st_mem.yaml`` (the evaluation transforms), ``main_downstream.py`` (the
encoder checkpoint is ``torch.load(path)['model']``).

Per lead, 2,250 samples (9 s at 250 Hz) are cut into 30 patches of 75 samples
(LayerNorm(75) -> Linear(75, 768) -> LayerNorm(768)); each lead's sequence gets positions 1..30,
a SEP token at each end (positions 0 and 31) and that lead's embedding; the 12 x 32 tokens go
through 12 pre-norm blocks; the SEP tokens are dropped, the rest averaged, then LayerNorm'ed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ecgprobe.data import preprocess as pp
from ecgprobe.data.leads import LEADS_12
from ecgprobe.encoders._resample import resample_fft
from ecgprobe.encoders._vit import Block
from ecgprobe.encoders._zoo import cut_window, empty_module, save_torch
from ecgprobe.encoders.base import InputSpec, RecordCrops, TorchEncoder, file_sha256
from ecgprobe.encoders.checkpoint import (
    load_strict,
    prefix_rules,
    random_state_dict,
    read_state_dict,
    rename_keys,
    strip_prefix,
)
from ecgprobe.encoders.registry import ENCODERS
from ecgprobe.exceptions import ConfigError

__all__ = ["SPEC", "STMEMEncoder", "convert_state_dict", "make_test_checkpoint"]

FAMILY = "st-mem"
_DIM, _DEPTH, _HEADS, _HEAD_DIM, _MLP, _PATCH, _N_SAMPLES = 768, 12, 12, 64, 3072, 75, 2250
_N_PATCHES = _N_SAMPLES // _PATCH
_FILTER_ORDER, _HIGHPASS, _LOWPASS = 5, 0.67, 40.0

SPEC = InputSpec(
    fs=250.0,
    leads=LEADS_12,
    n_samples=_N_SAMPLES,
    bandpass=(_HIGHPASS, _LOWPASS),
    filter_order=_FILTER_ORDER,
    normalization="zscore_global",
    units="mV",
    notes=(
        "ST-MEM official evaluation transforms (configs/downstream/st_mem.yaml, util/transforms.py): the whole "
        "record Fourier-resampled to 250 Hz (scipy.signal.resample); windows of 2,250 samples; on each window a "
        "5th-order Butterworth high-pass at 0.67 Hz and then a 5th-order low-pass at 40 Hz (two separate "
        "zero-phase sosfiltfilt passes, scipy's default padding); each window standardised over all leads and "
        "samples together (zero where the std is 0). Leads I..V6 in the standard order."
    ),
    crops=RecordCrops(
        "spaced",
        n=3,
        source="configs/downstream/st_mem.yaml eval_transforms n_crop (crop_length 2250, num_segments 3); "
        "util/transforms.py NCrop.__call__ (starts np.arange(0, T - 2250 + 1, (T - 2250) // 2)); "
        "engine_downstream.py evaluate (samples.ndim == 4: the model on each crop, logits and outputs "
        "averaged over the crops)",
    ),
)


class _STMEMNet(nn.Module):
    """``ST_MEM_ViT.forward_encoding`` (12 leads, 30 patches per lead)."""

    def __init__(self) -> None:
        super().__init__()
        self.patch_norm_in = nn.LayerNorm(_PATCH)
        self.patch_proj = nn.Linear(_PATCH, _DIM)
        self.patch_norm_out = nn.LayerNorm(_DIM)
        self.pos_embedding = nn.Parameter(torch.zeros(1, _N_PATCHES + 2, _DIM))
        self.sep_embedding = nn.Parameter(torch.zeros(_DIM))
        self.lead_embeddings = nn.ParameterList(nn.Parameter(torch.zeros(_DIM)) for _ in LEADS_12)
        self.blocks = nn.ModuleList(
            Block(_DIM, _HEADS, _HEAD_DIM, _MLP, qkv_bias=True) for _ in range(_DEPTH)
        )
        self.norm = nn.LayerNorm(_DIM)

    def forward(self, series: torch.Tensor) -> torch.Tensor:
        b, n_leads, t = series.shape
        if n_leads != len(LEADS_12) or t != _N_SAMPLES:
            raise ConfigError(f"ST-MEM takes (12 leads, {_N_SAMPLES} samples), got {tuple(series.shape)}")
        x = series.reshape(b, n_leads, _N_PATCHES, _PATCH)
        x = self.patch_norm_out(self.patch_proj(self.patch_norm_in(x)))
        x = x + self.pos_embedding[:, 1 : _N_PATCHES + 1].unsqueeze(1)
        sep = self.sep_embedding.expand(b, n_leads, 1, _DIM)
        left = sep + self.pos_embedding[:, :1].unsqueeze(1)
        right = sep + self.pos_embedding[:, -1:].unsqueeze(1)
        x = torch.cat([left, x, right], dim=2) + torch.stack(list(self.lead_embeddings))[None, :, None, :]
        x = x.reshape(b, n_leads * (_N_PATCHES + 2), _DIM)
        for block in self.blocks:
            x = block(x)
        return self.norm(_mean_without_sep(x))


def _mean_without_sep(tokens: torch.Tensor) -> torch.Tensor:
    """Drop each lead's two SEP tokens and average the rest (official ``x[:, :, 1:-1].mean((1, 2))``)."""
    b = tokens.shape[0]
    return tokens.reshape(b, len(LEADS_12), _N_PATCHES + 2, -1)[:, :, 1:-1].mean(dim=(1, 2))


#: ``(published ST_MEM_ViT, this module)`` key prefixes; ``{n}`` is the block index.
_NAMES = [
    ("block{n}.attn.norm.", "blocks.{n}.norm1."),
    ("block{n}.attn.fn.to_qkv.", "blocks.{n}.attn.qkv."),
    ("block{n}.attn.fn.to_out.0.", "blocks.{n}.attn.proj."),
    ("block{n}.ff.norm.", "blocks.{n}.norm2."),
    ("block{n}.ff.fn.net.0.", "blocks.{n}.mlp.fc1."),
    ("block{n}.ff.fn.net.3.", "blocks.{n}.mlp.fc2."),
    ("to_patch_embedding.1.", "patch_norm_in."),
    ("to_patch_embedding.2.", "patch_proj."),
    ("to_patch_embedding.3.", "patch_norm_out."),
]
_BLOCK_RULES = prefix_rules(_NAMES)
#: Keys of the full pre-training checkpoint (``ST_MEM``) that the encoder does not use.
_FULL_DROP = {
    r"^(to_decoder_embedding|mask_embedding|decoder_pos_embed|decoder_blocks|decoder_norm|decoder_head)(\.|$)": (
        "MAE decoder of the full pre-training checkpoint (unused by the encoder)"
    ),
    r"^to_patch_embedding\.": "alias of encoder.to_patch_embedding in the full checkpoint (same tensors)",
}


def convert_state_dict(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Published ``ST_MEM_ViT`` keys -> this module's, plus the ``drop`` rules that apply.

    Accepts the encoder checkpoint (``block0.attn.fn.to_qkv.weight`` ...) and the full
    encoder+decoder checkpoint (``encoder.block0...`` plus the decoder); for the latter the
    decoder and the aliased top-level ``to_patch_embedding.`` are dropped explicitly.
    """
    sd = strip_prefix(sd)
    if not any(k.startswith("encoder.") for k in sd):
        return rename_keys(sd, _BLOCK_RULES), {}
    encoder = {k[len("encoder.") :]: v for k, v in sd.items() if k.startswith("encoder.")}
    rest = {k: v for k, v in sd.items() if not k.startswith("encoder.")}
    return {**rename_keys(encoder, _BLOCK_RULES), **rest}, dict(_FULL_DROP)


def _published_template() -> dict[str, torch.Tensor]:
    """The encoder checkpoint's key names and shapes (inverse of the block/patch renaming)."""
    with torch.device("meta"):  # names and shapes only
        net = _STMEMNet()
    return rename_keys(net.state_dict(), prefix_rules(_NAMES, inverse=True))


def _filter_and_standardise(x: np.ndarray, fs: float) -> np.ndarray:
    """Official ``HighpassFilter`` -> ``LowpassFilter`` -> ``Standardize`` on each window."""
    from scipy import signal as sps

    high = sps.butter(_FILTER_ORDER, _HIGHPASS, btype="highpass", fs=fs, output="sos")
    low = sps.butter(_FILTER_ORDER, _LOWPASS, btype="lowpass", fs=fs, output="sos")
    y = sps.sosfiltfilt(low, sps.sosfiltfilt(high, np.asarray(x, dtype=np.float64), axis=-1), axis=-1)
    return pp.normalize(y, "zscore_global")


class STMEMEncoder(TorchEncoder):
    """ST-MEM: official resample -> window -> filter -> standardise; SEP-free token means."""

    family: ClassVar[str] = FAMILY

    def _prepare(self, x: np.ndarray, fs: float, window: str, hop: int | None) -> np.ndarray:
        """Official evaluation transforms: FFT resampling to 250 Hz, the window, then per window
        the 0.67-40 Hz filters and standardisation (the official three ``NCrop(2250, 3)`` crops
        are ``window="official"``, cut here as sliding windows of their spacing)."""
        x = resample_fft(x, fs, self.spec.fs)
        return _filter_and_standardise(cut_window(x, _N_SAMPLES, window=window, hop=hop), self.spec.fs)

    def _pool(self, layer: str, output: Any) -> torch.Tensor:
        out = output[0] if isinstance(output, (tuple, list)) else output
        return _mean_without_sep(out)


def _details() -> str:
    return (
        "ST-MEM (Na, Park, Tae, Joo, 'Guiding masked representation learning to capture spatio-temporal "
        "relationship of electrocardiogram', ICLR 2024). ViT-B/75: 12 blocks x 768, 12 heads of 64, qkv bias; "
        "per-lead patches of 75 samples with a SEP token at both ends of each lead and a learned lead embedding. "
        "Embedding: mean over the non-SEP tokens of the last block, then the final LayerNorm (official "
        f"forward_encoding; the linear probe reads it). Input contract: {SPEC.notes} "
        "Record level (the default, window='official'): the mean of the embeddings of the three official "
        "evaluation crops, 2,250 samples at 250 Hz starting at 0, (T-2250)//2 and 2(T-2250)//2 (0, 125, 250 of a "
        "10 s record; record level below for the source). The authors average the crops' logits, which for a linear "
        "probe is the probe of the mean embedding; records no longer than 9 s give one zero-padded crop (the "
        "official NCrop refuses them). window='fit' embeds only the first crop. Layers block0..block11: the same "
        "SEP-free token means (without the final LayerNorm), averaged over the same crops. Accepts the encoder "
        "checkpoint and the full encoder+decoder checkpoint. "
        "The issue's table says '0.67-40 Hz filtering, standardised': precisely two separate 5th-order "
        "Butterworth filters per window and one mean/std over all 12 leads."
    )


@ENCODERS.register(
    "st-mem",
    family=FAMILY,
    needs_checkpoint=True,
    checkpoint_format=".pth dict {'model': ST_MEM_ViT state dict} (keys to_patch_embedding., pos_embedding, "
    "sep_embedding, lead_embeddings.N, blockN.attn.fn.to_qkv. ...), or the full pre-training checkpoint "
    "(encoder. + decoder keys)",
    embed_dim=_DIM,
    spec=SPEC,
    key_prefixes=("sep_embedding", "lead_embeddings.", "block0.attn.fn.to_qkv.", "to_patch_embedding."),
    download="github.com/bakqui/ST-MEM README: 'Encoder' (and 'Full (encoder + decoder)') Google Drive links",
    licence="CC BY-NC 4.0 (github.com/bakqui/ST-MEM LICENSE; VUNO Inc.)",
    details=_details(),
    make_test_checkpoint=lambda path, seed: make_test_checkpoint(path, seed),
)
def create_st_mem(checkpoint: str | Path) -> STMEMEncoder:
    """Load ST-MEM from its published ``.pth`` (encoder-only or full).

    Raises:
        CheckpointError: unreadable, unsafe or mismatching checkpoint.

    Example:
        >>> enc = ecgprobe.create_encoder("st-mem", checkpoint="st_mem_vit_base.pth")  # doctest: +SKIP
        >>> emb = ecgprobe.extract(enc, records)  # mean over the official 3 crops  # doctest: +SKIP
    """
    sd, drop = convert_state_dict(read_state_dict(checkpoint, ["model"], family=FAMILY))
    net = empty_module(_STMEMNet)  # the checkpoint supplies every weight
    load_strict(net, sd, family=FAMILY, path=checkpoint, drop=drop)
    return STMEMEncoder(
        net,
        layers={f"block{i}": block for i, block in enumerate(net.blocks)},
        name="st-mem",
        spec=SPEC,
        embed_dim=_DIM,
        pooling="mean over the 12 x 30 non-SEP tokens of the last block, then LayerNorm",
        weights_sha256=file_sha256(checkpoint),
    )


def make_test_checkpoint(path: str | Path, seed: int = 0) -> Path:
    """Random full-size weights in the published encoder container ``{'model': sd}``."""
    return save_torch({"model": random_state_dict(_published_template(), seed=seed)}, path)
