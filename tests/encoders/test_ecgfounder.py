"""ecgfounder: the published key layout and container, faithfulness to the official code, extraction
on real records, and clear errors for wrong files.

The reference (tests/fixtures/zoo/ecgfounder/reference.npz) was computed once, outside the repository,
with the official ``net1d.Net1D`` and ``util.filter_bandpass`` of PKUDigitalHealth/ECGFounder @04edac7
(``util.py``'s unused ``h5py`` import stubbed) on ``random_state_dict(official state_dict, seed=0)``,
for the fixed input ``tests/fixtures/zoo/input_500hz.npy``: ``dataset.py``'s preprocessing (filters +
global z-score) and ``ptbxl_eval.py``'s (z-score only), ``deep_features`` and the time-averaged outputs
of four layers; the preprocessed inputs are stored at the samples ``preprocessed_at``.
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
from ecgprobe.encoders import ecgfounder as ef
from ecgprobe.encoders.base import file_sha256
from ecgprobe.encoders.checkpoint import load_checkpoint, random_state_dict
from ecgprobe.encoders.merl import published_template as merl_template
from ecgprobe.exceptions import CheckpointError, IncompatibleInputError
from tests.encoders.zoo_reference import FIX, close, input_500hz


@pytest.fixture(scope="module")
def ref():
    return np.load(FIX / "ecgfounder" / "reference.npz")


@pytest.fixture(scope="module")
def x500():
    return input_500hz()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return ef.make_ecgfounder_checkpoint(
        tmp_path_factory.mktemp("ecgfounder") / "12_lead_ECGFounder.pth", seed=0
    )


@pytest.fixture(scope="module")
def published(ckpt):
    return torch.load(ckpt, map_location="cpu", weights_only=False)


@pytest.fixture(scope="module")
def enc(ckpt):
    return ecgprobe.create_encoder("ecgfounder", checkpoint=ckpt, device="cpu")


def test_published_layout_is_the_official_one():
    official = json.loads((FIX / "ecgfounder" / "keys.json").read_text())["keys"]
    template = ef.published_template(12)
    assert list(template) == list(official)
    assert {k: list(v.shape) for k, v in template.items()} == official
    kept = {
        k: list(v.shape)
        for k, v in ef.convert_ecgfounder_state_dict(template).items()
        if not any(re.search(p, k) for p in ef.DROP)
    }
    with torch.device("meta"):
        ours = ef.Net1D(12).state_dict()
    assert kept == {k: list(v.shape) for k, v in ours.items()}


def test_container_as_published(published):
    assert set(published) == {"epoch", "step", "state_dict", "optimizer", "scheduler", "val_auroc"}
    assert isinstance(published["val_auroc"], np.floating)  # util.save_checkpoint stores a NumPy metric
    assert list(published["state_dict"]) == list(ef.published_template(12))


def test_load_report_names_every_unused_entry(enc, ckpt):
    dropped = enc.load_report.dropped
    unused = {k for k in ef.published_template(12) if k.startswith(("dense.", "first_bn.")) or ".bn" in k}
    assert set(dropped) == unused and len(unused) == 2 + 5 * (1 + 3 * sum(ef.BLOCKS))
    assert all("use_bn=False" in why for k, why in dropped.items() if not k.startswith("dense."))
    assert enc.load_report.loaded == len(enc.module.state_dict())
    assert enc.weights_sha256 == file_sha256(ckpt)


def test_preprocessing_matches_dataset_py(enc, ref, x500):
    x, leads = x500
    pre = enc.preprocess(x, 500.0, leads)
    assert pre.shape == (2, 12, 5000) and pre.dtype == np.float32
    close(pre[..., ref["preprocessed_at"]], ref["preprocessed"])


def test_embedding_and_layers_match_official(enc, ref, x500):
    x, leads = x500
    assert enc.layer_names() == ["stem", *(f"stage{i}" for i in range(7)), "embedding"]
    with torch.no_grad():
        out = enc.embed_layers(
            enc.preprocess(x, 500.0, leads), ["stem", "stage0", "stage3", "stage6", "embedding"]
        )
    assert out["embedding"].shape == (2, 1024)
    close(out["embedding"], ref["embedding"])
    for ours, theirs in (
        ("stem", "first_activation"),
        ("stage0", "stage_list.0"),
        ("stage3", "stage_list.3"),
    ):
        close(out[ours], ref[f"layer:{theirs}"])
    close(out["stage6"], ref["layer:stage_list.6"])


def test_zscore_only_path_matches_ptbxl_eval(ckpt, ref, x500):
    x, leads = x500
    enc = ecgprobe.create_encoder("ecgfounder", checkpoint=ckpt, device="cpu", preprocessing="zscore_only")
    assert enc.spec.bandpass is None and enc.spec.notch is None
    close(enc.preprocess(x, 500.0, leads)[..., ref["preprocessed_at"]], ref["preprocessed_zscore_only"])


def test_one_lead_model_inferred_from_the_file(published, ref, x500, tmp_path):
    # random_state_dict depends only on (name, shape, seed): swapping the stem gives exactly the 1-lead file
    one = dict(published, state_dict=dict(published["state_dict"]))
    one["state_dict"].update(random_state_dict({"first_conv.conv.weight": (64, 1, 16)}, seed=0))
    path = tmp_path / "1_lead_ECGFounder.pth"
    torch.save(one, path)
    enc = ecgprobe.create_encoder("ecgfounder", checkpoint=path, device="cpu")
    assert enc.options["variant"] == "1lead" and enc.spec.leads == ("I",)
    x, leads = x500
    pre = enc.preprocess(x, 500.0, leads)
    close(pre[..., ref["preprocessed_at"]], ref["preprocessed_1lead"])
    with torch.no_grad():
        close(enc.embed(pre), ref["embedding_1lead"])
    with pytest.raises(CheckpointError, match="1lead model but variant='12lead'"):
        ecgprobe.create_encoder("ecgfounder", checkpoint=path, device="cpu", variant="12lead")


def test_extracts_real_ptbxl_records(enc, ptbxl100):
    rs = ptbxl100.subset([0, 1])
    emb = ecgprobe.extract(enc, rs, batch_size=2, progress=False)
    assert emb.X.shape == (2, 1024) and np.isfinite(emb.X).all()
    assert emb.provenance["encoder"]["weights_sha256"] == enc.weights_sha256


def test_refuses_records_too_slow_for_the_band(enc):
    with pytest.raises(IncompatibleInputError, match="above 80 Hz"):
        enc.preprocess(np.zeros((1, 12, 500), np.float32), 50.0, ef.LEADS_12)


def test_missing_and_unexpected_keys_are_listed(published, tmp_path):
    sd = dict(published["state_dict"])
    del sd["stage_list.6.block_list.3.conv3.conv.weight"]
    sd["stage_list.7.block_list.0.conv1.conv.weight"] = torch.zeros(1)
    path = tmp_path / "broken.pth"
    torch.save({"state_dict": sd}, path)
    with pytest.raises(CheckpointError) as err:
        ecgprobe.create_encoder("ecgfounder", checkpoint=path, device="cpu")
    msg = str(err.value)
    assert "1 missing key(s): stage_list.6.block_list.3.conv3.conv.weight" in msg
    assert "1 unexpected key(s): stage_list.7.block_list.0.conv1.conv.weight" in msg


def test_another_family_is_suggested(tmp_path):
    path = tmp_path / "res18_encoder.pth"  # MERL's published layout; the guess reads key names only
    torch.save({k: torch.zeros(v.shape) for k, v in merl_template("resnet18").items()}, path)
    with pytest.raises(CheckpointError, match="look like a 'merl' checkpoint"):
        ecgprobe.create_encoder("ecgfounder", checkpoint=path, device="cpu")


def test_unsafe_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.makedirs, (str(marker),))

    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"first_conv.conv.weight": torch.zeros(1)}, "x": Payload()}, path)
    with pytest.raises(CheckpointError, match="refused"):
        ecgprobe.create_encoder("ecgfounder", checkpoint=path, device="cpu")
    assert not marker.exists()


def test_truncated_file_is_a_clear_error(ckpt, tmp_path):
    path = tmp_path / "cut.pth"
    path.write_bytes(Path(ckpt).read_bytes()[: 1 << 20])
    with pytest.raises(CheckpointError, match="truncated"):
        ecgprobe.create_encoder("ecgfounder", checkpoint=path, device="cpu")


def test_numpy_metrics_from_numpy1_files_are_accepted(tmp_path):
    """Files written under NumPy 1 name the scalar reconstructor numpy.core.multiarray.scalar."""
    import zipfile

    src, dst = tmp_path / "np2.pth", tmp_path / "np1.pth"
    torch.save({"state_dict": {"w": torch.ones(2)}, "val_auroc": np.float64(0.75)}, src)
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("data.pkl"):
                assert b"numpy._core.multiarray" in data
                data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            zout.writestr(info, data)
    for path in (src, dst):
        assert load_checkpoint(path, family="ecgfounder")["val_auroc"] == 0.75
