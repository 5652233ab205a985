"""The embedding cache is keyed by content: a changed record, other weights or another input
contract never reuse stale numbers, and a cached re-run hashes bytes instead of decoding."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import ecgprobe
from ecgprobe.data import ArraySource
from ecgprobe.data.sources import FileSource
from ecgprobe.data.wfdb_io import read_header, wfdb_digest
from ecgprobe.exceptions import CacheError


def _counting(enc):
    """Wrap ``enc``'s forward pass to record how many records (rows) go through it."""
    seen: list[int] = []
    original = enc._forward

    def forward(x: torch.Tensor) -> torch.Tensor:
        seen.append(int(x.shape[0]))
        return original(x)

    enc._forward = forward
    return seen


def _edit_one_sample(hea: Path, lead: int = 0, t: int = 123, delta: int = 50) -> None:
    """Change one int16 sample of a WFDB format-16 record and fix that signal's checksum."""
    h = read_header(hea)
    dat = hea.parent / h.signals[0].file
    raw = np.fromfile(dat, dtype="<i2").reshape(h.n_samples, h.n_signals)
    raw[t, lead] += delta
    raw.tofile(dat)
    lines = hea.read_text().splitlines()
    fields = lines[1 + lead].split()
    fields[6] = str((int(fields[6]) + delta) & 0xFFFF)  # checksum: the 16-bit sum of the samples
    lines[1 + lead] = " ".join(fields)
    hea.write_text("\n".join(lines) + "\n")


@pytest.fixture
def enc():
    return ecgprobe.create_encoder("tiny-test", device="cpu")


@pytest.mark.parametrize("lazy", [False, True], ids=["in-memory", "lazy"])
def test_one_changed_sample_recomputes_exactly_that_record(ptbxl_copy, tmp_path, enc, lazy):
    root = ptbxl_copy(12)
    cache = tmp_path / "cache"
    before = ecgprobe.load_dataset("ptbxl", root, sampling_rate=100, lazy=lazy)
    first = ecgprobe.extract(enc, before, cache_dir=cache, shard_size=5, progress=False)

    k = 7  # in the second of three shards
    _edit_one_sample(Path(before.source.path(k)) if lazy else root / _rel(root, k))
    after = ecgprobe.load_dataset("ptbxl", root, sampling_rate=100, lazy=lazy)  # checksum verified
    seen = _counting(enc)
    again = ecgprobe.extract(enc, after, cache_dir=cache, shard_size=5, progress=False)

    assert sum(seen) == 1, f"records through the encoder: {seen}"
    stats = again.provenance["extraction"]
    assert (stats["computed"], stats["changed"], stats["from_cache"]) == (1, 1, 11)
    fresh = ecgprobe.extract(enc, after, progress=False)  # what --no-cache computes
    np.testing.assert_allclose(again.X, fresh.X, rtol=1e-5, atol=1e-6)  # batch composition: float noise
    changed = np.arange(12) == k
    assert not np.allclose(again.X[k], first.X[k])
    np.testing.assert_array_equal(again.X[~changed], first.X[~changed])
    assert again.key != first.key  # downstream result caches see the change
    seen.clear()
    third = ecgprobe.extract(enc, after, cache_dir=cache, progress=False)
    assert seen == [] and third.key == again.key
    np.testing.assert_array_equal(third.X, again.X)


def _rel(root: Path, k: int) -> str:
    import pandas as pd

    return str(pd.read_csv(root / "ptbxl_database.csv")["filename_lr"].iloc[k]) + ".hea"


