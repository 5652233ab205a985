"""``load_checkpoint`` on what users actually end up with instead of weights: the error says
which file and what to do (an LFS pointer, a saved web page, an empty download, garbage)."""

from __future__ import annotations

import pytest
import torch

from ecgprobe.encoders.checkpoint import load_checkpoint
from ecgprobe.exceptions import CheckpointError

LFS_POINTER = (
    b"version https://git-lfs.github.com/spec/v1\n"
    b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 1091204096\n"
)


@pytest.mark.parametrize(
    ("content", "hint"),
    [
        (LFS_POINTER, "git lfs pull"),
        (b"<!DOCTYPE html>\n<html><body>Sign in to continue</body></html>", "text page"),
        (b'{"error": "Access to model is restricted"}', "text page"),
        (b"", "empty"),
        (b"\x00\x01garbage", "neither a torch.save archive nor a pickle"),
    ],
)
def test_files_that_are_not_checkpoints_are_named_with_the_cause(tmp_path, content, hint):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=hint) as err:
        load_checkpoint(path, family="ecg-fm")
    assert str(path) in str(err.value) and "ecg-fm checkpoint" in str(err.value)


def test_both_torch_formats_still_load(tmp_path):
    sd = {"w": torch.arange(3.0)}
    torch.save(sd, tmp_path / "zip.pt")
    torch.save(sd, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    assert torch.equal(load_checkpoint(tmp_path / "zip.pt")["w"], sd["w"])
    with pytest.warns(UserWarning, match=r"legacy .* no checksums.*--checkpoint-sha256"):
        assert torch.equal(load_checkpoint(tmp_path / "legacy.pt")["w"], sd["w"])


def _zero(path, n=100_000, at=None):
    """Overwrite ``n`` bytes in the middle of a file with zeros (same size: what a bad disk or
    an interrupted copy leaves)."""
    raw = bytearray(path.read_bytes())
    start = len(raw) // 2 - n // 2 if at is None else at
    raw[start : start + n] = bytes(n)
    path.write_bytes(bytes(raw))


def test_corrupted_zip_checkpoint_is_refused_by_its_crc(tmp_path):
    """Regression (issue 13.2): 100 KB zeroed inside a valid .pth used to load silently."""
    path = tmp_path / "model.pth"
    torch.save({"state_dict": {"w": torch.randn(400, 1000), "b": torch.randn(1000)}}, path)
    size = path.stat().st_size
    _zero(path)
    assert path.stat().st_size == size
    with pytest.raises(
        CheckpointError, match=r"model\.pth is corrupt: the CRC-32 of its member .* re-download"
    ) as err:
        load_checkpoint(path, family="ecgfounder")
    assert "sha256" in str(err.value)


def test_damaged_zip_directory_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"w": torch.randn(100, 100)}, path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 200])  # the central directory is at the end
    with pytest.raises(
        CheckpointError, match=r"model\.pt .*is truncated or damaged \(not a complete zip archive"
    ):
        load_checkpoint(path)


def _safetensors(path):
    from safetensors.torch import save_file

    save_file({"a": torch.randn(50, 40), "b": torch.arange(10, dtype=torch.int64)}, str(path))
    return path.read_bytes()


@pytest.mark.parametrize(
    ("damage", "hint"),
    [
        (lambda raw: raw[:-100], r"should occupy .* bytes|cover .* bytes"),
        (lambda raw: raw + b"\x00" * 64, r"tensors cover \d+ bytes but the file holds \d+"),
        (lambda raw: (10**9).to_bytes(8, "little") + raw[8:], "cannot hold the header length"),
        (lambda raw: raw[:4], "cannot hold the header length"),
        (lambda raw: raw[:8] + b"#" + raw[9:], "its header is damaged"),
    ],
)
def test_safetensors_layout_is_verified(tmp_path, damage, hint):
    path = tmp_path / "model.safetensors"
    path.write_bytes(damage(_safetensors(path)))
    with pytest.raises(CheckpointError, match=hint) as err:
        load_checkpoint(path, family="hubert-ecg")
    assert f"{path} is not a readable safetensors file" in str(err.value)


def test_intact_safetensors_loads(tmp_path):
    path = tmp_path / "model.safetensors"
    _safetensors(path)
    assert set(load_checkpoint(path)) == {"a", "b"}


def test_expected_sha256_is_compared(tmp_path):
    """The sha256 the provenance records (weights_sha256) or the published one is enforced."""
    import hashlib

    import ecgprobe
    from ecgprobe.encoders.checkpoint import check_sha256
    from ecgprobe.exceptions import ConfigError

    path = tmp_path / "model.pt"
    torch.jit.save(
        torch.jit.script(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2000, 4))).eval(), path
    )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert check_sha256(path, digest.upper()) == digest
    opts = {"fs": 100, "leads": "I,II", "n_samples": 1000, "device": "cpu"}
    with pytest.raises(CheckpointError, match=rf"has sha256 {digest}, not the expected 0+: .*re-download"):
        ecgprobe.create_encoder("torchscript", checkpoint=path, sha256="0" * 64, **opts)
    with pytest.raises(ConfigError, match="not a sha256 digest"):
        ecgprobe.create_encoder("torchscript", checkpoint=path, sha256="abc", **opts)
    with pytest.raises(ConfigError, match="no checkpoint was given"):
        ecgprobe.create_encoder("random-resnet1d", sha256=digest, device="cpu")
    enc = ecgprobe.create_encoder("torchscript", checkpoint=path, sha256=digest, **opts)
    assert enc.weights_sha256 == digest
