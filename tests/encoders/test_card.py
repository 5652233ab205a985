"""Encoder cards: typed, frozen, checked at registration, present for every encoder."""

from __future__ import annotations

import dataclasses

import pytest

from ecgprobe.encoders import ENCODERS, EncoderCard, InputSpec, encoder_info, list_encoders
from ecgprobe.encoders.registry import EncoderRegistry
from ecgprobe.exceptions import ConfigError, UnknownNameError

SPEC = InputSpec(fs=100.0, leads=("I",), n_samples=100)
FIELDS = {
    "family": "toy",
    "needs_checkpoint": False,
    "checkpoint_format": "none",
    "embed_dim": 4,
    "spec": SPEC,
    "download": "none",
    "licence": "MIT",
    "details": "a toy",
}


def _factory() -> None:
    """A factory the toy registry never calls."""


def test_a_misspelt_field_is_a_config_error_with_the_suggestion():
    reg = EncoderRegistry("encoder")
    with pytest.raises(
        ConfigError, match=r"unknown field\(s\) 'embed_dims' \(did you mean 'embed_dim'\?\)"
    ) as err:
        reg.register("toy", **FIELDS, embed_dims=8)(_factory)
    msg = str(err.value)
    assert "'toy'" in msg and "the fields are: family, needs_checkpoint" in msg
    assert "toy" not in reg  # nothing half-registered


def test_an_unknown_field_lists_the_valid_ones():
    reg = EncoderRegistry("encoder")
    with pytest.raises(
        ConfigError, match=r"unknown field\(s\) 'colour'; the fields are: .*make_test_checkpoint"
    ):
        reg.add("toy", _factory, **FIELDS, colour="red")


@pytest.mark.parametrize("missing", ["licence", "embed_dim", "spec"])
def test_a_missing_required_field_is_named(missing: str):
    reg = EncoderRegistry("encoder")
    fields = {k: v for k, v in FIELDS.items() if k != missing}
    with pytest.raises(
        ConfigError, match=rf"missing required field\(s\) {missing}; every registration gives"
    ):
        reg.add("toy", _factory, **fields)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("embed_dim", 0, "a positive int or None"),
        ("spec", {"fs": 100}, "an InputSpec or None"),
        ("needs_checkpoint", "yes", "True or False"),
        ("key_prefixes", ("a.", 3), "a tuple of non-empty strings"),
        ("details", "", "a non-empty string"),
    ],
)
def test_a_wrongly_typed_field_is_named(field: str, value: object, expected: str):
    reg = EncoderRegistry("encoder")
    with pytest.raises(ConfigError, match=rf"'toy': field {field}=.* must be {expected}"):
        reg.add("toy", _factory, **{**FIELDS, field: value})


def test_card_is_frozen_and_normalised():
    reg = EncoderRegistry("encoder")
    reg.add("Toy", _factory, **FIELDS, key_prefixes=["a.", "b."], test_options={"seed": 1})
    card = reg.card("TOY")
    assert card.name == "toy" and card.key_prefixes == ("a.", "b.") and card.layers is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        card.embed_dim = 8  # type: ignore[misc]
    with pytest.raises(TypeError):  # the options mapping is read-only too
        card.test_options["seed"] = 2  # type: ignore[index]
    assert reg.cards() == [card]
    with pytest.raises(UnknownNameError, match="did you mean 'toy'"):
        reg.card("tyo")


@pytest.mark.parametrize("name", list_encoders())
def test_every_registered_encoder_has_a_frozen_card(name: str):
    card = encoder_info(name)
    assert isinstance(card, EncoderCard) and card.name == name
    assert card is ENCODERS.card(name) and dataclasses.is_dataclass(card)
    with pytest.raises(dataclasses.FrozenInstanceError):
        card.family = "other"  # type: ignore[misc]
    if card.needs_checkpoint:  # the conformance test needs weights in the published format
        assert card.make_test_checkpoint is not None, f"{name}: needs a checkpoint but has no test maker"
    assert [c.name for c in ENCODERS.cards()] == list_encoders()
