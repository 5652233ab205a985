"""ECG-FM (McKeen et al. 2024, bowang-lab/ECG-FM): a wav2vec 2.0 / BERT-base transformer on 12-lead
5 s ECGs at 500 Hz, pretrained with W2V+CMSC+RLM in fairseq-signals.

Official code (Jwoo5/fairseq-signals): ``models/wav2vec2/wav2vec2_cmsc.py`` -> ``wav2vec2.py`` ->
``models/ecg_transformer.py`` (conv feature extractor ``[(256, 2, 2)] * 4`` on the 12 leads as
channels, LayerNorm, ``post_extract_proj`` 256 -> 768, convolutional positional encoding, 12 post-LN
layers). The embedding is the authors' own (``models/classification/ecg_transformer_classifier.py``,
``bowang-lab/ECG-FM scripts/embs.py``): the encoder output summed over tokens divided by the count of
non-zero entries, i.e. the mean over tokens.

Preprocessing is the released inference path (``notebooks/infer_quickstart.ipynb``, ecg-transform
0.1.3): leads reordered to I..V6, linear-interpolation resampling to 500 Hz, constant leads set to
zero, per-lead standardisation over the WHOLE record ((x - mean) / (std + 1e-8)), then
non-overlapping 5 s segments. fairseq-signals' training pipeline (``scripts/preprocess/ecg``) does the
same (same resampler, whole-record standardisation, 5 s segments).

Published checkpoint: a fairseq-signals ``torch.save`` dict with ``cfg`` (plain containers) and
``model`` (the state dict), plus training state; read with ``weights_only=True``, fairseq never
imported.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ecgprobe.data.leads import LEADS_12
from ecgprobe.encoders._transformer import (
    BackboneConfig,
    TokenEncoder,
    Wav2Vec2Backbone,
    count_layers,
    parse_conv_layers,
)
from ecgprobe.encoders._zoo import cut_window, empty_module, save_torch
from ecgprobe.encoders.base import InputSpec, RecordCrops, file_sha256
from ecgprobe.encoders.checkpoint import (
    extract_state_dict,
    load_checkpoint,
    load_strict,
    random_state_dict,
    rename_keys,
    weight_norm_to_parametrizations,
)
from ecgprobe.encoders.registry import ENCODERS
from ecgprobe.exceptions import CheckpointError

__all__ = [
    "SPEC",
    "ECGFMEncoder",
    "ECGFMNet",
    "convert_state_dict",
    "make_test_checkpoint",
    "published_template",
]

FAMILY = "ecg-fm"
FS, N_SAMPLES = 500.0, 2500

SPEC = InputSpec(
    fs=FS,
    leads=LEADS_12,
    n_samples=N_SAMPLES,
    normalization="zscore_lead",
    notes=(
        "ECG-FM inference quickstart (ecg-transform 0.1.3): linear-interpolation resampling to 500 Hz, "
        "constant leads zeroed, per-lead (x - mean) / (std + 1e-8) over the whole record, then 5 s segments"
    ),
    crops=RecordCrops(
        "chunks",
        source="bowang-lab/ECG-FM notebooks/infer_quickstart.ipynb (SegmentNonoverlapping(segment_length=2500), "
        "then 'same-sample prediction aggregation' pred.groupby(pred.index).agg(AGG_METHODS): mean for 12 of the "
        "17 labels, max for 5); Jwoo5/fairseq-signals scripts/preprocess/ecg/preprocess.py segment_mat "
        "(n_segments = T // segment_size: a partial tail dropped)",
    ),
)

#: fairseq-signals default/ECG-FM model config (``w2v_cmsc_rlm.yaml`` over ``ECGTransformerConfig``).
DEFAULT_CFG: dict[str, Any] = {
    "_name": "wav2vec2_cmsc",
    "conv_feature_layers": "[(256, 2, 2)] * 4",
    "in_d": 12,
    "conv_bias": False,
    "extractor_mode": "default",
    "encoder_layers": 12,
    "encoder_embed_dim": 768,
    "encoder_ffn_embed_dim": 3072,
    "encoder_attention_heads": 12,
    "layer_norm_first": False,
    "conv_pos": 128,
    "conv_pos_groups": 16,
    "apply_mask": True,
    "mask_prob": 0.65,
    "quantize_targets": True,
    "final_dim": 256,
    "latent_vars": 320,
    "latent_groups": 2,
    "latent_dim": 0,
}

# Published keys that the embedding does not use: named, with the reason, never a blanket strict=False.
DROP = {
    r"^mask_emb$": "learned mask embedding, used only when masking during pretraining",
    r"^quantizer\.": "Gumbel quantizer of the wav2vec 2.0 pretraining targets",
    r"^project_q\.": "projection of the quantized pretraining targets",
    r"^final_proj\.": "projection of the contextual features for the contrastive pretraining loss",
    r"^proj\.": "classification head of a finetuned ECG-FM (the embedding is the pooled encoder output)",
}


def backbone_config(cfg: Mapping[str, Any]) -> BackboneConfig:
    """The backbone sizes from a fairseq-signals model config (missing fields: ECG-FM defaults).

    Raises:
        CheckpointError: for configurations this implementation does not cover.
    """
    c = {**DEFAULT_CFG, **{k: v for k, v in cfg.items() if v is not None}}
    if c.get("layer_norm_first"):
        raise CheckpointError("ecg-fm checkpoint uses layer_norm_first=True (pre-LN); ECG-FM is post-LN")
    if c.get("extractor_mode", "default") != "default":
        raise CheckpointError(
            f"ecg-fm checkpoint uses extractor_mode={c['extractor_mode']!r}; expected 'default'"
        )
    conv = parse_conv_layers(c["conv_feature_layers"])
    return BackboneConfig(
        in_channels=int(c["in_d"]),
        conv_layers=conv,
        conv_bias=bool(c["conv_bias"]),
        hidden=int(c["encoder_embed_dim"]),
        layers=int(c["encoder_layers"]),
        heads=int(c["encoder_attention_heads"]),
        ffn=int(c["encoder_ffn_embed_dim"]),
        pos_kernel=int(c["conv_pos"]),
        pos_groups=int(c["conv_pos_groups"]),
        projection=conv[-1][0] != int(c["encoder_embed_dim"]),
    )


class ECGFMNet(nn.Module):
    """``(B, 12, 2500)`` -> mean of the non-zero token entries ``(B, 768)``."""

    def __init__(self, cfg: BackboneConfig) -> None:
        super().__init__()
        self.backbone = Wav2Vec2Backbone(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.backbone(x)
        # the authors' pooling: sum / count of non-zero entries (= mean over tokens without padding)
        return h.sum(dim=1) / (h != 0).sum(dim=1)


_RULES = [
    (r"^feature_extractor\.conv_layers\.(\d+)\.0\.", r"backbone.feature_extractor.blocks.\1.conv."),
    (r"^feature_extractor\.conv_layers\.(\d+)\.2\.", r"backbone.feature_extractor.blocks.\1.norm."),
    (r"^layer_norm\.", "backbone.feature_norm."),
    (r"^post_extract_proj\.", "backbone.projection."),
    (r"^conv_pos\.pos_conv\.0\.", "backbone.pos_conv.conv."),
    (r"^encoder\.layer_norm\.", "backbone.encoder_norm."),
    (r"^encoder\.layers\.(\d+)\.self_attn\.", r"backbone.layers.\1.attention."),
    (r"^encoder\.layers\.(\d+)\.self_attn_layer_norm\.", r"backbone.layers.\1.attention_norm."),
    (r"^encoder\.layers\.(\d+)\.fc1\.", r"backbone.layers.\1.ffn_in."),
    (r"^encoder\.layers\.(\d+)\.fc2\.", r"backbone.layers.\1.ffn_out."),
    (r"^encoder\.layers\.(\d+)\.final_layer_norm\.", r"backbone.layers.\1.ffn_norm."),
]


def convert_state_dict(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Published fairseq-signals keys -> :class:`ECGFMNet` keys.

    Accepts the pretrained model (``Wav2Vec2CMSCModel``: ``feature_extractor.``, ``encoder.layers.``)
    and a finetuned classifier (``ECGTransformerClassificationModel``: the same under ``encoder.``,
    plus ``proj.``). Keys the embedding does not use keep their names and are dropped by
    :data:`DROP` in :func:`load_strict`.
    """
    keys = list(sd)
    if any(
        k.startswith("encoder.feature_extractor.") for k in keys
    ):  # finetuned: model.encoder = ECGTransformerModel
        sd = {(k[len("encoder.") :] if k.startswith("encoder.") else k): v for k, v in sd.items()}
    return rename_keys(sd, _RULES)


