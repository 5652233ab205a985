"""input_attribution: known answers (an encoder that reads only V2), IG completeness, exact lead
Shapley values, state and hook restoration after errors, the model-randomisation sanity check,
and a real run on PTB-XL mini."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

import ecgprobe
from ecgprobe.analyzers import ANALYZERS, Result
from ecgprobe.analyzers._stats import attribution_methods as am
from ecgprobe.analyzers._stats.heads import resolve_head
from ecgprobe.analyzers.input_attribution import InputAttribution, InputAttributionResult
from ecgprobe.analyzers.linear_probe import LinearProbe
from ecgprobe.data.leads import LEADS_12
from ecgprobe.encoders.base import Encoder, InputSpec, TorchEncoder
from ecgprobe.exceptions import AnalysisError, ConfigError
from tests.analyzers.attribution_fixtures import embed, sklearn_probe

V2 = LEADS_12.index("V2")
SPEC = InputSpec(fs=100.0, leads=LEADS_12, n_samples=250, normalization="zscore_lead")


class _V2Net(nn.Module):
    """Reads lead V2 only: conv -> tanh -> mean over time -> linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 6, 9, padding=4)
        self.lin = nn.Linear(6, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(torch.tanh(self.conv(x[:, V2 : V2 + 1])).mean(dim=-1))


class V2Encoder(TorchEncoder):
    family = "testing"


class V2Features(Encoder):
    """A parameter-free, non-differentiable encoder: NumPy statistics of lead V2 (like handcrafted)."""

    differentiable = False

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x[:, V2].cpu().numpy().astype(np.float64)
        # (not the std: after the per-lead z-score it is 1 for every record)
        feats = [np.abs(np.diff(v, axis=1)).mean(axis=1), v.max(axis=1), v.min(axis=1), (v**3).mean(axis=1)]
        return torch.as_tensor(np.stack(feats, axis=1), dtype=torch.float32)


def _v2(cls=V2Encoder, seed: int = 0) -> TorchEncoder:
    torch.manual_seed(seed)
    enc = cls(_V2Net(), name="v2-only", spec=SPEC, embed_dim=6, pooling="mean")
    enc.weights_sha256 = enc.parameters_sha256()
    return enc


@pytest.fixture(scope="module")
def v2_setup(synthetic_small):
    enc = _v2()
    emb = embed(enc, synthetic_small)
    return enc, emb, synthetic_small, sklearn_probe(emb, synthetic_small)


@pytest.fixture(scope="module")
def tiny_setup(ptbxl100):
    enc = ecgprobe.create_encoder("tiny-test", device="cpu")
    emb = embed(enc, ptbxl100)
    return enc, emb, ptbxl100, LinearProbe(n_resamples=20).run(emb, ptbxl100)


def _hooks_and_flags(encoder):
    mods = [m for root in am.torch_modules(encoder) for m in root.modules()]
    n_hooks = sum(len(getattr(m, name)) for m in mods for name in am._HOOK_DICTS if hasattr(m, name))
    return n_hooks, [p.requires_grad for p in encoder.module.parameters()], [m.training for m in mods]


# ----------------------------------------------------------------------- known answers
@pytest.mark.parametrize("method", ["ig", "gradshap", "kernelshap"])
def test_only_lead_v2_gets_attribution(v2_setup, method):
    enc, emb, rs, probe = v2_setup
    res = InputAttribution(
        encoder=enc,
        probe=probe,
        method=method,
        labels=["tachycardia", "low_voltage"],
        n_examples=1 if method == "kernelshap" else 2,
        batch_size=512,
        n_steps=16,
        n_samples=8,
        sanity_check=False,
    ).run(emb, rs)
    imp = res.lead_matrix()
    assert (imp.idxmax(axis=1) == "V2").all()
    assert res.metrics["top_lead"] == {"tachycardia": "V2", "low_voltage": "V2"}
    others = np.delete(res.arrays["lead_attributions"], V2, axis=1)
    if method == "kernelshap":
        # marginal contributions of the other leads vanish up to float32 batch-to-batch noise
        np.testing.assert_allclose(imp["V2"], 1.0, atol=1e-4)
        assert np.abs(others).max() < 1e-4 * np.abs(res.arrays["lead_attributions"][:, V2]).max()
    else:  # the other leads do not enter the model: exactly zero gradient
        np.testing.assert_allclose(imp["V2"], 1.0, atol=1e-12)
        assert np.all(others == 0)


def test_blackbox_encoder_uses_exact_lead_shapley(synthetic_small):
    black = V2Features(name="v2-features", spec=SPEC, embed_dim=4, pooling="none")
    emb = embed(black, synthetic_small)
    probe = sklearn_probe(emb, synthetic_small)
    with pytest.raises(ConfigError, match="not differentiable"):
        InputAttribution(encoder=black, probe=probe, method="ig").run(emb, synthetic_small)
    res = InputAttribution(
        encoder=black,
        probe=probe,
        labels=["tachycardia", "wide_qrs"],
        n_examples=1,
        baseline="mean",
        batch_size=512,
    ).run(emb, synthetic_small)
    assert res.metrics["method"] == "kernelshap" and "attributions" not in res.arrays
    assert res.metrics["top_lead"] == {"tachycardia": "V2", "wide_qrs": "V2"}
    # efficiency: lead values add up to f(x) - f(baseline), exactly
    total = res.arrays["lead_attributions"].sum(axis=1)
    np.testing.assert_allclose(total, res.arrays["logit"] - res.arrays["baseline_logit"], atol=1e-9)
    assert np.all(np.abs(res.arrays["convergence_delta"]) <= 1e-9 * (1 + np.abs(res.arrays["logit"])))
    assert any("no parameters to randomise" in n for n in res.notes)


def test_shapley_from_values_known_answers(rng):
    n = 5
    masks = np.arange(2**n)
    present = (masks[:, None] >> np.arange(n)) & 1
    a = rng.normal(size=n)
    # additive game: each player's value is its own contribution
    np.testing.assert_allclose(am.shapley_from_values(present @ a, n), a, atol=1e-12)
    # pure interaction of players 0 and 1: split equally, others get nothing
    inter = (present[:, 0] * present[:, 1]).astype(float)
    np.testing.assert_allclose(am.shapley_from_values(inter, n), [0.5, 0.5, 0, 0, 0], atol=1e-12)
    # efficiency on an arbitrary game with several outputs, 12 players (4096 coalitions)
    v = rng.normal(size=(2**12, 3))
    phi = am.shapley_from_values(v, 12)
    np.testing.assert_allclose(phi.sum(axis=0), v[-1] - v[0], atol=1e-10)
    # the weights of one player's marginal contributions form a distribution over coalitions
    w = am.shapley_weights(12)
    assert sum(w[s] * math.comb(11, s) for s in range(12)) == pytest.approx(1.0)


# ------------------------------------------------------------------- IG completeness
def test_integrated_gradients_completeness(tiny_setup):
    enc, emb, rs, probe = tiny_setup
    settings = {
        "encoder": enc,
        "probe": probe,
        "labels": ["MI", "NORM"],
        "n_examples": 2,
        "sanity_check": False,
    }
    coarse = InputAttribution(**settings, n_steps=4).run(emb, rs)
    res = InputAttribution(**settings, n_steps=64).run(emb, rs)
    # recompute f(x) and f(baseline) independently from the saved inputs
    head = resolve_head(probe, emb, rs, ["MI", "NORM"])
    with torch.no_grad():
        fx = head.logits(enc.embed(res.arrays["inputs"]).numpy())
        fb = head.logits(enc.embed(res.arrays["baselines"]).numpy())
    r, c = res.arrays["example_record"], res.arrays["example_label"]
    gain = fx[r, c] - fb[r, c]
    total = res.arrays["attributions"].sum(axis=(1, 2), dtype=np.float64)
    np.testing.assert_allclose(total - gain, res.arrays["convergence_delta"], atol=1e-4)
    # completeness: the gap is small against the attributions' mass, and shrinks with more steps
    mass = np.abs(res.arrays["attributions"]).sum(axis=(1, 2))
    assert np.all(np.abs(total - gain) <= 0.01 * mass)
    assert np.abs(res.arrays["convergence_delta"]).mean() < np.abs(coarse.arrays["convergence_delta"]).mean()
    np.testing.assert_allclose(res.arrays["logit"], fx[r, c], rtol=1e-5)


# --------------------------------------------------------- state restored after errors
def test_failure_mid_attribution_restores_state_and_hooks(tiny_setup):
    _, emb, rs, probe = tiny_setup
    enc = ecgprobe.create_encoder("tiny-test", device="cpu", fail_after=4)
    user_hook = enc.module.conv1.register_forward_hook(lambda *a: None)  # must survive
    before = _hooks_and_flags(enc)
    with pytest.raises(AnalysisError, match="attribution of label") as info:
        InputAttribution(encoder=enc, probe=probe, labels=["NORM"], n_examples=2, n_steps=8).run(emb, rs)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert _hooks_and_flags(enc) == before and before[0] == 1 and all(before[1])
    user_hook.remove()


def test_attribution_mode_removes_hooks_added_inside(tiny_setup):
    enc = tiny_setup[0]
    enc.module.train()
    with pytest.raises(RuntimeError, match="boom"), am.attribution_mode(enc):
        assert not any(p.requires_grad for p in enc.module.parameters()) and not enc.module.training
        enc.module.conv2.register_forward_hook(lambda *a: None)  # as captum's layer methods do
        enc.module.head.register_full_backward_hook(lambda *a: None)
        raise RuntimeError("boom")
    n_hooks, flags, modes = _hooks_and_flags(enc)
    assert n_hooks == 0 and all(flags) and all(modes)
    enc.module.eval()


def test_runs_inside_inference_mode(tiny_setup):
    enc, emb, rs, probe = tiny_setup
    with torch.inference_mode():
        res = InputAttribution(
            encoder=enc, probe=probe, labels=["NORM"], n_examples=1, n_steps=4, store_maps=False
        ).run(emb, rs)
    assert "attributions" not in res.arrays and "random_attributions" not in res.arrays
    assert np.abs(res.arrays["lead_attributions"]).sum() > 0 and "sanity_spearman_lead" in res.arrays


# -------------------------------------------------------------- randomisation check
def test_model_randomisation_lowers_rank_correlation(tiny_setup):
    enc, emb, rs, probe = tiny_setup
    digest = enc.parameters_sha256()
    res = InputAttribution(
        encoder=enc, probe=probe, labels=["CD", "MI", "NORM"], n_examples=3, n_steps=8
    ).run(emb, rs)
    assert enc.parameters_sha256() == digest  # the randomised copy left the encoder untouched
    assert res.arrays["random_lead_importance"].shape == res.arrays["lead_importance"].shape
    assert abs(res.metrics["sanity_spearman_lead_median"]) < 0.6
    assert abs(res.metrics["sanity_spearman_signed_median"]) < 0.3
    # descriptive numbers: no interval, but what they rest on is stored and said
    m = res.metrics
    assert m["sanity_spearman_descriptive"] and m["sanity_n_leads"] == len(m["leads"])
    assert m["sanity_min_examples_per_label"] == min(m["examples_per_label"])
    assert any("Descriptive, without an interval" in n for n in res.notes)
    assert {"spearman_abs", "spearman_signed"} <= set(res.table("examples").columns)
    # recomputable from the saved maps of both models
    a, r = res.arrays["attributions"], res.arrays["random_attributions"]
    for k in range(len(a)):
        rho = spearmanr(np.abs(a[k]).ravel(), np.abs(r[k]).ravel()).statistic
        assert rho == pytest.approx(res.arrays["sanity_spearman_abs"][k])
    np.testing.assert_allclose(res.arrays["random_lead_attributions"], r.sum(axis=-1), rtol=1e-5, atol=1e-6)


def test_randomised_copy_changes_every_parameter_tensor(tiny_setup):
    enc = tiny_setup[0]
    rand = am.randomised_copy(enc, seed=5)
    for (name, p), q in zip(enc.module.named_parameters(), rand.module.parameters()):
        assert not torch.equal(p, q), name
    assert am.randomised_copy(_v2(), seed=1) is not None


# ------------------------------------------------------------------ beats, baselines
def test_r_peaks_found_at_known_times():
    fs, n = 100.0, 1000
    t = np.arange(n) / fs
    truth = np.array([55, 140, 230, 318, 410, 495, 590, 676, 770, 860, 951])
    qrs = sum(np.exp(-0.5 * ((t - r / fs) / 0.012) ** 2) for r in truth)
    tw = sum(0.3 * np.exp(-0.5 * ((t - r / fs - 0.25) / 0.05) ** 2) for r in truth)
    x = np.stack([qrs + tw, -0.5 * qrs, 0.8 * qrs + 0.1 * np.sin(2 * np.pi * 0.3 * t)]).astype(np.float32)
    found = am.detect_r_peaks(x, fs)
    assert len(found) == len(truth) and np.max(np.abs(found - truth)) <= 2
    offsets = am.beat_offsets(fs, (-300, 500))
    assert offsets[0] == -30 and offsets[-1] == 50
    avg, n_beats = am.beat_average(t.astype(np.float32), truth, offsets)
    inside = truth[(truth - 30 >= 0) & (truth + 50 < n)]
    assert n_beats == len(inside) and avg[30] == pytest.approx((inside / fs).mean(), abs=1e-5)


def test_baselines(rng):
    fs = 100.0
    t = np.arange(500) / fs
    x = np.stack([np.sin(2 * np.pi * 0.5 * t) + np.sin(2 * np.pi * 12 * t) + 3, np.cos(2 * np.pi * 8 * t)])
    x = x[None].astype(np.float32)
    assert not am.make_baseline(x, "zeros", fs, 1.0).any()
    mean = am.make_baseline(x, "mean", fs, 1.0)
    np.testing.assert_allclose(mean[..., 0], x.mean(axis=-1), rtol=1e-6)
    assert np.ptp(mean, axis=-1).max() == 0
    smooth = am.make_baseline(x, "smooth", fs, 1.0)
    core = slice(100, 400)  # away from the edges of the zero-phase filter
    np.testing.assert_allclose(smooth[0, 0, core], (np.sin(2 * np.pi * 0.5 * t) + 3)[core], atol=0.1)
    assert np.abs(smooth[0, 1, core]).max() < 0.01
    with pytest.raises(ConfigError, match="baseline"):
        am.make_baseline(x, "noise", fs, 1.0)


# -------------------------------------------------------------- real end-to-end run
def test_end_to_end_on_ptbxl(tiny_setup, tmp_path):
    _, emb, rs, _ = tiny_setup
    # with probe settings it fits its own LinearProbe; with no encoder it re-creates it from the provenance
    res = ANALYZERS.get("input_attribution")(
        probe={"n_resamples": 20},
        labels=["MI", "STTC"],
        n_examples=3,
        n_steps=8,
        baseline="smooth",
        sanity_check=False,
    ).run(emb, rs)
    back = Result.load(res.save(tmp_path / "attr"))
    assert isinstance(back, InputAttributionResult)
    a = back.arrays
    K, R = len(a["example_record"]), len(a["record_ids"])
    assert a["inputs"].shape == (R, 12, 250) and a["attributions"].shape == (K, 12, 250)
    assert a["lead_importance"].shape == (2, 12) and np.allclose(a["lead_importance"].sum(axis=1), 1)
    lo, hi = a["lead_importance_ci"][..., 0], a["lead_importance_ci"][..., 1]
    assert np.all(lo <= a["lead_importance"] + 1e-12) and np.all(a["lead_importance"] <= hi + 1e-12)
    assert a["time_s"][1] == pytest.approx(0.01) and back.metrics["fs"] == 100.0
    assert a["beat_saliency"].shape == (K, 81) and a["beat_saliency_lead"].shape == (2, 12, 81)
    assert (a["r_peaks"] >= 0).sum(axis=1).min() >= 1  # every 2.5 s example has a detected beat
    test_ids = set(rs.ids[rs.split == "test"])
    examples = back.table("examples")
    assert set(examples["record_id"]) <= test_ids and len(examples) == K
    for row in examples.itertuples():  # each example is a positive of its label
        assert rs.y[list(rs.ids).index(row.record_id), rs.label_names.index(row.label)] == 1
    assert len(back.table("lead_importance")) == 24


def test_settings_and_inputs_are_checked(tiny_setup, v2_setup):
    enc, emb, rs, probe = tiny_setup
    with pytest.raises(ConfigError, match="method"):
        InputAttribution(encoder=enc, probe=probe, method="lime").run(emb, rs)
    with pytest.raises(ConfigError, match="n_examples"):
        InputAttribution(encoder=enc, probe=probe, n_examples=0).run(emb, rs)
    with pytest.raises(AnalysisError, match="dim"):
        InputAttribution(encoder=v2_setup[0], probe=probe).run(emb, rs)
    other = ecgprobe.create_encoder("tiny-test", device="cpu", seed=3)
    with pytest.raises(AnalysisError, match="weights"):
        InputAttribution(encoder=other, probe=probe).run(emb, rs)


def test_end_to_end_random_resnet_at_500hz(ptbxl_root):
    rs = ecgprobe.load_dataset("ptbxl", ptbxl_root, sampling_rate=500).subset(np.arange(160))
    enc = ecgprobe.create_encoder("random-resnet1d", width=4, device="cpu")
    emb = embed(enc, rs)
    probe = LinearProbe(n_resamples=20).run(emb, rs)
    res = InputAttribution(encoder=enc, probe=probe, labels=["NORM"], n_examples=2, n_steps=8).run(emb, rs)
    a = res.arrays
    assert a["attributions"].shape == (2, 12, 5000) and a["time_s"][1] == pytest.approx(0.002)
    assert a["beat_saliency"].shape == (2, 401)  # -300..+500 ms at 500 Hz
    assert res.table("examples")["n_beats"].min() >= 5  # 10 s records
    assert res.metrics["median_relative_delta"] < 0.01
    assert np.isfinite(res.metrics["sanity_spearman_signed_median"])
