"""The attentive probe: it beats chance on PTB-XL mini from a random encoder's tokens (decisive
interval), it is deterministic for a seed, the epoch is the validation's choice, test records
never reach training, its attention finds the one informative token, and token extraction is
cached under a key that includes the token setting (proved by counting encoder calls)."""

from __future__ import annotations

import numpy as np
import pytest

import ecgprobe
from ecgprobe.analyzers import Result
from ecgprobe.analyzers._stats.attentive_head import fit_attentive_head
from ecgprobe.analyzers._stats.metrics import rank_metrics
from ecgprobe.analyzers.attentive_probe import AttentiveProbe
from ecgprobe.encoders.testing import TinyTestEncoder
from ecgprobe.exceptions import AnalysisError, ConfigError
from ecgprobe.extract.embeddings import Embeddings

SETTINGS = {"n_resamples": 200, "max_epochs": 20, "patience": 5, "device": "cpu", "seed": 0}


@pytest.fixture(scope="module")
def ptbxl_tokens(ptbxl100):
    enc = ecgprobe.create_encoder("random-resnet1d", width=16, device="cpu")
    return ecgprobe.extract(enc, ptbxl100, tokens=16, cache_dir=None, device="cpu", progress=False)


@pytest.fixture(scope="module")
def fitted(ptbxl_tokens, ptbxl100):
    return AttentiveProbe(**SETTINGS).run(ptbxl_tokens, ptbxl100)


def test_beats_chance_on_ptbxl_mini(fitted):
    m = fitted.metrics
    assert m["sequence"] and (m["n_tokens"], m["max_tokens"], m["token_layer"]) == (16, 16, "layer4")
    assert m["macro_auroc_ci"][0] > 0.5, m["macro_auroc_ci"]  # the whole interval above chance
    assert fitted.seed == 0 and fitted.params["seed"] == 0
    # the comparison with the linear probe is stated with its interval, and only claimed when decisive
    lo, hi = m["difference_vs_linear_ci"]
    assert lo <= m["difference_vs_linear"] <= hi
    assert m["comparison"] == (
        "attentive better" if lo > 0 else "linear better" if hi < 0 else m["comparison"]
    )
    if lo <= 0 <= hi:
        assert m["comparison"].startswith("inconclusive (n_test=64")
    assert {r["label"] for r in fitted.tables["vs_linear"]} == set(m["labels_evaluated"])


def test_epoch_is_chosen_on_validation(fitted):
    m, hist = fitted.metrics, fitted.arrays["val_macro_auroc_history"]
    assert len(hist) == m["epochs_run"] <= SETTINGS["max_epochs"]
    assert m["best_epoch"] == int(np.argmax(hist)) + 1 and m["best_val_macro_auroc"] == hist.max()
    if m["stopped_early"]:
        assert m["epochs_run"] - m["best_epoch"] == SETTINGS["patience"]
    att = fitted.arrays["test_attention"]
    assert att.shape == (m["n_test"], 16)
    np.testing.assert_allclose(att.sum(1), 1.0, rtol=1e-5)


def test_deterministic_for_a_seed(fitted, ptbxl_tokens, ptbxl100):
    again = AttentiveProbe(**SETTINGS).run(ptbxl_tokens, ptbxl100)
    np.testing.assert_array_equal(again.arrays["test_scores"], fitted.arrays["test_scores"])
    np.testing.assert_array_equal(
        again.arrays["val_macro_auroc_history"], fitted.arrays["val_macro_auroc_history"]
    )
    assert again.metrics == fitted.metrics


def test_test_records_do_not_change_the_fit(fitted, ptbxl_tokens, ptbxl100):
    """Scrambling every test record's tokens leaves the trained head and its epoch unchanged."""
    X = ptbxl_tokens.X.copy()
    test = ptbxl100.split == "test"
    X[test] = np.random.default_rng(1).standard_normal(X[test].shape).astype(np.float32)
    scrambled = Embeddings(X, ptbxl_tokens.ids, layer=ptbxl_tokens.layer, provenance=ptbxl_tokens.provenance)
    res = AttentiveProbe(**{**SETTINGS, "compare_linear": False}).run(scrambled, ptbxl100)
    np.testing.assert_array_equal(
        res.arrays["val_macro_auroc_history"], fitted.arrays["val_macro_auroc_history"]
    )
    assert res.metrics["best_epoch"] == fitted.metrics["best_epoch"]


