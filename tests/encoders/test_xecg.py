"""xECG: published Lightning layout, fidelity to the official xLSTM arithmetic, loading edge cases.

Fixtures (tests/fixtures/zoo/xecg/): ``keys.json`` is the Lightning ``state_dict`` layout of bench-xecg
pretraining: the core from the official ``xlstm`` 2.0.6 ``xLSTMBlockStack`` built with bench-xecg's
``get_xlstm`` and ``pretrain_run_config.yaml`` (sLSTM recurrent kernel in the CUDA-kernel layout),
the wrapper names (``patch_embedding``, ``attn_pool``, ``reconstruction``, ``_teacher``) read by hand
(bench-xecg's ``pooling.py`` is not public: Perception-Encoder attention-pooling names assumed).
``reference.npz``: the official xlstm modules (vanilla sLSTM backend, parameters converted from the
CUDA layout with xlstm's own converters) wrapped as bench-xecg's vanillaxLSTMWrapper, on
``input_500hz.npy`` resampled with neurokit2 FFT resampling, ``random_state_dict(template, seed=0)``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import ecgprobe
from ecgprobe.data.leads import LEADS_12
from ecgprobe.encoders import xecg
from ecgprobe.encoders.checkpoint import load_strict
from ecgprobe.exceptions import CheckpointError, ConfigError
from tests.encoders.zoo_reference import FIX, TOL, input_500hz, rel_err

REF = np.load(FIX / "xecg" / "reference.npz")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return xecg.make_test_checkpoint(tmp_path_factory.mktemp("xecg") / "epoch=49-step=504700.ckpt", 0)


@pytest.fixture(scope="module")
def enc(ckpt):
    return ecgprobe.create_encoder("xecg", checkpoint=ckpt, device="cpu")


def test_published_layout(ckpt):
    keys = json.loads((FIX / "xecg" / "keys.json").read_text())["keys"]
    assert {k: list(v) for k, v in xecg.published_template().items()} == keys
    obj = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert {"state_dict", "epoch", "global_step", "pytorch-lightning_version", "hyper_parameters"} <= set(obj)


def test_reproduces_official_preprocessing_and_embedding(enc):
    assert enc.embed_dim == 1024 and enc.options["weights"] == "student"
    # teacher copy, mask_token, reconstruction head and attention-pooling head dropped by name
    assert enc.options["dropped_keys"] == 153
    x = input_500hz()[0]
    pre = enc.preprocess(x, 500.0, LEADS_12)
    assert pre.shape == (2, 12, 1000) and rel_err(pre, REF["preprocessed"]) < 1e-6
    with torch.no_grad():
        out = enc.embed_layers(
            torch.from_numpy(REF["preprocessed"]), ["block_1", "block_5", "block_9", "embedding"]
        )
        xp = REF["preprocessed"].copy()
        xp[1, :, 800:] = 0  # zero-padded tail: padded patches are excluded from the mean
        padded = enc.embed(torch.from_numpy(xp))
    for mine, theirs in (
        ("block_1", "block_0"),
        ("block_5", "block_4"),
        ("block_9", "block_8"),
        ("embedding", "embedding"),
    ):
        assert rel_err(out[mine], REF[theirs]) < TOL, mine
    assert rel_err(padded, REF["embedding_padded"]) < TOL


def test_pooling_options(ckpt, enc):
    x = torch.from_numpy(REF["preprocessed"])
    enc.module.pooling = "max"  # the 'max' branch needs no extra weights
    try:
        with torch.no_grad():
            assert rel_err(enc.embed(x), REF["embedding_max"]) < TOL
    finally:
        enc.module.pooling = "avg"
    attn = ecgprobe.create_encoder("xecg", checkpoint=ckpt, device="cpu", pooling="attn_pool")
    assert attn.options["dropped_keys"] == 142  # fewer keys dropped: the attention-pooling head is loaded
    with torch.no_grad():
        assert rel_err(attn.embed(x), REF["embedding_attn_pool"]) < TOL
    with pytest.raises(ConfigError, match="pooling"):
        ecgprobe.create_encoder("xecg", checkpoint=ckpt, device="cpu", pooling="cls")


def test_teacher_selection():
    sd = {
        "model.core.model.blocks.0.xlstm_norm.weight": torch.zeros(2),
        "model._teacher.core.model.blocks.0.xlstm_norm.weight": torch.ones(2),
        "model.xlstm.model.blocks.1.xlstm_norm.weight": torch.zeros(2),
    }
    student = xecg.convert_state_dict(sd)
    assert torch.equal(student["core.model.blocks.0.xlstm_norm.weight"], torch.zeros(2))
    assert "core.model.blocks.1.xlstm_norm.weight" in student  # bench-xecg format_keys rename
    teacher = xecg.convert_state_dict(sd, weights="teacher")
    assert torch.equal(teacher["core.model.blocks.0.xlstm_norm.weight"], torch.ones(2))
    assert "_unused_.core.model.blocks.0.xlstm_norm.weight" in teacher


def test_end_to_end_on_ptbxl(enc, ptbxl100):
    emb = ecgprobe.extract(enc, ptbxl100.subset([0, 1]), device="cpu", batch_size=2, progress=False)
    assert emb.X.shape == (2, 1024) and np.isfinite(emb.X).all()


def test_missing_unexpected_and_foreign_keys(ckpt, enc, tmp_path):
    sd = xecg.convert_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"])
    del sd["core.model.blocks.0.xlstm.slstm_cell._bias_"]
    sd["core.model.blocks.0.xlstm.extra"] = torch.zeros(1)
    with pytest.raises(
        CheckpointError, match=r"missing key\(s\): core\.model\.blocks\.0\.xlstm\.slstm_cell\._bias_"
    ) as err:
        load_strict(enc.module, sd, family="xecg", drop=xecg.drop_rules("avg", "student"))
    assert "unexpected key(s): core.model.blocks.0.xlstm.extra" in str(err.value)
    from ecgprobe.encoders import hubert_ecg

    torch.save(
        {"state_dict": {k: torch.zeros(1) for k in hubert_ecg.published_template()}}, tmp_path / "h.ckpt"
    )
    with pytest.raises(CheckpointError, match=r"no core\.model\.blocks"):
        ecgprobe.create_encoder("xecg", checkpoint=tmp_path / "h.ckpt", device="cpu")
    (tmp_path / "cut.ckpt").write_bytes(Path(ckpt).read_bytes()[:4096])
    with pytest.raises(CheckpointError, match=r"truncated|corrupt"):
        ecgprobe.create_encoder("xecg", checkpoint=tmp_path / "cut.ckpt", device="cpu")
