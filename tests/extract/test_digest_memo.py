"""The digest memo beside the cache: a cached re-run reads no record file (not even a header),
yet every change to a record's files is still detected — an edit that keeps the size, one that
sets the modification time back, a file replaced by another — and files changed moments ago
are never remembered."""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

import ecgprobe
from ecgprobe.cli import common
from ecgprobe.data import _digest_memo, wfdb_io
from ecgprobe.data.sources import FileSource
from ecgprobe.extract.cache import remembered_digests


@pytest.fixture
def old_files(monkeypatch):
    """Shrink the racy window to 50 ms and wait it out, so freshly copied files count as old."""
    monkeypatch.setattr(_digest_memo, "RACY_SECONDS", 0.05)

    def settle() -> None:
        time.sleep(0.1)

    return settle


@pytest.fixture
def no_reads(monkeypatch):
    """Count the records whose files are hashed (``wfdb_digest`` -> ``files_digest``)."""
    calls: list[str] = []
    original = wfdb_io.files_digest

    def counting(paths):
        calls.append(str(paths[0]))
        return original(paths)

    monkeypatch.setattr(wfdb_io, "files_digest", counting)
    return calls


def _lazy(root: Path) -> ecgprobe.RecordSet:
    return ecgprobe.load_dataset("ptbxl", root, sampling_rate=100, lazy=True)


def _digests(rs, cache: Path) -> tuple[np.ndarray, _digest_memo.DigestMemo]:
    with remembered_digests(cache, rs.fingerprint) as memo:
        d = rs.content_digests()
    return d, memo


def _flip_byte(path: Path, offset: int = 1001) -> None:
    """Change one byte of ``path`` in place (same size), restoring its modification time."""
    st = path.stat()
    blob = bytearray(path.read_bytes())
    blob[offset] ^= 0x01
    path.write_bytes(bytes(blob))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns


def test_rerun_reads_no_file_and_gives_the_same_digests(ptbxl_copy, tmp_path, old_files, no_reads):
    rs = _lazy(ptbxl_copy(8))
    old_files()
    first, memo = _digests(rs, tmp_path / "cache")
    assert (memo.hits, memo.misses) == (0, 8) and len(no_reads) == 8
    assert list(first) == list(rs.content_digests())  # the memo changes no digest
    no_reads.clear()
    again, memo = _digests(rs, tmp_path / "cache")
    assert (memo.hits, memo.misses) == (0 + 8, 0) and no_reads == []
    assert list(again) == list(first)
    assert not memo.changed  # nothing new: the memo file is not rewritten


def test_changes_are_detected_even_with_size_and_mtime_kept(ptbxl_copy, tmp_path, old_files, no_reads):
    root = ptbxl_copy(6)
    rs = _lazy(root)
    old_files()
    first, _ = _digests(rs, tmp_path / "cache")
    dat = Path(rs.source.path(2)).with_suffix(".dat")
    _flip_byte(dat)  # same size, modification time set back: only the change time tells
    hea = Path(rs.source.path(4))
    replacement = hea.with_name("replacement.hea")
    shutil.copy(hea, replacement)
    _flip_byte(replacement, offset=0)  # a different header put in place under the same name
    replacement.replace(hea)
    no_reads.clear()
    again, memo = _digests(rs, tmp_path / "cache")
    changed = [i for i in range(6) if again[i] != first[i]]
    assert changed == [2, 4]
    assert memo.misses == 2 and sorted(Path(p).name for p in no_reads) == sorted(
        [Path(rs.source.path(2)).name, hea.name]
    )
    fresh = rs.content_digests()  # what the files hold now, without any memo
    assert list(again) == list(fresh)


def test_files_changed_moments_ago_are_not_remembered(ptbxl_copy, tmp_path, no_reads):
    rs = _lazy(ptbxl_copy(3))  # just copied: inside the default 2 s racy window
    _, memo = _digests(rs, tmp_path / "cache")
    assert memo.misses == 3 and memo.kept() == {}
    _, memo = _digests(rs, tmp_path / "cache")
    assert memo.hits == 0 and memo.misses == 3  # hashed again: their metadata cannot be trusted yet


