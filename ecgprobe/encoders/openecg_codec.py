"""``openecg-codec``: the pretrained single-lead ECG transformer shipped inside the ``openecg`` wheel.

The ``openecg`` package (Apache-2.0, https://github.com/vitaldb/openecg) bundles its layered
codec, ``codec_v6.pt`` (1.16 M parameters, architecture
``vit_transformer_sample_res_convtok_mh_1ch``), trained on expert-annotated real ECGs (LUDB,
QTDB, ISP, MIT-BIH, vitaldb, lydus) for per-sample wave (P/QRS/T), beat and rhythm labels.
We use its backbone as an encoder:

- input, per lead: 10 s at **500 Hz** (5000 samples; the model runs natively at 500 Hz, its
  strided conv tokenizer makes 500 tokens of 20 ms; nothing is resampled inside), rank
  normalised per window to [-1, 1] exactly as ``openecg`` does before every forward pass
  (``openecg.rank_normalize``, identical to our ``normalize(x, "rank")``; no filtering);
- backbone: conv tokenizer (``conv_tok``) + sinusoidal positions -> four residual conv blocks
  (``lower_convs``/``lower_norms``) -> four pre-norm transformer blocks (``upper_transformer``).
  The model's sample-resolution refinement and its frame/beat/rhythm heads are not run;
- embedding: the mean over the 500 tokens of the last transformer block, per lead; the 12 leads
  (each run separately, as the model is single-lead and has no lead embedding) are concatenated
  in the contract's lead order: 12 x 128 = 1536 dimensions;
- layers: ``tokens`` (tokenizer), ``conv1``..``conv4``, ``block1``..``block4`` (each
  token-mean-pooled per lead, leads concatenated), then ``embedding`` (= ``block4``).

``weights_sha256`` is the sha256 of the checkpoint file. The bundled codecs ``v1``, ``v3``, ``v4``,
``v5`` share the architecture (option ``version``); ``checkpoint=`` loads another file in the
same format (a dict with ``model_state`` and ``model_config``), read safely (weights only) and
loaded strictly.
"""

from __future__ import annotations

import dataclasses
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ecgprobe.data.leads import LEADS_12
from ecgprobe.encoders.base import InputSpec, TorchEncoder, file_sha256
from ecgprobe.encoders.checkpoint import load_checkpoint, load_strict
from ecgprobe.encoders.registry import ENCODERS
from ecgprobe.exceptions import CheckpointError, ConfigError, DependencyError

__all__ = ["OPENECG_SPEC", "OpenEcgCodecEncoder", "create_openecg_codec"]

OPENECG_SPEC = InputSpec(
    fs=500.0,
    leads=LEADS_12,
    n_samples=5000,
    normalization="rank",
    notes=(
        "openecg codec_v6 model card: single lead, 10 s @ 500 Hz, rank-normalised per window "
        "(openecg LayeredPredictor applies rank_normalize before every forward); run per lead"
    ),
)
_ARCHS = ("vit_transformer_sample_res_convtok_mh_1ch", "vit_transformer_sample_res_convtok_1ch")
_BUNDLED = ("v1", "v3", "v4", "v5", "v6")
#: model_config entries that are metadata, not constructor arguments (as openecg's own loader drops them).
_META_KEYS = (
    "arch",
    "aux_target",
    "use_aux",
    "use_reg",
    "n_reg",
    "sample_res_frame",
    "tokenizer",
    "beat_n_classes",
    "rhythm_n_classes",
    "n_input_channels",
)
_INSTALL = 'pip install "ecgprobe[openecg]" (needs Python >= 3.11)'
_POOLING = "mean over the 500 tokens of the last transformer block, per lead; leads concatenated"


def _import_openecg() -> Any:
    try:
        import openecg
        from openecg.stage2 import model_variants
    except ImportError as exc:
        what = "is not installed" if exc.name == "openecg" else f"cannot be imported ({exc})"
        py = "" if sys.version_info >= (3, 11) else f", this is {sys.version.split()[0]}"
        raise DependencyError(
            f"the openecg-codec encoder needs the openecg package, which {what}: "
            f'pip install "ecgprobe[openecg]" (needs Python >= 3.11{py})'
        ) from None
    return openecg, model_variants


