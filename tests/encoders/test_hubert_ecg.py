"""HuBERT-ECG: published Hugging Face layout, fidelity to the official code, loading edge cases.

Fixtures (tests/fixtures/zoo/hubert-ecg/): ``keys.json`` holds the published ``config.json`` of
hubert-ecg-small and the state dict of the official ``HuBERTECG`` (Edoar-do/HuBERT-ECG
code/hubert_ecg.py on transformers 4.38.1) built from it in a scratch environment; ``reference.npz``
holds that official model's outputs on ``input_500hz.npy`` with ``random_state_dict(template, seed=0)``
weights, after the official preprocessing (code/utils.py::ecg_preprocessing with biosppy, then
code/dataset.py: first 5 s, leads flattened, scipy.signal.decimate by 5).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import ecgprobe
from ecgprobe.data.leads import LEADS_12
from ecgprobe.encoders import hubert_ecg
from ecgprobe.exceptions import CheckpointError, ConfigError, IncompatibleInputError
from tests.encoders.zoo_reference import FIX, TOL, input_500hz, rel_err

REF = np.load(FIX / "hubert-ecg" / "reference.npz")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return hubert_ecg.make_test_checkpoint(tmp_path_factory.mktemp("hubert") / "hubert-ecg-small", 0)


@pytest.fixture(scope="module")
def enc(folder):
    return ecgprobe.create_encoder("hubert-ecg", checkpoint=folder, device="cpu")


def test_published_layout_matches_official_model(folder):
    fx = json.loads((FIX / "hubert-ecg" / "keys.json").read_text())
    assert hubert_ecg.hf_config("small") == fx["config"]
    assert {k: list(v) for k, v in hubert_ecg.published_template().items()} == fx["keys"]
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    # base and large differ only in the sizes of code/pretrain.py
    base = hubert_ecg.published_template("base")
    assert base["encoder.layers.11.feed_forward.intermediate_dense.weight"] == (3072, 768)


def test_reproduces_official_preprocessing_and_embedding(enc):
    assert enc.options == {"variant": "small", "dropped_keys": 4} and enc.embed_dim == 512
    x = input_500hz()[0]
    pre = enc.preprocess(x, 500.0, LEADS_12)
    assert pre.shape == (2, 12, 500) and rel_err(pre, REF["preprocessed"]) < 1e-5
    pre100 = enc.preprocess(x[:, :, ::5], 100.0, LEADS_12)  # filter at 100 Hz, FFT resampling to 500 Hz
    assert rel_err(pre100[0, :2, :200], REF["preprocessed_from_100hz_head"]) < 1e-5
    with torch.no_grad():
        out = enc.embed_layers(torch.from_numpy(REF["preprocessed"]), ["layer_1", "layer_8", "embedding"])
    assert rel_err(out["layer_1"], REF["layer_0"]) < TOL
    assert rel_err(out["layer_8"], REF["layer_7"]) < TOL
    assert out["embedding"].shape == (2, 512) and rel_err(out["embedding"], REF["embedding"]) < TOL


def test_preprocessing_contract(enc):
    x = input_500hz()[0]
    win = enc.preprocess(np.concatenate([x, x], axis=-1), 500.0, LEADS_12, window="sliding")
    assert win.shape == (2, 4, 12, 500)
    with pytest.raises(IncompatibleInputError, match="47"):
        enc.preprocess(x[:, :, ::10], 50.0, LEADS_12)


def test_end_to_end_on_ptbxl(enc, ptbxl100):
    emb = ecgprobe.extract(enc, ptbxl100.subset([0, 1]), device="cpu", batch_size=2, progress=False)
    assert emb.X.shape == (2, 512) and np.isfinite(emb.X).all()


def test_bare_weights_variant_inference_and_mismatch(folder, tmp_path):
    sd = load_file(str(folder / "model.safetensors"))
    save_file(sd, str(tmp_path / "model.safetensors"))  # no config.json: sizes inferred from the weights
    enc = ecgprobe.create_encoder("hubert-ecg", checkpoint=tmp_path / "model.safetensors", device="cpu")
    assert enc.options["variant"] == "small"
    with pytest.raises(ConfigError, match="variant='base'"):
        ecgprobe.create_encoder("hubert-ecg", checkpoint=folder, device="cpu", variant="base")


def test_missing_unexpected_and_foreign_keys(folder, tmp_path):
    sd = load_file(str(folder / "model.safetensors"))
    del sd["encoder.layers.2.attention.q_proj.bias"]
    sd["encoder.layers.2.attention.rotary.weight"] = torch.zeros(2)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text((folder / "config.json").read_text())
    save_file(sd, str(bad / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"layers\.2\.attention\.q_proj\.bias") as err:
        ecgprobe.create_encoder("hubert-ecg", checkpoint=bad, device="cpu")
    assert "1 unexpected key(s): backbone.layers.2.attention.rotary.weight" in str(err.value)
    from ecgprobe.encoders import ecg_fm

    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text((folder / "config.json").read_text())
    save_file({k: torch.zeros(1) for k in ecg_fm.published_template()}, str(other / "model.safetensors"))
    with pytest.raises(CheckpointError, match="try --encoder ecg-fm"):
        ecgprobe.create_encoder("hubert-ecg", checkpoint=other, device="cpu")


def test_truncated_safetensors_is_refused(folder, tmp_path):
    (tmp_path / "config.json").write_text((folder / "config.json").read_text())
    (tmp_path / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes()[:4096])
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        ecgprobe.create_encoder("hubert-ecg", checkpoint=tmp_path, device="cpu")
