"""``ecg-cpc``: ECG-CPC (Al-Masud, Lopez Alcaraz, Strodthoff; ICLR 2026), a strided conv encoder
and a 4-layer causal S4 trained with contrastive predictive coding on HEEDB.

Official code: github.com/AI4HealthUOL/ecg-fm-benchmarking (``code/``) —
``conf/config_cpc_ecg_s4_heedb.yaml`` (pre-training: 240 Hz, 10 s, 12 leads, no normalisation;
encoder features 512 x 4, kernels 3,1,1,1, strides 2,1,1,1; predictor S4, state 8, model 512,
causal), ``clinical_ts/template_modules.py`` (``TimeSeriesEncoder``: encoder -> predictor; the
predictor output is ``seq``), ``clinical_ts/ts/encoder.py`` (``RNNEncoder``: conv + BatchNorm +
ReLU per layer), ``clinical_ts/ts/s4.py`` + ``ts/s4_modules/s4_model.py`` + ``ts/s4_modules/s42.py``
(the S4 stack, reimplemented in :mod:`ecgprobe.encoders._s4`), ``clinical_ts/models/fm_ecg.py``
(``CPCWrapper``: linear evaluation on ``seq.mean(dim=1)``), ``run.sh`` (downstream: 2.5 s windows
at 240 Hz, no ``--normalize``), ``clinical_ts/data/time_series_dataset_transforms.py``
(``Resample``: ``resampy.resample`` on each 2.5 s chunk cut at the data's rate), and the
notebook ``preprocess_ecg_dataset.ipynb`` (leads in the canonical order I..V6, no filtering).

Amplitude clipping: ``clinical_ts/utils/ecg_utils.py`` clips to +/-3 mV only in
``process_ecg_file_heedb`` (HEEDB, the pre-training data) and ``prepare_mimicecg`` (the MIMIC-IV-ECG
downstream set); ``prepare_data_ptb_xl`` and the other downstream preparations (PTB, Ningbo,
CPSC2018, CPSC-Extra, Georgia, Chapman, SPH, CODE-15%, EchoNext, ZZU pECG) do not clip. The default
contract therefore does not clip; option ``clip_mv=3`` reproduces the MIMIC-IV-ECG / HEEDB inputs
(clipped at the records' rate, before chunking and resampling, as there).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from ecgprobe.data.leads import LEADS_12
from ecgprobe.encoders import checkpoint as _ckpt
from ecgprobe.encoders._lightning import lightning_container, load_lightning_checkpoint, read_yaml_config
from ecgprobe.encoders._resample import resample_kaiser_best, windows_then_resample
from ecgprobe.encoders._s4 import S4Block, fft_nodes
from ecgprobe.encoders._zoo import empty_module, save_torch
from ecgprobe.encoders.base import InputSpec, RecordCrops, TorchEncoder, file_sha256
from ecgprobe.encoders.checkpoint import (
    extract_state_dict,
    load_strict,
    prefix_rules,
    random_state_dict,
    rename_keys,
)
from ecgprobe.encoders.registry import ENCODERS
from ecgprobe.exceptions import CheckpointError, ConfigError

__all__ = ["SPEC", "ECGCPCEncoder", "convert_state_dict", "make_test_checkpoint"]

FAMILY = "ecg-cpc"
_FS = 240.0
#: The published pre-training configuration (conf/config_cpc_ecg_s4_heedb.yaml).
PUBLISHED_CONFIG: dict[str, Any] = {
    "base": {"fs": _FS, "input_channels": 12, "input_size": 10.0, "normalize": False},
    "ts": {
        "enc": {"features": [512] * 4, "kss": [3, 1, 1, 1], "strides": [2, 1, 1, 1], "dilations": [1] * 4},
        "pred": {"causal": True, "state_dim": 8, "model_dim": 512, "backbone": "s42", "layers": 4},
        "head_ssl": {"multi_prediction": True, "bias": False},
        "loss": {"negatives_from_same_seq_only": True, "steps_predicted": 14},
    },
}
_DEFAULT_WINDOW_S = 2.5  # run.sh: --input-size 2.5 --fs-model 240 for the downstream evaluation
#: The official evaluation's chunks and their aggregation (the record-level protocol).
CROPS = RecordCrops(
    "chunks",
    source="code/main_lite.py Main_Lite.setup (val/test: chunkify_valtest=True, chunk_length = stride = "
    "input_size * fs_data, min_chunk_length = input_size * fs_data), clinical_ts/data/time_series_dataset.py "
    "TimeSeriesDataset.__init__ (chunk starts range(start_idx, data_length, stride), final chunks shorter than "
    "min_chunk_length removed), Main_Lite.on_valtest_epoch_eval (aggregate_predictions(..., aggregate_fn=np.mean))",
)


def _spec(window_s: float, clip_mv: float | None = None) -> InputSpec:
    clip = (
        f"amplitudes clipped to +/-{clip_mv:g} mV first (ecg_utils.py prepare_mimicecg / process_ecg_file_heedb); "
        if clip_mv is not None
        else "no amplitude clipping (ecg_utils.py prepare_data_ptb_xl and the other downstream sets; only "
        "prepare_mimicecg and the HEEDB pre-training data clip to +/-3 mV: option clip_mv=3); "
    )
    return InputSpec(
        fs=_FS,
        leads=LEADS_12,
        n_samples=int(round(window_s * _FS)),
        normalization="none",
        units="mV",
        clip_mv=clip_mv,
        crops=CROPS,
        notes=(
            f"ECG-CPC official downstream evaluation (run.sh, main_lite.py): {clip}{window_s:g} s windows cut at "
            "the record's rate, each resampled to 240 Hz with resampy's kaiser_best sinc filter; 12 leads I..V6; "
            "no filtering, no normalisation, millivolts (pre-training used 10 s windows of HEEDB at 240 Hz)."
        ),
    )


SPEC = _spec(_DEFAULT_WINDOW_S)


class _Transpose(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2)


def _conv_block(
    c_in: int, c_out: int, k: int, stride: int, dilation: int, norm: Literal["bn", "ln", "none"]
) -> nn.Sequential:
    """``basic_conv1d._conv1d`` (same module indices, so checkpoint keys map one to one)."""
    layers: list[nn.Module] = [
        nn.Conv1d(c_in, c_out, k, stride=stride, padding=(k - 1) // 2, dilation=dilation, bias=norm == "none")
    ]
    if norm == "bn":
        layers.append(nn.BatchNorm1d(c_out))
    elif norm == "ln":
        layers += [_Transpose(), nn.LayerNorm(c_out), _Transpose()]
    layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@dataclasses.dataclass(frozen=True)
class _Arch:
    in_channels: int
    features: tuple[int, ...]
    kss: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    norm: Literal["bn", "ln", "none"]
    model_dim: int
    state_half: int  # N/2 (conjugate pairs)
    layers: int
    bidirectional: bool
    kernel_length: int
    in_proj: bool

    def tokens(self, n_samples: int) -> int:
        length = n_samples
        for k, s, d in zip(self.kss, self.strides, self.dilations, strict=True):
            length = (length + 2 * ((k - 1) // 2) - d * (k - 1) - 1) // s + 1
        return length


class _CPCNet(nn.Module):
    """``TimeSeriesEncoder`` (encoder -> S4 predictor) -> mean over time of the predictor output."""

    def __init__(self, a: _Arch) -> None:
        super().__init__()
        chans = [a.in_channels, *a.features]
        self.encoder = nn.Sequential(
            *(
                _conv_block(chans[i], chans[i + 1], a.kss[i], a.strides[i], a.dilations[i], a.norm)
                for i in range(len(a.features))
            )
        )
        self.in_proj = nn.Linear(a.features[-1], a.model_dim) if a.in_proj else nn.Identity()
        self.s4_layers = nn.ModuleList(
            S4Block(
                a.model_dim,
                a.state_half,
                channels=1,
                bidirectional=a.bidirectional,
                rank=1,
                length=a.kernel_length,
            )
            for _ in range(a.layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(a.model_dim) for _ in range(a.layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.nan_to_num(x)  # CPCWrapper.forward
        h = self.in_proj(self.encoder(x).transpose(1, 2))  # (B, L, H)
        for layer, norm in zip(self.s4_layers, self.norms, strict=True):
            h = norm(layer(h.transpose(1, 2)).transpose(1, 2) + h)  # post-norm residual (S4Model)
        return h.mean(dim=1)


#: ``(published, this module)`` key prefixes; ``{n}`` is the S4 layer index.
_NAMES = [
    ("ts_encoder.encoder.layers.", "encoder."),
    ("ts_encoder.predictor.predictor.encoder.", "in_proj."),
    ("ts_encoder.predictor.predictor.s4_layers.{n}.kernel.kernel.", "s4_layers.{n}.kernel."),
    ("ts_encoder.predictor.predictor.s4_layers.{n}.output_linear.0.", "s4_layers.{n}.output_linear_"),
]
# the rest of the predictor (s4_layers.N.*, norms.N.*) keeps its names below the predictor prefix
_RULES = [*prefix_rules(_NAMES), (r"^ts_encoder\.predictor\.predictor\.", "")]
_INVERSE = [
    *prefix_rules(_NAMES, inverse=True),
    (r"^(s4_layers|norms)\.", r"ts_encoder.predictor.predictor.\1."),
]
_DROP = {
    r"^ts_encoder\.head_ssl\.": "CPC's pre-training projection head; the official downstream loader keeps only "
    "ts_encoder.encoder. and ts_encoder.predictor. (trainer.pretrained_keys_filter)",
}


def convert_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Published Lightning keys (``ts_encoder.encoder.layers.N.…``, ``ts_encoder.predictor.predictor.…``)
    -> this module's; other ``ts_encoder.`` keys pass through for :func:`load_strict` to drop or report."""
    sd = {k[len("model.") :] if k.startswith("model.ts_encoder.") else k: v for k, v in sd.items()}
    keep = {k: v for k, v in sd.items() if not k.startswith("ts_encoder.head_ssl.")}
    return {**rename_keys(keep, _RULES), **{k: v for k, v in sd.items() if k not in keep}}


