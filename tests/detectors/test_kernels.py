"""The native drift-test kernels (``detectors._kernels``) give what numpy and SciPy give, bit
for bit; and the KS p-value driftline takes from the statistic alone is SciPy's."""

from __future__ import annotations

import os

import numpy as np
import pytest
from scipy import stats

from detectors import stattests
from detectors.profile import NumericalSummary
from detectors.stattests import ks_pvalue, ks_statistic_numpy
from tests.conftest import require_tool

# scripts/test.sh builds the kernels and sets this: without it, the native tests would skip.
NATIVE_REQUIRED = os.environ.get("DRIFTLINE_NATIVE_REQUIRED") == "1"


def native_ks_statistic():
    kernels = require_tool("the native kernels detectors._kernels", stattests._kernels,
                           "pip builds them where Rust's cargo is on the PATH", required=NATIVE_REQUIRED)
    return kernels.ks_statistic


IMPLEMENTATIONS = {"native": native_ks_statistic, "numpy": lambda: ks_statistic_numpy}


def scipy_statistic(u: np.ndarray, v: np.ndarray) -> float:
    """scipy.stats.ks_2samp's own lines, up to its statistic."""
    data_all = np.concatenate([u, v])
    cddiffs = np.searchsorted(u, data_all, side="right") / u.size - np.searchsorted(v, data_all, side="right") / v.size
    min_s, max_s = np.clip(-cddiffs.min(), 0, 1), cddiffs.max()
    return float(min_s if min_s > max_s else max_s)


def random_samples(rng: np.random.Generator, largest: int):
    """Pairs of sorted samples of sizes 1..largest: continuous, rounded (ties within and
    across the samples), a few integers, identical, disjoint, shifted."""
    for trial in range(2000):
        n, m = rng.integers(1, largest + 1, 2) if trial % 3 else rng.integers(1, 12, 2)
        kind = trial % 5
        if kind == 0:
            u, v = rng.normal(size=n), rng.normal(rng.choice([0.0, 0.3]), size=m)
        elif kind == 1:
            digits = int(rng.integers(0, 3))
            u, v = rng.normal(size=n).round(digits), rng.normal(0.2, size=m).round(digits)
        elif kind == 2:
            u, v = rng.integers(0, 4, n).astype(float), rng.integers(1, 5, m).astype(float)
        elif kind == 3:
            u = rng.normal(size=n).round(1)
            v = u[rng.integers(0, n, m)]
        else:
            u, v = rng.uniform(size=n), rng.uniform(size=m) + rng.choice([-1.0, 1.0])
        yield np.sort(u), np.sort(v)


@pytest.mark.parametrize("implementation", list(IMPLEMENTATIONS))
def test_ks_statistic_is_scipys_bit_for_bit(implementation):
    ks_statistic = IMPLEMENTATIONS[implementation]()
    for u, v in random_samples(np.random.default_rng(7), 2000):
        expected = scipy_statistic(u, v)
        for first, second in ((u, v), (v, u)):
            statistic = ks_statistic(first, second)
            assert type(statistic) is float
            assert statistic == expected and not np.signbit(statistic), (first.size, second.size)


def test_native_and_numpy_statistics_agree_on_the_extremes():
    native = native_ks_statistic()
    single, equal, far = np.array([1.0]), np.full(50, 2.0), np.arange(3.0) + 1e300
    for u, v in ((single, single), (single, equal), (equal, equal), (single, far), (-far[::-1].copy(), far),
                 (np.array([-0.0, 0.0]), np.array([0.0])), (np.arange(10_000.0), np.arange(7.0) * 1500)):
        assert native(u, v) == ks_statistic_numpy(u, v) == scipy_statistic(u, v)


def test_native_statistic_refuses_what_it_cannot_read():
    native = native_ks_statistic()
    values = np.arange(10.0)
    with pytest.raises(ValueError, match="empty"):
        native(values, np.zeros(0))
    with pytest.raises(ValueError, match="contiguous"):
        native(values[::2], values)
    with pytest.raises((TypeError, ValueError, BufferError)):
        native(values.astype(np.float32), values)


@pytest.mark.parametrize("kernels", ["native", "numpy", "numpy, SciPy without _attempt_exact_2kssamp"])
def test_ks_pvalue_is_scipys_public_ks_2samp(kernels, monkeypatch):
    """Exact p-values (equal and unequal sizes, up to 10,000), asymptotic ones above that."""
    if kernels == "native":
        native_ks_statistic()
    else:
        monkeypatch.setattr(stattests, "_kernels", None)
    if "without" in kernels:
        ks_2samp, _exact = stattests._scipy_ks()
        monkeypatch.setattr(stattests, "_scipy_ks", lambda: (ks_2samp, None))
    monkeypatch.setattr(stattests, "_KS_PVALUES", {})
    rng = np.random.default_rng(11)
    sizes = [(1, 1), (1, 7), (5, 5), (100, 1000), (900, 1000), (1000, 1000), (1000, 3000), (10_000, 10_000),
             (10_001, 1000), (20_000, 30_000)]
    sizes += [tuple(rng.integers(1, 1500, 2)) for _ in range(30)]
    for n, m in sizes:
        for shift, digits in ((0.0, 1), (0.1, 3), (0.5, 12), (3.0, 2)):
            u = np.sort(rng.normal(size=n).round(digits))
            v = np.sort(rng.normal(shift, size=m).round(digits))
            assert ks_pvalue(NumericalSummary(u), NumericalSummary(v), "numerical") == stats.ks_2samp(u, v).pvalue, \
                (n, m, shift)


def test_exact_ks_pvalues_are_cached_by_lattice_step_not_by_rounding(monkeypatch):
    """0.5 - 0.2 and 0.4 - 0.1 are one KS statistic of two 10-value samples (h = 3 of lcm 10)
    that rounds two ways: one exact p-value computed and kept, SciPy's for both."""
    monkeypatch.setattr(stattests, "_KS_PVALUES", {})
    u, v = np.sort(np.arange(10.0)), np.sort(np.arange(10.0) + 3)
    first, second = 0.5 - 0.2, 0.4 - 0.1
    assert first != second
    pvalues = {stattests.ks_pvalue_of_statistic(statistic, NumericalSummary(u), NumericalSummary(v))
               for statistic in (first, second)}
    assert pvalues == {stats.ks_2samp(u, v).pvalue}
    assert len(stattests._KS_PVALUES) == 1


@pytest.mark.parametrize("method", ["chisquare", "z", "hellinger", "psi", "jensenshannon"])
def test_a_window_with_the_references_categories_scores_as_one_listed_otherwise(method):
    """A window's counts listed in the reference's order skip the alignment; listed in
    another order they are aligned: the two scores are one, bit for bit."""
    from detectors.summaries import CategoricalSummary

    reference = CategoricalSummary([0.0, 1.0, 2.0, 3.0], np.array([160, 170, 1, 669]))
    in_order = CategoricalSummary([0.0, 1.0, 2.0, 3.0], np.array([150, 180, 0, 670]))
    reordered = CategoricalSummary([3.0, 1.0, 2.0, 0.0], np.array([670, 180, 0, 150]))
    score = stattests.METHODS[method].score
    assert score(reference, in_order, "categorical") == score(reference, reordered, "categorical")
