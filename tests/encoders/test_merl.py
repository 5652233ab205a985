"""merl: the published key layouts and containers, faithfulness to the official code, extraction on
real records, and clear errors for wrong files.

The reference (tests/fixtures/zoo/merl/reference.npz) was computed once, outside the repository, with
the official ``utils/resnet1d.py``, ``utils/vit1d.py``, ``finetune/models/*`` and the linear-probing
loader ``finetune/finetune_dataset.py`` of cheliu-computation/MERL-ICML2024 @38799b7 (run unmodified;
``einops`` installed in a scratch folder) on ``random_state_dict(official encoder state_dict, seed=0)``
for ``tests/fixtures/zoo/input_500hz.npy``: the preprocessed input (stored at ``preprocessed_at``), the
linear-probe inputs of ResNet-18 and ViT-tiny, and time/token-averaged outputs of some layers.
Tolerance: max |ours - official| <= 1e-4 x max |official|.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import ecgprobe
from ecgprobe.encoders import merl
from ecgprobe.encoders.ecgfm_ked import published_template as ked_template
from ecgprobe.exceptions import CheckpointError
from tests.encoders.zoo_reference import FIX, close, input_500hz


@pytest.fixture(scope="module")
def ref():
    return np.load(FIX / "merl" / "reference.npz")


@pytest.fixture(scope="module")
def x500():
    return input_500hz()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return merl.make_merl_checkpoint(tmp_path_factory.mktemp("merl") / "res18_best_encoder.pth", seed=0)


@pytest.fixture(scope="module")
def enc(ckpt):
    return ecgprobe.create_encoder("merl", checkpoint=ckpt, device="cpu")


@pytest.mark.parametrize(
    ("variant", "keys_file"), [("resnet18", "keys.json"), ("vit_tiny", "keys_vit_tiny.json")]
)
def test_published_layout_is_the_official_one(variant, keys_file):
    official = json.loads((FIX / "merl" / keys_file).read_text())["keys"]
    template = merl.published_template(variant)
    assert {k: list(v.shape) for k, v in template.items()} == official
    kept = {
        k: list(v.shape)
        for k, v in merl.convert_merl_state_dict(template).items()
        if not any(re.search(p, k) for p in merl.DROP)
    }
    with torch.device("meta"):
        assert kept == {k: list(v.shape) for k, v in merl.build_merl(variant).state_dict().items()}


def test_container_is_a_plain_state_dict_with_the_unused_head(ckpt, enc):
    sd = torch.load(ckpt, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in sd.values())
    assert tuple(sd["linear.weight"].shape) == (10, 512)
    assert set(enc.load_report.dropped) == {"linear.weight", "linear.bias"}
    assert "untrained 10-way head" in enc.load_report.dropped["linear.weight"]


def test_preprocessing_matches_the_linear_probing_loader(enc, ref, x500):
    x, leads = x500
    pre = enc.preprocess(x, 500.0, leads)
    assert enc.spec.leads[4:6] == ("aVF", "aVL")  # MIMIC-IV-ECG order
    assert pre.shape == (2, 12, 5000) and pre.min() >= 0.0 and pre.max() <= 1.0
    close(pre[..., ref["preprocessed_at"]], ref["preprocessed"])


def test_resnet18_embedding_and_layers_match_official(enc, ref, x500):
    x, leads = x500
    assert enc.layer_names() == ["layer1", "layer2", "layer3", "layer4", "embedding"]
    with torch.no_grad():
        out = enc.embed_layers(enc.preprocess(x, 500.0, leads), enc.layer_names())
    assert out["embedding"].shape == (2, 512)
    close(out["embedding"], ref["embedding"])
    for name in ("layer1", "layer2", "layer3", "layer4"):
        close(out[name], ref[f"layer:{name}"])


def test_vit_tiny_inferred_and_matches_official(ref, x500, tmp_path):
    path = merl.make_merl_checkpoint(tmp_path / "vit_tiny_best_encoder.pth", seed=0, variant="vit_tiny")
    enc = ecgprobe.create_encoder("merl", checkpoint=path, device="cpu")
    assert enc.options == {"variant": "vit_tiny"} and enc.embed_dim == 192 and enc.load_report.dropped == {}
    x, leads = x500
    with torch.no_grad():
        out = enc.embed_layers(enc.preprocess(x, 500.0, leads), ["block0", "block5", "block11", "embedding"])
    close(out["embedding"], ref["embedding_vit_tiny"])
    for name in ("block0", "block5", "block11"):  # token outputs, mean over tokens
        assert out[name].shape == (2, 192)
        close(out[name], ref[f"layer_vit_tiny:{name}"])
    with pytest.raises(CheckpointError, match="vit_tiny encoder but variant='resnet18'"):
        ecgprobe.create_encoder("merl", checkpoint=path, device="cpu", variant="resnet18")


def _whole_model(encoder_sd: dict, wrap: str) -> dict:
    """An ECGCLIP state dict as *_ckpt.pth stores it (text model and heads beside ecg_encoder.)."""
    sd = {f"ecg_encoder.{k}": v for k, v in encoder_sd.items()}
    sd.update(
        {
            "downconv.weight": torch.zeros(256, 512, 1),
            "att_pool_head.positional_embedding": torch.zeros(1, 314, 256),
            "linear1.weight": torch.zeros(256, 256),
            "lm_model.embeddings.word_embeddings.weight": torch.zeros(8, 768),
            "proj_t.0.weight": torch.zeros(256, 768),
        }
    )
    if wrap == "save_checkpoints":  # utils_trainer.save_checkpoints: DDP model under 'model_state_dict'
        return {
            "epoch": 50,
            "model_state_dict": {f"module.{k}": v for k, v in sd.items()},
            "optimizer_state_dict": {},
        }
    return sd


@pytest.mark.parametrize("wrap", ["total", "save_checkpoints"])
def test_whole_model_files_load_the_same_encoder(ckpt, enc, wrap, tmp_path):
    path = tmp_path / f"{wrap}.pth"
    torch.save(_whole_model(torch.load(ckpt, weights_only=True), wrap), path)
    whole = ecgprobe.create_encoder("merl", checkpoint=path, device="cpu")
    assert {"downconv.weight", "lm_model.embeddings.word_embeddings.weight", "linear.weight"} <= set(
        whole.load_report.dropped
    )
    ours, theirs = whole.module.state_dict(), enc.module.state_dict()
    assert list(ours) == list(theirs) and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_extracts_real_ptbxl_records(enc, ptbxl100):
    emb = ecgprobe.extract(enc, ptbxl100.subset([0, 1]), batch_size=2, progress=False)
    assert emb.X.shape == (2, 512) and np.isfinite(emb.X).all()


def test_missing_and_unexpected_keys_are_listed(ckpt, tmp_path):
    sd = torch.load(ckpt, weights_only=True)
    del sd["layer3.1.bn2.running_var"]
    sd["layer5.0.conv1.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError) as err:
        ecgprobe.create_encoder("merl", checkpoint=tmp_path / "broken.pth", device="cpu")
    assert "1 missing key(s): layer3.1.bn2.running_var" in str(err.value)
    assert "1 unexpected key(s): layer5.0.conv1.weight" in str(err.value)


def test_another_family_is_suggested(tmp_path):
    # ECGFM-KED's published container; the guess reads key names only, so zero weights suffice
    torch.save(
        {"ecg_model": {k: torch.zeros(v.shape) for k, v in ked_template().items()}, "epoch": 3},
        tmp_path / "k.pt",
    )
    path = tmp_path / "k.pt"
    with pytest.raises(CheckpointError, match="looks like a 'ecgfm-ked' checkpoint"):
        ecgprobe.create_encoder("merl", checkpoint=path, device="cpu")


def test_unsafe_pickle_and_truncated_files_are_refused(ckpt, tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.makedirs, (str(marker),))

    torch.save({"conv1.weight": torch.zeros(1), "x": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="refused"):
        ecgprobe.create_encoder("merl", checkpoint=tmp_path / "evil.pth", device="cpu")
    assert not marker.exists()
    (tmp_path / "cut.pth").write_bytes(Path(ckpt).read_bytes()[:4096])
    with pytest.raises(CheckpointError, match="truncated"):
        ecgprobe.create_encoder("merl", checkpoint=tmp_path / "cut.pth", device="cpu")