def _arch_from(sd: dict[str, torch.Tensor], enc_cfg: dict[str, Any], path: str | Path) -> _Arch:
    """Architecture from the (converted) state dict's shapes; strides/dilations from the config."""
    convs = sorted({int(k.split(".")[1]) for k in sd if re.match(r"^encoder\.\d+\.", k)})
    s4 = sorted({int(k.split(".")[1]) for k in sd if k.startswith("s4_layers.") and k.endswith(".D")})
    if not convs or not s4 or "s4_layers.0.kernel.C" not in sd or "s4_layers.0.kernel.omega" not in sd:
        guess = _ckpt.family_guesser(sd.keys()) if _ckpt.family_guesser else None
        hint = (
            f" The keys look like a '{guess}' checkpoint: try --encoder {guess}."
            if guess and guess != FAMILY
            else ""
        )
        raise CheckpointError(
            f"{FAMILY} checkpoint {path}: no ts_encoder.encoder.layers.N / ts_encoder.predictor.predictor.s4_layers.N "
            f"weights (found e.g. {sorted(sd)[:6]}); is it the ECG-CPC Lightning checkpoint?{hint}"
        )
    absent = [
        f"ts_encoder.encoder.layers.{i}.0.weight"
        for i in range(max(convs) + 1)
        if f"encoder.{i}.0.weight" not in sd
    ]
    if absent:  # the layer count comes from the keys: a missing conv weight must not shrink the model
        raise CheckpointError(
            f"{FAMILY} checkpoint {path} does not match the {FAMILY} architecture: missing key(s) {absent}"
        )
    weights = [sd[f"encoder.{i}.0.weight"] for i in convs]
    norm: Literal["bn", "ln", "none"] = (
        "bn" if "encoder.0.1.running_mean" in sd else "ln" if "encoder.0.2.weight" in sd else "none"
    )
    n = len(convs)
    strides = tuple(enc_cfg.get("strides", PUBLISHED_CONFIG["ts"]["enc"]["strides"]))
    dilations = tuple(enc_cfg.get("dilations", [1] * n))
    if len(strides) != n or len(dilations) != n:
        raise CheckpointError(
            f"{FAMILY} config gives strides {list(strides)} / dilations {list(dilations)} for {n} conv layers"
        )
    c = sd["s4_layers.0.kernel.C"]
    return _Arch(
        in_channels=weights[0].shape[1],
        features=tuple(w.shape[0] for w in weights),
        kss=tuple(w.shape[2] for w in weights),
        strides=strides,
        dilations=dilations,
        norm=norm,
        model_dim=c.shape[1],
        state_half=c.shape[2],
        layers=len(s4),
        bidirectional=c.shape[0] == 2,
        kernel_length=2 * (sd["s4_layers.0.kernel.omega"].shape[0] - 1),
        in_proj="in_proj.weight" in sd,
    )


