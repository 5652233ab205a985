"""ecg-cpc: the published key set, official chunking + resampling, the S4 arithmetic, loading.

Fixtures in tests/fixtures/zoo/ecg-cpc (computed once in a scratch directory with the official
code, AI4HealthUOL/ecg-fm-benchmarking@6367295 ``code/``, never committed): ``keys.json`` is the
state dict of the official ``TimeSeriesEncoder`` built from the config values of
``conf/config_cpc_ecg_s4_heedb.yaml`` as the ``ts_encoder`` of the Lightning module;
``reference.npz`` holds, for tests/fixtures/zoo/input_500hz.npy and the weights
``s4_random_state_dict(official template, seed=0)`` (random weights with valid S4 buffers): the
official 2.5 s chunks resampled by ``resampy`` (every 10th sample), the official ``seq.mean(1)``
per chunk, and time means of the first conv block and the second S4 residual for chunk 0.
The official S4 kernel there ran its keops formula through a torch stand-in for
``pykeops.torch.Genred`` (no CUDA/keops here); ``rank_zero_only`` was stubbed (logging only).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import ecgprobe
from ecgprobe.data.leads import LEADS_12
from ecgprobe.encoders import ecg_cpc
from ecgprobe.encoders._resample import resample_kaiser_best
from ecgprobe.encoders._s4 import fft_nodes
from ecgprobe.encoders.checkpoint import load_strict
from ecgprobe.exceptions import CheckpointError, ConfigError
from tests.encoders.zoo_reference import FIX, TOL, input_500hz, records_of, rel_err

REF = np.load(FIX / "ecg-cpc" / "reference.npz")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return ecg_cpc.make_test_checkpoint(tmp_path_factory.mktemp("cpc") / "last_11597276.ckpt", seed=0)


@pytest.fixture(scope="module")
def enc(ckpt):
    return ecgprobe.create_encoder("ecg-cpc", checkpoint=ckpt, device="cpu")


@pytest.fixture(scope="module")
def x500() -> np.ndarray:
    return input_500hz()[0]


def test_published_keys_are_the_official_ones():
    official = json.loads((FIX / "ecg-cpc" / "keys.json").read_text())["keys"]
    assert {k: list(v.shape) for k, v in ecg_cpc.published_template().items()} == official
    sd = ecg_cpc.convert_state_dict({k: torch.empty(shape) for k, shape in official.items()})
    arch = ecg_cpc._arch_from(sd, {}, "keys.json")
    assert (arch.features, arch.kss, arch.model_dim, arch.state_half, arch.layers) == (
        (512,) * 4,
        (3, 1, 1, 1),
        512,
        4,
        4,
    )
    assert not arch.bidirectional and arch.kernel_length == 1200 and arch.norm == "bn"
    report = load_strict(ecg_cpc._CPCNet(arch), sd, family="ecg-cpc", drop=ecg_cpc._DROP)
    assert set(report.dropped) == {"ts_encoder.head_ssl.proj.0.weight"}


def test_test_checkpoint_is_a_lightning_checkpoint_with_its_yaml(ckpt, enc):
    obj = torch.load(ckpt, weights_only=True)
    assert {"state_dict", "hyper_parameters", "epoch", "global_step", "pytorch-lightning_version"} <= set(obj)
    cfg = yaml.safe_load((ckpt.parent / f"config_{ckpt.stem}_ckpt.yaml").read_text())
    assert cfg["trainer"]["pretrained"] == ckpt.name and cfg["ts"]["enc"]["strides"] == [2, 1, 1, 1]
    assert enc.embed_dim == 512 and enc.spec.fs == 240 and enc.spec.n_samples == 600
    assert enc.layer_names() == [
        "conv0",
        "conv1",
        "conv2",
        "conv3",
        "s4_0",
        "s4_1",
        "s4_2",
        "s4_3",
        "embedding",
    ]


def test_preprocessing_matches_the_official_chunks(enc, x500):
    chunks = enc.preprocess(x500, 500.0, LEADS_12, window="sliding")  # official 2.5 s chunks, stride 2.5 s
    assert chunks.shape == (2, 4, 12, 600) and chunks.dtype == np.float32
    stride = int(REF["preprocessed_stride"])
    assert rel_err(chunks[..., ::stride], REF["preprocessed"]) < TOL
    assert np.array_equal(enc.preprocess(x500, 500.0, LEADS_12), chunks[:, 0])


def test_embedding_and_layers_match_the_official_model(enc, x500):
    chunks = enc.preprocess(x500, 500.0, LEADS_12, window="sliding")
    with torch.no_grad():
        out = enc.embed_layers(chunks.reshape(8, 12, 600), ["conv0", "s4_1", "embedding"])
    assert rel_err(out["embedding"].numpy().reshape(2, 4, 512), REF["embedding_per_chunk"]) < TOL
    assert rel_err(out["conv0"].numpy().reshape(2, 4, 512)[:, 0], REF["layer_conv0_chunk0"]) < TOL
    assert rel_err(out["s4_1"].numpy().reshape(2, 4, 512)[:, 0], REF["layer_s4_1_chunk0"]) < TOL


def test_s4_is_causal_and_its_nodes_are_the_fft_nodes(enc):
    omega, z = fft_nodes(8)
    expected = np.exp(-2j * np.pi * np.arange(5) / 8)
    assert np.allclose(torch.view_as_complex(omega).numpy(), expected, atol=1e-6)
    assert np.allclose(
        torch.view_as_complex(z).numpy()[:4], 2 * (1 - expected[:4]) / (1 + expected[:4]), atol=1e-5
    )
    # a causal model: changing the input after time t leaves the outputs up to t unchanged
    x = torch.randn(1, 12, 600)
    y = x.clone()
    y[..., 400:] += 5.0
    layer = enc.module.s4_layers[0]
    with torch.no_grad():
        h_x, h_y = (enc.module.encoder(v).transpose(1, 2) for v in (x, y))
        a, b = layer(h_x.transpose(1, 2)), layer(h_y.transpose(1, 2))
    assert torch.allclose(a[..., :199], b[..., :199], atol=1e-5) and not torch.allclose(
        a[..., 201:], b[..., 201:]
    )


def test_kaiser_best_resampling_known_answers():
    t = np.arange(1250) / 500.0
    x = np.sin(2 * np.pi * 7.0 * t)[None]
    y = resample_kaiser_best(x, 500.0, 240.0)
    assert y.shape == (1, 600)
    truth = np.sin(2 * np.pi * 7.0 * np.arange(600) / 240.0)
    assert np.abs(y[0, 60:-60] - truth[60:-60]).max() < 1e-4  # in-band sine kept (edges see zeros)
    assert np.array_equal(resample_kaiser_best(x, 500.0, 500.0), x.astype(np.float32))


def test_window_length_option_and_its_limit(ckpt):
    ten = ecgprobe.create_encoder("ecg-cpc", checkpoint=ckpt, device="cpu", window_seconds=10.0)
    assert ten.spec.n_samples == 2400 and ten.options == {"window_seconds": 10.0}
    with pytest.raises(ConfigError, match="window_seconds <= 10"):
        ecgprobe.create_encoder("ecg-cpc", checkpoint=ckpt, device="cpu", window_seconds=12.0)


def test_strides_come_from_the_yaml(tmp_path, ckpt):
    cfg = yaml.safe_load((ckpt.parent / f"config_{ckpt.stem}_ckpt.yaml").read_text())
    cfg["ts"]["enc"]["strides"] = [1, 1, 1, 1]
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(cfg))
    enc1 = ecgprobe.create_encoder("ecg-cpc", checkpoint=ckpt, device="cpu", config=tmp_path / "other.yaml")
    with torch.no_grad():
        assert enc1.module.encoder(torch.zeros(1, 12, 600)).shape[-1] == 600
    with pytest.raises(ConfigError, match="does not exist"):
        ecgprobe.create_encoder("ecg-cpc", checkpoint=ckpt, device="cpu", config=tmp_path / "none.yaml")


def test_record_level_default_is_the_mean_over_the_official_chunks(enc, x500):
    records = records_of(x500)
    emb = ecgprobe.extract(enc, records, batch_size=8, device="cpu", progress=False)  # window="official"
    # the official evaluation averages over the record's four 2.5 s chunks (aggregate_predictions, np.mean)
    assert rel_err(emb.X, REF["embedding_per_chunk"].mean(axis=1)) < TOL
    first = ecgprobe.extract(enc, records, window="fit", batch_size=8, device="cpu", progress=False)
    assert rel_err(first.X, REF["embedding_per_chunk"][:, 0]) < TOL and rel_err(first.X, emb.X) > 1e-3
    # a 9.2 s record: chunks at 0, 1250, 2500 samples; the 850-sample tail is below min_chunk_length
    short = enc.preprocess(x500[..., :4600], 500.0, LEADS_12, window="official")
    assert short.shape == (2, 3, 12, 600)
    np.testing.assert_array_equal(short, enc.preprocess(x500, 500.0, LEADS_12, window="official")[:, :3])


def _resample(chunk: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """``resampy.resample(chunk, fs_in, fs_out, axis=0)`` (clinical_ts Resample); where resampy is not
    installed, ecgprobe's kaiser_best reimplementation, checked against resampy by the fixtures above."""
    if importlib.util.find_spec("resampy") is not None:
        import resampy

        return resampy.resample(chunk, fs_in, fs_out, axis=0)
    return resample_kaiser_best(chunk.T, fs_in, fs_out).T


