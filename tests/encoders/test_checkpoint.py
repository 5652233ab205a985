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
    for name in ("zip.pt", "legacy.pt"):
        assert torch.equal(load_checkpoint(tmp_path / name)["w"], sd["w"])
