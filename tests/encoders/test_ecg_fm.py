"""ECG-FM: published key layout, fidelity to the official fairseq-signals code, loading edge cases.

Fixtures (tests/fixtures/zoo/ecg-fm/): ``keys.json`` is the state dict of the official
``Wav2Vec2CMSCModel`` (fairseq-signals, w2v_cmsc_rlm config) instantiated in a scratch environment
with the framework glue (registries, hydra dataclasses) stubbed; ``reference.npz`` holds that official
model's outputs on ``input_500hz.npy`` with ``random_state_dict(template, seed=0)`` weights, after the
official preprocessing (ecg-transform 0.1.3 transforms of the ECG-FM quickstart notebook).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import ecgprobe
from ecgprobe.data.leads import LEADS_12
from ecgprobe.encoders import ecg_fm
from ecgprobe.encoders.checkpoint import load_strict, weight_norm_to_parametrizations
from ecgprobe.exceptions import CheckpointError
from tests.encoders.zoo_reference import FIX, TOL, input_500hz, records_of, rel_err

REF = np.load(FIX / "ecg-fm" / "reference.npz")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return ecg_fm.make_test_checkpoint(
        tmp_path_factory.mktemp("ecgfm") / "mimic_iv_ecg_physionet_pretrained.pt", 0
    )


@pytest.fixture(scope="module")
def enc(ckpt):
    return ecgprobe.create_encoder("ecg-fm", checkpoint=ckpt, device="cpu")


def test_published_keys_match_official_model():
    keys = json.loads((FIX / "ecg-fm" / "keys.json").read_text())["keys"]
    assert {k: list(v) for k, v in ecg_fm.published_template().items()} == keys


def test_container_and_drops(ckpt, enc):
    obj = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert set(obj) >= {"cfg", "model"} and obj["cfg"]["model"]["_name"] == "wav2vec2_cmsc"
    # the five pretraining-only tensors (mask_emb, quantizer x3, project_q x2, final_proj x2) are dropped by name
    assert enc.options["dropped_keys"] == 8
    assert enc.embed_dim == 768 and enc.weights_sha256 and len(enc.layer_names()) == 14


def test_reproduces_official_preprocessing_and_embedding(enc):
    x = input_500hz()[0]
    pre = enc.preprocess(x, 500.0, LEADS_12)
    assert pre.shape == (2, 12, 2500) and rel_err(pre, REF["preprocessed"]) < 1e-6
    pre100 = enc.preprocess(x[:, :, ::5], 100.0, LEADS_12)  # linear-interpolation upsampling path
    assert rel_err(pre100[0, :2, :200], REF["preprocessed_from_100hz_head"]) < 1e-6
    with torch.no_grad():
        out = enc.embed_layers(
            torch.from_numpy(REF["preprocessed"]), ["features", "layer_1", "layer_12", "embedding"]
        )
    assert rel_err(out["features"], REF["features"]) < TOL
    assert rel_err(out["layer_1"], REF["layer_0"]) < TOL
    assert rel_err(out["layer_12"], REF["layer_11"]) < TOL
    assert out["embedding"].shape == (2, 768) and rel_err(out["embedding"], REF["embedding"]) < TOL


def test_whole_record_standardisation_and_sliding(enc):
    x = input_500hz()[0]
    win = enc.preprocess(x, 500.0, LEADS_12, window="sliding")
    assert win.shape == (2, 2, 12, 2500)
    # standardised over the 10 s record, so each 5 s window is not exactly zero-mean/unit-std
    full = np.concatenate([win[:, 0], win[:, 1]], axis=-1)
    np.testing.assert_allclose(full.mean(-1), 0, atol=1e-5)
    np.testing.assert_allclose(full.std(-1), 1, atol=1e-4)
    flat = x.copy()
    flat[0, 3] = 0.7  # a constant lead becomes zero
    assert np.all(enc.preprocess(flat, 500.0, LEADS_12)[0, 3] == 0)


def test_record_level_default_is_the_mean_over_the_5_s_segments(enc):
    x10 = input_500hz()[0]
    x = np.concatenate([x10, x10[..., :1000]], axis=-1)  # 12 s: two full 5 s segments and a 2 s tail
    segments = enc.preprocess(x, 500.0, LEADS_12, window="official")
    sliding = enc.preprocess(x, 500.0, LEADS_12, window="sliding")
    assert segments.shape == (2, 2, 12, 2500) and sliding.shape[1] == 3  # segment_mat drops the tail
    np.testing.assert_array_equal(segments, sliding[:, :2])
    records = records_of(x)
    emb = ecgprobe.extract(enc, records, batch_size=4, device="cpu", progress=False)  # window="official"
    with torch.no_grad():  # each segment embedded by hand, then averaged (the quickstart's 'mean' labels)
        per_segment = [enc.embed(segments[:, i]).numpy() for i in range(2)]
    np.testing.assert_allclose(emb.X, np.mean(per_segment, axis=0), rtol=1e-5, atol=1e-6)
    first = ecgprobe.extract(enc, records, window="fit", batch_size=4, device="cpu", progress=False)
    np.testing.assert_allclose(first.X, per_segment[0], rtol=1e-5, atol=1e-6)
    assert emb.provenance["encoder"]["spec"]["crops"]["rule"] == "chunks"


def test_end_to_end_on_ptbxl(enc, ptbxl100):
    rs = ptbxl100.subset([0, 1])
    emb = ecgprobe.extract(enc, rs, device="cpu", batch_size=2, progress=False)
    assert emb.X.shape == (2, 768) and np.isfinite(emb.X).all()


def test_finetuned_layout_and_weight_norm_names(ckpt, enc):
    sd = torch.load(ckpt, map_location="cpu", weights_only=True)["model"]
    # a finetuned ECGTransformerClassificationModel: encoder weights under 'encoder.', a 'proj.' head
    ft = {
        "encoder." + k: v
        for k, v in sd.items()
        if not k.startswith(("quantizer", "project_q", "final_proj", "mask_emb"))
    }
    ft["proj.weight"], ft["proj.bias"] = torch.zeros(17, 768), torch.zeros(17)
    # and older torch's weight-norm names
    for a, b in (("original0", "weight_g"), ("original1", "weight_v")):
        ft[f"encoder.conv_pos.pos_conv.0.{b}"] = ft.pop(
            f"encoder.conv_pos.pos_conv.0.parametrizations.weight.{a}"
        )
    net = enc.module
    report = load_strict(
        net,
        weight_norm_to_parametrizations(ecg_fm.convert_state_dict(ft), net),
        family="ecg-fm",
        drop=ecg_fm.DROP,
    )
    assert set(report.dropped) == {"proj.weight", "proj.bias"}


def test_missing_and_unexpected_keys_are_listed(ckpt, enc):
    sd = torch.load(ckpt, map_location="cpu", weights_only=True)["model"]
    del sd["encoder.layers.3.fc1.weight"]
    sd["encoder.layers.3.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"missing key.*layers\.3\.ffn_in\.weight") as err:
        load_strict(
            enc.module,
            weight_norm_to_parametrizations(ecg_fm.convert_state_dict(sd), enc.module),
            family="ecg-fm",
            drop=ecg_fm.DROP,
        )
    assert "unexpected key(s): encoder.layers.3.extra.weight" in str(err.value)


def test_other_family_checkpoint_is_recognised(tmp_path):
    from ecgprobe.encoders import hubert_ecg

    fake = {k: torch.zeros(1) for k in hubert_ecg.published_template()}
    torch.save({"model": fake}, tmp_path / "hubert.pt")
    with pytest.raises(CheckpointError, match="try --encoder hubert-ecg"):
        ecgprobe.create_encoder("ecg-fm", checkpoint=tmp_path / "hubert.pt", device="cpu")


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")  # torch on the crafted pickle
def test_unsafe_and_truncated_files_are_refused(tmp_path, ckpt):
    with open(tmp_path / "evil.pt", "wb") as fh:
        pickle.dump({"model": _Evil()}, fh)
    with pytest.raises(CheckpointError, match="refused"):
        ecgprobe.create_encoder("ecg-fm", checkpoint=tmp_path / "evil.pt", device="cpu")
    (tmp_path / "cut.pt").write_bytes(Path(ckpt).read_bytes()[:4096])
    with pytest.raises(CheckpointError, match=r"truncated|corrupt"):
        ecgprobe.create_encoder("ecg-fm", checkpoint=tmp_path / "cut.pt", device="cpu")