def official_downstream_input(sig: np.ndarray, fs: float, clip_amp: float) -> np.ndarray:
    """The official steps, from ecg-fm-benchmarking ``code/``, on a WFDB signal ``(T, 12)`` in mV:

    ``clinical_ts/utils/ecg_utils.py`` -- ``prepare_mimicecg`` (and ``process_ecg_file_heedb``): with
    no NaNs, ``np.clip(sigbufs, a_max=clip_amp, a_min=-clip_amp)`` when ``clip_amp > 0``;
    ``prepare_data_ptb_xl`` has no clip (``clip_amp=0`` here); then ``resample_data`` to 500 Hz
    (``resampy`` returns a copy at equal rates). ``main_lite.py`` ``Main_Lite.setup`` + ``TimeSeriesDataset``:
    val/test chunks of ``input_size * fs_data`` samples at that stride, final chunks shorter than
    ``min_chunk_length`` removed; per chunk the ``Resample(fs_data, 240)`` transform.
    Returns ``(chunks, 12, 600)``.
    """
    if clip_amp > 0:
        sig = np.clip(sig, a_max=clip_amp, a_min=-clip_amp)
    n = int(2.5 * fs)
    starts = [i for i in range(0, len(sig), n) if min(i + n, len(sig)) - i >= n]
    return np.stack([_resample(sig[i : i + n], fs, 240.0).T for i in starts])


