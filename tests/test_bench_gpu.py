"""The GPU benchmark script (issue 18, part 4) runs on any machine: without CUDA it says so and
exits 0; ``--cpu-check`` runs every step (equality, throughput, probe and scarcity) with the CPU
in the device's place, so the script is known to work before a GPU is lent."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_gpu  # noqa: E402


def test_without_cuda_it_says_so_and_exits_0(capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert bench_gpu.main([]) == 0
    assert "no CUDA device" in capsys.readouterr().out


def test_cpu_check_runs_every_step_and_checks_the_tolerances(tmp_path, capsys):
    import json

    out = tmp_path / "gpu.json"
    assert bench_gpu.main(["--cpu-check", "--records", "8", "--batch-size", "8", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["equality"]["fp32"]["max_rel_l2"] == pytest.approx(0.0, abs=1e-6)
    assert doc["equality"]["bf16"]["ok"] and doc["equality"]["bf16"]["max_rel_l2"] > 0  # bf16 really ran
    assert {r["what"] for r in doc["runs"]} == {"linear_probe", "scarcity"}
    assert all(v == 0.0 for v in doc["accuracy"].values())  # the same solver on both sides
    assert doc["throughput"]["fp32_ecg_s"] > 0 and "[throughput]" in capsys.readouterr().out


def test_errors_measure_relative_l2_and_cosine():
    import numpy as np

    ref = np.array([[3.0, 4.0], [1.0, 0.0]])
    err = bench_gpu._errors(ref, ref * np.array([[1.0], [1.01]]))
    assert err["max_rel_l2"] == pytest.approx(0.01) and err["min_cosine"] == pytest.approx(1.0)
