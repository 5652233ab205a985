"""st-mem: the published key sets, official evaluation transforms and embeddings, loading errors.

Fixtures in tests/fixtures/zoo/st-mem (computed once in a scratch directory with the official
code, bakqui/ST-MEM@69ec702, nothing stubbed, never committed): ``keys.json`` holds
``st_mem_vit_base(num_leads=12).state_dict()`` (the encoder checkpoint) and, as ``full_keys``,
``st_mem_vit_base_dec256d4b().state_dict()`` (the full pre-training checkpoint);
``reference.npz`` holds, for tests/fixtures/zoo/input_500hz.npy and the weights
``random_state_dict(official template, seed=0)``: the official evaluation input — ``Resample(250)``
then ``NCrop(2250, 3)``, high-pass, low-pass, ``Standardize`` — for the crops at 0, 125, 250
(every 25th sample), ``forward_encoding`` of each crop, and SEP-free token means of blocks 0 and
11 for the first crop.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import ecgprobe
from ecgprobe.data.leads import LEADS_12
from ecgprobe.encoders import st_mem
from ecgprobe.encoders._resample import resample_fft
from ecgprobe.encoders.checkpoint import load_strict
from ecgprobe.exceptions import CheckpointError
from tests.encoders.zoo_reference import FIX, TOL, input_500hz, records_of, rel_err

REF = np.load(FIX / "st-mem" / "reference.npz")
KEYS = json.loads((FIX / "st-mem" / "keys.json").read_text())


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return st_mem.make_test_checkpoint(tmp_path_factory.mktemp("stmem") / "st_mem_vit_base.pth", seed=0)


@pytest.fixture(scope="module")
def enc(ckpt):
    return ecgprobe.create_encoder("st-mem", checkpoint=ckpt, device="cpu")


@pytest.fixture(scope="module")
def x500() -> np.ndarray:
    return input_500hz()[0]


def test_published_keys_are_the_official_ones():
    ours = {k: list(v.shape) for k, v in st_mem._published_template().items()}
    assert ours == KEYS["keys"]
    with torch.device("meta"):  # names and shapes only: no memory, no copies
        net = st_mem._STMEMNet()
    for layout in ("keys", "full_keys"):  # the encoder checkpoint and the full pre-training checkpoint
        published = {k: torch.empty(shape, device="meta") for k, shape in KEYS[layout].items()}
        sd, drop = st_mem.convert_state_dict(published)
        report = load_strict(net, sd, family="st-mem", drop=drop)
        assert report.loaded == len(KEYS["keys"])
        # the full checkpoint: exactly its decoder and the aliased patch embedding are dropped
        expected = (
            {k for k in KEYS[layout] if not k.startswith("encoder.")} if layout == "full_keys" else set()
        )
        assert set(report.dropped) == expected


def test_preprocessing_matches_the_official_transforms(enc, x500):
    crops = enc.preprocess(x500, 500.0, LEADS_12, window="sliding", hop=125)  # official NCrop(2250, 3)
    assert crops.shape == (2, 3, 12, 2250) and crops.dtype == np.float32
    stride = int(REF["preprocessed_stride"])
    assert rel_err(crops[..., ::stride], REF["preprocessed"]) < TOL
    first = enc.preprocess(x500, 500.0, LEADS_12)
    assert first.shape == (2, 12, 2250) and np.array_equal(first, crops[:, 0])
    # each window standardised over all leads and samples together
    assert np.allclose(first.mean(axis=(1, 2)), 0, atol=1e-5) and np.allclose(
        first.std(axis=(1, 2)), 1, atol=1e-4
    )


def test_embedding_and_layers_match_the_official_model(enc, x500):
    crops = enc.preprocess(x500, 500.0, LEADS_12, window="sliding", hop=125)
    batch = np.stack([crops[0, 0], crops[1, 2]])  # first crop of record 0, last crop of record 1
    with torch.no_grad():
        out = enc.embed_layers(batch, ["block0", "block11", "embedding"])
    ref = REF["embedding_per_crop"]
    assert rel_err(out["embedding"].numpy(), np.stack([ref[0, 0], ref[1, 2]])) < TOL
    for name in ("block0", "block11"):
        assert rel_err(out[name].numpy()[0], REF[f"layer_{name}_crop0"][0]) < TOL, name


def test_record_level_default_is_the_mean_of_the_three_official_crops(enc, x500):
    records = records_of(x500)
    emb = ecgprobe.extract(enc, records, batch_size=2, device="cpu", progress=False)  # window="official"
    # the official evaluation: the model on each NCrop crop, averaged (engine_downstream.evaluate)
    assert rel_err(emb.X, REF["embedding_per_crop"].mean(axis=1)) < TOL
    crops = enc.preprocess(x500, 500.0, LEADS_12, window="official")
    assert crops.shape == (2, 3, 12, 2250)
    with torch.no_grad():  # the three crops embedded one by one, by hand
        per_crop = [enc.embed(crops[:, i]).numpy() for i in range(3)]
    np.testing.assert_allclose(emb.X, np.mean(per_crop, axis=0), rtol=1e-5, atol=1e-6)
    first = ecgprobe.extract(enc, records, window="fit", batch_size=2, device="cpu", progress=False)
    np.testing.assert_allclose(first.X, per_crop[0], rtol=1e-5, atol=1e-6)  # override: the first crop only
    assert rel_err(first.X, emb.X) > 1e-3
    assert emb.provenance["encoder"]["spec"]["crops"] == {
        "rule": "spaced",
        "n": 3,
        "reduce": "mean",
        "source": st_mem.SPEC.crops.source,
    }


@pytest.mark.parametrize("t", [2250, 2251, 2252, 2253, 2254, 2499, 2500, 3001, 5000])
def test_crop_starts_are_the_official_ncrop_starts(t):
    ours = st_mem.SPEC.crops.starts(t, 2250)
    if t - 2250 >= 2:  # util/transforms.py NCrop.__call__ (its step is 0 below: numpy refuses)
        assert ours == list(np.arange(0, t - 2250 + 1, (t - 2250) // 2))
    else:
        assert ours == [0]
    assert st_mem.SPEC.crops.starts(2500, 2250) == list(REF["crop_starts"])


def test_official_crops_of_a_longer_record_are_cut_after_resampling(enc, x500):
    x = np.concatenate([x500, x500[..., :1000]], axis=-1)  # 12 s at 500 Hz -> 3,000 samples at 250 Hz
    crops = enc.preprocess(x, 500.0, LEADS_12, window="official")
    at_250 = resample_fft(x, 500.0, 250.0)
    assert crops.shape == (2, 3, 12, 2250)
    for i, start in enumerate((0, 375, 750)):  # NCrop: range(0, 751, 375)
        one = at_250[..., start : start + 2250]
        np.testing.assert_allclose(crops[:, i], st_mem._filter_and_standardise(one, 250.0), atol=1e-5)


def test_end_to_end_on_ptbxl(enc, ptbxl100):
    records = ptbxl100.subset([0])
    emb = ecgprobe.extract(enc, records, batch_size=1, device="cpu", progress=False)
    assert emb.X.shape == (1, 768) and np.isfinite(emb.X).all()


def test_mismatching_and_unsafe_checkpoints_are_clear_errors(tmp_path):
    sd = {k: torch.zeros(1) for k in KEYS["keys"]}  # names matter here, not values
    del sd["norm.bias"]
    torch.save({"model": {**sd, "head.weight": torch.zeros(1)}}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=r"1 missing key\(s\): norm\.bias") as err:
        ecgprobe.create_encoder("st-mem", checkpoint=tmp_path / "bad.pth", device="cpu")
    assert "1 unexpected key(s): head.weight" in str(err.value)
    jepa_like = {
        k: torch.zeros(1) for k in ("W_P.weight", "pos_embed", "encoder_blocks.blocks.0.attn.qkv.weight")
    }
    torch.save({"model": jepa_like}, tmp_path / "jepa.pth")
    with pytest.raises(CheckpointError, match="try --encoder ecg-jepa"):
        ecgprobe.create_encoder("st-mem", checkpoint=tmp_path / "jepa.pth", device="cpu")
    evil = tmp_path / "evil.pth"
    torch.save({"model": {"sep_embedding": torch.zeros(1)}, "args": __import__("argparse").Namespace()}, evil)
    with pytest.raises(CheckpointError, match="refused"):
        ecgprobe.create_encoder("st-mem", checkpoint=evil, device="cpu")
    (tmp_path / "cut.pth").write_bytes(evil.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="truncated"):
        ecgprobe.create_encoder("st-mem", checkpoint=tmp_path / "cut.pth", device="cpu")
