"""Shared fixtures: the real data in ../shared/data (skipped when absent) and small synthetic sets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

# ../shared/data beside the project, or wherever ECGPROBE_TEST_DATA points (e.g. from a git worktree)
SHARED_DATA = Path(
    os.environ.get("ECGPROBE_TEST_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")
)
PTBXL_ROOT = SHARED_DATA / "ptbxl-mini"
CINC_ROOT = SHARED_DATA / "cinc2021-sample" / "records"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not found at {path} (the tests expect ../shared/data beside the project)")
    return path


@pytest.fixture(scope="session")
def ptbxl_root() -> Path:
    """The real PTB-XL mini folder (500 records, official layout)."""
    return _need(PTBXL_ROOT)


@pytest.fixture(scope="session")
def cinc_root() -> Path:
    """The real PhysioNet/CinC 2021 sample records (50 records)."""
    return _need(CINC_ROOT)


@pytest.fixture(scope="session")
def ptbxl100(ptbxl_root):
    """PTB-XL mini at 100 Hz with superclass labels (loaded once per session)."""
    import ecgprobe

    return ecgprobe.load_dataset("ptbxl", ptbxl_root, sampling_rate=100)


@pytest.fixture(scope="session")
def synthetic_small():
    """120 synthetic records at 100 Hz, 10 s (fast to generate and to embed)."""
    import ecgprobe

    return ecgprobe.load_dataset("synthetic", n_records=120, fs=100.0, seed=0)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def ptbxl_copy(ptbxl_root, tmp_path):
    """Factory: a writable copy of the first ``n`` PTB-XL mini records (100 Hz files only)."""
    import shutil

    import pandas as pd

    def make(n: int = 12) -> Path:
        dst = tmp_path / "ptbxl"
        dst.mkdir()
        df = pd.read_csv(ptbxl_root / "ptbxl_database.csv").head(n)
        df.to_csv(dst / "ptbxl_database.csv", index=False)
        shutil.copy(ptbxl_root / "scp_statements.csv", dst / "scp_statements.csv")
        for rel in df["filename_lr"]:
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            for ext in (".hea", ".dat"):
                shutil.copy(ptbxl_root / f"{rel}{ext}", dst / f"{rel}{ext}")
                (dst / f"{rel}{ext}").chmod(0o644)
        return dst

    return make