def bundled_checkpoint(version: str = "v6") -> Path:
    """Path of a codec checkpoint bundled in the installed ``openecg`` wheel.

    Raises:
        ConfigError: for a version that is not bundled.
        DependencyError: when openecg is not installed.
    """
    if version not in _BUNDLED:
        raise ConfigError(f"openecg-codec: version {version!r} is not bundled; choose from {list(_BUNDLED)}")
    openecg, _ = _import_openecg()
    return Path(openecg.__file__).with_name("models") / f"codec_{version}.pt"


class _Backbone(nn.Module):
    """The codec's encoder path (tokenizer, conv blocks, transformer blocks) on ``(N, 5000)``
    single-lead windows; returns the tokens ``(N, 500, d_model)``.

    It reproduces the first half of the openecg model's ``forward`` (which then upsamples to
    sample resolution for its heads); the tests check equality with a hook on the full model.
    """

    def __init__(self, codec: nn.Module) -> None:
        super().__init__()
        self.codec = codec

    def forward(self, sig: torch.Tensor) -> torch.Tensor:
        m = self.codec
        n_patches = sig.shape[-1] // m.patch_size
        h = m.conv_tok(sig.unsqueeze(1))[..., :n_patches].transpose(1, 2)
        if m.pos_enc is not None:
            h = h + m.pos_enc[:, :n_patches]
        for conv, norm in zip(m.lower_convs, m.lower_norms):
            h = norm(nn.functional.gelu(conv(h.transpose(1, 2)).transpose(1, 2)) + h)
        return m.upper_transformer(h)


class OpenEcgCodecEncoder(TorchEncoder):
    """Per-lead openecg codec embeddings, concatenated over the contract's leads."""

    family = "openecg"

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n_leads, n = x.shape
        tokens = self.module(x.reshape(b * n_leads, n))
        return tokens.mean(dim=1).reshape(b, -1)

    def _pool(self, layer: str, output: Any) -> torch.Tensor:
        out = output[0] if isinstance(output, (tuple, list)) else output
        # the tokenizer is a Conv1d: (N, C, T); every later block works on tokens (N, T, C)
        pooled = out.mean(dim=-1) if layer == "tokens" else out.mean(dim=1)
        return pooled.reshape(-1, self.spec.n_leads * pooled.shape[-1])


def _build(blob: Any, path: Path) -> nn.Module:
    _, variants = _import_openecg()
    if not isinstance(blob, dict) or "model_state" not in blob or "model_config" not in blob:
        top = list(blob)[:10] if isinstance(blob, dict) else type(blob).__name__
        raise CheckpointError(
            f"openecg-codec checkpoint {path} holds {top}; expected an openecg codec file (a dict with "
            "'model_state' and 'model_config', like openecg/models/codec_v6.pt)"
        )
    cfg = dict(blob["model_config"])
    arch = cfg.get("arch")
    if arch not in _ARCHS:
        raise CheckpointError(
            f"openecg-codec checkpoint {path} has architecture {arch!r}; this encoder supports {list(_ARCHS)} "
            "(the bundled codec_v1..v6)"
        )
    cls = (
        variants.FrameClassifierTransformerSampleResConvTokMH1Ch
        if arch.endswith("_mh_1ch")
        else variants.FrameClassifierTransformerSampleResConvTok1Ch
    )
    for key in _META_KEYS:
        cfg.pop(key, None)
    # Construction draws random initial weights (replaced below) and warns about nested tensors;
    # keep both away from the caller's global RNG and console.
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            model = cls(**cfg)
        except TypeError as exc:
            raise CheckpointError(
                f"openecg-codec checkpoint {path}: model_config does not fit {arch}: {exc}"
            ) from None
    load_strict(model, blob["model_state"], family="openecg-codec", path=path)
    return model.eval()


def _make_test_checkpoint(path: Path, seed: int) -> Path:
    """A random-weight codec in the published format (the bundled file's config and key layout)."""
    blob = load_checkpoint(bundled_checkpoint("v6"), family="openecg-codec")
    g = torch.Generator().manual_seed(seed)
    state = {
        k: torch.randn(v.shape, generator=g) * 0.05 if v.is_floating_point() else v
        for k, v in blob["model_state"].items()
    }
    out = Path(path)
    if not out.suffix or out.is_dir():  # a folder (the usual tmp_path): a file inside it
        out.mkdir(parents=True, exist_ok=True)
        out = out / "openecg_codec_test.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"model_state": state, "model_config": dict(blob["model_config"]), "codec_version": "test"}, out
    )
    return out


