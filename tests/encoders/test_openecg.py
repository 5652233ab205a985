"""``openecg-codec``: the input contract against openecg's own code, equality with the full
model's forward pass, layers, weights digest, strict loading, and information on real PTB-XL."""

from __future__ import annotations

import hashlib
import sys

import numpy as np
import pytest
import torch

import ecgprobe
from ecgprobe.data.leads import LEADS_12
from ecgprobe.encoders import create_encoder
from ecgprobe.exceptions import CheckpointError, ConfigError, DependencyError


def test_missing_openecg_raises_dependency_error_with_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "openecg", None)  # makes `import openecg` fail
    with pytest.raises(DependencyError, match=r'pip install "ecgprobe\[openecg\]".*Python >= 3.11'):
        create_encoder("openecg-codec", device="cpu")


try:
    import openecg
except ImportError:  # the test above still runs; the others need the package
    openecg = None
needs_openecg = pytest.mark.skipif(
    openecg is None, reason="openecg is not installed (pip install 'ecgprobe[openecg]', Python >= 3.11)"
)


@pytest.fixture(scope="module")
def codec():
    return create_encoder("openecg-codec", device="cpu")


@pytest.fixture(scope="module")
def ptbxl500(ptbxl_root):
    return ecgprobe.load_dataset("ptbxl", ptbxl_root, sampling_rate=500)


@pytest.mark.realdata
@needs_openecg
def test_rank_normalisation_is_exactly_openecgs(codec, ptbxl500):
    raw = ptbxl500.signals[:3]
    x = codec.preprocess(raw, ptbxl500.fs, ptbxl500.leads)
    ref = np.stack([[openecg.rank_normalize(lead) for lead in rec] for rec in raw])
    assert x.shape == (3, 12, 5000) and x.dtype == np.float32
    np.testing.assert_array_equal(x, ref)


@pytest.mark.filterwarnings("ignore:enable_nested_tensor:UserWarning")
@needs_openecg
def test_backbone_equals_the_full_openecg_model():
    """Our encoder path reproduces the tokens of openecg's own model.forward (hooked)."""
    codec = create_encoder("openecg-codec", leads="aVL", device="cpu")
    full = openecg.load_codec()
    captured = {}
    handle = full.upper_transformer.register_forward_hook(lambda m, i, o: captured.__setitem__("tokens", o))
    raw = np.random.default_rng(0).normal(size=(2, 12, 5000))
    sig = torch.as_tensor(codec.preprocess(raw, 500.0, LEADS_12))  # (2, 1, 5000): lead aVL only
    try:
        with torch.no_grad():
            full(sig[:, 0], torch.zeros(2, dtype=torch.long))  # through the whole openecg model
    finally:
        handle.remove()
    with torch.no_grad():
        ours = codec.embed(sig)
    torch.testing.assert_close(ours, captured["tokens"].mean(dim=1), rtol=1e-5, atol=1e-6)


@needs_openecg
def test_contract_digest_and_versions(codec):
    assert (codec.spec.fs, codec.spec.n_samples, codec.spec.normalization) == (500.0, 5000, "rank")
    assert codec.embed_dim == 1536 and codec.family == "openecg"
    bundled = openecg.__path__[0] + "/models/codec_v6.pt"
    with open(bundled, "rb") as fh:
        assert codec.weights_sha256 == hashlib.sha256(fh.read()).hexdigest()
    v5 = create_encoder("openecg-codec", version="v5", leads="II", device="cpu")
    assert v5.weights_sha256 != codec.weights_sha256 and v5.embed_dim == 128
    with pytest.raises(ConfigError, match="not bundled"):
        create_encoder("openecg-codec", version="v2", device="cpu")
    with pytest.raises(ConfigError, match="not standard leads"):
        create_encoder("openecg-codec", leads="II,X7", device="cpu")