def test_clipping_follows_the_official_path_on_a_record_above_3_mv(enc, ckpt, ptbxl_root):
    import wfdb

    sig, header = wfdb.rdsamp(str(ptbxl_root / "records500" / "00000" / "00085_hr"))  # PTB-XL ecg_id 85
    assert header["fs"] == 500 and np.abs(sig).max() > 4.5 and (np.abs(sig) > 3).sum() > 100
    x = sig.T[None].astype(np.float32)
    # default: the PTB-XL downstream preparation (prepare_data_ptb_xl) does not clip
    ours = enc.preprocess(x, 500.0, header["sig_name"], window="official")[0]
    reference = official_downstream_input(sig, 500.0, clip_amp=0)
    assert ours.shape == reference.shape == (4, 12, 600) and rel_err(ours, reference) < TOL
    # clip_mv=3: the MIMIC-IV-ECG / HEEDB preparation (clip at the data's rate, then chunk and resample)
    clipped_enc = ecgprobe.create_encoder("ecg-cpc", checkpoint=ckpt, device="cpu", clip_mv=3)
    assert clipped_enc.spec.clip_mv == 3.0 and clipped_enc.options == {"clip_mv": 3.0}
    clipped = clipped_enc.preprocess(x, 500.0, header["sig_name"], window="official")[0]
    clipped_reference = official_downstream_input(sig, 500.0, clip_amp=3)
    assert rel_err(clipped, clipped_reference) < TOL
    # the two official paths give visibly different model inputs on this record ...
    assert rel_err(ours, clipped_reference) > 0.2
    # ... and the order matters: clipping after resampling is not the official input
    late = np.clip(ours, -3, 3)
    assert rel_err(late, clipped_reference) > 10 * TOL
    emb = ecgprobe.extract(clipped_enc, records_of(x), device="cpu", progress=False)
    assert emb.provenance["encoder"]["spec"]["clip_mv"] == 3.0
    with pytest.raises(ConfigError, match="clip_mv must be > 0"):
        ecgprobe.create_encoder("ecg-cpc", checkpoint=ckpt, device="cpu", clip_mv=0)