@ENCODERS.register(
    "openecg-codec",
    family="openecg",
    needs_checkpoint=False,
    checkpoint_format=(
        "optional: bundled in the openecg wheel (openecg/models/codec_v6.pt); another codec .pt "
        "(dict with 'model_state', 'model_config') via checkpoint="
    ),
    embed_dim=12 * 128,
    spec=OPENECG_SPEC,
    key_prefixes=("conv_tok.", "lower_convs.", "upper_transformer.", "head_sample."),
    pooling=_POOLING,
    layers=(
        "tokens",
        "conv1",
        "conv2",
        "conv3",
        "conv4",
        "block1",
        "block2",
        "block3",
        "block4",
        "embedding",
    ),
    download=f"bundled with the openecg package: {_INSTALL}",
    licence="Apache-2.0 (openecg); research/educational use, not a medical device",
    details=(
        "openecg layered codec v6 (vitaldb/openecg): conv tokenizer (20 ms tokens) + 4 conv blocks + 4 "
        "transformer blocks, d_model 128, trained on real expert-annotated ECGs for P/QRS/T delineation, "
        "beat and rhythm classes. Run per lead on 10 s @ 500 Hz rank-normalised windows; token-mean "
        "pooled, leads concatenated (12 x 128). Options: version (bundled v1, v3-v6; default v6), leads "
        "(subset, e.g. 'II')."
    ),
    make_test_checkpoint=_make_test_checkpoint,
)
def create_openecg_codec(
    checkpoint: str | Path | None = None, *, version: str = "v6", leads: str | tuple[str, ...] | None = None
) -> OpenEcgCodecEncoder:
    """Create the openecg codec encoder.

    Args:
        checkpoint: a codec file in openecg's format; default: the bundled ``codec_<version>.pt``.
        version: which bundled codec (``v1``, ``v3``, ``v4``, ``v5``, ``v6``) when no checkpoint is given.
        leads: the leads to embed (comma-separated or a tuple, default all 12); the embedding has
            ``128 * len(leads)`` dimensions.

    Raises:
        DependencyError: openecg is not installed (``pip install "ecgprobe[openecg]"``, Python >= 3.11).
        CheckpointError: an unreadable, foreign or mismatching checkpoint.
        ConfigError: an unknown version or lead.

    Example:
        >>> import ecgprobe
        >>> enc = ecgprobe.create_encoder("openecg-codec", leads="II", device="cpu")
        >>> enc.embed_dim, enc.spec.fs
        (128, 500.0)
    """
    _import_openecg()
    path = Path(checkpoint).expanduser() if checkpoint is not None else bundled_checkpoint(version)
    model = _build(load_checkpoint(path, family="openecg-codec"), path)
    lead_list = tuple(s.strip() for s in leads.split(",")) if isinstance(leads, str) else leads
    spec = OPENECG_SPEC if lead_list is None else dataclasses.replace(OPENECG_SPEC, leads=tuple(lead_list))
    unknown = [lead for lead in spec.leads if lead not in LEADS_12]
    if unknown or not spec.leads:
        raise ConfigError(
            f"openecg-codec: leads {unknown or '()'} are not standard leads; choose from {list(LEADS_12)}"
        )
    backbone = _Backbone(model)
    layers: dict[str, nn.Module] = {"tokens": model.conv_tok}
    layers.update({f"conv{i + 1}": norm for i, norm in enumerate(model.lower_norms)})
    layers.update({f"block{i + 1}": blk for i, blk in enumerate(model.upper_transformer.layers)})
    options: dict[str, Any] = {"version": version if checkpoint is None else None, "leads": list(spec.leads)}
    return OpenEcgCodecEncoder(
        backbone,
        layers=layers,
        name="openecg-codec",
        spec=spec,
        embed_dim=model.conv_tok.out_channels * spec.n_leads,
        pooling=_POOLING,
        weights_sha256=file_sha256(path),
        options=options,
    )