class ECGCPCEncoder(TorchEncoder):
    """ECG-CPC: windows cut at the input rate, kaiser_best resampling, mean over time of the S4 output."""

    family: ClassVar[str] = FAMILY

    def _prepare(self, x: np.ndarray, fs: float, window: str, hop: int | None) -> np.ndarray:
        """Windows of the contract's length cut at the records' rate, each resampled to 240 Hz
        (official chunking then ``Resample``); the official evaluation chunks (non-overlapping,
        predictions averaged) are ``window="official"``."""
        spec = self.spec
        return windows_then_resample(
            x, fs, spec.fs, spec.n_samples, resample_kaiser_best, window=window, hop=hop
        )

    def _pool(self, layer: str, output: Any) -> torch.Tensor:
        out = output[0] if isinstance(output, (tuple, list)) else output
        return out.mean(dim=1) if layer.startswith("s4_") else out.mean(dim=-1)


def _details() -> str:
    return (
        "ECG-CPC (Al-Masud, Lopez Alcaraz, Strodthoff, 'Benchmarking ECG foundational models: a reality check "
        "across clinical tasks', ICLR 2026). Encoder: 4 x (Conv1d without bias, BatchNorm, ReLU), 512 channels, "
        "kernels 3,1,1,1, strides 2,1,1,1 (120 tokens/s); predictor: 4 causal S4 layers (NPLR kernel, state 8, "
        "d_model 512, GELU, 1x1 linear + GLU, post-norm residual with LayerNorm). Embedding: mean over time of the "
        "predictor output (CPCWrapper linear evaluation). Input contract: "
        f"{SPEC.notes} Record level (the default, window='official'): the mean of the embeddings of every full "
        "non-overlapping 2.5 s chunk, a partial tail dropped (4 chunks of a 10 s record); the authors average the "
        "chunks' predictions (record level below for the source). window='fit' embeds only the first chunk. Option "
        "window_seconds (default 2.5, the official downstream window; up to 10, the pre-training window and the "
        "stored kernel length). Option clip_mv (default none, as the official PTB-XL and Challenge-set "
        "evaluations; 3 as their MIMIC-IV-ECG evaluation and the HEEDB pre-training data). Strides and dilations "
        "come from the hydra YAML (option config, or the one YAML beside the checkpoint), else the published "
        "config. Layers conv0..conv3 (time means) and s4_0..s4_3 (time means after each residual LayerNorm), "
        "averaged over the same chunks."
    )


