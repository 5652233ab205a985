"""``ecgfm-ked``: ECGFM-KED (Tian et al., Cell Reports Medicine 2024), the xresnet1d101 ECG encoder
of a knowledge-enhanced ECG-text model.

Official code: github.com/control-spiderman/ECGFM-KED. ``models/xresnet1d_101.py`` (fastai-style
XResNet, the file ``main_mimiciv.py`` and ``test_*.py`` import; not ``xresnet1d_101_new.py``):
a stem of three conv-BN-ReLU layers (12 -> 32 -> 32 -> 64, kernel 5, the first with stride 2),
max-pool 3/2, then [3, 4, 23, 3] bottleneck blocks (expansion 4; widths 64, 128, 128, 192 ->
256, 512, 512, 768 channels; kernel 5; stride 2 from the second stage on; shortcut = average
pool 2 (ceil) and/or conv 1x1 + BN). Built as ``xresnet1d101(num_classes=105, input_channels=12,
kernel_size=5, ps_head=0.5)`` without ``use_ecgNet_Diagnosis``, it has no head and returns the
(B, 768, T/32) feature map; the training and fine-tuning loops (``engine/train_fg.py``,
``engine/finetune_fg.py``) pool it as ``ecg_features.mean(-1)``: the 768-d embedding.

Published checkpoint (``best_valid_all_increase_with_augment_epoch_3.pt``, Zenodo 14881564): a
dict ``{'model', 'ecg_model', 'text_encoder', 'optimizer', 'lr_scheduler', 'config', 'epoch'}``;
the encoder is the nested state dict ``'ecg_model'``. Each ResBlock registers its conv stack
twice (``self.convs`` and ``self.convpath = Sequential(self.convs)``), so every ``convs.`` tensor
is stored again under ``convpath.0.``; those aliases are checked equal and dropped.

Input contract: 100 Hz, 10 s (1000 samples), 12 leads, millivolts, no normalisation: the
MIMIC-IV-ECG pretraining loader (``dataset/ecgDataset.MimicivDataset``) and the Georgia, CPSC
and Shaoxing preprocessing (``dataset/*/data_preprocess.py``) resample 500 Hz records with
``scipy.signal.resample`` (FFT) to ``T/5`` samples and keep the first 1000 (records shorter than
that are zero-padded equally on both sides). Lead order: the downstream scripts feed each
dataset's own order (the standard I, II, III, aVR, aVL, aVF, V1-V6, the default here), while
pretraining read MIMIC-IV-ECG files as stored (aVF before aVL): ``lead_order="mimic"``.
The PTB-XL scripts instead use the 100 Hz files standardised by one mean and standard deviation
fitted on the PTB-XL training folds (a dataset statistic, not a per-record step; not offered).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from ecgprobe.data.leads import LEADS_12
from ecgprobe.data.loading import check_choice
from ecgprobe.encoders._zoo import cut_window, empty_module, save_torch
from ecgprobe.encoders.base import InputSpec, TorchEncoder, file_sha256
from ecgprobe.encoders.checkpoint import (
    load_strict,
    random_state_dict,
    read_state_dict,
    rename_keys,
    strip_prefix,
)
from ecgprobe.encoders.registry import ENCODERS
from ecgprobe.exceptions import CheckpointError

__all__ = ["ECGFMKEDEncoder", "XResNet1d101", "convert_ked_state_dict", "ked_spec"]

FAMILY = "ecgfm-ked"
STAGES = (3, 4, 23, 3)
WIDTHS = (64, 128, 128, 192)  # bottleneck widths; outputs are 4x
EXPANSION, KERNEL, EMBED_DIM = 4, 5, 768
LEAD_ORDERS = {
    "standard": LEADS_12,
    "mimic": ("I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6"),
}
_ALIAS = ".convpath.0."
DROP = {
    r"\.convpath\.0\.": "alias of the same block's convs. tensors (the official ResBlock registers its conv stack twice)",
    r"^(model|text_encoder)\.": "the TQN decoder and the text encoder of ECGFM-KED; the embedding uses the ECG encoder",
}
#: Published (fastai nn.Sequential) index -> our module name.
_RENAMES = (
    (r"^([0-2])\.", r"stem.\1."),
    (r"^4\.", "layer1."),
    (r"^5\.", "layer2."),
    (r"^6\.", "layer3."),
    (r"^7\.", "layer4."),
)


# ----------------------------------------------------------------------------- architecture
def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, relu: bool = True) -> nn.Sequential:
    """conv (no bias, "same" padding) -> BatchNorm [-> ReLU]: keys ``0.weight``, ``1.*``."""
    layers: list[nn.Module] = [
        nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=(kernel - 1) // 2, bias=False),
        nn.BatchNorm1d(c_out),
    ]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class _Bottleneck(nn.Module):
    def __init__(self, c_in: int, width: int, stride: int) -> None:
        super().__init__()
        c_out = width * EXPANSION
        self.convs = nn.Sequential(
            _conv_bn(c_in, width, 1),
            _conv_bn(width, width, KERNEL, stride=stride),
            _conv_bn(width, c_out, 1, relu=False),
        )
        idpath: list[nn.Module] = []
        if stride != 1:
            idpath.append(nn.AvgPool1d(2, ceil_mode=True))
        if c_in != c_out:
            idpath.append(_conv_bn(c_in, c_out, 1, relu=False))
        self.idpath = nn.Sequential(*idpath)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.convs(x) + self.idpath(x))


class XResNet1d101(nn.Module):
    """ECGFM-KED's head-less xresnet1d101: ``(B, 12, T) -> (B, 768)`` (mean over time)."""

    def __init__(self, n_leads: int = 12) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            _conv_bn(n_leads, 32, KERNEL, stride=2),
            _conv_bn(32, 32, KERNEL),
            _conv_bn(32, 64, KERNEL),
            nn.MaxPool1d(3, stride=2, padding=1),
        )
        c_in = 64
        for i, (n_blocks, width) in enumerate(zip(STAGES, WIDTHS, strict=True)):
            blocks = []
            for j in range(n_blocks):
                blocks.append(_Bottleneck(c_in, width, 2 if (i > 0 and j == 0) else 1))
                c_in = width * EXPANSION
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))

    def stages(self) -> list[nn.Module]:
        return [self.layer1, self.layer2, self.layer3, self.layer4]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.stem(x)
        for stage in self.stages():
            out = stage(out)
        return out.mean(-1)


