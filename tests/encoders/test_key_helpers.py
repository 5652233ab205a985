"""The key-conversion helpers the families share: one prefix table converts a published layout
and writes it back, weight-norm names follow the module in either direction, and
``read_state_dict`` finds the weights in a published container."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ecgprobe.encoders.checkpoint import (
    prefix_rules,
    read_state_dict,
    rename_keys,
    weight_norm_to_parametrizations,
)
from ecgprobe.exceptions import CheckpointError

PAIRS = [("block{n}.attn.norm.", "blocks.{n}.norm1."), ("to_patch_embedding.1.", "patch_norm_in.")]


def test_prefix_rules_convert_and_invert_a_published_layout():
    published = {"block0.attn.norm.weight": 0, "block11.attn.norm.bias": 1, "to_patch_embedding.1.weight": 2}
    ours = rename_keys({k: torch.tensor(v) for k, v in published.items()}, prefix_rules(PAIRS))
    assert sorted(ours) == ["blocks.0.norm1.weight", "blocks.11.norm1.bias", "patch_norm_in.weight"]
    back = rename_keys(ours, prefix_rules(PAIRS, inverse=True))
    assert {k: int(v) for k, v in back.items()} == published
    # prefixes only: a key with the name in the middle is left alone; dots are literal
    assert list(rename_keys({"x.block0.attn.norm.w": torch.zeros(1)}, prefix_rules(PAIRS))) == [
        "x.block0.attn.norm.w"
    ]
    assert list(rename_keys({"block0xattnxnormxw": torch.zeros(1)}, prefix_rules(PAIRS))) == [
        "block0xattnxnormxw"
    ]


def test_weight_norm_names_follow_the_module_both_ways():
    # inside a model, as in every checkpoint (a bare module's keys have no leading "conv.")
    old = nn.Sequential(nn.utils.weight_norm(nn.Conv1d(2, 3, 5)))  # 0.weight_g / 0.weight_v
    new = nn.Sequential(nn.utils.parametrizations.weight_norm(nn.Conv1d(2, 3, 5)))  # 0.parametrizations...
    old_sd, new_sd = old.state_dict(), new.state_dict()
    assert set(weight_norm_to_parametrizations(old_sd, new)) == set(new_sd)
    assert set(weight_norm_to_parametrizations(new_sd, old)) == set(old_sd)
    assert set(weight_norm_to_parametrizations(old_sd, old)) == set(old_sd)  # already right: unchanged


def test_read_state_dict_finds_the_nested_weights_or_names_what_the_file_holds(tmp_path):
    sd = {"a.weight": torch.ones(2)}
    torch.save({"epoch": 3, "model": sd}, tmp_path / "w.pt")
    assert torch.equal(
        read_state_dict(tmp_path / "w.pt", ["state_dict", "model"], family="x")["a.weight"], sd["a.weight"]
    )
    with pytest.raises(CheckpointError, match=r"x checkpoint .*w\.pt: no state dict under \['encoder'\]"):
        read_state_dict(tmp_path / "w.pt", ["encoder"], family="x")