def test_end_to_end_on_ptbxl(enc, ptbxl100):
    records = ptbxl100.subset([0, 1])
    emb = ecgprobe.extract(enc, records, batch_size=2, device="cpu", progress=False, window="sliding")
    assert emb.X.shape == (2, 512) and np.isfinite(emb.X).all()


@pytest.fixture
def fake_omegaconf(monkeypatch):
    """A stand-in ``omegaconf.dictconfig.DictConfig`` importable while a checkpoint is written; its
    code must never run when ecgprobe reads the checkpoint."""
    calls = []

    class DictConfig:
        def __init__(self, content):
            self.content = content

        def __setstate__(self, state):  # pragma: no cover - must not be called by the loader
            calls.append(state)

    DictConfig.__module__, DictConfig.__qualname__ = "omegaconf.dictconfig", "DictConfig"
    pkg, mod = types.ModuleType("omegaconf"), types.ModuleType("omegaconf.dictconfig")
    mod.DictConfig = DictConfig
    monkeypatch.setitem(sys.modules, "omegaconf", pkg)
    monkeypatch.setitem(sys.modules, "omegaconf.dictconfig", mod)
    return DictConfig, calls


def test_lightning_checkpoint_with_pickled_config_objects_loads_inertly(tmp_path, ckpt, fake_omegaconf):
    cls, calls = fake_omegaconf
    obj = torch.load(ckpt, weights_only=True)
    obj["hyper_parameters"] = cls({"base": {"fs": 240.0}})
    obj["hparams_type"] = cls
    torch.save(obj, tmp_path / "last.ckpt")
    del sys.modules["omegaconf.dictconfig"], sys.modules["omegaconf"]
    enc = ecgprobe.create_encoder("ecg-cpc", checkpoint=tmp_path / "last.ckpt", device="cpu")
    assert enc.embed_dim == 512 and calls == []


def test_mismatching_and_unsafe_checkpoints_are_clear_errors(tmp_path, ckpt):
    sd = {k: torch.zeros(v.shape) for k, v in ecg_cpc.published_template().items()}
    del sd["ts_encoder.predictor.predictor.norms.3.bias"]
    sd["ts_encoder.ema.weight"] = torch.zeros(1)
    torch.save({"state_dict": sd}, tmp_path / "bad.ckpt")
    with pytest.raises(CheckpointError) as err:
        ecgprobe.create_encoder("ecg-cpc", checkpoint=tmp_path / "bad.ckpt", device="cpu")
    assert "missing key(s): norms.3.bias" in str(
        err.value
    ) and "unexpected key(s): ts_encoder.ema.weight" in str(err.value)
    st_like = {
        k: torch.zeros(1) for k in ("sep_embedding", "lead_embeddings.0", "block0.attn.fn.to_qkv.weight")
    }
    torch.save({"state_dict": st_like}, tmp_path / "st.ckpt")
    with pytest.raises(CheckpointError, match="try --encoder st-mem"):
        ecgprobe.create_encoder("ecg-cpc", checkpoint=tmp_path / "st.ckpt", device="cpu")
    evil = {"state_dict": {"x": torch.zeros(1)}, "hyper_parameters": _Evil()}
    torch.save(evil, tmp_path / "evil.ckpt")
    with pytest.raises(CheckpointError, match=r"(posix|os|nt)\.system"):
        ecgprobe.create_encoder("ecg-cpc", checkpoint=tmp_path / "evil.ckpt", device="cpu")
    (tmp_path / "cut.ckpt").write_bytes(Path(ckpt).read_bytes()[:4096])
    with pytest.raises(CheckpointError, match="truncated"):
        ecgprobe.create_encoder("ecg-cpc", checkpoint=tmp_path / "cut.ckpt", device="cpu")


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_kernel_cache_follows_the_weights(enc):
    kernel = copy.deepcopy(enc.module.s4_layers[0].kernel)
    with torch.no_grad():
        k1 = kernel(300)
        assert kernel(300) is k1  # cached without autograd
        kernel.C.mul_(2.0)  # the kernel is linear in C (B C and P C terms of the Woodbury formula)
        k2 = kernel(300)
    assert torch.allclose(k2, 2 * k1, rtol=1e-4, atol=1e-6)
    assert kernel(300).requires_grad  # with autograd: computed afresh, differentiable
