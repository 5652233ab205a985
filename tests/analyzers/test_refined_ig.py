"""Integrated Gradients with as few steps as completeness allows: a linear model keeps the first
8 steps, a curved one is refined until its gap is within the tolerance; tolerance 0 is the old
fixed-step behaviour."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ecgprobe.analyzers._stats.refined_ig import FIRST_STEPS, refined_attribution


class _Model(torch.nn.Module):
    def __init__(self, curved: bool) -> None:
        super().__init__()
        self.W = torch.nn.Parameter(torch.linspace(-1, 1, 2 * 30).reshape(2, 30))
        self.curved = curved

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.reshape(len(x), -1)
        return torch.sin(25 * z) @ self.W.T if self.curved else z @ self.W.T


def _run(curved: bool, tolerance: float, max_steps: int = 64):
    x = np.random.default_rng(0).normal(size=(3, 2, 15)).astype(np.float32)
    opts = {"n_samples": 4, "stdev": 0.1, "batch_size": 64, "seed": 0}
    return refined_attribution(
        _Model(curved), x, np.zeros_like(x), 1, method="ig", max_steps=max_steps, tolerance=tolerance, **opts
    )


def test_linear_model_stops_after_the_first_pass():
    _maps, delta, steps = _run(curved=False, tolerance=0.01)
    assert (steps == FIRST_STEPS).all() and np.abs(delta).max() < 1e-4


def test_curved_model_is_refined_until_the_gap_is_small():
    maps, delta, steps = _run(curved=True, tolerance=1e-3)
    total = maps.sum(axis=(1, 2)) - delta
    assert (steps > FIRST_STEPS).any()
    done = steps < 64  # examples that stopped early met the tolerance
    assert (np.abs(delta[done]) <= 1e-3 * np.abs(total[done])).all()
    fixed = _run(curved=True, tolerance=0.0)
    assert (fixed[2] == 64).all()  # tolerance 0: the fixed number of steps
    np.testing.assert_allclose(maps.sum(axis=(1, 2)), fixed[0].sum(axis=(1, 2)), rtol=2e-3)


def test_tolerance_is_validated():
    from ecgprobe.analyzers import ANALYZERS
    from ecgprobe.exceptions import ConfigError

    with pytest.raises(ConfigError, match="ig_tolerance"):
        ANALYZERS.get("input_attribution")(ig_tolerance=2.0)._validate()