@ENCODERS.register(
    "ecg-cpc",
    family=FAMILY,
    needs_checkpoint=True,
    checkpoint_format="PyTorch Lightning .ckpt (state_dict keys ts_encoder.encoder.layers.N., "
    "ts_encoder.predictor.predictor.s4_layers.N., ts_encoder.head_ssl.) with its hydra YAML beside it",
    embed_dim=512,
    spec=SPEC,
    key_prefixes=("ts_encoder.encoder.layers.", "ts_encoder.predictor.predictor.s4_layers."),
    download="github.com/AI4HealthUOL/ecg-fm-benchmarking README: 'ECG-CPC' checkpoint zip on figshare (article "
    "30192604)",
    licence="see the figshare record and github.com/AI4HealthUOL/ecg-fm-benchmarking (no licence file in the repo)",
    details=_details(),
    make_test_checkpoint=lambda path, seed: make_test_checkpoint(path, seed),
)
def create_ecg_cpc(
    checkpoint: str | Path,
    *,
    config: str | Path | None = None,
    window_seconds: float = _DEFAULT_WINDOW_S,
    clip_mv: float | None = None,
) -> ECGCPCEncoder:
    """Load ECG-CPC from its published Lightning checkpoint.

    Args:
        checkpoint: the ``.ckpt`` from the ECG-CPC zip.
        config: its hydra YAML (default: the YAML beside the checkpoint naming it, or the only one).
        window_seconds: model window in seconds (official downstream 2.5; at most the stored kernel).
        clip_mv: clip amplitudes to +/- this many mV before anything else (``3``: the official
            MIMIC-IV-ECG and HEEDB preparation; default ``None``: the official PTB-XL and
            Challenge-set preparation, which does not clip).

    Raises:
        CheckpointError: unreadable, unsafe or mismatching checkpoint.
        ConfigError: a window longer than the stored S4 kernel, a non-positive clip, or an
            unreadable config.

    Example:
        >>> enc = ecgprobe.create_encoder("ecg-cpc", checkpoint="last_11597276.ckpt")  # doctest: +SKIP
        >>> emb = ecgprobe.extract(enc, records)  # mean over the official 2.5 s chunks  # doctest: +SKIP
    """
    if not window_seconds > 0:
        raise ConfigError(f"window_seconds must be > 0, got {window_seconds}")
    if clip_mv is not None and not clip_mv > 0:
        raise ConfigError(
            f"clip_mv must be > 0 mV (3 for the official MIMIC-IV-ECG inputs) or None, got {clip_mv}"
        )
    cfg = read_yaml_config(checkpoint, config, family=FAMILY)
    obj = load_lightning_checkpoint(checkpoint, family=FAMILY)
    sd = convert_state_dict(extract_state_dict(obj, ["state_dict"], path=checkpoint, family=FAMILY))
    arch = _arch_from(sd, ((cfg.get("ts") or {}).get("enc") or {}), checkpoint)
    spec = _spec(window_seconds, None if clip_mv is None else float(clip_mv))
    if arch.in_channels != len(LEADS_12):
        raise CheckpointError(
            f"{FAMILY} checkpoint {checkpoint} takes {arch.in_channels} channels, expected 12"
        )
    tokens = arch.tokens(int(spec.n_samples or 0))
    if tokens > arch.kernel_length:
        longest = arch.kernel_length * int(np.prod(arch.strides)) / _FS
        raise ConfigError(
            f"window_seconds={window_seconds:g} gives {tokens} tokens but the checkpoint's S4 kernel covers "
            f"{arch.kernel_length}; use window_seconds <= {longest:g}"
        )
    net = empty_module(lambda: _CPCNet(arch))  # the checkpoint supplies every weight
    load_strict(net, sd, family=FAMILY, path=checkpoint, drop=_DROP)
    layers: dict[str, nn.Module] = {f"conv{i}": block for i, block in enumerate(net.encoder)}
    layers |= {f"s4_{i}": norm for i, norm in enumerate(net.norms)}
    options: dict[str, Any] = (
        {"window_seconds": window_seconds} if window_seconds != _DEFAULT_WINDOW_S else {}
    )
    if clip_mv is not None:
        options["clip_mv"] = float(clip_mv)
    if config is not None:
        options["config"] = str(config)
    return ECGCPCEncoder(
        net,
        layers=layers,
        name="ecg-cpc",
        spec=spec,
        embed_dim=arch.model_dim,
        pooling="mean over time of the last S4 layer's (post-LayerNorm) output",
        weights_sha256=file_sha256(checkpoint),
        options=options,
    )


