"""One conformance test for every registered analyzer (scikit-learn's estimator checks): analyzers
added later are checked by the same contract without a new test.

For each analyzer:

- its declarations are consistent: every ``requires`` key is a keyword of ``__init__`` and every
  value a registered analyzer; ``needs_encoder`` implies an ``encoder`` keyword; the registry's
  ``pairwise`` flag matches the class; ``takes_layers`` only on a pairwise analyzer; settings
  are keyword-only;
- it runs on a small shared fixture (120 synthetic records embedded by the ``tiny-test``
  encoder; the upstream results it requires are made by running the required analyzer), returns
  a Result of its own kind, and the result round-trips through save/load (same metrics, tables,
  params and arrays);
- it is deterministic for a fixed seed (a second run gives the same metrics);
- it rejects a bad setting (``n_resamples=-1``, a number given as text) with a ConfigError
  naming the setting, before any work.

Settings are kept small (few resamples, examples, epochs) so that the whole module runs in well
under a minute; each analyzer's first run is shared by the round-trip and determinism checks.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest

import ecgprobe
from ecgprobe.analyzers import ANALYZERS, Analyzer, PairwiseAnalyzer, Result
from ecgprobe.analyzers.base import to_jsonable
from ecgprobe.exceptions import ConfigError
from ecgprobe.extract.embeddings import Embeddings

NAMES = ANALYZERS.list()

#: Small settings per analyzer (others run with their defaults).
SMALL: dict[str, dict[str, Any]] = {
    "alignment": {"k": 5, "n_resamples": 5, "n_blocks": 5},
    "attentive_probe": {"max_epochs": 3, "n_resamples": 20, "Cs": (0.1, 1.0), "device": "cpu"},
    "cka": {"n_resamples": 5, "n_blocks": 5},
    "input_attribution": {
        "method": "ig",
        "max_labels": 1,
        "n_examples": 1,
        "n_steps": 4,
        "batch_size": 8,
    },
    "knn_probe": {"ks": (1, 5), "n_resamples": 20},
    "layer_probe": {"quantities": ("heart_rate", "qrs"), "Cs": (0.1, 1.0), "n_resamples": 20},
    "linear_probe": {"Cs": (0.1, 1.0), "n_resamples": 20},
    "neighbour_gallery": {"n_queries": 2, "k": 3},
    "operating_points": {"n_resamples": 20},
    "paired_bootstrap": {"n_resamples": 20},
    "probe_shap": {"n_resamples": 20},
    "projection": {"n_neighbors": 5, "n_eval": 60, "n_epochs": 20},
    "scarcity": {"fractions": (0.5, 1.0), "n_seeds": 1, "Cs": (0.1, 1.0), "n_resamples": 10},
    "subgroups": {"n_resamples": 20, "min_records": 5},
    "confounding": {"n_resamples": 20, "min_records": 5, "attribute": "sex"},
}


def _params(name: str) -> dict[str, inspect.Parameter]:
    sig = inspect.signature(ANALYZERS.get(name).__init__)
    return {k: p for k, p in sig.parameters.items() if k != "self"}


def _pairwise(name: str) -> bool:
    return bool(ANALYZERS.entry(name).info.get("pairwise"))


@pytest.fixture(scope="module")
def fixture(synthetic_small):
    """Records, the tiny-test encoder, its embeddings (side A) and a rotated noisy copy (side B)."""
    encoder = ecgprobe.create_encoder("tiny-test", device="cpu")
    a = ecgprobe.extract(encoder, synthetic_small, cache_dir=None, device="cpu", progress=False)
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.standard_normal((a.dim, a.dim)))
    noise = 0.1 * a.X.std() * rng.standard_normal(a.X.shape)
    b = Embeddings((a.X @ Q + noise).astype(np.float32), a.ids, layer=a.layer, key="rotated")
    return {"records": synthetic_small, "encoder": encoder, "a": a, "b": b, "upstream": {}, "runs": {}}


def _upstream(fx: dict[str, Any], name: str, side: str) -> Result:
    key = (name, side)
    if key not in fx["upstream"]:
        fx["upstream"][key] = _run(fx, name, side=side)
    return fx["upstream"][key]


def _run(fx: dict[str, Any], name: str, side: str = "a", **overrides: Any) -> Result:
    """Run ``name`` with its small settings, its required results and (if needed) the encoder."""
    cls = ANALYZERS.get(name)
    settings: dict[str, Any] = {**SMALL.get(name, {}), **overrides}
    for arg, required in cls.requires.items():
        if _pairwise(name):
            settings[arg] = (_upstream(fx, required, "a"), _upstream(fx, required, "b"))
        else:
            settings[arg] = _upstream(fx, required, side)
    if cls.needs_encoder:
        settings["encoder"] = fx["encoder"]
    analyzer = cls(**settings)
    if _pairwise(name):
        return analyzer.run(fx["a"], fx["b"], fx["records"])
    return analyzer.run(fx[side], fx["records"])


def _first_run(fx: dict[str, Any], name: str) -> Result:
    if name not in fx["runs"]:
        fx["runs"][name] = _run(fx, name)
    return fx["runs"][name]


@pytest.mark.parametrize("name", NAMES)
def test_declarations_are_consistent(name):
    cls, params = ANALYZERS.get(name), _params(name)
    assert issubclass(cls, (Analyzer, PairwiseAnalyzer))
    assert _pairwise(name) == issubclass(cls, PairwiseAnalyzer), "info pairwise= must match the class"
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params.values()), "settings are keyword-only"
    for arg, required in cls.requires.items():
        assert arg in params, f"requires key {arg!r} is not an __init__ keyword"
        assert required in ANALYZERS, f"requires value {required!r} is not a registered analyzer"
    if cls.needs_encoder:
        assert "encoder" in params, "needs_encoder without an encoder= keyword"
    if cls.takes_layers and not _pairwise(name):
        # a single-encoder analysis of every layer also runs on the official embedding alone
        assert "embeddings" in inspect.signature(cls.run).parameters, "takes_layers: run(embeddings, records)"


@pytest.mark.parametrize("name", NAMES)
def test_runs_and_round_trips(fixture, name, tmp_path):
    res = _first_run(fixture, name)
    assert isinstance(res, Result) and res.kind == name
    assert res.metrics and res.runtime_s > 0
    again = Result.load(res.save(tmp_path / name))
    assert type(again) is type(res) and again.kind == res.kind
    for part in ("metrics", "tables", "params", "notes", "provenance"):
        assert to_jsonable(getattr(again, part)) == to_jsonable(getattr(res, part)), part
    assert again.seed == res.seed
    assert set(again.arrays) == set(res.arrays)
    for key, arr in res.arrays.items():
        np.testing.assert_array_equal(again.arrays[key], np.asarray(arr), err_msg=key)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_metrics(fixture, name):
    first = _first_run(fixture, name)
    second = _run(fixture, name)
    assert to_jsonable(second.metrics) == to_jsonable(first.metrics)
    assert to_jsonable(second.tables) == to_jsonable(first.tables)


@pytest.mark.parametrize("name", NAMES)
def test_bad_settings_are_refused_naming_the_setting(fixture, name):
    cls, params = ANALYZERS.get(name), _params(name)
    if "n_resamples" in params:
        with pytest.raises(ConfigError, match="n_resamples"):
            _run_unchecked(fixture, cls, name, n_resamples=-1)
    # a number given as text: the first whole-number setting
    key = next(k for k, p in params.items() if type(p.default) is int)
    with pytest.raises(ConfigError, match=key):
        _run_unchecked(fixture, cls, name, **{key: "many"})


def _run_unchecked(fx: dict[str, Any], cls: type, name: str, **bad: Any) -> Result:
    """Run with one bad setting and nothing else: the refusal must come before any work."""
    analyzer = cls(**bad)
    if _pairwise(name):
        return analyzer.run(fx["a"], fx["b"], fx["records"])
    return analyzer.run(fx["a"], fx["records"])