# ----------------------------------------------------------------------------- published layout
def published_template() -> dict[str, torch.Tensor]:
    """Names, shapes and dtypes (meta tensors) of the published ``'ecg_model'`` state dict, in
    its order: for every block ``convs.*``, then the ``convpath.0.*`` aliases, then ``idpath.*``."""
    inverse = {"stem.": "", "layer1.": "4.", "layer2.": "5.", "layer3.": "6.", "layer4.": "7."}
    with torch.device("meta"):
        ours = XResNet1d101().state_dict()
    out: dict[str, torch.Tensor] = {}
    pending: list[str] = []  # convs. keys of the current block, whose aliases follow them

    def flush() -> None:
        for key in pending:
            out[key.replace(".convs.", _ALIAS)] = out[key]
        pending.clear()

    for k, v in ours.items():
        for new, old in inverse.items():
            if k.startswith(new):
                k = old + k[len(new) :]
                break
        block = k.split(".convs.")[0] if ".convs." in k else None
        if pending and block != pending[0].split(".convs.")[0]:
            flush()
        out[k] = v
        if block is not None:
            pending.append(k)
    flush()
    return out


def _alias_all(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Add the ``convpath.0.`` alias of every ``convs.`` tensor, in the published order."""
    template = published_template()
    return {k: sd[k.replace(_ALIAS, ".convs.")] if _ALIAS in k else sd[k] for k in template}


def _same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal values (cheap when both names share storage, as in the published file); meta
    tensors (layout templates) compare by shape only."""
    if a.shape != b.shape:
        return False
    if a.is_meta or b.is_meta or (a.data_ptr() == b.data_ptr() and a.stride() == b.stride()):
        return True
    return torch.equal(a, b)


def convert_ked_state_dict(sd: dict[str, torch.Tensor], *, path: str | Path = "") -> dict[str, torch.Tensor]:
    """Published ``'ecg_model'`` layout -> our names.

    Accepts the nested state dict and flat files whose encoder keys carry an ``ecg_model.``
    prefix. Every ``convpath.0.`` alias must equal its ``convs.`` tensor (they share storage in
    the published file); the aliases are kept so that :data:`DROP` lists them.

    Raises:
        CheckpointError: an alias whose tensor differs from the one it should mirror.
    """
    sd = strip_prefix(sd, ("module.",))
    if any(k.startswith("ecg_model.") for k in sd):
        sd = {k.removeprefix("ecg_model."): v for k, v in sd.items()}
    for k, v in sd.items():
        if _ALIAS in k:
            twin = sd.get(k.replace(_ALIAS, ".convs."))
            if twin is not None and not _same_tensor(twin, v):
                raise CheckpointError(
                    f"ecgfm-ked checkpoint {path}: {k} differs from {k.replace(_ALIAS, '.convs.')}, but the official "
                    "model stores the same tensor under both names; the file was modified or is not ECGFM-KED's"
                )
    return rename_keys(sd, _RENAMES)


def ked_spec(lead_order: str = "standard") -> InputSpec:
    """The input contract for a lead order (``"standard"`` or ``"mimic"``)."""
    return InputSpec(
        fs=100.0,
        leads=LEAD_ORDERS[lead_order],
        n_samples=1000,
        normalization="none",
        units="mV",
        notes="ECGFM-KED: scipy.signal.resample (FFT) to 100 Hz, first 1000 samples (shorter records zero-padded "
        "on both sides), millivolts, no normalisation",
    )


# ----------------------------------------------------------------------------- encoder
class ECGFMKEDEncoder(TorchEncoder):
    """ECGFM-KED's encoder with its official FFT resampling and centred padding."""

    family = FAMILY

    def _prepare(self, x: np.ndarray, fs: float, window: str, hop: int | None) -> np.ndarray:
        """Leads in the model's order -> FFT resampling to ``int(T * 100 / fs)`` samples (mV) ->
        ``(N, 12, 1000)``: the first 10 s, shorter records zero-padded on both sides (or sliding
        windows)."""
        from scipy import signal as sps

        spec = self.spec
        if fs != spec.fs:
            n_out = int(x.shape[-1] * spec.fs / fs)
            x = sps.resample(x.astype(np.float64), n_out, axis=-1).astype(np.float32)
        return self._normalise(cut_window(x, spec.n_samples, window=window, hop=hop, pad="center"))


def make_ked_checkpoint(path: Path, seed: int) -> Path:
    """Write random full-size encoder weights in the published container (``main_mimiciv.py``):
    the ``'ecg_model'`` state dict with its ``convpath.0.`` aliases sharing storage; the TQN
    (``'model'``) and text-encoder entries are reduced to a few of their real keys, and the
    optimizer has its real structure but no moment tensors, to keep test files small."""
    canonical = {k: v for k, v in published_template().items() if _ALIAS not in k}
    ecg_model = _alias_all(random_state_dict(canonical, seed=seed))
    others = random_state_dict(
        {
            "model.logit_scale": (),
            "model.decoder_norm.weight": (EMBED_DIM,),
            "model.decoder_norm.bias": (EMBED_DIM,),
            "model.mlp_head.2.weight": (2, 2048),
            "text_encoder.logit_scale": (),
            "text_encoder.mlp_embed.4.weight": (EMBED_DIM, EMBED_DIM),
        },
        seed=seed,
    )
    opt = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=5e-5, weight_decay=0.02)
    container = {
        "model": {k.removeprefix("model."): v for k, v in others.items() if k.startswith("model.")},
        "ecg_model": ecg_model,
        "text_encoder": {
            k.removeprefix("text_encoder."): v for k, v in others.items() if k.startswith("text_encoder.")
        },
        "optimizer": opt.state_dict(),
        "lr_scheduler": {  # scheduler/cosine_lr.CosineLRScheduler.state_dict(): its __dict__ minus the optimizer
            "param_group_field": "lr",
            "_initial_param_group_field": "initial_lr",
            "base_values": [5e-5],
            "metric": None,
            "noise_range_t": None,
            "noise_pct": 0.67,
            "noise_type": "normal",
            "noise_std": 1.0,
            "noise_seed": 42,
            "t_initial": 10,
            "t_mul": 1.0,
            "lr_min": 1e-6,
            "decay_rate": 1.0,
            "cycle_limit": 1,
            "warmup_t": 5,
            "warmup_lr_init": 1e-6,
            "warmup_prefix": False,
            "t_in_epochs": True,
            "warmup_steps": [(5e-5 - 1e-6) / 5],
        },
        "config": {
            "batch_size": 80,
            "class_num": 105,
            "ecg_model_name": "xresnet1d_101",
            "use_ecgNet_Diagnosis": "all",
            "bert_model_name": "emilyalsentzer/Bio_ClinicalBERT",
            "tqn_model_layers": 7,
        },
        "epoch": 3,
    }
    return save_torch(container, path)