def test_attention_finds_the_informative_token():
    """Labels depend on token 2 only (the others are noise), which carries a marker in its content
    (tokens are a set to the head: it finds them by content, not position): the head separates
    the labels and looks there."""
    rng = np.random.default_rng(0)
    n, t, d = 600, 6, 8
    X = rng.standard_normal((n, t, d)).astype(np.float32)
    Y = (X[:, 2, :2] > 0).astype(np.uint8)
    X[:, 2, -1] = 4.0  # the marker
    fit = fit_attentive_head(
        X[:400], Y[:400], X[400:], Y[400:], n_heads=2, max_epochs=30, patience=10, lr=1e-2
    )
    p, att = fit.predict(X[400:])
    assert rank_metrics(Y[400:], p, ap=False)[0][0].min() > 0.85
    assert np.argmax(att.mean(0)) == 2 and att.mean(0)[2] > 0.5


def test_pooled_embeddings_run_as_one_token_with_a_note(synthetic_small):
    enc = ecgprobe.create_encoder("tiny-test", device="cpu")
    emb = ecgprobe.extract(enc, synthetic_small, cache_dir=None, progress=False)
    res = AttentiveProbe(n_resamples=20, max_epochs=3, device="cpu").run(emb, synthetic_small)
    assert not res.metrics["sequence"] and res.metrics["n_tokens"] == 1
    assert any("no token sequence" in note for note in res.notes)


def test_token_extraction_hits_the_cache(synthetic_small, tmp_path):
    rs = synthetic_small.subset(np.arange(24))
    first = ecgprobe.extract(
        ecgprobe.create_encoder("tiny-test"), rs, tokens=8, cache_dir=tmp_path, progress=False
    )
    calls = TinyTestEncoder.calls
    again = ecgprobe.extract(
        ecgprobe.create_encoder("tiny-test"), rs, tokens=8, cache_dir=tmp_path, progress=False
    )
    assert TinyTestEncoder.calls == calls  # nothing recomputed: read from the cache
    np.testing.assert_array_equal(again.X, first.X)
    assert again.key == first.key and again.token_shape == first.token_shape == (8, 8)
    assert again.tokens().shape == (24, 8, 8) and again.provenance["tokens"]["bytes_per_record"] == 8 * 8 * 4
    # the token setting is part of the key: another max_tokens, or pooled vectors, are computed anew
    other = ecgprobe.extract(
        ecgprobe.create_encoder("tiny-test"), rs, tokens=4, cache_dir=tmp_path, progress=False
    )
    assert TinyTestEncoder.calls > calls and other.key != first.key and other.token_shape == (4, 8)
    pooled = ecgprobe.extract(
        ecgprobe.create_encoder("tiny-test"), rs, layers="conv2", cache_dir=tmp_path, progress=False
    )
    assert pooled.key != first.key and pooled.token_shape is None
    # unpooled (conv2 has 63 steps), the tokens average to the layer's pooled embedding
    every = ecgprobe.extract(
        ecgprobe.create_encoder("tiny-test"), rs, tokens=64, cache_dir=None, progress=False
    )
    assert every.token_shape == (63, 8)
    np.testing.assert_allclose(every.tokens().mean(1), pooled.X, rtol=1e-5, atol=1e-6)


def test_sliding_windows_concatenate_their_tokens_in_time_order(synthetic_small):
    """10 s records, 2.5 s windows: 4 windows x 63 steps of conv2 make one 252-token sequence,
    whose mean is the sliding-window pooled embedding; bounded, it keeps max_tokens."""
    enc = ecgprobe.create_encoder("tiny-test")
    rs = synthetic_small.subset(np.arange(6))
    kw = {"window": "sliding", "cache_dir": None, "progress": False}
    every = ecgprobe.extract(enc, rs, tokens=1000, **kw)
    assert every.token_shape == (4 * 63, 8)
    pooled = ecgprobe.extract(enc, rs, layers="conv2", **kw)
    np.testing.assert_allclose(every.tokens().mean(1), pooled.X, rtol=1e-5, atol=1e-6)
    first = ecgprobe.extract(enc, rs, tokens=1000, window="fit", cache_dir=None, progress=False)
    np.testing.assert_array_equal(every.tokens()[:, :63], first.tokens())  # the first window leads
    assert ecgprobe.extract(enc, rs, tokens=16, **kw).token_shape == (16, 8)


def test_bad_token_settings_are_refused(synthetic_small):
    enc = ecgprobe.create_encoder("tiny-test")
    rs = synthetic_small.subset(np.arange(4))
    with pytest.raises(ConfigError, match="tokens"):
        ecgprobe.extract(enc, rs, tokens=0, progress=False)
    with pytest.raises(ConfigError, match="pooled"):
        ecgprobe.extract(enc, rs, tokens=8, layers="embedding", progress=False)
    with pytest.raises(ConfigError, match="max_epochs"):
        AttentiveProbe(max_epochs=0).run(ecgprobe.extract(enc, rs, progress=False), rs)


