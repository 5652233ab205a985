"""ecg-jepa: the published key set, official preprocessing and embeddings, loading errors.

Fixtures in tests/fixtures/zoo/ecg-jepa (computed once in a scratch directory with the official
code, sehunfromdaegu/ECG_JEPA@d937ad2, never committed): ``keys.json`` is
``ecg_jepa(**models.load_encoder params).encoder.state_dict()``'s names and shapes;
``reference.npz`` holds, for tests/fixtures/zoo/input_500hz.npy and the weights
``random_state_dict(official template, seed=0)`` loaded through the official ``load_encoder``:
the official model-ready input (``ecg_data.waves_ptbxl`` steps; every 10th sample), the official
``representation`` embedding, token means of blocks 0/5/11 and the embedding restricted to
leads I and V2 (official ``leads=[0, 3]``). Only ``timm.models.layers`` was stubbed there
(unused at inference).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import ecgprobe
from ecgprobe.data.leads import LEADS_12
from ecgprobe.encoders import ecg_jepa
from ecgprobe.encoders.checkpoint import load_strict
from ecgprobe.exceptions import CheckpointError, ConfigError
from tests.encoders.zoo_reference import FIX, TOL, input_500hz, rel_err

REF = np.load(FIX / "ecg-jepa" / "reference.npz")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return ecg_jepa.make_test_checkpoint(tmp_path_factory.mktemp("jepa") / "multiblock_epoch100.pth", seed=0)


@pytest.fixture(scope="module")
def enc(ckpt):
    return ecgprobe.create_encoder("ecg-jepa", checkpoint=ckpt, device="cpu")


@pytest.fixture(scope="module")
def x500() -> np.ndarray:
    return input_500hz()[0]


def test_published_keys_are_the_official_ones():
    official = json.loads((FIX / "ecg-jepa" / "keys.json").read_text())["keys"]
    ours = {k: list(v.shape) for k, v in ecg_jepa._published_template().items()}
    assert ours == official
    # a state dict with exactly the official names and shapes converts and loads strictly
    with torch.device("meta"):  # names and shapes only: no memory, no copies
        net = ecg_jepa._JEPANet(range(8))
    published = {k: torch.empty(shape, device="meta") for k, shape in official.items()}
    report = load_strict(net, ecg_jepa.convert_state_dict(published), family="ecg-jepa")
    assert report.loaded == len(official) and not report.dropped


def test_test_checkpoint_is_in_the_published_container(ckpt, enc):
    obj = torch.load(ckpt, weights_only=True)
    assert set(obj) == {"encoder", "epoch"} and "encoder_blocks.blocks.11.mlp.fc2.weight" in obj["encoder"]
    assert enc.embed_dim == 768 and enc.layer_names() == [*(f"block{i}" for i in range(12)), "embedding"]
    assert enc.spec.fs == 250 and enc.spec.n_samples == 2500 and enc.spec.leads == ecg_jepa.JEPA_LEADS
    assert enc.weights_sha256 and len(enc.weights_sha256) == 64


def test_preprocessing_matches_the_official_pipeline(enc, x500):
    ours = enc.preprocess(x500, 500.0, LEADS_12)
    assert ours.shape == (2, 8, 2500) and ours.dtype == np.float32
    stride = int(REF["preprocessed_stride"])
    assert rel_err(ours[..., ::stride], REF["preprocessed"]) < TOL


def test_embedding_and_layers_match_the_official_model(enc, x500):
    with torch.no_grad():
        out = enc.embed_layers(
            enc.preprocess(x500, 500.0, LEADS_12), ["block0", "block5", "block11", "embedding"]
        )
    assert rel_err(out["embedding"].numpy(), REF["embedding"]) < TOL
    for name in ("block0", "block5", "block11"):
        assert rel_err(out[name].numpy(), REF[f"layer_{name}"]) < TOL, name


def test_lead_subset_matches_official_restrict_leads(enc, x500, ckpt):
    spec, idx = ecg_jepa._spec_for(["V2", "I"])
    assert spec.leads == ("I", "V2") and idx == [0, 3]
    with torch.device("meta"):
        net = ecg_jepa._JEPANet(idx)
    net.load_state_dict(enc.module.state_dict(), assign=True)  # the same weights, restricted to two leads
    sub = ecg_jepa.ECGJEPAEncoder(net, name="ecg-jepa", spec=spec, embed_dim=768, pooling="token mean")
    with torch.no_grad():
        emb = sub.embed(sub.preprocess(x500, 500.0, LEADS_12))
    assert rel_err(emb.numpy(), REF["embedding_leads_I_V2"]) < TOL
    with pytest.raises(ConfigError, match="distinct leads among"):
        ecgprobe.create_encoder("ecg-jepa", checkpoint=ckpt, device="cpu", leads=["aVR"])


def test_short_and_low_rate_records_and_sliding_windows(enc):
    rng = np.random.default_rng(0)
    short = rng.standard_normal((1, 12, 700)).astype(np.float32)  # 7 s at 100 Hz
    out = enc.preprocess(short, 100.0, LEADS_12)
    assert out.shape == (1, 8, 2500) and np.all(out[..., 1750:] == 0) and np.any(out[..., :1750] != 0)
    long = rng.standard_normal((1, 12, 2500)).astype(np.float32)  # 25 s at 100 Hz
    win = enc.preprocess(long, 100.0, LEADS_12, window="sliding", hop=1250)
    assert win.shape == (1, 4, 8, 2500)  # starts 0, 5, 10, 15 s (the last zero-padded)


def test_end_to_end_on_ptbxl(enc, ptbxl100):
    records = ptbxl100.subset([0])
    emb = ecgprobe.extract(enc, records, batch_size=1, device="cpu", progress=False)
    assert emb.X.shape == (1, 768) and np.isfinite(emb.X).all()


def test_mismatching_checkpoints_are_clear_errors(tmp_path):
    # names matter here, not values: small tensors keep the files tiny (shape mismatches are listed too)
    sd = {k: torch.zeros(1) for k in ecg_jepa._published_template()}
    missing = dict(sd)
    del missing["norm.weight"]
    torch.save({"encoder": {**missing, "head.weight": torch.zeros(5, 768)}, "epoch": 1}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=r"1 missing key\(s\): norm\.weight") as err:
        ecgprobe.create_encoder("ecg-jepa", checkpoint=tmp_path / "bad.pth", device="cpu")
    assert "1 unexpected key(s): head.weight" in str(err.value)
    # an ST-MEM encoder file handed to ecg-jepa: the error names st-mem
    st_like = {
        k: torch.zeros(1) for k in ("sep_embedding", "lead_embeddings.0", "block0.attn.fn.to_qkv.weight")
    }
    torch.save({"encoder": st_like}, tmp_path / "st.pth")
    with pytest.raises(CheckpointError, match="try --encoder st-mem"):
        ecgprobe.create_encoder("ecg-jepa", checkpoint=tmp_path / "st.pth", device="cpu")
    torch.save({"model": sd}, tmp_path / "wrong_container.pth")
    with pytest.raises(CheckpointError, match=r"no state dict under \['encoder'\]"):
        ecgprobe.create_encoder("ecg-jepa", checkpoint=tmp_path / "wrong_container.pth", device="cpu")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_unsafe_and_truncated_files_are_refused(tmp_path, ckpt):
    torch.save({"encoder": {"W_P.weight": torch.zeros(1)}, "epoch": _Evil()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="refused"):
        ecgprobe.create_encoder("ecg-jepa", checkpoint=tmp_path / "evil.pth", device="cpu")
    (tmp_path / "cut.pth").write_bytes(Path(ckpt).read_bytes()[:4096])
    with pytest.raises(CheckpointError, match="truncated"):
        ecgprobe.create_encoder("ecg-jepa", checkpoint=tmp_path / "cut.pth", device="cpu")
