"""The request memo: a cached ``ecgprobe extract`` re-run is served without creating the encoder
(so without importing torch), with the same embeddings and keys as the normal path, and never
when anything the embeddings depend on changed — a record file, an encoder option, a checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ecgprobe.cli import common, main
from ecgprobe.extract import _reuse

ROOT = Path(__file__).resolve().parents[2]


def _age(root: Path, seconds: float = 60.0) -> None:
    """Files copied moments ago are never remembered (racy); a user's dataset is older."""
    past = time.time() - seconds
    for p in root.rglob("*"):
        if p.is_file():
            os.utime(p, (past, past))


@pytest.fixture
def counted(monkeypatch):
    calls = []
    original = common.encoder_from_args

    def counting(args, *, suffix=""):
        calls.append(suffix)
        return original(args, suffix=suffix)

    monkeypatch.setattr(common, "encoder_from_args", counting)
    return calls


def _run(root: Path, cache: Path, out: Path, *extra: str) -> int:
    args = ["extract", "--dataset", "ptbxl", "--root", str(root), "-o", "sampling_rate=100"]
    args += ["--encoder", "random-resnet1d", "--cache-dir", str(cache), "--out", str(out), "--quiet", *extra]
    return main(args)


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def test_a_cached_rerun_is_served_without_the_encoder_and_equals_the_normal_path(
    ptbxl_copy, tmp_path, counted
):
    root = ptbxl_copy(8)
    _age(root)
    cache = tmp_path / "cache"
    assert _run(root, cache, tmp_path / "o1") == 0 and len(counted) == 1
    assert list((cache / "requests").glob("*.json"))
    assert _run(root, cache, tmp_path / "o2") == 0 and len(counted) == 1  # served by the memo
    a, b = (np.load(tmp_path / o / "embeddings.npy") for o in ("o1", "o2"))
    assert np.array_equal(a, b)
    m1, m2 = _manifest(tmp_path / "o1"), _manifest(tmp_path / "o2")
    assert json.dumps(m1.get("layers")) == json.dumps(m2.get("layers"))
    keys = [[e.get("key") for e in m.get("embeddings", [])] or m.get("key") for m in (m1, m2)]
    assert keys[0] == keys[1]
    # another encoder option is another request: the encoder is created
    assert _run(root, cache, tmp_path / "o3", "-E", "seed=1") == 0 and len(counted) == 2
    assert not np.array_equal(a, np.load(tmp_path / "o3" / "embeddings.npy"))


def test_a_changed_record_file_is_recomputed_through_the_encoder(ptbxl_copy, tmp_path, counted):
    root = ptbxl_copy(8)
    _age(root, 120)
    cache = tmp_path / "cache"
    assert _run(root, cache, tmp_path / "o1") == 0
    import wfdb

    dat = sorted(root.rglob("*.dat"))[3]
    rec = wfdb.rdrecord(str(dat.with_suffix("")), physical=False)
    rec.d_signal = rec.d_signal.copy()
    rec.d_signal[100:300] = 0  # two seconds of baseline: a valid record with other content
    rec.wrsamp(write_dir=str(dat.parent), expanded=False)
    _age(root, 60)  # changed, and aged past the racy window
    assert _run(root, cache, tmp_path / "o2") == 0 and len(counted) == 2  # the memo did not serve it
    a, b = (np.load(tmp_path / o / "embeddings.npy") for o in ("o1", "o2"))
    changed = np.flatnonzero(np.abs(a - b).max(axis=1) > 0)
    assert len(changed) == 1
    ids = np.load(tmp_path / "o2" / "ids.npy", allow_pickle=True)
    assert dat.stem.split("_")[0].lstrip("0") in str(ids[changed[0]])


def test_checkpoint_state_is_part_of_the_request(tmp_path, synthetic_small):
    ckpt = tmp_path / "w.pt"
    ckpt.write_bytes(b"x" * 10)
    kw = {
        "encoder": "e",
        "options": [],
        "sha256": None,
        "extraction": {"layers": None},
        "records": synthetic_small,
    }
    assert _reuse.request_key(checkpoint=ckpt, **kw) is None  # written moments ago: racy
    past = time.time() - 60
    os.utime(ckpt, (past, past))
    first = _reuse.request_key(checkpoint=ckpt, **kw)
    assert first is not None and first == _reuse.request_key(checkpoint=ckpt, **kw)
    ckpt.write_bytes(b"y" * 11)
    os.utime(ckpt, (past + 1, past + 1))
    assert _reuse.request_key(checkpoint=ckpt, **kw) not in (None, first)
    assert _reuse.request_key(checkpoint=tmp_path / "missing.pt", **kw) is None
    assert _reuse.request_key(checkpoint=None, **kw) != _reuse.request_key(
        checkpoint=None, **{**kw, "options": ["a=1"]}
    )


def test_a_memo_served_rerun_imports_no_torch(ptbxl_copy, tmp_path):
    root = ptbxl_copy(6)
    _age(root)
    cache = tmp_path / "cache"
    assert _run(root, cache, tmp_path / "o1") == 0
    probe = (
        "import sys; from ecgprobe.cli import main; "
        f"rc = main(['extract', '--dataset', 'ptbxl', '--root', {str(root)!r}, '-o', 'sampling_rate=100', "
        f"'--encoder', 'random-resnet1d', '--cache-dir', {str(cache)!r}, '--out', {str(tmp_path / 'o2')!r}, '--quiet']); "
        "print(rc, 'torch' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert proc.stdout.split() == ["0", "False"], proc.stderr
