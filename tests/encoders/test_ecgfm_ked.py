"""ecgfm-ked: the published key layout and container, faithfulness to the official code, extraction
on real records, and clear errors for wrong files.

The reference (tests/fixtures/zoo/ecgfm-ked/reference.npz) was computed once, outside the repository,
with the official ``models/xresnet1d_101.py`` of control-spiderman/ECGFM-KED @e42f1de — its fastai v1
star-imports (which do not install on Python 3.11) replaced by a stub that only provides the names
(typing aliases, ``inspect``, ``re``, ``Enum``; the head helpers raise if called, and the head-less
encoder never calls them) — on ``random_state_dict(official state_dict, seed=0)`` (each
``convpath.0.`` alias given its ``convs.`` tensor, as in a saved file), for
``tests/fixtures/zoo/input_500hz.npy`` preprocessed as the official loaders do
(``scipy.signal.resample`` to T/5 samples, first 1000 or centred zero padding): the preprocessed input
(at ``preprocessed_at``; also for a 6 s record), ``ecg_features.mean(-1)`` in the standard and MIMIC
lead orders, and time-averaged outputs of the stem and the four stages.
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
from ecgprobe.encoders import ecgfm_ked as ek
from ecgprobe.encoders.merl import published_template as merl_template
from ecgprobe.exceptions import CheckpointError
from tests.encoders.zoo_reference import FIX, close, input_500hz


@pytest.fixture(scope="module")
def ref():
    return np.load(FIX / "ecgfm-ked" / "reference.npz")


@pytest.fixture(scope="module")
def x500():
    return input_500hz()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return ek.make_ked_checkpoint(
        tmp_path_factory.mktemp("ked") / "best_valid_all_increase_with_augment_epoch_3.pt", 0
    )


@pytest.fixture(scope="module")
def published(ckpt):
    return torch.load(ckpt, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def enc(ckpt):
    return ecgprobe.create_encoder("ecgfm-ked", checkpoint=ckpt, device="cpu")


def test_published_layout_is_the_official_one():
    official = json.loads((FIX / "ecgfm-ked" / "keys.json").read_text())["keys"]
    template = ek.published_template()
    assert list(template) == list(official)
    assert {k: list(v.shape) for k, v in template.items()} == official
    kept = {
        k: list(v.shape)
        for k, v in ek.convert_ked_state_dict(template).items()
        if not any(re.search(p, k) for p in ek.DROP)
    }
    with torch.device("meta"):
        assert kept == {k: list(v.shape) for k, v in ek.XResNet1d101().state_dict().items()}


def test_container_as_published(published, enc):
    assert set(published) == {
        "model",
        "ecg_model",
        "text_encoder",
        "optimizer",
        "lr_scheduler",
        "config",
        "epoch",
    }
    sd = published["ecg_model"]
    assert list(sd) == list(ek.published_template())
    assert sd["4.0.convpath.0.1.0.weight"].data_ptr() == sd["4.0.convs.1.0.weight"].data_ptr()  # one storage
    dropped = enc.load_report.dropped
    assert len(dropped) == sum(".convpath.0." in k for k in sd) == 594
    assert enc.load_report.loaded == len(enc.module.state_dict()) == 630


def test_preprocessing_matches_the_official_loaders(enc, ref, x500):
    x, leads = x500
    pre = enc.preprocess(x, 500.0, leads)
    assert pre.shape == (2, 12, 1000) and enc.spec.fs == 100.0
    close(pre[..., ref["preprocessed_at"]], ref["preprocessed"])
    short = enc.preprocess(x[..., :3000], 500.0, leads)  # 600 samples at 100 Hz, centred in 1000
    assert not short[..., :200].any() and not short[..., 800:].any()
    close(short[..., ref["preprocessed_at"]], ref["preprocessed_short"])


def test_embedding_and_layers_match_official(enc, ref, x500):
    x, leads = x500
    assert enc.layer_names() == ["stem", "layer1", "layer2", "layer3", "layer4", "embedding"]
    with torch.no_grad():
        out = enc.embed_layers(enc.preprocess(x, 500.0, leads), enc.layer_names())
    assert out["embedding"].shape == (2, 768)
    close(out["embedding"], ref["embedding"])
    for ours, theirs in (("stem", "3"), ("layer1", "4"), ("layer2", "5"), ("layer3", "6"), ("layer4", "7")):
        close(out[ours], ref[f"layer:{theirs}"])


def test_mimic_lead_order(ckpt, ref, x500):
    enc = ecgprobe.create_encoder("ecgfm-ked", checkpoint=ckpt, device="cpu", lead_order="mimic")
    assert enc.spec.leads[4:6] == ("aVF", "aVL")
    x, leads = x500
    with torch.no_grad():
        close(enc.embed(enc.preprocess(x, 500.0, leads)), ref["embedding_mimic_order"])


def test_flat_prefixed_file_loads_the_same_encoder(published, enc, tmp_path):
    flat = {f"ecg_model.{k}": v for k, v in published["ecg_model"].items()}
    flat.update({f"model.{k}": v for k, v in published["model"].items()})
    flat.update({f"text_encoder.{k}": v for k, v in published["text_encoder"].items()})
    torch.save(flat, tmp_path / "flat.pt")
    other = ecgprobe.create_encoder("ecgfm-ked", checkpoint=tmp_path / "flat.pt", device="cpu")
    assert any(k.startswith("text_encoder.") for k in other.load_report.dropped)
    ours, theirs = other.module.state_dict(), enc.module.state_dict()
    assert list(ours) == list(theirs) and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_aliases_that_disagree_are_refused(published, tmp_path):
    sd = dict(published["ecg_model"])
    sd["5.1.convpath.0.0.0.weight"] = sd["5.1.convs.0.0.weight"] + 1.0
    torch.save({"ecg_model": sd}, tmp_path / "edited.pt")
    with pytest.raises(
        CheckpointError, match=r"5\.1\.convpath\.0\.0\.0\.weight differs from 5\.1\.convs\.0\.0\.weight"
    ):
        ecgprobe.create_encoder("ecgfm-ked", checkpoint=tmp_path / "edited.pt", device="cpu")


def test_extracts_real_ptbxl_records(enc, ptbxl100):
    emb = ecgprobe.extract(enc, ptbxl100.subset([0, 1]), batch_size=2, progress=False)
    assert emb.X.shape == (2, 768) and np.isfinite(emb.X).all()


def test_missing_and_unexpected_keys_are_listed(published, tmp_path):
    sd = dict(published["ecg_model"])
    del sd["6.22.convs.2.1.weight"], sd["6.22.convpath.0.2.1.weight"]
    sd["8.0.convs.0.0.weight"] = torch.zeros(1)
    torch.save({"ecg_model": sd}, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError) as err:
        ecgprobe.create_encoder("ecgfm-ked", checkpoint=tmp_path / "broken.pt", device="cpu")
    assert "1 missing key(s): layer3.22.convs.2.1.weight" in str(err.value)
    assert "1 unexpected key(s): 8.0.convs.0.0.weight" in str(err.value)


def test_another_family_is_suggested(tmp_path):
    path = tmp_path / "res18_encoder.pth"  # MERL's published layout; the guess reads key names only
    torch.save({k: torch.zeros(v.shape) for k, v in merl_template("resnet18").items()}, path)
    with pytest.raises(CheckpointError, match="look like a 'merl' checkpoint"):
        ecgprobe.create_encoder("ecgfm-ked", checkpoint=path, device="cpu")


def test_unsafe_pickle_and_truncated_files_are_refused(ckpt, tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.makedirs, (str(marker),))

    torch.save({"ecg_model": {"0.0.weight": torch.zeros(1)}, "config": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refused"):
        ecgprobe.create_encoder("ecgfm-ked", checkpoint=tmp_path / "evil.pt", device="cpu")
    assert not marker.exists()
    (tmp_path / "cut.pt").write_bytes(Path(ckpt).read_bytes()[:4096])
    with pytest.raises(CheckpointError, match="truncated"):
        ecgprobe.create_encoder("ecgfm-ked", checkpoint=tmp_path / "cut.pt", device="cpu")
