"""``ecgfounder``: ECGFounder (Li et al., NEJM AI 2025), the Net1D CNN of PKUDigitalHealth.

Architecture (``net1d.py`` of github.com/PKUDigitalHealth/ECGFounder): a RegNet-like 1-D CNN.
A "same"-padded stem convolution (64 filters, kernel 16, stride 2) and Swish, then 7 stages of
``[2, 2, 2, 3, 3, 4, 4]`` pre-activation bottleneck blocks with ``[64, 160, 160, 400, 400, 1024,
1024]`` channels: Swish -> 1x1 conv -> Swish -> grouped conv (kernel 16, groups = channels / 16,
stride 2 in each stage's first block) -> Swish -> 1x1 conv, squeeze-and-excitation (mean over
time, C -> C/2 -> C, Swish then sigmoid), and a shortcut that max-pools ("same" zero padding)
when the block strides and zero-pads channels when they grow. The released configuration has
``use_bn=False, use_do=False``: its BatchNorm layers are built (so they are in the file) but
never applied. The embedding is ``deep_features``: the mean over time of the last stage (1024),
the input of the 150-label head ``dense``.

Input contract (``dataset.py``, which the README says must be followed "strictly"): 500 Hz,
10 s, leads I, II, III, aVR, aVL, aVF, V1-V6 (the standard order; ``dataset.py`` reorders
MIMIC-IV-ECG files, which store aVF before aVL); per record: 50 Hz notch (Q 30) -> 4th-order
Butterworth band-pass 0.67-40 Hz (both zero-phase) -> subtract a 0.4 s median filter (201
samples, zero-padded edges) -> z-score over all leads and samples together. The 1-lead model
takes lead I. ``ptbxl_eval.py`` (the 150-label PTB-XL check) skips the filters and only
z-scores: ``preprocessing="zscore_only"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ecgprobe.data import preprocess as pp
from ecgprobe.data.leads import LEADS_12
from ecgprobe.data.loading import check_choice
from ecgprobe.encoders._zoo import cut_window, empty_module, save_torch
from ecgprobe.encoders.base import InputSpec, TorchEncoder, file_sha256
from ecgprobe.encoders.checkpoint import load_strict, random_state_dict, read_state_dict, strip_prefix
from ecgprobe.encoders.registry import ENCODERS
from ecgprobe.exceptions import CheckpointError, IncompatibleInputError

__all__ = ["ECGFounderEncoder", "Net1D", "convert_ecgfounder_state_dict", "ecgfounder_spec"]

FAMILY = "ecgfounder"
FILTERS = (64, 160, 160, 400, 400, 1024, 1024)
BLOCKS = (2, 2, 2, 3, 3, 4, 4)
STEM, KERNEL, GROUP_WIDTH, N_CLASSES = 64, 16, 16, 150
VARIANT_LEADS = {"12lead": LEADS_12, "1lead": ("I",)}
#: Keys of the published file that the embedding does not use, and why (checked by the tests).
DROP = {
    r"^first_bn\.|^stage_list\.\d+\.block_list\.\d+\.bn[123]\.": (
        "BatchNorm layers built but never applied: the released Net1D configuration has use_bn=False"
    ),
    r"^dense\.": "the 150-label classification head; the embedding is its input (deep_features)",
}
_BAND, _NOTCH, _MEDIAN_S = (0.67, 40.0), 50.0, 0.4


# ----------------------------------------------------------------------------- architecture
class _SameConv1d(nn.Module):
    """Conv1d with TensorFlow-style "same" padding: output length ``ceil(T / stride)``."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel, stride=stride, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s, t = self.conv.kernel_size[0], self.conv.stride[0], x.shape[-1]
        pad = max(0, (-(-t // s) - 1) * s + k - t)
        return self.conv(F.pad(x, (pad // 2, pad - pad // 2)))


def _same_max_pool(x: torch.Tensor, k: int) -> torch.Tensor:
    """Max-pool by ``k`` after zero padding ``k - 1`` samples split as (left ``(k-1)//2``, rest right)."""
    p = k - 1
    return F.max_pool1d(F.pad(x, (p // 2, p - p // 2)), k)


class _Block(nn.Module):
    """Pre-activation bottleneck with squeeze-and-excitation (BasicBlock of net1d.py, use_bn=False)."""

    def __init__(self, c_in: int, c_out: int, stride: int, first: bool) -> None:
        super().__init__()
        self.c_in, self.c_out, self.stride, self.first = c_in, c_out, stride, first
        self.conv1 = _SameConv1d(c_in, c_out, 1)
        self.conv2 = _SameConv1d(c_out, c_out, KERNEL, stride=stride, groups=c_out // GROUP_WIDTH)
        self.conv3 = _SameConv1d(c_out, c_out, 1)
        self.se_fc1 = nn.Linear(c_out, c_out // 2)
        self.se_fc2 = nn.Linear(c_out // 2, c_out)
        self.act = nn.SiLU()  # Swish: x * sigmoid(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x if self.first else self.act(x))
        out = self.conv2(self.act(out))
        out = self.conv3(self.act(out))
        gate = torch.sigmoid(self.se_fc2(self.act(self.se_fc1(out.mean(-1)))))
        out = out * gate.unsqueeze(-1)
        identity = _same_max_pool(x, self.stride) if self.stride > 1 else x
        if self.c_out != self.c_in:
            grow = self.c_out - self.c_in
            identity = F.pad(identity, (0, 0, grow // 2, grow - grow // 2))
        return out + identity


class _Stage(nn.Module):
    def __init__(self, c_in: int, c_out: int, n_blocks: int, first_stage: bool) -> None:
        super().__init__()
        self.block_list = nn.ModuleList(
            _Block(c_in if j == 0 else c_out, c_out, 2 if j == 0 else 1, first_stage and j == 0)
            for j in range(n_blocks)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.block_list:
            x = block(x)
        return x


class Net1D(nn.Module):
    """ECGFounder's Net1D without its (unused) BatchNorm layers and its head: ``(B, L, T) -> (B, 1024)``."""

    def __init__(self, n_leads: int = 12) -> None:
        super().__init__()
        self.first_conv = _SameConv1d(n_leads, STEM, KERNEL, stride=2)
        self.first_activation = nn.SiLU()
        widths = (STEM, *FILTERS)
        self.stage_list = nn.ModuleList(
            _Stage(widths[i], widths[i + 1], BLOCKS[i], i == 0) for i in range(len(FILTERS))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.first_activation(self.first_conv(x))
        for stage in self.stage_list:
            out = stage(out)
        return out.mean(-1)


# ----------------------------------------------------------------------------- published layout
def published_template(n_leads: int = 12) -> dict[str, torch.Tensor]:
    """Names, shapes and dtypes of the published ``state_dict`` (meta tensors): ours plus the
    unused BatchNorm entries and the 150-label head."""
    with torch.device("meta"):
        meta = Net1D(n_leads).state_dict()

    def bn(prefix: str, c: int) -> dict[str, torch.Tensor]:
        out = {
            f"{prefix}.{n}": torch.empty(c, device="meta")
            for n in ("weight", "bias", "running_mean", "running_var")
        }
        out[f"{prefix}.num_batches_tracked"] = torch.empty((), dtype=torch.long, device="meta")
        return out

    out: dict[str, torch.Tensor] = {}
    out.update({k: v for k, v in meta.items() if k.startswith("first_conv.")})
    out.update(bn("first_bn", STEM))
    widths = (STEM, *FILTERS)
    for i, n_blocks in enumerate(BLOCKS):
        for j in range(n_blocks):
            p = f"stage_list.{i}.block_list.{j}"
            c_in, c_out = (widths[i] if j == 0 else widths[i + 1]), widths[i + 1]
            for bn_name, conv_name, c in (
                ("bn1", "conv1", c_in),
                ("bn2", "conv2", c_out),
                ("bn3", "conv3", c_out),
            ):
                out.update(bn(f"{p}.{bn_name}", c))
                out.update({k: v for k, v in meta.items() if k.startswith(f"{p}.{conv_name}.")})
            out.update({k: v for k, v in meta.items() if k.startswith(f"{p}.se_fc")})
    out["dense.weight"] = torch.empty(N_CLASSES, FILTERS[-1], device="meta")
    out["dense.bias"] = torch.empty(N_CLASSES, device="meta")
    return out


def convert_ecgfounder_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Published ``checkpoint['state_dict']`` -> our names (identical, once a ``module.`` wrapper
    prefix is removed); the unused entries are dropped by :data:`DROP` at load time."""
    return strip_prefix(sd, ("module.",))


def ecgfounder_spec(variant: str = "12lead", preprocessing: str = "filtered") -> InputSpec:
    """The input contract of a variant (``"12lead"``/``"1lead"``) and preprocessing path."""
    filtered = preprocessing == "filtered"
    return InputSpec(
        fs=500.0,
        leads=VARIANT_LEADS[variant],
        n_samples=5000,
        bandpass=_BAND if filtered else None,
        filter_order=4,
        notch=_NOTCH if filtered else None,
        normalization="zscore_global",
        notes=(
            "ECGFounder dataset.py: notch 50 Hz (Q 30) -> Butterworth band-pass 0.67-40 Hz (order 4, zero-phase) -> "
            "minus a 0.4 s (201-sample) median filter -> z-score over all leads and samples (eps 1e-8)"
            if filtered
            else "ECGFounder ptbxl_eval.py: z-score over all leads and samples (eps 1e-8), no filtering"
        ),
    )


# ----------------------------------------------------------------------------- encoder
class ECGFounderEncoder(TorchEncoder):
    """ECGFounder with its official preprocessing (see the module docstring); the filter chain
    runs when the spec has a band (``preprocessing="filtered"``)."""

    family = FAMILY

    def _prepare(self, x: np.ndarray, fs: float, window: str, hop: int | None) -> np.ndarray:
        """500 Hz -> the official filter chain on the whole record -> ``(N, L', 5000)`` (or
        sliding windows) -> the global z-score.

        Raises:
            IncompatibleInputError: records sampled below 80 Hz (the 40 Hz band edge cannot be
                honoured).
        """
        spec = self.spec
        if spec.bandpass is not None and fs <= 2 * spec.bandpass[1]:
            raise IncompatibleInputError(
                f"{self.name} filters up to {spec.bandpass[1]:g} Hz but the records are sampled at {fs:g} Hz; "
                f"use records sampled above {2 * spec.bandpass[1]:g} Hz (or preprocessing='zscore_only')"
            )
        x = pp.resample(x, fs, spec.fs)
        if spec.bandpass is not None:
            x = official_filter(x, spec.fs)
        return self._normalise(cut_window(x, spec.n_samples, window=window, hop=hop))


def official_filter(x: np.ndarray, fs: float) -> np.ndarray:
    """ECGFounder's ``util.filter_bandpass``: notch 50 Hz -> band-pass 0.67-40 Hz -> minus a 0.4 s median."""
    from scipy import signal as sps

    y = pp.bandpass(pp.notch(x, fs, _NOTCH, quality=30.0), fs, *_BAND, order=4)
    kernel = int(_MEDIAN_S * fs) + 1
    kernel += 1 - kernel % 2  # scipy's medfilt needs an odd kernel
    flat = y.reshape(-1, y.shape[-1]).astype(np.float64)
    base = np.stack([sps.medfilt(row, kernel) for row in flat]) if len(flat) else flat
    return (flat - base).reshape(y.shape).astype(np.float32)


def make_ecgfounder_checkpoint(path: Path, seed: int, *, variant: str = "12lead") -> Path:
    """Write random full-size weights as the authors publish them (``util.save_checkpoint``):
    ``{'epoch', 'step', 'state_dict', 'optimizer', 'scheduler', 'val_auroc'}`` with a NumPy
    float metric; the optimizer and scheduler entries have their real structure (a fresh
    ``Adam``/``ReduceLROnPlateau``) but no moment tensors, to keep test files small."""
    sd = random_state_dict(published_template(len(VARIANT_LEADS[variant])), seed=seed)
    opt = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=1e-4, weight_decay=1e-5)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=10, factor=0.1, mode="max")
    container = {
        "epoch": 0,
        "step": 1000,
        "state_dict": sd,
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "val_auroc": np.float64(0.5),
    }
    return save_torch(container, path)


@ENCODERS.register(
    "ecgfounder",
    family=FAMILY,
    needs_checkpoint=True,
    checkpoint_format=(
        ".pth dict {'epoch', 'step', 'state_dict', 'optimizer', 'scheduler', 'val_auroc'}; weights in 'state_dict' "
        "(first_conv., stage_list.N.block_list.M., unused first_bn./bnK., 150-label head dense.)"
    ),
    embed_dim=FILTERS[-1],
    spec=ecgfounder_spec(),
    key_prefixes=("first_conv.conv.", "stage_list.", "first_bn.", "dense."),
    download="https://huggingface.co/PKUDigitalHealth/ECGFounder (12_lead_ECGFounder.pth, 1_lead_ECGFounder.pth)",
    licence="see the Hugging Face model card; code: PKUDigitalHealth/ECGFounder LICENSE",
    details=(
        "Net1D (RegNet-like 1-D CNN with squeeze-and-excitation), 7 stages, 1024 channels; embedding = mean over "
        "time of the last stage (the input of the 150-label head). Input: 500 Hz, 10 s, 12 standard leads (or lead "
        "I for the 1-lead model); notch 50 Hz, band-pass 0.67-40 Hz, minus a 0.4 s median, global z-score "
        "(dataset.py); preprocessing='zscore_only' follows ptbxl_eval.py. The table of issue #7 mentions 'the "
        "model's own lead order': it is the standard order (dataset.py only reorders MIMIC-IV-ECG files). "
        "Li et al., 'An Electrocardiogram Foundation Model Built on over 10 Million Recordings', NEJM AI 2025."
    ),
    make_test_checkpoint=make_ecgfounder_checkpoint,
)
def create_ecgfounder(
    checkpoint: str | Path,
    *,
    variant: Literal["12lead", "1lead"] | None = None,
    preprocessing: Literal["filtered", "zscore_only"] = "filtered",
) -> ECGFounderEncoder:
    """Load ECGFounder from its published ``.pth``.

    Args:
        checkpoint: ``12_lead_ECGFounder.pth`` or ``1_lead_ECGFounder.pth`` (or a fine-tuned file
            saved the same way).
        variant: ``"12lead"`` or ``"1lead"``; inferred from the stem convolution when omitted.
        preprocessing: ``"filtered"`` (dataset.py, the default) or ``"zscore_only"`` (ptbxl_eval.py).

    Raises:
        CheckpointError: unreadable file, wrong layout, or a variant that contradicts the weights.
        ConfigError: unknown option values.

    Example:
        >>> enc = ecgprobe.create_encoder("ecgfounder", checkpoint="12_lead_ECGFounder.pth")  # doctest: +SKIP
        >>> enc.embed(enc.preprocess(records.signals, records.fs, records.leads)).shape  # doctest: +SKIP
        torch.Size([N, 1024])
    """
    check_choice(variant, (None, *VARIANT_LEADS), "ecgfounder option variant")
    check_choice(preprocessing, ("filtered", "zscore_only"), "ecgfounder option preprocessing")
    sd = convert_ecgfounder_state_dict(read_state_dict(checkpoint, ("state_dict",), family=FAMILY))
    stem = sd.get("first_conv.conv.weight")
    inferred = {12: "12lead", 1: "1lead"}.get(stem.shape[1]) if stem is not None and stem.ndim == 3 else None
    if variant is None:
        variant = inferred or "12lead"  # unknown layouts fall through to load_strict's report
    elif inferred is not None and inferred != variant:
        raise CheckpointError(
            f"ecgfounder checkpoint {checkpoint} holds the {inferred} model but variant={variant!r} was requested; "
            f"omit variant or pass variant={inferred!r}"
        )
    net = empty_module(lambda: Net1D(len(VARIANT_LEADS[variant])))
    report = load_strict(net, sd, family=FAMILY, path=checkpoint, drop=DROP)
    enc = ECGFounderEncoder(
        net,
        load_report=report,
        layers={"stem": net.first_activation, **{f"stage{i}": s for i, s in enumerate(net.stage_list)}},
        name="ecgfounder",
        spec=ecgfounder_spec(variant, preprocessing),
        embed_dim=FILTERS[-1],
        pooling="mean over time of the last stage (Net1D deep_features)",
        weights_sha256=file_sha256(checkpoint),
        options={"variant": variant, "preprocessing": preprocessing},
    )
    return enc
