"""HuBERT-ECG (Coppola et al. 2024, Edoar-do/HuBERT-ECG): a HuBERT transformer on the 12 leads of a
5 s ECG at 100 Hz concatenated into one 6,000-sample sequence. Sizes small/base/large.

Official code: ``code/hubert_ecg.py`` (``HuBERTECG``, a transformers ``HubertModel`` subclass with
``feat_extract_norm="group"``, ``do_stable_layer_norm=False``, conv ``(10,3,3,2,2)/(4,2,2,2,2)`` x 512
for 100 Hz input), ``code/hubert_ecg_classification.py`` (embedding = ``last_hidden_state.mean(dim=1)``
without attention mask, as in evaluation), ``code/utils.py::ecg_preprocessing`` (FIR band-pass
0.05-47 Hz of order ``0.3 * fs`` at the ORIGINAL rate with forward-backward filtering, FFT resampling
to 500 Hz, per-lead min-max scaling to [-1, 1] over the whole record) and
``code/dataset.py::ECGDataset.__getitem__`` (first 5 s at 500 Hz, NaN -> mean, leads flattened,
``scipy.signal.decimate(x, 5)`` over the FLATTENED sequence, so the anti-alias filter runs across lead
boundaries). This module reimplements all of it in pure torch/scipy; transformers is not needed.

Published weights: Hugging Face folders ``Edoardo-BS/hubert-ecg-{small,base,large}`` with
``config.json`` + ``model.safetensors`` (keys of ``HuBERTECG``: ``feature_extractor.``,
``feature_projection.``, ``encoder.``, plus ``masked_spec_embed``, ``final_proj.``,
``label_embedding.`` used only in pretraining).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ecgprobe.data import preprocess as pp
from ecgprobe.data.leads import LEADS_12
from ecgprobe.data.loading import check_choice
from ecgprobe.encoders._transformer import BackboneConfig, TokenEncoder, Wav2Vec2Backbone, count_layers
from ecgprobe.encoders._zoo import empty_module
from ecgprobe.encoders.base import InputSpec, file_sha256
from ecgprobe.encoders.checkpoint import (
    load_strict,
    random_state_dict,
    read_state_dict,
    rename_keys,
    strip_prefix,
    weight_norm_to_parametrizations,
)
from ecgprobe.encoders.registry import ENCODERS
from ecgprobe.exceptions import CheckpointError, ConfigError, IncompatibleInputError

__all__ = [
    "SPEC",
    "VARIANTS",
    "HubertECGEncoder",
    "HubertECGNet",
    "convert_state_dict",
    "hf_config",
    "make_test_checkpoint",
]

FAMILY = "hubert-ecg"
FS, N_SAMPLES = 100.0, 500
FS_STORE, N_STORE, DECIMATE = 500.0, 2500, 5
BAND = (0.05, 47.0)

SPEC = InputSpec(
    fs=FS,
    leads=LEADS_12,
    n_samples=N_SAMPLES,
    bandpass=BAND,
    normalization="minmax_lead_sym",
    notes=(
        "HuBERT-ECG code/utils.py + dataset.py: FIR band-pass 0.05-47 Hz (order 0.3*fs, filtfilt) at the "
        "original rate, FFT resampling to 500 Hz, per-lead min-max to [-1, 1] over the whole record, first 5 s, "
        "leads concatenated and decimated by 5 (scipy.signal.decimate) to 6000 samples at 100 Hz"
    ),
)

#: ``hidden, layers, heads, ffn, classifier_proj_size`` per size (code/pretrain.py).
VARIANTS: dict[str, tuple[int, int, int, int, int]] = {
    "small": (512, 8, 8, 2048, 256),
    "base": (768, 12, 12, 3072, 256),
    "large": (960, 16, 12, 3840, 512),
}
_CONV = {"conv_dim": [512] * 5, "conv_kernel": [10, 3, 3, 2, 2], "conv_stride": [4, 2, 2, 2, 2]}

DROP = {
    r"^masked_spec_embed$": "SpecAugment mask embedding, used only when masking during pretraining",
    r"^final_proj\.": "projection onto the pretraining codebook space (HuBERT targets)",
    r"^label_embedding\.": "pretraining codebook (k-means cluster) embeddings",
    r"^classifier\.": "classification head of a finetuned HuBERT-ECG (the embedding is the pooled encoder output)",
}


def hf_config(variant: str, vocab_size: int = 100) -> dict[str, Any]:
    """The published ``config.json`` of ``Edoardo-BS/hubert-ecg-{variant}`` (transformers 4.38.1)."""
    hidden, layers, heads, ffn, proj = VARIANTS[variant]
    return {
        "activation_dropout": 0.1,
        "apply_spec_augment": True,
        "architectures": ["HuBERTECG"],
        "attention_dropout": 0.1,
        "auto_map": {"AutoConfig": "hubert_ecg.HuBERTECGConfig", "AutoModel": "hubert_ecg.HuBERTECG"},
        "bos_token_id": 1,
        "classifier_proj_size": proj,
        "conv_bias": False,
        **_CONV,
        "ctc_loss_reduction": "sum",
        "ctc_zero_infinity": False,
        "do_stable_layer_norm": False,
        "ensemble_length": 1,
        "eos_token_id": 2,
        "feat_extract_activation": "gelu",
        "feat_extract_norm": "group",
        "feat_proj_dropout": 0.0,
        "feat_proj_layer_norm": True,
        "final_dropout": 0.1,
        "hidden_act": "gelu",
        "hidden_dropout": 0.1,
        "hidden_size": hidden,
        "initializer_range": 0.02,
        "intermediate_size": ffn,
        "layer_norm_eps": 1e-05,
        "layerdrop": 0.1,
        "mask_feature_length": 10,
        "mask_feature_min_masks": 0,
        "mask_feature_prob": 0.0,
        "mask_time_length": 1,
        "mask_time_min_masks": 2,
        "mask_time_prob": 0.33,
        "model_type": "hubert_ecg",
        "num_attention_heads": heads,
        "num_conv_pos_embedding_groups": 16,
        "num_conv_pos_embeddings": 128,
        "num_feat_extract_layers": 5,
        "num_hidden_layers": layers,
        "pad_token_id": 0,
        "torch_dtype": "float32",
        "transformers_version": "4.38.1",
        "use_weighted_layer_sum": False,
        "vocab_size": 32,
        "vocab_sizes": [vocab_size],
    }


def backbone_config(cfg: Mapping[str, Any]) -> BackboneConfig:
    """Backbone sizes from a HuBERT-ECG ``config.json``.

    Raises:
        CheckpointError: for configurations that are not the published 100 Hz HuBERT-ECG.
    """
    for key, want in (
        ("feat_extract_norm", "group"),
        ("do_stable_layer_norm", False),
        ("feat_proj_layer_norm", True),
        ("hidden_act", "gelu"),
        ("feat_extract_activation", "gelu"),
    ):
        if key in cfg and cfg[key] != want:
            raise CheckpointError(
                f"hubert-ecg config.json has {key}={cfg[key]!r}; the published models use {want!r}"
            )
    conv = {k: list(cfg.get(k, v)) for k, v in _CONV.items()}
    if conv != _CONV:
        raise CheckpointError(
            f"hubert-ecg config.json has conv layers {conv}; ecgprobe supports the released 100 Hz models "
            f"({_CONV}); other rates (downsampling_factor None/10) need another input contract"
        )
    return BackboneConfig(
        in_channels=1,
        conv_layers=tuple(zip(conv["conv_dim"], conv["conv_kernel"], conv["conv_stride"], strict=True)),
        conv_bias=bool(cfg.get("conv_bias", False)),
        hidden=int(cfg["hidden_size"]),
        layers=int(cfg["num_hidden_layers"]),
        heads=int(cfg["num_attention_heads"]),
        ffn=int(cfg["intermediate_size"]),
        pos_kernel=int(cfg.get("num_conv_pos_embeddings", 128)),
        pos_groups=int(cfg.get("num_conv_pos_embedding_groups", 16)),
        eps=float(cfg.get("layer_norm_eps", 1e-5)),
        projection=True,
    )


class HubertECGNet(nn.Module):
    """``(B, 12, 500)`` -> leads concatenated ``(B, 1, 6000)`` -> mean over the 93 tokens ``(B, hidden)``."""

    def __init__(self, cfg: BackboneConfig) -> None:
        super().__init__()
        self.backbone = Wav2Vec2Backbone(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x.reshape(x.shape[0], 1, -1)).mean(dim=1)


_RULES = [
    (r"^feature_extractor\.conv_layers\.(\d+)\.conv\.", r"backbone.feature_extractor.blocks.\1.conv."),
    (r"^feature_extractor\.conv_layers\.(\d+)\.layer_norm\.", r"backbone.feature_extractor.blocks.\1.norm."),
    (r"^feature_projection\.layer_norm\.", "backbone.feature_norm."),
    (r"^feature_projection\.projection\.", "backbone.projection."),
    (r"^encoder\.pos_conv_embed\.conv\.", "backbone.pos_conv.conv."),
    (r"^encoder\.layer_norm\.", "backbone.encoder_norm."),
    (r"^encoder\.layers\.(\d+)\.attention\.", r"backbone.layers.\1.attention."),
    (r"^encoder\.layers\.(\d+)\.layer_norm\.", r"backbone.layers.\1.attention_norm."),
    (r"^encoder\.layers\.(\d+)\.feed_forward\.intermediate_dense\.", r"backbone.layers.\1.ffn_in."),
    (r"^encoder\.layers\.(\d+)\.feed_forward\.output_dense\.", r"backbone.layers.\1.ffn_out."),
    (r"^encoder\.layers\.(\d+)\.final_layer_norm\.", r"backbone.layers.\1.ffn_norm."),
]


def convert_state_dict(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Published ``HuBERTECG`` keys (or a finetuned ``HuBERTForECGClassification`` under
    ``hubert_ecg.``) -> :class:`HubertECGNet` keys; unused keys keep their names (see :data:`DROP`)."""
    return rename_keys(strip_prefix(sd, ("hubert_ecg.", "module.")), _RULES)