def test_unreadable_memo_is_rebuilt(ptbxl_copy, tmp_path, old_files):
    rs = _lazy(ptbxl_copy(3))
    old_files()
    first, _ = _digests(rs, tmp_path / "cache")
    memo_file = next((tmp_path / "cache" / ".digest-memo").glob("*.json"))
    memo_file.write_text("{not json")
    again, memo = _digests(rs, tmp_path / "cache")
    assert list(again) == list(first) and memo.misses == 3
    again, memo = _digests(rs, tmp_path / "cache")
    assert memo.hits == 3


def test_cached_extraction_reads_no_record_and_recomputes_a_changed_one(ptbxl_copy, tmp_path, old_files):
    root = ptbxl_copy(8)
    enc = ecgprobe.create_encoder("tiny-test", device="cpu")
    cache = tmp_path / "cache"
    old_files()
    first = ecgprobe.extract(enc, _lazy(root), cache_dir=cache, shard_size=4, progress=False)
    rs = _lazy(root)
    calls = {"read": 0}
    read = FileSource.read

    def counting_read(self, indices):
        calls["read"] += len(indices)
        return read(self, indices)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(FileSource, "read", counting_read)
        mp.setattr(wfdb_io, "files_digest", lambda paths: pytest.fail(f"read {paths[0]}"))
        again = ecgprobe.extract(enc, rs, cache_dir=cache, shard_size=4, progress=False)
    assert calls["read"] == 0 and again.provenance["extraction"]["from_cache"] == 8
    np.testing.assert_array_equal(again.X, first.X)
    _shift_samples(Path(rs.source.path(5)).with_suffix(".dat"))
    third = ecgprobe.extract(enc, _lazy(root), cache_dir=cache, shard_size=4, progress=False)
    stats = third.provenance["extraction"]
    assert (stats["computed"], stats["changed"]) == (1, 1)
    assert not np.array_equal(third.X[5], first.X[5]) and third.key != first.key


def _shift_samples(dat: Path, n_signals: int = 12, delta: int = 200) -> None:
    """Move one sample of lead I up and the next one down (its checksum holds), keeping the size
    and the modification time: a real change that only the change time reveals."""
    st = dat.stat()
    raw = np.fromfile(dat, dtype="<i2")
    raw[300 * n_signals] += delta
    raw[301 * n_signals] -= delta
    raw.tofile(dat)
    os.utime(dat, ns=(st.st_atime_ns, st.st_mtime_ns))


def _args(root: Path, *options: str) -> argparse.Namespace:
    return argparse.Namespace(dataset="ptbxl", root=str(root), options=["sampling_rate=100", *options])


def test_extract_command_loads_lazily_unless_told_otherwise(ptbxl_copy):
    root = ptbxl_copy(4)
    assert not common.dataset_from_args(_args(root), lazy=True).source.in_memory
    assert common.dataset_from_args(_args(root, "lazy=false"), lazy=True).source.in_memory
    # dropping non-finite records needs the eager scan: the loader's default stays
    assert common.dataset_from_args(_args(root, "nonfinite=drop"), lazy=True).source.in_memory
    assert common.dataset_from_args(_args(root)).source.in_memory  # other commands: as before


def test_a_dataset_read_into_memory_shares_the_cache_of_the_same_dataset_read_lazily(ptbxl_copy, tmp_path):
    # `ecgprobe extract` reads lazily, `report`/`probe` into memory: their runs must reuse each other's
    root = ptbxl_copy(12)
    eager = ecgprobe.load_dataset("ptbxl", root, sampling_rate=100, lazy=False)
    lazy = ecgprobe.load_dataset("ptbxl", root, sampling_rate=100, lazy=True)
    assert eager.source.in_memory and not lazy.source.in_memory
    idx = np.arange(len(eager))
    assert eager.source.digests(idx) == lazy.source.digests(idx)
    assert eager.source.take(idx[::-3]).digests(np.arange(4)) == lazy.source.digests(idx[::-3])
    enc = ecgprobe.create_encoder("tiny-test", seed=0, device="cpu")
    first = ecgprobe.extract(enc, lazy, cache_dir=tmp_path / "cache", progress=False)
    again = ecgprobe.extract(enc, eager, cache_dir=tmp_path / "cache", progress=False)
    assert first.provenance["extraction"]["from_cache"] == 0
    assert again.provenance["extraction"]["from_cache"] == len(eager)
    np.testing.assert_array_equal(first.X, again.X)