def _published_arch() -> _Arch:
    enc, pred = PUBLISHED_CONFIG["ts"]["enc"], PUBLISHED_CONFIG["ts"]["pred"]
    tokens = int(PUBLISHED_CONFIG["base"]["input_size"] * _FS) // int(np.prod(enc["strides"]))
    return _Arch(
        12,
        tuple(enc["features"]),
        tuple(enc["kss"]),
        tuple(enc["strides"]),
        tuple(enc["dilations"]),
        "bn",
        pred["model_dim"],
        pred["state_dim"] // 2,
        pred["layers"],
        not pred["causal"],
        tokens,
        False,
    )


def published_template() -> dict[str, torch.Tensor]:
    """The Lightning ``state_dict`` key names and shapes of the published model."""
    with torch.device("meta"):  # names and shapes only
        net = _CPCNet(_published_arch())
    sd = rename_keys(net.state_dict(), _INVERSE)
    dim = _published_arch().model_dim
    sd["ts_encoder.head_ssl.proj.0.weight"] = torch.zeros(_published_arch().features[-1], dim)
    return sd


def s4_random_state_dict(template: dict[str, torch.Tensor], seed: int = 0) -> dict[str, torch.Tensor]:
    """:func:`random_state_dict` with the S4 buffers that are fixed functions of the design made valid.

    The FFT nodes (``omega``, ``z``) are the exact ones for the kernel length; ``A``'s diagonal
    is the S4D-Lin initialisation ``w_n = -1/2 + i pi n``, ``B = 1``, ``Q = conj(P)`` (as the
    official initialisation ties them) and ``dt`` log-spaced in [0.001, 0.1] (its init range),
    so the test kernels are those of a stable state-space model.
    """
    sd = random_state_dict(template, seed=seed)
    for key in [k for k in sd if k.endswith(".kernel.kernel.omega")]:
        prefix = key[: -len("omega")]
        length = 2 * (sd[key].shape[0] - 1)
        sd[prefix + "omega"], sd[prefix + "z"] = fft_nodes(length)
        h, n = sd[prefix + "w"].shape[:2]
        w = torch.complex(torch.full((n,), -0.5), torch.pi * torch.arange(n, dtype=torch.float32))
        sd[prefix + "w"] = torch.view_as_real(w.expand(h, n).contiguous())
        sd[prefix + "B"] = torch.view_as_real(torch.ones(1, h, n, dtype=torch.cfloat))
        sd[prefix + "Q"] = torch.view_as_real(
            torch.view_as_complex(sd[prefix + "P"].contiguous()).conj().resolve_conj()
        )
        sd[prefix + "log_dt"] = torch.linspace(np.log(0.001), np.log(0.1), h)
    return sd


def make_test_checkpoint(path: str | Path, seed: int = 0) -> Path:
    """A Lightning-style ``.ckpt`` (state dict, loops, hyper-parameters, no optimizer state) with
    random full-size weights, and its hydra YAML beside it (``config_<stem>_ckpt.yaml``)."""
    import yaml

    sd = s4_random_state_dict(published_template(), seed=seed)
    state = lightning_container(
        sd, PUBLISHED_CONFIG, epoch=0, global_step=0, version="2.4.0", hparams_name="hparams"
    )
    p = save_torch(state, path)
    cfg = {**PUBLISHED_CONFIG, "trainer": {"pretrained": p.name}}
    (p.parent / f"config_{p.stem}_ckpt.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return p