@pytest.mark.realdata
@needs_openecg
def test_layers_on_real_records_and_lead_subsets(codec, ptbxl500):
    rs = ptbxl500.subset(np.arange(2))
    x = codec.preprocess(rs.signals, rs.fs, rs.leads)
    assert codec.layer_names() == [
        *("tokens", "conv1", "conv2", "conv3", "conv4", "block1", "block2", "block3", "block4", "embedding")
    ]
    with torch.no_grad():
        out = codec.embed_layers(x, codec.layer_names())
    for name, emb in out.items():
        assert emb.shape == (2, 1536) and torch.isfinite(emb).all(), name
        assert (emb[0] - emb[1]).abs().max() > 1e-3, f"{name}: two records give the same embedding"
    torch.testing.assert_close(out["block4"], out["embedding"])
    # leads run independently: the lead-II encoder gives the II slice of the 12-lead embedding
    lead_ii = create_encoder("openecg-codec", leads="II", device="cpu")
    with torch.no_grad():
        ii = lead_ii.embed(lead_ii.preprocess(rs.signals, rs.fs, rs.leads))
    torch.testing.assert_close(ii, out["embedding"][:, 128:256], rtol=1e-5, atol=1e-5)


@needs_openecg
def test_checkpoint_files_are_read_safely_and_strictly(tmp_path):
    blob = torch.load(openecg.__path__[0] + "/models/codec_v6.pt", map_location="cpu", weights_only=True)
    del blob["model_state"]["upper_transformer.layers.2.linear1.weight"]
    bad = tmp_path / "codec_missing.pt"
    torch.save(blob, bad)
    with pytest.raises(CheckpointError, match=r"missing key.*upper_transformer\.layers\.2\.linear1\.weight"):
        create_encoder("openecg-codec", checkpoint=bad, device="cpu")
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"conv.weight": torch.zeros(1)}}, foreign)
    with pytest.raises(CheckpointError, match="expected an openecg codec file"):
        create_encoder("openecg-codec", checkpoint=foreign, device="cpu")
    blob["model_config"]["arch"] = "vit_reg_hybrid_aux_qrs_pace"
    other = tmp_path / "other_arch.pt"
    torch.save(blob, other)
    with pytest.raises(CheckpointError, match="supports"):
        create_encoder("openecg-codec", checkpoint=other, device="cpu")


@pytest.mark.realdata
@needs_openecg
def test_embeddings_carry_rhythm_information(ptbxl_root):
    """The codec was trained on rhythm labels: a linear probe on lead-II embeddings separates
    atrial fibrillation from sinus rhythm on real PTB-XL (cross-validated)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rs = ecgprobe.load_dataset("ptbxl", ptbxl_root, sampling_rate=500, labels="rhythm")
    af = rs.y[:, rs.label_names.index("AFIB")].astype(bool)
    sr = rs.y[:, rs.label_names.index("SR")].astype(bool) & ~af
    rs = rs.subset(np.concatenate([np.nonzero(af)[0], np.nonzero(sr)[0][:26]]))
    y = rs.y[:, rs.label_names.index("AFIB")]
    enc = create_encoder("openecg-codec", leads="II", device="cpu")
    with torch.no_grad():
        emb = enc.embed(enc.preprocess(rs.signals, rs.fs, rs.leads)).numpy()
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    scores = cross_val_predict(
        probe, emb, y, cv=StratifiedKFold(4, shuffle=True, random_state=0), method="predict_proba"
    )
    auc = roc_auc_score(y, scores[:, 1])
    print(f"openecg-codec lead II, AFIB vs SR: cross-validated AUROC {auc:.3f}")
    assert auc > 0.85, f"AFIB vs SR AUROC {auc:.3f}"
    shuffled = np.random.default_rng(0).permutation(y)  # the same probe on permuted labels: chance
    cv = StratifiedKFold(4, shuffle=True, random_state=0)
    null = roc_auc_score(
        shuffled, cross_val_predict(probe, emb, shuffled, cv=cv, method="predict_proba")[:, 1]
    )
    assert null < 0.75, f"the probe separates permuted labels (AUROC {null:.3f}): leakage?"


@pytest.mark.realdata
@needs_openecg
def test_extract_openecg_codec_on_real_ptbxl(ptbxl500):
    rs = ptbxl500.subset(np.arange(3))
    enc = create_encoder("openecg-codec", device="cpu")
    emb = ecgprobe.extract(
        enc, rs, layers=["block2", "embedding"], batch_size=2, device="cpu", progress=False
    )
    assert emb["embedding"].X.shape == (3, 1536) and np.isfinite(emb["embedding"].X).all()
    assert emb["block2"].X.shape == (3, 1536) and np.isfinite(emb["block2"].X).all()