def test_regression_and_bad_heads_are_refused(ptbxl_tokens, ptbxl100):
    with pytest.raises(AnalysisError, match="linear_probe for regression"):
        AttentiveProbe(**SETTINGS).run(ptbxl_tokens, ptbxl100.with_meta_target("age"))
    with pytest.raises(AnalysisError, match="n_heads"):
        AttentiveProbe(**{**SETTINGS, "n_heads": 3}).run(ptbxl_tokens, ptbxl100)


def test_result_round_trips(fitted, tmp_path):
    again = Result.load(fitted.save(tmp_path / "att"))
    assert type(again) is type(fitted) and again.metrics["comparison"] == fitted.metrics["comparison"]
    np.testing.assert_array_equal(again.arrays["test_attention"], fitted.arrays["test_attention"])


def test_available_in_study_plans_with_the_encoder(synthetic_small, tmp_path):
    """``analyses: {attentive_probe: {...}}``: the workflow passes the encoder, the probe extracts
    its tokens (cached), and an encoder without a sequence is skipped, saying why."""
    from ecgprobe.settings import RunSettings
    from ecgprobe.workflows import plan_analyses, run_analyses

    settings = RunSettings(progress=False, device="cpu")
    own = {"max_epochs": 3, "n_resamples": 20, "max_tokens": 8, "cache_dir": str(tmp_path)}
    plan = plan_analyses({"attentive_probe": own}, settings)
    enc = ecgprobe.create_encoder("tiny-test", device="cpu")
    emb = ecgprobe.extract(enc, synthetic_small, cache_dir=None, progress=False)
    done = run_analyses(emb, synthetic_small, plan, settings=settings, encoder=enc)
    m = done.results["attentive_probe"].metrics
    assert m["tokens_from"] == "encoder" and m["sequence"] and m["n_tokens"] == 8
    hand = ecgprobe.create_encoder("handcrafted")
    pooled = ecgprobe.extract(hand, synthetic_small, cache_dir=None, progress=False)
    skipped = run_analyses(pooled, synthetic_small, plan, settings=settings, encoder=hand)
    assert "exposes no token sequence" in skipped.skipped["attentive_probe"]


def test_small_fits_do_not_depend_on_the_ambient_thread_count():
    """Regression: another analysis (umap/numba) raised torch's thread count mid-process, and the
    conformance rerun differed in the 9th digit; small problems now fit on exactly one thread."""
    import torch

    rng = np.random.default_rng(3)
    X, Y = rng.standard_normal((80, 4, 8)).astype(np.float32), rng.integers(0, 2, (80, 2))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = fit_attentive_head(X, Y, X, Y, n_heads=2, max_epochs=3).predict(X)[0]
        torch.set_num_threads(2)
        fit = fit_attentive_head(X, Y, X, Y, n_heads=2, max_epochs=3)
        assert fit.threads == 1 and torch.get_num_threads() == 2  # used one, restored the caller's
        np.testing.assert_array_equal(fit.predict(X)[0], one)
    finally:
        torch.set_num_threads(before)


def test_report_section_and_summary_claim(fitted):
    from ecgprobe.report import Report

    report = Report({"attentive_probe": fitted}, title="attentive")
    (section,) = [s for s in report.sections() if s.title == "Attentive probe"]
    assert section.blocks
    (finding,) = [f for f in report.findings() if f.rule == "attentive_vs_linear"]
    lo, hi = fitted.metrics["difference_vs_linear_ci"]
    # 64 test patients: enough for a claim, so the tone follows the interval alone
    assert finding.tone == ("inconclusive" if lo <= 0 <= hi else "info")
    assert "difference" in finding.text and "n = " in finding.text
    assert "Attentive probe" in report.to_html()


def test_token_embeddings_survive_the_exchange_format(ptbxl_tokens, tmp_path):
    """A token extraction saved with save_embeddings loads back as tokens (``probe --embeddings``)."""
    from ecgprobe.extract import load_embeddings, save_embeddings

    back = load_embeddings(save_embeddings(tmp_path / "tok", ptbxl_tokens))
    assert back.token_shape == ptbxl_tokens.token_shape == (16, 128)
    np.testing.assert_array_equal(back.tokens(), ptbxl_tokens.tokens())


def test_shuffled_labels_are_not_read_out(ptbxl_tokens, ptbxl100):
    """Labels permuted across records carry no signal: the interval must contain chance."""
    perm = np.random.default_rng(0).permutation(len(ptbxl100))
    shuffled = ptbxl100.with_labels(ptbxl100.label_names, ptbxl100.y[perm], "multilabel")
    res = AttentiveProbe(**{**SETTINGS, "compare_linear": False}).run(ptbxl_tokens, shuffled)
    lo, hi = res.metrics["macro_auroc_ci"]
    assert lo < 0.5 < hi, (lo, hi)
