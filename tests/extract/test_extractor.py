"""extract(): parity with a manual loop, windows, layers, hooks, cache hits and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import ecgprobe
from ecgprobe.encoders.testing import TinyTestEncoder
from ecgprobe.exceptions import CacheError, ConfigError, DataError, IncompatibleInputError


@pytest.fixture(scope="module")
def records():
    return ecgprobe.load_dataset("synthetic", n_records=70, fs=100.0, seed=1)


@pytest.fixture
def enc():
    return ecgprobe.create_encoder("tiny-test", device="cpu")


def _manual(enc, rs, layer="embedding", window="fit"):
    x = enc.preprocess(rs.signals, rs.fs, rs.leads, window=window)
    with torch.no_grad():
        if window == "sliding":
            n, w = x.shape[:2]
            flat = enc.embed(torch.from_numpy(x.reshape(n * w, *x.shape[2:])), layer).numpy()
            return flat.reshape(n, w, -1).mean(axis=1)
        return enc.embed(torch.from_numpy(x), layer).numpy()


def test_parity_with_manual_loop(enc, records):
    emb = ecgprobe.extract(enc, records, batch_size=16, progress=False)
    np.testing.assert_allclose(emb.X, _manual(enc, records), rtol=1e-5, atol=1e-6)
    assert list(emb.ids) == list(records.ids) and emb.layer == "embedding" and emb.key == ""
    assert emb.provenance["encoder"]["weights_sha256"] == enc.weights_sha256
    assert emb.provenance["extraction"]["computed"] == len(records)


def test_sliding_windows_average(enc, records):
    emb = ecgprobe.extract(enc, records, window="sliding", batch_size=10, progress=False)
    np.testing.assert_allclose(emb.X, _manual(enc, records, window="sliding"), rtol=1e-5, atol=1e-6)
    assert not np.allclose(emb.X, _manual(enc, records))


def test_several_layers_in_one_pass(enc, records):
    before = TinyTestEncoder.calls
    out = ecgprobe.extract(enc, records, layers="all", batch_size=35, progress=False)
    assert set(out) == {"conv1", "conv2", "embedding"}
    assert TinyTestEncoder.calls - before == 2  # one forward per batch, not per layer
    np.testing.assert_allclose(out["conv1"].X, _manual(enc, records, "conv1"), rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match=r"no layers \['conv9'\]"):
        ecgprobe.extract(enc, records, layers=["conv9"], progress=False)


def test_batch_size_larger_than_n_and_empty(enc, records):
    small = records.subset(range(3))
    assert ecgprobe.extract(enc, small, batch_size=1000, progress=False).X.shape == (3, 16)
    with pytest.raises(DataError, match="no records"):
        ecgprobe.extract(enc, records.subset([]), progress=False)
    with pytest.raises(ConfigError, match="batch_size"):
        ecgprobe.extract(enc, records, batch_size=0, progress=False)


def test_incompatible_leads_are_refused(enc, records):
    from dataclasses import replace

    from ecgprobe.data import ArraySource

    three = replace(records, source=ArraySource(records.signals[:, :3]), leads=("I", "II", "III"))
    with pytest.raises(IncompatibleInputError, match=r"leads \['V1'.*cannot be invented"):
        ecgprobe.extract(enc, three, progress=False)


def test_hooks_removed_after_exception(records):
    enc = ecgprobe.create_encoder("tiny-test", device="cpu", fail_after=1)
    with pytest.raises(RuntimeError, match="simulated crash"):
        ecgprobe.extract(enc, records, layers="all", batch_size=10, progress=False)
    for module in enc.module.modules():
        assert not module._forward_hooks


def test_cache_hit_calls_encoder_zero_times(enc, records, tmp_path):
    first = ecgprobe.extract(enc, records, cache_dir=tmp_path, batch_size=16, shard_size=32, progress=False)
    before = TinyTestEncoder.calls
    again = ecgprobe.extract(
        enc, records, cache_dir=tmp_path, batch_size=7, progress=False
    )  # batch size not in key
    assert TinyTestEncoder.calls == before
    np.testing.assert_array_equal(first.X, again.X)
    assert again.key == first.key and len(first.key) == 64
    assert again.provenance["extraction"]["from_cache"] == len(records)
    # a new layer computes only that layer's shards, the cached one is reused
    out = ecgprobe.extract(enc, records, layers=["conv1", "embedding"], cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(out["embedding"].X, first.X)


def test_cache_key_tracks_what_changes_the_numbers(records, tmp_path):
    a = ecgprobe.create_encoder("tiny-test", device="cpu", seed=0)
    b = ecgprobe.create_encoder("tiny-test", device="cpu", seed=1)
    ka = ecgprobe.extract(a, records, cache_dir=tmp_path, progress=False).key
    assert ecgprobe.extract(b, records, cache_dir=tmp_path, progress=False).key != ka
    assert ecgprobe.extract(a, records.subset(range(10)), cache_dir=tmp_path, progress=False).key != ka
    assert ecgprobe.extract(a, records, cache_dir=tmp_path, window="sliding", progress=False).key != ka


def test_overwrite_policies(enc, records, tmp_path):
    with pytest.raises(CacheError, match="overwrite='never'"):
        ecgprobe.extract(enc, records, cache_dir=tmp_path, overwrite="never", progress=False)
    ecgprobe.extract(enc, records, cache_dir=tmp_path, progress=False)
    before = TinyTestEncoder.calls
    ecgprobe.extract(enc, records, cache_dir=tmp_path, overwrite="never", progress=False)
    assert TinyTestEncoder.calls == before
    ecgprobe.extract(enc, records, cache_dir=tmp_path, overwrite="always", progress=False)
    assert TinyTestEncoder.calls > before


def test_resume_after_crash_mid_extraction(records, tmp_path):
    # 70 records, shards of 16 -> 5 shards; batches of 8 -> 2 forward calls per shard.
    crashing = ecgprobe.create_encoder("tiny-test", device="cpu", fail_after=5)
    with pytest.raises(RuntimeError, match="simulated crash"):
        ecgprobe.extract(crashing, records, cache_dir=tmp_path, batch_size=8, shard_size=16, progress=False)
    manifest = json.loads(next(tmp_path.rglob("manifest.json")).read_text())
    assert manifest["shards_done"] == 2 and not manifest["complete"]
    enc = ecgprobe.create_encoder("tiny-test", device="cpu")
    before = TinyTestEncoder.calls
    resumed = ecgprobe.extract(enc, records, cache_dir=tmp_path, batch_size=8, shard_size=16, progress=False)
    assert TinyTestEncoder.calls - before == 5  # shards 2, 3 (2 calls each) and 4 (6 records: 1 call)
    np.testing.assert_allclose(resumed.X, ecgprobe.extract(enc, records, progress=False).X, rtol=1e-6)


def test_corrupt_shard_is_recomputed_not_used(enc, records, tmp_path):
    first = ecgprobe.extract(enc, records, cache_dir=tmp_path, shard_size=32, progress=False)
    shard = sorted(tmp_path.rglob("shard-00001.npy"))[0]
    blob = bytearray(shard.read_bytes())
    blob[-10] ^= 0xFF
    shard.write_bytes(bytes(blob))
    before = TinyTestEncoder.calls
    with pytest.warns(UserWarning, match="does not match its checksum"):
        again = ecgprobe.extract(enc, records, cache_dir=tmp_path, shard_size=32, progress=False)
    assert TinyTestEncoder.calls - before == 1
    np.testing.assert_array_equal(first.X, again.X)


def test_read_only_cache_is_a_clear_error(enc, records, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("running as root: file permissions are not enforced")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(CacheError, match="not writable"):
            ecgprobe.extract(enc, records, cache_dir=ro, progress=False)
    finally:
        ro.chmod(0o700)


def test_permission_denied_is_a_clear_error(enc, records, tmp_path, monkeypatch):
    """The same message as a read-only folder, simulated so that it also holds when run as root."""
    import errno

    import ecgprobe._io as io_mod

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(io_mod.tempfile, "mkstemp", denied)
    with pytest.raises(CacheError, match=r"not writable \(Permission denied\).*--cache-dir"):
        ecgprobe.extract(enc, records, cache_dir=tmp_path, progress=False)


def test_unwritable_cache_leaves_nothing_half_written(enc, records, tmp_path, monkeypatch):
    """Simulate a full disk in the middle of a run (works as root too); the rerun resumes."""
    import errno

    import ecgprobe._io as io_mod

    real = io_mod.os.fsync
    calls = {"n": 0}

    def full_disk(fd):
        calls["n"] += 1
        if calls["n"] == 5:  # shard 0 (.npy, .json), manifest, shard 1 .npy, then its sidecar fails
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(io_mod.os, "fsync", full_disk)
    with pytest.raises(CacheError, match=r"disk holding the cache .* is full"):
        ecgprobe.extract(enc, records, cache_dir=tmp_path, shard_size=16, progress=False)
    monkeypatch.setattr(io_mod.os, "fsync", real)
    assert not list(tmp_path.rglob("*.tmp"))
    folder = next(tmp_path.rglob("manifest.json")).parent
    assert not json.loads((folder / "manifest.json").read_text())["complete"]
    assert sorted(p.name for p in folder.glob("shard-*")) == [
        "shard-00000.json",
        "shard-00000.npy",
        "shard-00001.npy",
    ]
    before = TinyTestEncoder.calls
    emb = ecgprobe.extract(enc, records, cache_dir=tmp_path, shard_size=16, batch_size=16, progress=False)
    assert TinyTestEncoder.calls - before == 4  # shard 1 (no sidecar) is recomputed, shard 0 reused
    np.testing.assert_allclose(emb.X, ecgprobe.extract(enc, records, progress=False).X, rtol=1e-6)


def test_non_finite_embeddings_name_the_records(records):
    enc = ecgprobe.create_encoder("tiny-test", device="cpu")
    original = enc._forward

    def nan_for_large_input(x):
        out = original(x)
        bad = x.abs().amax(dim=(1, 2)) > 1e6
        return torch.where(bad[:, None], torch.full_like(out, float("nan")), out)

    enc._forward = nan_for_large_input
    from dataclasses import replace

    from ecgprobe.data import ArraySource
    from ecgprobe.encoders.base import InputSpec

    enc.spec = InputSpec(fs=100.0, leads=enc.spec.leads, n_samples=250)  # no normalisation: raw amplitudes
    sig = records.signals.copy()
    sig[4] *= 1e8
    spiky = replace(records, source=ArraySource(sig))
    with pytest.raises(
        DataError, match=rf"non-finite 'embedding' embeddings for 1 record\(s\): \['{records.ids[4]}'\]"
    ):
        ecgprobe.extract(enc, spiky, progress=False)


def test_lazy_dataset_streams(ptbxl_root):
    rs = ecgprobe.load_dataset("ptbxl", ptbxl_root, sampling_rate=100, lazy=True).subset(range(40))
    enc = ecgprobe.create_encoder("tiny-test", device="cpu")
    emb = ecgprobe.extract(enc, rs, batch_size=16, progress=False)
    eager = ecgprobe.load_dataset("ptbxl", ptbxl_root, sampling_rate=100).subset(range(40))
    np.testing.assert_allclose(emb.X, ecgprobe.extract(enc, eager, progress=False).X, rtol=1e-6)


@pytest.mark.slow
def test_resume_after_kill_9(tmp_path):
    """A real SIGKILL mid-extraction: the rerun computes only the shards not yet complete."""
    script = tmp_path / "job.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import time, ecgprobe
            rs = ecgprobe.load_dataset("synthetic", n_records=96, fs=100.0, seed=3)
            enc = ecgprobe.create_encoder("tiny-test", device="cpu")
            slow = enc._forward
            def forward(x):
                time.sleep(0.25)
                return slow(x)
            enc._forward = forward
            ecgprobe.extract(enc, rs, cache_dir={str(tmp_path / "cache")!r}, batch_size=8, shard_size=8, progress=False)
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, str(script)], env=env)
    deadline = time.time() + 60
    done = 0
    while time.time() < deadline:
        manifests = list((tmp_path / "cache").rglob("manifest.json"))
        if manifests:
            try:
                done = json.loads(manifests[0].read_text())["shards_done"]
            except json.JSONDecodeError:  # never happens with atomic writes; keep polling anyway
                done = 0
            if done >= 3:
                break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 3 <= done < 12
    rs = ecgprobe.load_dataset("synthetic", n_records=96, fs=100.0, seed=3)
    enc = ecgprobe.create_encoder("tiny-test", device="cpu")
    manifest = json.loads(next((tmp_path / "cache").rglob("manifest.json")).read_text())
    completed = manifest["shards_done"]
    before = TinyTestEncoder.calls
    emb = ecgprobe.extract(enc, rs, cache_dir=tmp_path / "cache", batch_size=8, shard_size=8, progress=False)
    assert TinyTestEncoder.calls - before == 12 - completed
    np.testing.assert_allclose(emb.X, ecgprobe.extract(enc, rs, progress=False).X, rtol=1e-6)


# ---- the official record-level protocol (InputSpec.crops) -------------------------------------


def _with_crops(enc, crops):
    from dataclasses import replace

    enc.spec = replace(enc.spec, crops=crops)
    return enc


def test_official_window_embeds_the_declared_crops_and_averages_them(records):
    from ecgprobe.encoders.base import RecordCrops

    enc = _with_crops(ecgprobe.create_encoder("tiny-test", device="cpu"), RecordCrops("spaced", n=3))
    # 10 s at 100 Hz, 250-sample windows: starts 0, 375, 750 (range(0, 1000 - 250 + 1, 750 // 2))
    assert enc.spec.crops.starts(records.n_samples, 250) == [0, 375, 750]
    emb = ecgprobe.extract(enc, records, batch_size=9, progress=False)  # default: window="official"
    x = enc.preprocess(records.signals, records.fs, records.leads, window="fit")
    by_hand = []
    with torch.no_grad():
        for start in (0, 375, 750):
            crop = records.signals[..., start : start + 250]
            by_hand.append(enc.embed(enc.preprocess(crop, records.fs, records.leads, window="fit")).numpy())
    np.testing.assert_allclose(emb.X, np.mean(by_hand, axis=0), rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        first = enc.embed(torch.from_numpy(x)).numpy()
    fit = ecgprobe.extract(enc, records, window="fit", progress=False)
    np.testing.assert_allclose(fit.X, first, rtol=1e-5, atol=1e-6)  # the user can still override
    assert not np.allclose(emb.X, fit.X)
    assert emb.provenance["window"] == "official" and emb.provenance["encoder"]["spec"]["crops"]["n"] == 3
    assert "3 window(s)" in emb.provenance["note"]


def test_chunks_drop_a_partial_tail(records):
    from dataclasses import replace

    from ecgprobe.data import ArraySource
    from ecgprobe.encoders.base import RecordCrops

    enc = _with_crops(ecgprobe.create_encoder("tiny-test", device="cpu"), RecordCrops("chunks"))
    short = replace(
        records, source=ArraySource(records.signals[..., :900])
    )  # 3 full 2.5 s chunks + 150 samples
    windows = enc.preprocess(short.signals, short.fs, short.leads, window="official")
    sliding = enc.preprocess(short.signals, short.fs, short.leads, window="sliding")
    assert (
        windows.shape[1] == 3 and sliding.shape[1] == 4
    )  # 'sliding' zero-pads the tail, 'official' drops it
    np.testing.assert_array_equal(windows, sliding[:, :3])
    tiny = replace(records, source=ArraySource(records.signals[..., :200]))  # shorter than one window
    one = enc.preprocess(tiny.signals, tiny.fs, tiny.leads, window="official")
    np.testing.assert_array_equal(one[:, 0], enc.preprocess(tiny.signals, tiny.fs, tiny.leads, window="fit"))


def test_official_is_fit_for_first_window_contracts_same_key(enc, records, tmp_path):
    fit = ecgprobe.extract(enc, records, window="fit", cache_dir=tmp_path, progress=False)
    before = TinyTestEncoder.calls
    default = ecgprobe.extract(enc, records, cache_dir=tmp_path, progress=False)
    assert TinyTestEncoder.calls == before and default.key == fit.key  # same numbers, same cache entry
    assert default.provenance["window"] == "fit" and "crops" not in default.provenance["encoder"]["spec"]


def test_crops_and_clip_are_part_of_the_key(records, tmp_path):
    from dataclasses import replace

    from ecgprobe.encoders.base import RecordCrops

    plain = ecgprobe.create_encoder("tiny-test", device="cpu")
    key = ecgprobe.extract(plain, records, cache_dir=tmp_path, progress=False).key
    spaced = _with_crops(ecgprobe.create_encoder("tiny-test", device="cpu"), RecordCrops("spaced", n=2))
    assert ecgprobe.extract(spaced, records, cache_dir=tmp_path, progress=False).key != key
    clipped = ecgprobe.create_encoder("tiny-test", device="cpu")
    clipped.spec = replace(clipped.spec, clip_mv=0.1)
    assert ecgprobe.extract(clipped, records, cache_dir=tmp_path, progress=False).key != key


def test_clip_is_applied_before_anything_else(records):
    from dataclasses import replace

    enc = ecgprobe.create_encoder("tiny-test", device="cpu")
    enc.spec = replace(enc.spec, clip_mv=0.2)
    x = records.signals[:4]
    plain = ecgprobe.create_encoder("tiny-test", device="cpu")
    np.testing.assert_array_equal(
        enc.preprocess(x, records.fs, records.leads),
        plain.preprocess(np.clip(x, -0.2, 0.2), records.fs, records.leads),
    )


def test_window_and_crops_misuse_are_clear_errors(enc, records):
    from ecgprobe.encoders.base import InputSpec, RecordCrops

    with pytest.raises(ConfigError, match="hop applies to window='sliding' only"):
        ecgprobe.extract(enc, records, hop=10, progress=False)
    with pytest.raises(ConfigError, match="'official'"):
        ecgprobe.extract(enc, records, window="crops", progress=False)
    with pytest.raises(ConfigError, match="n >= 2"):
        RecordCrops("spaced", n=1)
    with pytest.raises(ConfigError, match="not in"):
        RecordCrops("random")
    with pytest.raises(ConfigError, match="clip_mv must be > 0"):
        InputSpec(fs=100.0, leads=("I",), n_samples=10, clip_mv=0.0)
