"""Regression tests (issue 13.9): misuse of the Python API raises ecgprobe's own errors, saying
what was expected, instead of a raw AttributeError/TypeError from deep inside."""

from __future__ import annotations

import numpy as np
import pytest

import ecgprobe
from ecgprobe.analyzers.cka import CKA, linear_cka
from ecgprobe.analyzers.linear_probe import LinearProbe
from ecgprobe.exceptions import ArgumentTypeError, ConfigError, EcgprobeError
from ecgprobe.extract import Embeddings


@pytest.fixture(scope="module")
def records():
    return ecgprobe.load_dataset("synthetic", n_records=60, fs=100.0, seed=0)


@pytest.fixture(scope="module")
def emb(records):
    rng = np.random.default_rng(0)
    return Embeddings(rng.normal(size=(len(records), 8)), records.ids)


def test_probe_given_an_array_instead_of_embeddings(records, emb):
    with pytest.raises(ArgumentTypeError, match=r"embeddings must be an ecgprobe Embeddings .*got ndarray"):
        LinearProbe().run(emb.X, records)


def test_probe_given_no_records(emb):
    with pytest.raises(ArgumentTypeError, match=r"records must be a RecordSet .*load_dataset.*got None"):
        LinearProbe().run(emb, None)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"seed": "x"}, r"LinearProbe setting: seed='x' is not valid; expected an integer"),
        ({"n_resamples": 10.5}, r"n_resamples=10.5 is not valid; expected an integer"),
        ({"ci_level": "high"}, r"ci_level='high' is not valid; expected a number"),
        ({"Cs": ("a",)}, r"Cs=\('a',\) is not valid; expected a comma-separated list, each value a number"),
    ],
)
def test_probe_settings_of_the_wrong_type(records, emb, settings, match):
    probe = LinearProbe(**settings)  # constructors only store settings
    with pytest.raises(ConfigError, match=match):
        probe.run(emb, records)


def test_pairwise_analyzer_given_arrays(emb):
    with pytest.raises(ArgumentTypeError, match=r"side a must be an Embeddings"):
        CKA(n_resamples=0).run(emb.X, emb)
    with pytest.raises(ConfigError, match=r"CKA setting: n_resamples='many'"):
        CKA(n_resamples="many").run(emb, emb)


def test_linear_cka_of_an_object_array(emb):
    objects = np.array([[object()] * 3] * 10, dtype=object)
    with pytest.raises(ArgumentTypeError, match=r"X must be a real-valued numeric matrix.*dtype object"):
        linear_cka(objects, emb.X[:10])
    assert linear_cka(emb.X, emb.X) == pytest.approx(1.0)


def test_extract_given_an_encoder_name(records):
    with pytest.raises(
        ArgumentTypeError, match=r"encoder must be an Encoder.*create_encoder\('handcrafted'\).*got str"
    ):
        ecgprobe.extract("handcrafted", records)
    enc = ecgprobe.create_encoder("tiny-test", device="cpu")
    with pytest.raises(ArgumentTypeError, match=r"records must be a RecordSet.*got ndarray"):
        ecgprobe.extract(enc, np.zeros((2, 12, 1000)))


def test_api_errors_are_also_the_builtin_types(records, emb):
    """Callers catching TypeError (the Python convention for a wrong type) still work."""
    with pytest.raises(TypeError):
        LinearProbe().run(emb.X, records)
    with pytest.raises(EcgprobeError):
        ecgprobe.extract("handcrafted", records)


def test_create_encoder_and_load_dataset_check_option_types():
    with pytest.raises(
        ConfigError, match=r"encoder 'random-resnet1d': seed='zero' is not valid; expected an integer"
    ):
        ecgprobe.create_encoder("random-resnet1d", seed="zero", device="cpu")
    with pytest.raises(ConfigError, match=r"dataset 'synthetic': n_records=1.5 is not valid"):
        ecgprobe.load_dataset("synthetic", n_records=1.5)


def test_embeddings_of_objects_are_refused_with_the_conversion():
    with pytest.raises(
        ArgumentTypeError, match=r"embeddings X must be a real-valued numeric matrix.*dtype object"
    ):
        Embeddings(np.array([[object(), object()]], dtype=object), ["r1"])
    with pytest.raises(ArgumentTypeError, match="dtype <U1"):
        Embeddings(np.array([["a", "b"]]), ["r1"])
