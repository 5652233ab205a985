"""Sampled lead Shapley values: unbiased, efficient, and their standard errors cover."""

from __future__ import annotations

import numpy as np

from ecgprobe.analyzers._stats import attribution_methods as am


def _game(n_leads: int, seed: int):
    """A non-additive value function of 'present' leads: pairwise interactions and a squashing."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(n_leads, 3))
    inter = rng.normal(scale=0.7, size=(n_leads, n_leads, 3))

    def value(batch: np.ndarray) -> np.ndarray:  # batch (B, L, n): present leads hold x, others 0
        on = (np.abs(batch).sum(axis=-1) > 0).astype(float)  # (B, L)
        lin = on @ w
        pair = np.einsum("bi,bj,ijc->bc", on, on, inter)
        return np.tanh(lin + 0.3 * pair)

    x = np.ones((n_leads, 5), dtype=np.float32)
    return value, x, np.zeros_like(x)


def test_sampled_values_match_exact_within_their_standard_errors():
    inside, total = 0, 0
    for seed in range(12):
        value, x, base = _game(8, seed)
        exact = am.shapley_from_values(am.lead_coalition_values(value, x, base, 64), 8)
        phi, se, used = am.sampled_lead_shapley(value, x, base, n_permutations=32, seed=seed, batch_size=64)
        # efficiency holds exactly for every permutation, hence for the estimate
        np.testing.assert_allclose(phi.sum(axis=0), (value(x[None]) - value(base[None]))[0], atol=1e-9)
        z = np.abs(phi - exact) / se
        inside += int((z <= 1.96).sum())
        total += z.size
        assert used <= 32 * 7 + 2
    coverage = inside / total
    assert 0.88 <= coverage <= 1.0, coverage  # nominal 95 %: the SE is honest


def test_standard_error_shrinks_with_more_permutations_and_seed_is_reproducible():
    value, x, base = _game(10, 3)
    a = am.sampled_lead_shapley(value, x, base, n_permutations=16, seed=1, batch_size=128)
    b = am.sampled_lead_shapley(value, x, base, n_permutations=256, seed=1, batch_size=128)
    assert np.median(b[1]) < np.median(a[1]) / 2.5  # ~ sqrt(16)
    again = am.sampled_lead_shapley(value, x, base, n_permutations=16, seed=1, batch_size=128)
    np.testing.assert_array_equal(a[0], again[0])


def test_auto_is_exact_when_cheap_and_sampled_for_twelve_leads():
    value, x, base = _game(6, 0)
    phi, se, how = am.lead_shapley(value, x, base, mode="auto", n_permutations=32, seed=0, batch_size=64)
    assert how == "exact" and se is None
    value, x, base = _game(12, 0)
    calls = []

    def counted(batch):
        calls.append(len(batch))
        return value(batch)

    phi, se, how = am.lead_shapley(counted, x, base, mode="auto", n_permutations=32, seed=0, batch_size=512)
    assert how == "sampled" and se.shape == phi.shape == (12, 3)
    assert sum(calls) <= 32 * 11 + 2 < 4096 / 10  # over 10x fewer evaluations than exact