def _infer_config(sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """A config for a bare state dict (no ``config.json``): sizes from shapes, heads from the size table."""
    keys = [k[len("hubert_ecg.") :] if k.startswith("hubert_ecg.") else k for k in sd]
    proj = sd.get(
        "feature_projection.projection.weight", sd.get("hubert_ecg.feature_projection.projection.weight")
    )
    ffn = sd.get(
        "encoder.layers.0.feed_forward.intermediate_dense.weight",
        sd.get("hubert_ecg.encoder.layers.0.feed_forward.intermediate_dense.weight"),
    )
    if proj is None or ffn is None:
        return {"hidden_size": 0, "num_hidden_layers": 0, "num_attention_heads": 1, "intermediate_size": 0}
    hidden = int(proj.shape[0])
    heads = next((v[2] for v in VARIANTS.values() if v[0] == hidden), 12 if hidden % 12 == 0 else 8)
    return {
        "hidden_size": hidden,
        "num_hidden_layers": count_layers(keys, "encoder.layers."),
        "num_attention_heads": heads,
        "intermediate_size": int(ffn.shape[0]),
    }


def variant_of(cfg: Mapping[str, Any]) -> str | None:
    """``small``/``base``/``large`` for a published size, else ``None``."""
    sizes = (
        cfg.get("hidden_size"),
        cfg.get("num_hidden_layers"),
        cfg.get("num_attention_heads"),
        cfg.get("intermediate_size"),
    )
    return next((name for name, v in VARIANTS.items() if tuple(v[:4]) == sizes), None)


def fir_bandpass(x: np.ndarray, fs: float, band: tuple[float, float] = BAND) -> np.ndarray:
    """biosppy ``filter_signal(ftype='FIR', band='bandpass', order=int(0.3 * fs))``: ``firwin`` with an
    odd number of taps, applied forward-backward (``filtfilt``) along the last axis."""
    from scipy import signal

    taps = int(0.3 * fs)
    taps += 1 - taps % 2
    b = signal.firwin(numtaps=taps, cutoff=[2 * band[0] / fs, 2 * band[1] / fs], pass_zero=False)
    return signal.filtfilt(b, np.array([1.0]), x, axis=-1)


class HubertECGEncoder(TokenEncoder):
    """HuBERT-ECG with its official preprocessing (see the module docstring)."""

    family = FAMILY

    def _prepare(self, x: np.ndarray, fs: float, window: str, hop: int | None) -> np.ndarray:
        """The official FIR band-pass at the records' rate -> FFT resampling to 500 Hz ->
        per-lead min-max to [-1, 1] -> the window -> leads concatenated and decimated to 100 Hz:
        ``(N, 12, 500)`` (``"fit"``: first 5 s) or ``(N, W, 12, 500)`` (``"sliding"``, ``hop`` in
        samples at 100 Hz); the model reads the leads as one 6,000-sample sequence.

        Raises:
            IncompatibleInputError: a rate too low for the 47 Hz band edge.
        """
        from scipy import signal

        if BAND[1] >= fs / 2:
            raise IncompatibleInputError(
                f"hubert-ecg band-passes to {BAND[1]:g} Hz but the records are sampled at {fs:g} Hz; "
                f"use records sampled at > {2 * BAND[1]:g} Hz"
            )
        x = fir_bandpass(x.astype(np.float64), fs)
        if fs != FS_STORE:  # utils.py resamples to 500 Hz with the FFT method
            x = signal.resample(x, int(x.shape[-1] * (FS_STORE / fs)), axis=-1)
        lo, hi = x.min(axis=-1, keepdims=True), x.max(axis=-1, keepdims=True)
        x = 2 * (x - lo) / (hi - lo + 1e-8) - 1
        if window == "fit":
            w = pp.fit_length(x, N_STORE)[:, None]
        else:
            w = pp.sliding_windows(x, N_STORE, hop=None if hop is None else hop * DECIMATE, pad_last=True)
        w = np.asarray(w, dtype=np.float64)
        flat = w.reshape(*w.shape[:2], -1)  # (N, W, 12 * 2500): leads concatenated
        nan = np.isnan(flat)
        if nan.any():
            flat = np.where(nan, np.nanmean(flat, axis=-1, keepdims=True), flat)
        dec = (
            signal.decimate(flat, DECIMATE, axis=-1).reshape(*w.shape[:2], w.shape[2], -1).astype(np.float32)
        )
        return dec[:, 0] if window == "fit" else dec


def _read_config(checkpoint: Path) -> dict[str, Any] | None:
    folder = checkpoint if checkpoint.is_dir() else checkpoint.parent
    cfg_file = folder / "config.json"
    if not cfg_file.is_file():
        return None
    try:
        return json.loads(cfg_file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"hubert-ecg config {cfg_file} is not readable JSON: {exc}") from None


@ENCODERS.register(
    FAMILY,
    family=FAMILY,
    needs_checkpoint=True,
    checkpoint_format="Hugging Face folder with config.json + model.safetensors (Edoardo-BS/hubert-ecg-{small,base,large})",
    embed_dim=512,
    spec=SPEC,
    key_prefixes=(
        "feature_projection.",
        "encoder.pos_conv_embed.",
        "encoder.layers.0.feed_forward.",
        "masked_spec_embed",
    ),
    download="https://huggingface.co/Edoardo-BS/hubert-ecg-small (also -base, -large)",
    licence="CC BY-NC 4.0 (weights)",
    sequence=(
        "the last transformer layer (layer_N): its tokens (B, T, hidden) as they are, averaged along "
        "time to at most max_tokens"
    ),
    details=(
        "HuBERT-ECG (Coppola et al., medRxiv 2024.11.14.24317328; Edoar-do/HuBERT-ECG). HuBERT with a conv feature "
        "extractor (512 x 5, kernels 10,3,3,2,2, strides 4,2,2,2,2, GroupNorm in the first), post-LN transformer: "
        "small 512-d x 8, base 768-d x 12, large 960-d x 16 (embed_dim = hidden size; variant inferred from "
        "config.json or the weights). Input: the 12 leads of 5 s at 100 Hz concatenated into one 6,000-sample "
        "sequence. Preprocessing as code/utils.py + code/dataset.py: FIR band-pass 0.05-47 Hz (order 0.3 fs, "
        "forward-backward) at the original rate, FFT resampling to 500 Hz, per-lead min-max to [-1, 1] over the "
        "whole record, first 5 s, scipy.signal.decimate by 5 of the concatenated leads. Embedding: mean of the "
        "last hidden state over tokens (hubert_ecg_classification.py). Layers: features, layer_1..layer_N. "
        "Pure torch; transformers is not required. Pretraining-only keys (masked_spec_embed, final_proj, "
        "label_embedding) are dropped by name."
    ),
    make_test_checkpoint=lambda path, seed: make_test_checkpoint(path, seed),
)
def create_hubert_ecg(checkpoint: str | Path, *, variant: str | None = None) -> HubertECGEncoder:
    """Load HuBERT-ECG from its Hugging Face folder (or its ``model.safetensors``).

    Args:
        checkpoint: the folder with ``config.json`` + ``model.safetensors``, or the weights file.
        variant: ``"small"``, ``"base"`` or ``"large"`` to check the size (default: inferred).

    Raises:
        ConfigError: unknown variant, or one that does not match the checkpoint.
        CheckpointError: unreadable or mismatching checkpoint.

    Example:
        >>> enc = ecgprobe.create_encoder("hubert-ecg", checkpoint="hubert-ecg-small/")  # doctest: +SKIP
        >>> enc.embed_dim  # doctest: +SKIP
        512
    """
    check_choice(variant, (None, *VARIANTS), "hubert-ecg option variant")
    path = Path(checkpoint).expanduser()
    sd = read_state_dict(path, ["state_dict", "model_state_dict", "model"], family=FAMILY)
    cfg = _read_config(path) or _infer_config(sd)
    found = variant_of(cfg)
    if variant is not None and found != variant:
        raise ConfigError(
            f"hubert-ecg variant={variant!r} but {path} holds a {found or 'non-standard'} model "
            f"(hidden {cfg.get('hidden_size')}, {cfg.get('num_hidden_layers')} layers); omit variant= to infer it"
        )
    bcfg = backbone_config(cfg)
    net = empty_module(lambda: HubertECGNet(bcfg)).eval()  # the checkpoint supplies every weight
    converted = weight_norm_to_parametrizations(convert_state_dict(sd), net)
    report = load_strict(net, converted, family=FAMILY, path=path, drop=DROP)
    return HubertECGEncoder(
        net,
        layers=net.backbone.layer_modules(),
        name=FAMILY,
        spec=SPEC,
        embed_dim=bcfg.hidden,
        pooling="mean of the last hidden state over tokens (official, no attention mask)",
        weights_sha256=file_sha256(path),
        options={"variant": found or "custom", "dropped_keys": len(report.dropped)},
    )


def published_template(variant: str = "small", vocab_size: int = 100) -> dict[str, tuple[int, ...]]:
    """Key names and shapes of the published ``model.safetensors`` of ``hubert-ecg-{variant}``."""
    cfg = hf_config(variant, vocab_size)
    b = backbone_config(cfg)
    t: dict[str, tuple[int, ...]] = {"masked_spec_embed": (b.hidden,)}
    n_in = 1
    for i, (dim, k, _s) in enumerate(b.conv_layers):
        t[f"feature_extractor.conv_layers.{i}.conv.weight"] = (dim, n_in, k)
        if i == 0:
            t["feature_extractor.conv_layers.0.layer_norm.weight"] = t[
                "feature_extractor.conv_layers.0.layer_norm.bias"
            ] = (dim,)
        n_in = dim
    t["feature_projection.layer_norm.weight"] = t["feature_projection.layer_norm.bias"] = (n_in,)
    t["feature_projection.projection.weight"], t["feature_projection.projection.bias"] = (
        (b.hidden, n_in),
        (b.hidden,),
    )
    t["encoder.pos_conv_embed.conv.bias"] = (b.hidden,)
    t["encoder.pos_conv_embed.conv.parametrizations.weight.original0"] = (1, 1, b.pos_kernel)
    t["encoder.pos_conv_embed.conv.parametrizations.weight.original1"] = (
        b.hidden,
        b.hidden // b.pos_groups,
        b.pos_kernel,
    )
    t["encoder.layer_norm.weight"] = t["encoder.layer_norm.bias"] = (b.hidden,)
    for i in range(b.layers):
        p = f"encoder.layers.{i}."
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            t[p + f"attention.{proj}.weight"], t[p + f"attention.{proj}.bias"] = (
                (b.hidden, b.hidden),
                (b.hidden,),
            )
        t[p + "layer_norm.weight"] = t[p + "layer_norm.bias"] = (b.hidden,)
        t[p + "feed_forward.intermediate_dense.weight"] = (b.ffn, b.hidden)
        t[p + "feed_forward.intermediate_dense.bias"] = (b.ffn,)
        t[p + "feed_forward.output_dense.weight"] = (b.hidden, b.ffn)
        t[p + "feed_forward.output_dense.bias"] = (b.hidden,)
        t[p + "final_layer_norm.weight"] = t[p + "final_layer_norm.bias"] = (b.hidden,)
    proj_size = int(cfg["classifier_proj_size"])
    t["final_proj.0.weight"], t["final_proj.0.bias"] = (proj_size, b.hidden), (proj_size,)
    t["label_embedding.0.weight"] = (vocab_size, proj_size)
    return t


def make_test_checkpoint(path: Path, seed: int, variant: str = "small") -> Path:
    """Random full-size weights as a Hugging Face folder: ``config.json`` + ``model.safetensors``."""
    from safetensors.torch import save_file

    folder = Path(path)
    if folder.suffix:  # a file name was given: use its stem as the folder
        folder = folder.with_suffix("")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(hf_config(variant), indent=2))
    sd = random_state_dict(published_template(variant), seed=seed)
    save_file(
        {k: v.contiguous() for k, v in sd.items()},
        str(folder / "model.safetensors"),
        metadata={"format": "pt"},
    )
    return folder