def published_template(cfg: Mapping[str, Any] | None = None) -> dict[str, tuple[int, ...]]:
    """Key names and shapes of a published ECG-FM pretraining checkpoint's ``model`` dict."""
    c = {**DEFAULT_CFG, **(cfg or {})}
    b = backbone_config(c)
    t: dict[str, tuple[int, ...]] = {}
    if c["apply_mask"]:
        t["mask_emb"] = (b.hidden,)
    for i in range(b.layers):
        p = f"encoder.layers.{i}."
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            t[p + f"self_attn.{proj}.weight"] = (b.hidden, b.hidden)
            t[p + f"self_attn.{proj}.bias"] = (b.hidden,)
        for n in ("self_attn_layer_norm", "final_layer_norm"):
            t[p + f"{n}.weight"] = t[p + f"{n}.bias"] = (b.hidden,)
        t[p + "fc1.weight"], t[p + "fc1.bias"] = (b.ffn, b.hidden), (b.ffn,)
        t[p + "fc2.weight"], t[p + "fc2.bias"] = (b.hidden, b.ffn), (b.hidden,)
    t["encoder.layer_norm.weight"] = t["encoder.layer_norm.bias"] = (b.hidden,)
    n_in = b.in_channels
    for i, (dim, k, _s) in enumerate(b.conv_layers):
        t[f"feature_extractor.conv_layers.{i}.0.weight"] = (dim, n_in, k)
        if b.conv_bias:
            t[f"feature_extractor.conv_layers.{i}.0.bias"] = (dim,)
        if i == 0:
            t[f"feature_extractor.conv_layers.{i}.2.weight"] = t[
                f"feature_extractor.conv_layers.{i}.2.bias"
            ] = (dim,)
        n_in = dim
    embed = b.conv_layers[-1][0]
    if b.projection:
        t["post_extract_proj.weight"], t["post_extract_proj.bias"] = (b.hidden, embed), (b.hidden,)
    t["conv_pos.pos_conv.0.bias"] = (b.hidden,)
    t["conv_pos.pos_conv.0.parametrizations.weight.original0"] = (1, 1, b.pos_kernel)
    t["conv_pos.pos_conv.0.parametrizations.weight.original1"] = (
        b.hidden,
        b.hidden // b.pos_groups,
        b.pos_kernel,
    )
    t["layer_norm.weight"] = t["layer_norm.bias"] = (embed,)
    final_dim = int(c["final_dim"]) or b.hidden
    if c["quantize_targets"]:
        groups, n_vars = int(c["latent_groups"]), int(c["latent_vars"])
        vq_dim = int(c["latent_dim"]) or final_dim
        t["quantizer.vars"] = (1, groups * n_vars, vq_dim // groups)
        t["quantizer.weight_proj.weight"] = (groups * n_vars, embed)
        t["quantizer.weight_proj.bias"] = (groups * n_vars,)
        t["project_q.weight"], t["project_q.bias"] = (final_dim, vq_dim), (final_dim,)
    else:
        t["project_q.weight"], t["project_q.bias"] = (final_dim, embed), (final_dim,)
    t["final_proj.weight"], t["final_proj.bias"] = (final_dim, b.hidden), (final_dim,)
    return t


def linear_resample(x: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """ecg-transform ``LinearResample``: ``int(T * fs_out / fs_in)`` samples by linear interpolation of
    the input placed on ``linspace(0, T_out - 1, T)``."""
    if fs_in == fs_out:
        return x
    from scipy.interpolate import interp1d

    t_in = x.shape[-1]
    t_out = int(t_in * (fs_out / fs_in))
    grid = np.linspace(0, t_out - 1, t_in)
    return interp1d(grid, x, kind="linear", axis=-1)(np.arange(t_out))


def standardize_record(x: np.ndarray) -> np.ndarray:
    """Constant leads -> 0, then per-lead ``(x - mean) / (std + 1e-8)`` over the whole record (float64)."""
    x = np.array(x, dtype=np.float64)
    x[np.std(x, axis=-1) == 0] = 0.0
    centred = x - x.mean(axis=-1, keepdims=True)
    return centred / (centred.std(axis=-1, keepdims=True) + 1e-8)


class ECGFMEncoder(TokenEncoder):
    """ECG-FM with its official preprocessing (see the module docstring)."""

    family = FAMILY

    def _prepare(self, x: np.ndarray, fs: float, window: str, hop: int | None) -> np.ndarray:
        """Linear resampling to 500 Hz, standardised over the whole record -> ``(N, 12, 2500)``
        (``"fit"``: the first 5 s, zero-padded when shorter) or ``(N, W, 12, 2500)``."""
        x = standardize_record(linear_resample(x.astype(np.float64), fs, self.spec.fs)).astype(np.float32)
        return cut_window(x, N_SAMPLES, window=window, hop=hop)


def _model_cfg(obj: Any) -> dict[str, Any]:
    cfg = obj.get("cfg") if isinstance(obj, Mapping) else None
    model = cfg.get("model") if isinstance(cfg, Mapping) else None
    return dict(model) if isinstance(model, Mapping) else {}


def load_ecg_fm(checkpoint: str | Path) -> tuple[ECGFMNet, dict[str, str]]:
    """Build :class:`ECGFMNet` from a published checkpoint; returns the net and the dropped keys.

    Raises:
        CheckpointError: unreadable/unsafe file, or keys that do not match.
    """
    obj = load_checkpoint(checkpoint, family=FAMILY)
    sd = extract_state_dict(obj, ["model", "state_dict"], path=checkpoint, family=FAMILY)
    cfg = _model_cfg(obj)
    if not cfg:  # a bare state dict: infer the depth, keep the ECG-FM sizes
        n = count_layers(list(sd), "encoder.layers.") or count_layers(list(sd), "encoder.encoder.layers.")
        cfg = {"encoder_layers": n} if n else {}
    net = empty_module(lambda: ECGFMNet(backbone_config(cfg))).eval()  # the checkpoint supplies every weight
    converted = weight_norm_to_parametrizations(convert_state_dict(sd), net)
    report = load_strict(net, converted, family=FAMILY, path=checkpoint, drop=DROP)
    return net, report.dropped


@ENCODERS.register(
    FAMILY,
    family=FAMILY,
    needs_checkpoint=True,
    checkpoint_format="fairseq-signals .pt dict with 'cfg' and 'model' (mimic_iv_ecg_physionet_pretrained.pt or a finetuned ECG-FM)",
    embed_dim=768,
    spec=SPEC,
    key_prefixes=(
        "feature_extractor.conv_layers.",
        "post_extract_proj.",
        "conv_pos.pos_conv.",
        "encoder.layers.0.self_attn.",
    ),
    download="https://huggingface.co/wanglab/ecg-fm (mimic_iv_ecg_physionet_pretrained.pt)",
    licence="MIT (weights and code)",
    sequence=(
        "the last transformer layer (layer_N): its tokens (B, T, hidden) as they are, averaged along "
        "time to at most max_tokens"
    ),
    details=(
        "ECG-FM (McKeen et al., arXiv:2408.05178; bowang-lab/ECG-FM, Jwoo5/fairseq-signals). wav2vec 2.0 "
        "architecture: conv feature extractor [(256, 2, 2)] x 4 over the 12 leads, 768-d BERT-base post-LN "
        "transformer (12 layers, 12 heads), convolutional positional encoding. Embedding: encoder output "
        "summed over tokens / count of non-zero entries (scripts/embs.py). Input: 12 leads I..V6, 500 Hz, 5 s "
        "(2500 samples); preprocessing as the released quickstart: linear-interpolation resampling, constant "
        "leads zeroed, per-lead standardisation over the whole record (not per window), non-overlapping 5 s "
        "segments. Record level (the default, window='official'): the mean of the embeddings of every full "
        "non-overlapping 5 s segment (2 of a 10 s record), as the quickstart averages its segments' predictions "
        "(record level below for the source); window='fit' embeds only the first 5 s. "
        "Layers: features, layer_1..layer_12 (mean over tokens). Pretraining-only keys (mask_emb, "
        "quantizer, project_q, final_proj) and a finetuned head (proj) are dropped by name."
    ),
    make_test_checkpoint=lambda path, seed: make_test_checkpoint(path, seed),
)
def create_ecg_fm(checkpoint: str | Path) -> ECGFMEncoder:
    """Load ECG-FM from its published fairseq-signals checkpoint.

    Raises:
        CheckpointError: unreadable or mismatching checkpoint.

    Example:
        >>> enc = ecgprobe.create_encoder("ecg-fm", checkpoint="mimic_iv_ecg_physionet_pretrained.pt")  # doctest: +SKIP
        >>> enc.embed(enc.preprocess(rs.signals, rs.fs, rs.leads)).shape  # doctest: +SKIP
        torch.Size([N, 768])
    """
    net, dropped = load_ecg_fm(checkpoint)
    return ECGFMEncoder(
        net,
        layers=net.backbone.layer_modules(),
        name=FAMILY,
        spec=SPEC,
        embed_dim=net.backbone.cfg.hidden,
        pooling="encoder output: sum over tokens / count of non-zero entries (official)",
        weights_sha256=file_sha256(checkpoint),
        options={"dropped_keys": len(dropped)},
    )


def make_test_checkpoint(path: Path, seed: int) -> Path:
    """Random full-size weights in the published container: ``{'cfg': {...}, 'model': state dict, ...}``."""
    path = Path(path)
    if path.suffix not in (".pt", ".pth"):
        path = path / "mimic_iv_ecg_physionet_pretrained.pt" if path.is_dir() or not path.suffix else path
    state = {
        "args": None,
        "cfg": {"model": dict(DEFAULT_CFG), "task": {"_name": "ecg_pretraining", "normalize": False}},
        "model": random_state_dict(published_template(), seed=seed),
        "criterion": None,
        "optimizer_history": [
            {
                "criterion_name": "Wav2Vec2WithCMSCCriterion",
                "optimizer_name": "Adam",
                "lr_scheduler_state": {},
                "num_updates": 0,
            }
        ],
        "task_state": {},
        "extra_state": {"metrics": {}, "previous_training_time": 0.0},
    }
    return save_torch(state, path)