@ENCODERS.register(
    "ecgfm-ked",
    family=FAMILY,
    needs_checkpoint=True,
    checkpoint_format=(
        ".pt dict {'model', 'ecg_model', 'text_encoder', 'optimizer', 'lr_scheduler', 'config', 'epoch'}; the "
        "encoder is the nested 'ecg_model' state dict (fastai indices 0.-7., convs./convpath.0. aliases); a flat "
        "file with an 'ecg_model.' prefix is accepted too"
    ),
    embed_dim=EMBED_DIM,
    spec=ked_spec(),
    key_prefixes=("4.0.convs.0.0.", "4.0.convpath.0.", "6.22.convs.", "7.0.idpath.1."),
    download="https://zenodo.org/records/14881564 (best_valid_all_increase_with_augment_epoch_3.pt)",
    licence="see the Zenodo record and control-spiderman/ECGFM-KED",
    details=(
        "xresnet1d101 (fastai-style bottleneck XResNet, [3, 4, 23, 3] blocks, 768 output channels); embedding = mean "
        "over time of the last stage (as engine/train_fg.py pools it). Input: 100 Hz (not the 500 Hz of the issue's "
        "table: the loaders resample 500 Hz records by 5 with scipy.signal.resample), 10 s = 1000 samples, 12 "
        "leads in mV, no normalisation; shorter records centre-padded. lead_order='standard' (default, as the "
        "downstream scripts feed data) or 'mimic' (aVF before aVL, as in MIMIC-IV-ECG pretraining). The issue's "
        "'ecg_model. prefix' is a nested 'ecg_model' entry in the published file. Tian et al., 'Foundation model "
        "of ECG diagnosis: Diagnostics and explanations of any form and rhythm on ECG', Cell Rep. Med. 2024."
    ),
    make_test_checkpoint=make_ked_checkpoint,
)
def create_ecgfm_ked(
    checkpoint: str | Path, *, lead_order: Literal["standard", "mimic"] = "standard"
) -> ECGFMKEDEncoder:
    """Load ECGFM-KED's ECG encoder from its published ``.pt``.

    Args:
        checkpoint: the published file (or a fine-tuned one saved by the official scripts).
        lead_order: ``"standard"`` (downstream scripts, default) or ``"mimic"`` (pretraining data).

    Raises:
        CheckpointError: unreadable file or wrong layout.
        ConfigError: unknown lead order.

    Example:
        >>> enc = ecgprobe.create_encoder("ecgfm-ked", checkpoint="best_valid_all_increase_with_augment_epoch_3.pt")  # doctest: +SKIP
        >>> enc.spec.fs, enc.embed_dim  # doctest: +SKIP
        (100.0, 768)
    """
    check_choice(lead_order, tuple(LEAD_ORDERS), "ecgfm-ked option lead_order")
    raw = read_state_dict(checkpoint, ("ecg_model",), family=FAMILY)
    net = empty_module(XResNet1d101)
    report = load_strict(
        net, convert_ked_state_dict(raw, path=checkpoint), family=FAMILY, path=checkpoint, drop=DROP
    )
    return ECGFMKEDEncoder(
        net,
        load_report=report,
        layers={"stem": net.stem, **{f"layer{i + 1}": s for i, s in enumerate(net.stages())}},
        name="ecgfm-ked",
        spec=ked_spec(lead_order),
        embed_dim=EMBED_DIM,
        pooling="mean over time of the last stage (ecg_features.mean(-1))",
        weights_sha256=file_sha256(checkpoint),
        options={"lead_order": lead_order},
    )
