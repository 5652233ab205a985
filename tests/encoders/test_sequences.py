"""Token sequences (the attentive probe's input): every encoder whose card declares a ``sequence``
exposes it, as ``(B, T', D)`` with ``T' <= max_tokens``; un-pooled, the tokens average to the
pooled embedding of the same layer (the sequence *is* what the family pools); encoders without
one say so, naming those that have one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ecgprobe
from ecgprobe.cli.probe import ATTENTIVE_ENCODERS
from ecgprobe.encoders import create_encoder, encoder_info, list_encoders
from ecgprobe.encoders.base import pool_tokens
from ecgprobe.encoders.registry import ENCODERS, sequence_encoders
from ecgprobe.exceptions import ConfigError, DependencyError

SEQUENCE = sequence_encoders()


def _create(name, tmp_path):
    card = encoder_info(name)
    make = card.make_test_checkpoint
    try:
        if card.needs_checkpoint:
            ckpt = make(tmp_path / "checkpoint", 0)
            return create_encoder(name, checkpoint=ckpt, device="cpu", **card.test_options)
        return create_encoder(name, device="cpu", **card.test_options)
    except DependencyError as exc:
        pytest.skip(f"{name}: optional dependency missing: {exc}")


def test_pool_tokens_known_answer():
    seq = torch.arange(12.0).reshape(1, 6, 2)
    np.testing.assert_allclose(pool_tokens(seq, 3)[0].numpy(), [[1, 2], [5, 6], [9, 10]])
    assert pool_tokens(seq, 6) is seq and pool_tokens(seq, 100) is seq  # short sequences are kept


@pytest.mark.parametrize("name", SEQUENCE)
def test_sequence_shape_and_pooling_agree(name, tmp_path):
    enc = _create(name, tmp_path)
    layer = enc.sequence_layer()
    assert layer in enc.layer_names(), "the card declares a sequence, the encoder must name its layer"
    rs = ecgprobe.load_dataset("synthetic", n_records=2, fs=enc.spec.fs, duration_s=10.0, seed=1)
    x = enc.preprocess(rs.signals, rs.fs, rs.leads, window="fit")
    with torch.inference_mode():
        full = enc.embed_tokens(x, max_tokens=10**6)
        short = enc.embed_tokens(x, max_tokens=4)
        pooled = enc.embed(x, layer=layer)
    assert full.ndim == 3 and full.shape[0] == 2 and short.shape == (2, min(4, full.shape[1]), full.shape[2])
    # the token sequence is what the family pools into the layer's embedding
    torch.testing.assert_close(full.mean(dim=1), pooled, rtol=1e-4, atol=1e-5)


def test_unsupported_encoder_names_those_that_support_it(synthetic_small):
    enc = create_encoder("handcrafted")
    assert enc.sequence_layer() is None
    with pytest.raises(ConfigError) as err:
        ecgprobe.extract(enc, synthetic_small.subset(np.arange(4)), tokens=8, progress=False)
    msg = str(err.value)
    assert "'handcrafted' exposes no token sequence" in msg
    assert all(name in msg for name in SEQUENCE) and "linear probe" in msg


def test_cards_and_cli_help_list_the_same_encoders():
    public = sorted(n for n in SEQUENCE if not ENCODERS.card(n).internal)
    assert public == sorted(ATTENTIVE_ENCODERS)
    assert set(SEQUENCE) <= set(list_encoders())