def test_changed_in_memory_record_recomputes_only_it(enc, tmp_path):
    rs = ecgprobe.load_dataset("synthetic", n_records=30, fs=100.0, seed=2)
    first = ecgprobe.extract(
        enc, rs, layers=["conv1", "embedding"], cache_dir=tmp_path, shard_size=8, progress=False
    )
    signals = rs.signals.copy()
    signals[20, 3, 40] += 0.5
    edited = replace(rs, source=ArraySource(signals))
    seen = _counting(enc)
    again = ecgprobe.extract(enc, edited, layers=["conv1", "embedding"], cache_dir=tmp_path, progress=False)
    assert sum(seen) == 1
    for layer in ("conv1", "embedding"):
        fresh = ecgprobe.extract(enc, edited, layers=[layer], progress=False)[layer]
        np.testing.assert_allclose(again[layer].X, fresh.X, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(np.delete(again[layer].X, 20, 0), np.delete(first[layer].X, 20, 0))


def test_cached_rerun_of_a_lazy_set_decodes_nothing(ptbxl_copy, tmp_path, enc, monkeypatch):
    rs = ecgprobe.load_dataset("ptbxl", ptbxl_copy(12), sampling_rate=100, lazy=True)
    first = ecgprobe.extract(enc, rs, cache_dir=tmp_path / "c", progress=False)
    decoded: list[int] = []
    real = FileSource.read_one
    monkeypatch.setattr(FileSource, "read_one", lambda self, i: decoded.append(i) or real(self, i))
    seen = _counting(enc)
    again = ecgprobe.extract(enc, rs, cache_dir=tmp_path / "c", progress=False)
    assert decoded == [] and seen == []
    np.testing.assert_array_equal(again.X, first.X)


def test_wfdb_digest_covers_header_and_signal_bytes(ptbxl_copy):
    root = ptbxl_copy(2)
    hea = root / _rel(root, 0)
    d0 = wfdb_digest(str(hea))
    assert wfdb_digest(str(hea)) == d0 and len(d0) == 32
    _edit_one_sample(hea)
    assert wfdb_digest(str(hea)) != d0
    rs = ecgprobe.load_dataset("ptbxl", root, sampling_rate=100, lazy=True)
    assert list(rs.content_digests()) == [wfdb_digest(rs.source.path(i)) for i in range(2)]


def test_in_memory_digests_follow_views_and_content():
    x = np.random.default_rng(0).normal(size=(4, 2, 50)).astype(np.float32)
    src = ArraySource(x)
    assert src.take(np.array([2, 0])).digests(np.arange(2)) == [src.digests([2])[0], src.digests([0])[0]]
    y = x.copy()
    y[1, 0, 0] = np.nextafter(y[1, 0, 0], np.float32(9))  # one ulp
    d, e = src.digests(np.arange(4)), ArraySource(y).digests(np.arange(4))
    assert [a == b for a, b in zip(d, e)] == [True, False, True, True]


def test_a_users_array_is_rehashed_a_loaders_is_remembered():
    x = np.zeros((3, 2, 40), dtype=np.float32)
    writable = x[:]  # a view made before the source made x read-only: it stays writable
    src = ArraySource(x)
    before = src.digests(np.arange(3))
    writable[2, 1, 5] = 1.0
    assert src.digests(np.arange(3))[:2] == before[:2] and src.digests([2])[0] != before[2]
    owned = ArraySource(np.ones((3, 2, 40), dtype=np.float32), owned=True)
    view = owned.take(np.array([2]))
    assert (
        view.digests([0]) == owned.digests([2]) == ArraySource(np.ones((1, 2, 40), np.float32)).digests([0])
    )
    assert owned._memo is view._memo and owned._memo[2] is not None


def test_other_weights_same_name_options_and_spec_recompute(enc, tmp_path):
    rs = ecgprobe.load_dataset("synthetic", n_records=12, fs=100.0, seed=3)
    first = ecgprobe.extract(enc, rs, cache_dir=tmp_path, progress=False)
    other = ecgprobe.create_encoder("tiny-test", device="cpu")  # same name, options, spec
    with torch.no_grad():
        other.module.head.bias.add_(1.0)  # e.g. another checkpoint file under the same name
    other.weights_sha256 = other.parameters_sha256()
    assert other.options == enc.options and other.spec == enc.spec
    seen = _counting(other)
    second = ecgprobe.extract(other, rs, cache_dir=tmp_path, progress=False)
    assert second.key != first.key
    assert sum(seen) == len(rs), "the second encoder's run reused the first one's embeddings"
    np.testing.assert_allclose(second.X, first.X + 1.0, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "change",
    [
        {"bandpass": (0.5, 40.0)},
        {"normalization": "zscore_global"},
        {"n_samples": 200},
        {"baseline": "median"},
    ],
    ids=lambda c: next(iter(c)),
)
def test_other_input_contract_same_encoder_recomputes(enc, tmp_path, change):
    rs = ecgprobe.load_dataset("synthetic", n_records=12, fs=100.0, seed=3)
    first = ecgprobe.extract(enc, rs, cache_dir=tmp_path, progress=False)
    other = ecgprobe.create_encoder("tiny-test", device="cpu")
    other.spec = replace(enc.spec, **change)
    seen = _counting(other)
    second = ecgprobe.extract(other, rs, cache_dir=tmp_path, progress=False)
    assert second.key != first.key and sum(seen) == len(rs)
    np.testing.assert_allclose(second.X, ecgprobe.extract(other, rs, progress=False).X, rtol=1e-5, atol=1e-6)


def test_numeric_library_versions_are_in_the_key(enc, tmp_path, monkeypatch):
    from ecgprobe.extract import extractor

    rs = ecgprobe.load_dataset("synthetic", n_records=6, fs=100.0, seed=3)
    first = ecgprobe.extract(enc, rs, cache_dir=tmp_path, progress=False)
    assert set(first.provenance["numerics"]) == {"numpy", "scipy", "torch"}
    versions = {**extractor.library_versions(), "torch": "0.0-other"}
    monkeypatch.setattr(extractor, "library_versions", lambda: versions)
    seen = _counting(enc)
    assert ecgprobe.extract(enc, rs, cache_dir=tmp_path, progress=False).key != first.key
    assert sum(seen) == len(rs)


def test_sidecars_without_digests_are_never_trusted(enc, tmp_path):
    """Shards written before per-record digests existed are misses, not hits."""
    rs = ecgprobe.load_dataset("synthetic", n_records=12, fs=100.0, seed=3)
    first = ecgprobe.extract(enc, rs, cache_dir=tmp_path, shard_size=4, progress=False)
    for side in tmp_path.rglob("shard-*.json"):
        info = json.loads(side.read_text())
        del info["digests"]
        side.write_text(json.dumps(info))
    with pytest.raises(CacheError, match="overwrite='never'"):
        ecgprobe.extract(enc, rs, cache_dir=tmp_path, overwrite="never", progress=False)
    seen = _counting(enc)
    again = ecgprobe.extract(enc, rs, cache_dir=tmp_path, progress=False)
    assert sum(seen) == 12
    np.testing.assert_array_equal(again.X, first.X)


def test_changed_record_under_overwrite_never_is_an_error(enc, tmp_path):
    rs = ecgprobe.load_dataset("synthetic", n_records=10, fs=100.0, seed=3)
    ecgprobe.extract(enc, rs, cache_dir=tmp_path, progress=False)
    signals = rs.signals.copy()
    signals[0] *= 2
    with pytest.raises(CacheError, match="1 records whose content changed"):
        ecgprobe.extract(
            enc,
            replace(rs, source=ArraySource(signals)),
            cache_dir=tmp_path,
            overwrite="never",
            progress=False,
        )
