"""What every zoo fidelity test shares: the reference folder, the tolerance, the relative error
against an output of the official code, and the fixed 500 Hz input those outputs were made from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "zoo"
TOL = 1e-4  # max abs difference relative to the reference's max abs value


def rel_err(ours, official) -> float:
    """``max |ours - official| / max |official|`` (``ours`` an array or a CPU tensor)."""
    ours = ours.detach().numpy() if isinstance(ours, torch.Tensor) else np.asarray(ours)
    return float(np.abs(ours - official).max() / np.abs(official).max())


def close(ours, official) -> None:
    """Assert :func:`rel_err` within :data:`TOL`."""
    err = rel_err(ours, official)
    assert err <= TOL, f"max abs diff {err:.3g} x scale exceeds {TOL}"


def input_500hz() -> tuple[np.ndarray, list[str]]:
    """The fixed input records ``(N, 12, T)`` at 500 Hz and their lead names."""
    return np.load(FIX / "input_500hz.npy"), json.loads((FIX / "input_500hz.json").read_text())["leads"]


def records_of(signals: np.ndarray, fs: float = 500.0):
    """A RecordSet holding ``signals`` ``(N, 12, T)`` (leads I..V6, mV) at ``fs``, for ``extract``."""
    from dataclasses import replace

    import ecgprobe
    from ecgprobe.data import ArraySource

    shell = ecgprobe.load_dataset("synthetic", n_records=len(signals), fs=fs, seed=0)
    return replace(shell, source=ArraySource(np.ascontiguousarray(signals, dtype=np.float32)))
