"""Extraction through Ray workers writing into the shared cache."""

from __future__ import annotations

import numpy as np
import pytest

import ecgprobe
from ecgprobe.encoders.testing import TinyTestEncoder

ray = pytest.importorskip("ray", reason="Ray is an optional extra (pip install 'ecgprobe[ray]')")


@pytest.fixture(scope="module")
def ray_local():
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    except Exception as exc:  # a machine where Ray cannot start is an environment issue, not ours
        pytest.skip(f"Ray could not start here: {exc}")
    yield
    ray.shutdown()


@pytest.mark.slow
def test_distributed_equals_local_and_fills_the_cache(ray_local, tmp_path):
    from ecgprobe.extract.distributed import extract_distributed

    rs = ecgprobe.load_dataset("synthetic", n_records=90, fs=100.0, seed=4)
    before = TinyTestEncoder.calls
    out = extract_distributed(
        "tiny-test",
        rs,
        cache_dir=tmp_path,
        layers=["conv1", "embedding"],
        shard_size=16,
        n_workers=2,
        progress=False,
    )
    assert TinyTestEncoder.calls == before  # every forward pass ran in the workers
    local = ecgprobe.extract(
        ecgprobe.create_encoder("tiny-test", device="cpu"), rs, layers=["conv1", "embedding"], progress=False
    )
    for layer in ("conv1", "embedding"):
        np.testing.assert_allclose(out[layer].X, local[layer].X, rtol=1e-5, atol=1e-6)
    assert len(list(tmp_path.rglob("shard-*.json"))) == 2 * 6
    again = extract_distributed(
        "tiny-test", rs, cache_dir=tmp_path, layers=["conv1", "embedding"], progress=False
    )
    assert again["embedding"].key == out["embedding"].key
