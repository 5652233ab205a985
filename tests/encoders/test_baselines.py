"""The reference encoders ``random-resnet1d`` and ``handcrafted``: seeding, sanity on real PTB-XL,
and the handcrafted features against the synthetic generator's known causes and PTB-XL's labels."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import ecgprobe
from ecgprobe.encoders import create_encoder, encoder_info
from ecgprobe.encoders.handcrafted import FEATURES, GROUPS, compute_features
from ecgprobe.exceptions import ConfigError, IncompatibleInputError


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def ptbxl500(ptbxl_root):
    """Real PTB-XL mini at 500 Hz (superclass labels)."""
    return ecgprobe.load_dataset("ptbxl", ptbxl_root, sampling_rate=500)


@pytest.fixture(scope="module")
def handcrafted():
    return create_encoder("handcrafted", device="cpu")


@pytest.fixture(scope="module")
def synthetic_features(handcrafted):
    """80 synthetic 500 Hz records, with the known-cause labels made common, and their features."""
    rs = ecgprobe.load_dataset(
        "synthetic",
        n_records=80,
        fs=500.0,
        seed=3,
        prevalence={"wide_qrs": 0.3, "st_elevation_inferior": 0.3, "low_voltage": 0.3, "afib": 0.2},
    )
    x = handcrafted.preprocess(rs.signals, rs.fs, rs.leads)
    feats = handcrafted.embed(torch.as_tensor(x)).numpy()
    return rs, feats


def _col(enc, feats: np.ndarray, name: str) -> np.ndarray:
    return feats[:, enc.feature_names().index(name)]


def _label(rs, name: str) -> np.ndarray:
    return rs.y[:, rs.label_names.index(name)].astype(bool)


# ------------------------------------------------------------------------ random-resnet1d
def test_random_resnet_contract_and_options():
    enc = create_encoder("random-resnet1d", device="cpu")
    assert (enc.spec.fs, enc.spec.n_samples, enc.spec.normalization) == (500.0, 5000, "zscore_lead")
    assert enc.spec.leads == ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
    assert enc.embed_dim == 256 and enc.family == "random"
    assert enc.layer_names() == ["stem", "layer1", "layer2", "layer3", "layer4", "embedding"]
    assert encoder_info("random-resnet1d").embed_dim == 256
    small = create_encoder("random-resnet1d", width=4, device="cpu")
    assert small.embed_dim == 32 and small.embed(torch.randn(2, 12, 5000)).shape == (2, 32)
    for bad in ({"width": 0}, {"seed": 1.5}, {"width": True}):
        with pytest.raises(ConfigError, match="random-resnet1d"):
            create_encoder("random-resnet1d", device="cpu", **bad)


def test_random_resnet_is_seeded_without_touching_the_global_rng():
    state = torch.get_rng_state()
    a = create_encoder("random-resnet1d", seed=7, width=4, device="cpu")
    assert torch.equal(state, torch.get_rng_state()), "creating the encoder advanced torch's global RNG"
    b = create_encoder("random-resnet1d", seed=7, width=4, device="cpu")
    c = create_encoder("random-resnet1d", seed=8, width=4, device="cpu")
    assert a.weights_sha256 == b.weights_sha256 != c.weights_sha256
    assert a.weights_sha256 == a.parameters_sha256() and len(a.weights_sha256) == 64
    x = torch.randn(2, 12, 5000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a.embed(x), b.embed(x)) and not torch.allclose(a.embed(x), c.embed(x))
    assert json.loads(json.dumps(a.identity()))["options"] == {"seed": 7, "width": 4}


@pytest.mark.realdata
def test_random_resnet_real_ptbxl_embeddings_are_finite_and_not_collapsed(ptbxl500):
    enc = create_encoder("random-resnet1d", device="cpu")
    rs = ptbxl500.subset(np.arange(16))
    x = enc.preprocess(rs.signals, rs.fs, rs.leads)
    with torch.no_grad():
        out = {k: v.numpy() for k, v in enc.embed_layers(x, enc.layer_names()).items()}
    widths = {"stem": 32, "layer1": 32, "layer2": 64, "layer3": 128, "layer4": 256, "embedding": 256}
    for name, emb in out.items():
        assert emb.shape == (16, widths[name]) and np.isfinite(emb).all(), name
        # not a constant across records: dimensions vary relative to their size ...
        rel_spread = np.median(emb.std(axis=0) / (np.abs(emb.mean(axis=0)) + 1e-12))
        assert rel_spread > 0.05, f"{name}: embeddings nearly constant across records ({rel_spread:.3f})"
        # ... in many independent directions (participation ratio of the centred spectrum)
        s = np.linalg.svd(emb - emb.mean(axis=0), compute_uv=False)
        assert (s.sum() ** 2 / (s**2).sum()) > 5, name
    np.testing.assert_array_equal(out["layer4"], out["embedding"])  # documented: GAP of layer4, no head


# ------------------------------------------------------------------------------ handcrafted
def test_handcrafted_layers_names_and_units(handcrafted):
    enc = handcrafted
    assert enc.layer_names() == [*GROUPS, "embedding"] and not enc.differentiable
    names = enc.feature_names()
    assert len(names) == enc.embed_dim == encoder_info("handcrafted").embed_dim == len(set(names))
    assert {"V2:st_level", "II:qrs_amplitude", "aVF:bp_0.5_5hz", "heart_rate", "qrs_width"} <= set(names)
    assert sum(len(enc.feature_names(g)) for g in GROUPS) == enc.embed_dim
    assert enc.feature_units("rhythm")[:2] == ["bpm", "ms"] and len(enc.feature_units()) == enc.embed_dim
    assert set(FEATURES) == {n.rpartition(":")[2] for n in names}
    with pytest.raises(ConfigError, match="has no layer 'nope'"):
        enc.embed_layers(np.zeros((1, 12, 5000), np.float32), ["nope"])
    with pytest.raises(ConfigError, match="has no layer"):
        enc.feature_names("stem")
    assert enc.spec.n_samples is None and enc.spec.baseline == "highpass" and enc.spec.units == "mV"


def test_handcrafted_groups_concatenate_to_the_embedding_and_do_not_depend_on_the_batch(
    handcrafted, synthetic_features
):
    rs, feats = synthetic_features
    x = handcrafted.preprocess(rs.signals[:6], rs.fs, rs.leads)
    layers = {k: v.numpy() for k, v in handcrafted.embed_layers(x, handcrafted.layer_names()).items()}
    np.testing.assert_array_equal(np.concatenate([layers[g] for g in GROUPS], axis=1), layers["embedding"])
    np.testing.assert_array_equal(layers["embedding"], feats[:6])  # batch of 6 == inside the batch of 80
    one = np.concatenate([compute_features(x[i : i + 1], 500.0)["rhythm"] for i in range(6)])
    np.testing.assert_array_equal(one, layers["rhythm"])


def test_handcrafted_heart_rate_matches_the_generator(handcrafted, synthetic_features):
    rs, feats = synthetic_features
    hr, true = _col(handcrafted, feats, "heart_rate"), rs.meta["heart_rate"].to_numpy()
    regular = ~_label(rs, "afib")  # AF's RR intervals are random: 10 s only estimate the rate
    assert np.abs(hr - true)[regular].max() < 3.0
    assert np.corrcoef(hr, true)[0, 1] > 0.98
    af, rmssd = _label(rs, "afib"), _col(handcrafted, feats, "rmssd")
    assert af.sum() >= 5 and np.median(rmssd[af]) > 3 * np.median(rmssd[regular])
    assert np.all(_col(handcrafted, feats, "n_beats") >= 5)


def test_handcrafted_qrs_width_st_level_and_voltage_follow_their_causes(handcrafted, synthetic_features):
    rs, feats = synthetic_features
    col = lambda name: _col(handcrafted, feats, name)  # noqa: E731
    wide = _label(rs, "wide_qrs")
    qrs = col("qrs_width")
    assert 70 <= np.median(qrs[~wide]) <= 110 and np.median(qrs[wide]) >= 130  # generator: ~95 vs ~150 ms
    pairs = qrs[wide][:, None] > qrs[~wide][None, :]
    assert pairs.mean() > 0.95  # AUROC of the QRS width for wide_qrs
    inferior, anterior = _label(rs, "st_elevation_inferior"), _label(rs, "st_elevation_anterior")
    neither = ~inferior & ~anterior
    for lead in ("II", "III", "aVF"):
        st = col(f"{lead}:st_level")
        assert np.median(st[inferior]) > 0.12 and abs(np.median(st[neither])) < 0.04, lead
    assert abs(np.median(col("I:st_level")[inferior])) < 0.05  # lead I is orthogonal to the ST vector
    low = _label(rs, "low_voltage")
    for lead in ("I", "II", "aVF"):
        amp = col(f"{lead}:qrs_amplitude")
        assert np.median(amp[low]) < 0.5 * np.median(amp[~low]), lead
    assert np.median(col("II:ptp")[low]) < 0.6 * np.median(col("II:ptp")[~low])


def test_handcrafted_fill_values_without_beats_are_documented_zeros(handcrafted):
    leads = handcrafted.spec.leads
    flat = np.zeros((1, 12, 5000), np.float32)
    const = np.full((1, 12, 5000), 2.0, np.float32)
    tiny = np.random.default_rng(0).normal(0, 0.002, (1, 12, 5000)).astype(np.float32)  # 2 uV noise
    short = np.zeros((1, 12, 400), np.float32)
    short[:, :, 200] = 1.0  # one spike in 0.8 s: at most one beat, no RR interval
    names = handcrafted.feature_names()
    for sig in (flat, const, tiny, short):
        x = handcrafted.preprocess(sig, 500.0, leads)
        f = handcrafted.embed(x).numpy()[0]
        assert np.isfinite(f).all()
        for name in ("heart_rate", "sdnn", "rmssd", "pnn50"):
            assert f[names.index(name)] == 0.0, name
        morph = handcrafted.feature_names("morphology")
        assert all(f[names.index(m)] == 0.0 for m in morph)
    with pytest.raises(IncompatibleInputError, match=r"at least 0.5 s; these have 0.2 s"):
        handcrafted.embed(np.zeros((1, 12, 100), np.float32))
    f = handcrafted.embed(handcrafted.preprocess(flat, 500.0, leads)).numpy()[0]
    assert f[names.index("n_beats")] == 0 and f[names.index("II:skewness")] == 0.0
    assert f[names.index("II:bp_5_15hz")] == pytest.approx(-10.0)  # the documented power floor


@pytest.mark.realdata
def test_handcrafted_on_real_ptbxl_rhythm_and_conduction_labels(handcrafted, ptbxl_root):
    rhythm = ecgprobe.load_dataset("ptbxl", ptbxl_root, sampling_rate=500, labels="rhythm")
    lab = {n: rhythm.y[:, i].astype(bool) for i, n in enumerate(rhythm.label_names)}
    sinus = np.nonzero(lab["SR"] & ~lab["SBRAD"] & ~lab["STACH"] & ~lab["SARRH"])[0][:20]
    pick = np.concatenate([np.nonzero(lab[k])[0] for k in ("SBRAD", "STACH", "AFIB")] + [sinus])
    rs = rhythm.subset(np.unique(pick))
    feats = handcrafted.embed(handcrafted.preprocess(rs.signals, rs.fs, rs.leads)).numpy()
    assert np.isfinite(feats).all()
    hr, rmssd = _col(handcrafted, feats, "heart_rate"), _col(handcrafted, feats, "rmssd")
    sub = {n: rs.y[:, i].astype(bool) for i, n in enumerate(rs.label_names)}
    sr = sub["SR"] & ~sub["SBRAD"] & ~sub["STACH"] & ~sub["SARRH"]
    assert np.all(hr[sub["SBRAD"]] < 62) and np.all(hr[sub["STACH"]] > 95)  # cardiologists: < 60 / > 100 bpm
    assert np.mean((hr[sr] >= 55) & (hr[sr] <= 105)) > 0.9
    assert np.median(rmssd[sub["AFIB"]]) > 3 * np.median(rmssd[sr])

    diag = ecgprobe.load_dataset("ptbxl", ptbxl_root, sampling_rate=500, labels="diagnostic")
    dl = {n: diag.y[:, i].astype(bool) for i, n in enumerate(diag.label_names)}
    bbb = np.nonzero(dl["CLBBB"] | dl["CRBBB"])[0]
    norm = np.nonzero(dl["NORM"] & ~dl["CLBBB"] & ~dl["CRBBB"] & ~dl["IRBBB"])[0][:20]
    rs2 = diag.subset(np.concatenate([bbb, norm]))
    qrs = _col(
        handcrafted,
        handcrafted.embed(handcrafted.preprocess(rs2.signals, 500.0, rs2.leads)).numpy(),
        "qrs_width",
    )
    # complete bundle-branch block means QRS >= 120 ms; our onset/offset threshold sits inside the complex
    assert np.median(qrs[: len(bbb)]) > np.median(qrs[len(bbb) :]) + 25
    assert 70 <= np.median(qrs[len(bbb) :]) <= 110


# ------------------------------------------------------------------------ end to end (extract)
@pytest.mark.realdata
def test_extract_random_resnet_on_ptbxl100(ptbxl100):
    rs = ptbxl100.subset(np.arange(6))  # 100 Hz records, upsampled to the 500 Hz contract
    enc = create_encoder("random-resnet1d", device="cpu")
    emb = ecgprobe.extract(enc, rs, batch_size=4, device="cpu", progress=False)
    assert emb.X.shape == (6, 256) and np.isfinite(emb.X).all() and list(emb.ids) == list(rs.ids)


@pytest.mark.realdata
def test_extract_handcrafted_on_real_ptbxl_all_layers_through_the_cache(ptbxl500, handcrafted, tmp_path):
    rs = ptbxl500.subset(np.arange(10))
    first = ecgprobe.extract(handcrafted, rs, layers="all", batch_size=4, cache_dir=tmp_path, progress=False)
    assert list(first) == handcrafted.layer_names()
    assert (
        first["embedding"].X.shape == (10, handcrafted.embed_dim) and np.isfinite(first["embedding"].X).all()
    )
    for group in GROUPS:
        assert first[group].X.shape == (10, len(handcrafted.feature_names(group)))
    again = ecgprobe.extract(
        handcrafted, rs, batch_size=4, cache_dir=tmp_path, overwrite="never", progress=False
    )
    np.testing.assert_array_equal(again.X, first["embedding"].X)  # read back from the cache
