"""wasserstein_sorted (quantile form on a cached grid) against scipy.stats.wasserstein_distance."""

import numpy as np
import pytest
from scipy import stats

from detectors.stattests import _QUANTILE_GRID_MAX_CACHED, _quantile_grid, wasserstein_sorted


def sample(rng, kind, size):
    if kind == "continuous":
        return rng.gamma(2.0, size=size) - 1.5
    if kind == "ties":  # rounded: many repeated values within and across samples
        return rng.normal(size=size).round(1)
    if kind == "discrete":
        return rng.integers(0, 5, size).astype(float)
    if kind == "scaled":  # magnitudes far from 1
        return rng.normal(size=size) * 10.0 ** rng.integers(-8, 9)
    raise ValueError(kind)


def assert_equals_scipy(u, v):
    u, v = np.sort(u), np.sort(v)
    expected = stats.wasserstein_distance(u, v)
    assert wasserstein_sorted(u, v) == pytest.approx(expected, rel=1e-9, abs=1e-300)


SIZES = [(1, 1), (1, 2), (2, 1), (1, 7), (7, 1), (2, 3), (3, 2), (4, 6), (5, 10), (10, 5),
         (97, 89), (100, 300), (5000, 10000), (10000, 5000), (9990, 5000), (4096, 6144)]


@pytest.mark.parametrize("kind", ["continuous", "ties", "discrete", "scaled"])
@pytest.mark.parametrize("n,m", SIZES)
def test_equals_scipy(kind, n, m):
    rng = np.random.default_rng([n, m, len(kind)])
    assert_equals_scipy(sample(rng, kind, n), sample(rng, kind, m))


def test_equals_scipy_on_many_random_sizes():
    rng = np.random.default_rng(7)
    for _ in range(400):
        n, m = (int(size) for size in rng.integers(1, 60, 2))
        kind = str(rng.choice(["continuous", "ties", "discrete", "scaled"]))
        assert_equals_scipy(sample(rng, kind, n), sample(rng, kind, m))


def test_sizes_too_large_to_cache_are_computed_too():
    n, m = 40_000, _QUANTILE_GRID_MAX_CACHED - 40_000 + 7
    rng = np.random.default_rng(3)
    assert_equals_scipy(rng.normal(size=n), rng.normal(0.5, 2.0, size=m))


def test_same_distribution_at_different_sizes_is_zero_apart():
    u = np.array([1.0, 2.0, 2.0, 5.0])
    assert wasserstein_sorted(u, np.repeat(u, 3)) == 0.0
    assert wasserstein_sorted(np.repeat(u, 5), np.repeat(u, 2)) == 0.0


def test_shift_moves_the_distance_by_the_shift():
    rng = np.random.default_rng(11)
    u = np.sort(rng.normal(size=300))
    assert wasserstein_sorted(u, np.sort(np.concatenate((u, u))) + 2.5) == pytest.approx(2.5, rel=1e-12)


@pytest.mark.parametrize("n,m", [(1, 2), (3, 7), (5000, 10000), (12, 18), (9990, 5000)])
def test_grid_gives_each_order_statistic_its_share(n, m):
    """Every u[i] is weighted 1/n in all, every v[j] 1/m, and the widths add up to 1."""
    u_index, v_index, weights = _quantile_grid(n, m)
    assert (weights > 0).all()
    assert weights.sum() == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(np.bincount(u_index, weights, minlength=n), 1 / n, rtol=1e-9)
    np.testing.assert_allclose(np.bincount(v_index, weights, minlength=m), 1 / m, rtol=1e-9)
    assert len(weights) == n + m - np.gcd(n, m)  # the common breakpoints make no step of their own


def test_cached_grid_is_not_changed_by_calls():
    rng = np.random.default_rng(5)
    u, v = np.sort(rng.normal(size=30)), np.sort(rng.normal(size=45))
    first = wasserstein_sorted(u, v)
    wasserstein_sorted(u + 100.0, v)
    assert wasserstein_sorted(u, v) == first
    assert not _quantile_grid(30, 45)[0].flags.writeable
