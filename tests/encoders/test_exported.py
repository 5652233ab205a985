"""``torchscript`` and ``onnx``: real exported models give the module's own outputs under a
declared contract; output layouts are applied as declared; every failure is a clear error."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ecgprobe.encoders import create_encoder
from ecgprobe.exceptions import CheckpointError, ConfigError

LEADS = "I,II,III,aVR,aVL,aVF,V1,V2,V3,V4,V5,V6"
CONTRACT = {"fs": 100, "leads": LEADS, "n_samples": 250}


class _Net(nn.Module):
    """(B, 12, n) -> (B, 6) or, with ``layout``, a (B, 6, T) / (B, T, 6) map, or a tuple."""

    def __init__(self, layout: str = "BD") -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.conv = nn.Conv1d(12, 6, 5, stride=2)
        self.layout = layout

    def forward(self, x: torch.Tensor):
        h = torch.tanh(self.conv(x))  # (B, 6, T)
        if self.layout == "BDT":
            return h
        if self.layout == "BTD":
            return h.transpose(1, 2)
        if self.layout == "tuple":
            return h.mean(-1), h.amax(-1)
        if self.layout == "4d":
            return h.unsqueeze(1)
        return h.mean(-1)


class _Needs2D(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2:
            raise ValueError("this model expects (B, n) single-lead input")
        return x[:, :4]


def _script(module: nn.Module, path: Path, example: torch.Tensor | None = None) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(module) if example is None else torch.jit.trace(module.eval(), example)
    scripted.save(str(path))
    return path


def _onnx(module: nn.Module, path: Path, example: torch.Tensor, n_out: int = 1) -> Path:
    names = ["out"] if n_out == 1 else [f"out{i}" for i in range(n_out)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            (example,),
            str(path),
            input_names=["x"],
            output_names=names,
            dynamic_axes={"x": {0: "batch"}, **{n: {0: "batch"} for n in names}},
            dynamo=False,
        )
    return path


X = torch.randn(3, 12, 250, generator=torch.Generator().manual_seed(1))


def test_torchscript_model_gives_the_modules_outputs(tmp_path):
    net = _Net().eval()
    path = _script(net, tmp_path / "m.pt", X[:2])
    enc = create_encoder(
        "torchscript", checkpoint=path, device="cpu", **CONTRACT, normalization="zscore_lead"
    )
    assert enc.embed_dim == 6 and enc.layer_names() == ["embedding"] and enc.differentiable
    assert enc.weights_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    with torch.no_grad():
        torch.testing.assert_close(enc.embed(X), net(X))
    # the declared contract drives preprocessing: 500 Hz, 5 s records -> 100 Hz, 250 samples, z-scored
    x = enc.preprocess(np.random.default_rng(0).normal(size=(2, 12, 2500)), 500.0, LEADS.split(","))
    assert x.shape == (2, 12, 250)
    np.testing.assert_allclose(x.std(axis=-1), 1.0, atol=1e-3)
    xg = X.clone().requires_grad_(True)
    enc.embed(xg).sum().backward()
    assert xg.grad is not None and torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="has no layers"):
        enc.embed(X, layer="conv")


@pytest.mark.parametrize("layout,axis", [("BDT", -1), ("BTD", 1)])
def test_three_d_outputs_are_pooled_only_as_declared(tmp_path, layout, axis):
    net = _Net(layout).eval()
    ts = _script(net, tmp_path / "m.pt", X[:2])
    ox = _onnx(net, tmp_path / "m.onnx", X[:2])
    with torch.no_grad():
        want = net(X).mean(dim=axis)
    for name, path in (("torchscript", ts), ("onnx", ox)):
        with pytest.raises(ConfigError, match=r"3-D output.*output_layout='BDT'"):
            create_encoder(name, checkpoint=path, device="cpu", **CONTRACT)
        enc = create_encoder(name, checkpoint=path, device="cpu", output_layout=layout, **CONTRACT)
        assert enc.embed_dim == 6
        with torch.no_grad():
            torch.testing.assert_close(enc.embed(X), want, rtol=1e-5, atol=1e-5)


def test_torchscript_refusals(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        create_encoder("torchscript", checkpoint=tmp_path / "none.pt", **CONTRACT)
    state = tmp_path / "state_dict.pt"
    torch.save(_Net().state_dict(), state)
    with pytest.raises(CheckpointError, match="is not a TorchScript archive"):
        create_encoder("torchscript", checkpoint=state, **CONTRACT)
    with pytest.raises(ConfigError, match="declare the model's input contract"):
        create_encoder("torchscript", checkpoint=state)
    with pytest.raises(ConfigError, match="output_layout"):
        create_encoder("torchscript", checkpoint=state, output_layout="TBD", **CONTRACT)
    two_d = _script(_Needs2D(), tmp_path / "two_d.pt")
    with pytest.raises(CheckpointError, match=r"dummy batch of shape \(2, 12, 250\).*expects \(B, n\)"):
        create_encoder("torchscript", checkpoint=two_d, **CONTRACT)
    wrong_leads = _script(_Net(), tmp_path / "m.pt", X[:2])
    with pytest.raises(CheckpointError, match=r"dummy batch of shape \(2, 2, 250\)"):
        create_encoder("torchscript", checkpoint=wrong_leads, fs=100, leads="I,II", n_samples=250)
    four_d = _script(_Net("4d"), tmp_path / "4d.pt", X[:2])
    with pytest.raises(ConfigError, match=r"returns shape \(2, 1, 6, 123\)"):
        create_encoder("torchscript", checkpoint=four_d, **CONTRACT)
    tup = _script(_Net("tuple"), tmp_path / "tuple.pt", X[:2])
    with pytest.raises(ConfigError, match="returns 2 outputs; pass output="):
        create_encoder("torchscript", checkpoint=tup, **CONTRACT)
    enc = create_encoder("torchscript", checkpoint=tup, output=1, device="cpu", **CONTRACT)
    with torch.no_grad():
        torch.testing.assert_close(enc.embed(X), _Net("tuple").eval()(X)[1])


def test_onnx_model_gives_the_modules_outputs(tmp_path):
    net = _Net().eval()
    path = _onnx(net, tmp_path / "m.onnx", X[:2])
    enc = create_encoder("onnx", checkpoint=path, device="cpu", **CONTRACT)
    assert enc.embed_dim == 6 and enc.layer_names() == ["embedding"] and not enc.differentiable
    assert enc.weights_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    with torch.no_grad():
        torch.testing.assert_close(enc.embed(X), net(X), rtol=1e-5, atol=1e-5)
    assert enc.embed(X.numpy()).shape == (3, 6)  # numpy batches are accepted like tensors


def test_onnx_refusals_and_named_outputs(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        create_encoder("onnx", checkpoint=tmp_path / "none.onnx", **CONTRACT)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf" * 20)
    with pytest.raises(CheckpointError, match="not a loadable ONNX model"):
        create_encoder("onnx", checkpoint=junk, **CONTRACT)
    two_d = _onnx(nn.Linear(250, 4), tmp_path / "two_d.onnx", torch.zeros(2, 250))
    with pytest.raises(CheckpointError, match="rank-2 input"):
        create_encoder("onnx", checkpoint=two_d, **CONTRACT)
    wrong_leads = _onnx(_Net(), tmp_path / "m.onnx", X[:2])
    with pytest.raises(
        CheckpointError, match=r"exported for input shape \['batch', 12, 250\].*gives 2 for axis 1"
    ):
        create_encoder("onnx", checkpoint=wrong_leads, fs=100, leads="I,II", n_samples=250)
    with pytest.raises(
        CheckpointError, match=r"gives any length for axis 2 \(n_samples=\); declare 250 n_samples"
    ):
        create_encoder("onnx", checkpoint=wrong_leads, fs=100, leads=CONTRACT["leads"])
    tup = _onnx(_Net("tuple"), tmp_path / "tuple.onnx", X[:2], n_out=2)
    with pytest.raises(ConfigError, match="returns 2 outputs"):
        create_encoder("onnx", checkpoint=tup, **CONTRACT)
    enc = create_encoder("onnx", checkpoint=tup, output="out1", device="cpu", **CONTRACT)
    with torch.no_grad():
        torch.testing.assert_close(enc.embed(X), _Net("tuple").eval()(X)[1], rtol=1e-5, atol=1e-5)
    with pytest.raises(ConfigError, match="not an output of the model"):
        create_encoder("onnx", checkpoint=tup, output="logits", **CONTRACT)


@pytest.mark.parametrize("fixed_batch", [1, 2])
def test_onnx_exported_with_a_fixed_batch_size_runs_chunked(tmp_path, fixed_batch):
    """Regression (issue 13.6): a model exported without a dynamic batch axis used to fail on
    the first real batch with an internal error; it now runs fixed_batch records at a time."""
    net = _Net().eval()
    path = tmp_path / "fixed.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net, (X[:fixed_batch],), str(path), input_names=["x"], output_names=["out"], dynamo=False
        )
    with pytest.warns(UserWarning, match=rf"fixed batch size of {fixed_batch}.*dynamic batch axis"):
        enc = create_encoder("onnx", checkpoint=path, device="cpu", **CONTRACT)
    with torch.no_grad():
        torch.testing.assert_close(enc.embed(X), net(X), rtol=1e-5, atol=1e-5)  # 3 records: a padded chunk
        torch.testing.assert_close(enc.embed(X[:1]), net(X[:1]), rtol=1e-5, atol=1e-5)


def test_corrupted_torchscript_archive_is_refused_by_its_crc(tmp_path):
    import zipfile

    path = _script(_Net(), tmp_path / "m.pt", X[:2])
    raw = bytearray(path.read_bytes())
    # zero bytes of the largest member (a weight tensor), keeping the file size
    with zipfile.ZipFile(path) as z:
        stored = [i for i in z.infolist() if i.compress_type == zipfile.ZIP_STORED and "/data/" in i.filename]
        info = max(stored, key=lambda i: i.file_size)
    with path.open("rb") as f:  # the local header's own name/extra lengths give the data offset
        f.seek(info.header_offset + 26)
        n_name, n_extra = (int.from_bytes(f.read(2), "little") for _ in range(2))
    start = info.header_offset + 30 + n_name + n_extra
    raw[start : start + 64] = bytes(64)
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"m\.pt is corrupt: the CRC-32 of its member"):
        create_encoder("torchscript", checkpoint=path, **CONTRACT)
