"""A window counted against a reference (``detectors.tabulation``) gives what sorting it gives:
SciPy's KS statistic and p-value, the missing values, the values outside the reference's
range; and where it was counted against another reference, the values themselves."""

from __future__ import annotations

import os

import numpy as np
import pytest
from scipy import stats

from detectors import stattests, tabulation
from detectors.quality import _outside
from detectors.selection import ks_columns
from detectors.stattests import ks_statistic_numpy
from detectors.summaries import NumericalSummary
from detectors.tabulation import TabulatedSummary
from tests.conftest import require_tool


@pytest.fixture
def window_tabulation():
    return require_tool("the native kernels detectors._kernels", tabulation.WindowTabulation,
                        "pip builds them where Rust's cargo is on the PATH",
                        required=os.environ.get("DRIFTLINE_NATIVE_REQUIRED") == "1")


def sample(rng: np.random.Generator, kind: int, size: int, shift: float = 0.0) -> np.ndarray:
    if kind == 0:
        return rng.normal(shift, size=size)
    if kind == 1:
        return rng.normal(shift, size=size).round(1)  # ties within and across the samples
    if kind == 2:
        return rng.integers(0, 6, size).astype(float) + shift
    return rng.lognormal(shift, 2.0, size)  # a heavy tail: most values in few equal-width buckets


@pytest.mark.parametrize("kind", range(4))
def test_a_sliding_window_counted_gives_the_sorted_windows_statistic_and_counts(window_tabulation, kind):
    rng = np.random.default_rng(kind)
    capacity = 97
    reference = NumericalSummary.from_values(sample(rng, kind, 300))
    counted = window_tabulation(capacity, [reference.sorted_values])
    held = np.zeros(0)
    for step in range(40):
        rows = sample(rng, kind, int(rng.integers(1, 130)), shift=rng.choice([0.0, 0.5]))
        rows[rng.random(rows.size) < 0.05] = rng.choice([np.nan, np.inf, -np.inf])
        counted.push([rows])
        held = np.concatenate((held, rows))[-capacity:]
        (statistic, present, missing, below, above), = counted.summaries()
        finite = np.sort(held[np.isfinite(held)])
        assert counted.rows == held.size
        assert (present, missing) == (finite.size, held.size - finite.size), step
        assert below == np.count_nonzero(finite < reference.sorted_values[0])
        assert above == np.count_nonzero(finite > reference.sorted_values[-1])
        if finite.size:  # ks_2samp's own arithmetic (its result is rounded to the lattice once exact)
            assert statistic == ks_statistic_numpy(reference.sorted_values, finite), step
            window = TabulatedSummary(held.copy, reference, statistic, present, missing, below + above)
            assert stattests.ks_pvalue(reference, window, "numerical") == \
                stats.ks_2samp(reference.sorted_values, finite).pvalue, step


def test_a_tabulated_summary_is_the_windows_summary_against_its_reference(window_tabulation):
    rng = np.random.default_rng(7)
    reference = NumericalSummary.from_values(rng.normal(size=500).round(2))
    other = NumericalSummary.from_values(rng.normal(1.0, size=400).round(2))
    values = rng.normal(0.3, size=200).round(2)
    values[:7] = np.nan
    counted = window_tabulation(len(values), [reference.sorted_values])
    counted.push([values])
    (statistic, present, missing, below, above), = counted.summaries()
    reads = []
    window = TabulatedSummary(lambda: reads.append(1) or values, reference, statistic, present, missing,
                              below + above)
    assert window.n == 193 and reads == []  # its counts need no values
    plain = NumericalSummary.from_values(values)
    assert window.sorted_values.tolist() == plain.sorted_values.tolist() and window.n == plain.n == 193
    assert window.n_missing == plain.n_missing == 7
    for against in (reference, other):  # counted against the one, computed from the values for the other
        expected = stats.ks_2samp(against.sorted_values, plain.sorted_values).pvalue
        assert stattests.ks_pvalue(against, window, "numerical") == expected
        assert _outside(against, window) == _outside(against, plain)
    assert window.ks_statistic_against(reference) == statistic and window.ks_statistic_against(other) is None
    assert reads == [1]  # the values were read once, for the other reference


def test_a_windows_tabulated_column_is_not_read_after_more_rows_came(window_tabulation):
    from service.core.window import RingColumns

    ring = RingColumns(4, ["x"])
    ring.append({"x": np.array([1.0, 2.0, 3.0])})
    ring.tabulate({"x": NumericalSummary.from_values(np.arange(5.0))})
    summary = ring.tabulated()["x"]
    ring.append({"x": np.array([9.0])})
    with pytest.raises(RuntimeError, match="read after 1 more rows came"):
        _ = summary.sorted_values
    assert ring.tabulated()["x"].sorted_values.tolist() == [1.0, 2.0, 3.0, 9.0]


def test_a_reference_that_is_not_sorted_and_finite_or_columns_that_do_not_match_are_refused(window_tabulation):
    with pytest.raises(ValueError, match="sorted and finite"):
        window_tabulation(10, [np.array([2.0, 1.0])])
    with pytest.raises(ValueError, match="sorted and finite"):
        window_tabulation(10, [np.array([1.0, np.nan])])
    with pytest.raises(ValueError, match="empty"):
        window_tabulation(10, [np.zeros(0)])
    with pytest.raises(ValueError, match="capacity"):
        window_tabulation(0, [np.array([1.0])])
    counted = window_tabulation(10, [np.array([1.0]), np.array([2.0])])
    with pytest.raises(ValueError, match="1 columns pushed to a tabulation of 2"):
        counted.push([np.array([1.0])])
    with pytest.raises(ValueError, match="different lengths"):
        counted.push([np.array([1.0]), np.array([1.0, 2.0])])
    with pytest.raises(ValueError, match="contiguous"):
        counted.push([np.arange(4.0)[::2], np.arange(2.0)])
    foreign = np.array([-1.0, 3.0], dtype=">f8")  # read as native bytes, other numbers
    with pytest.raises(ValueError, match="byte order"):
        counted.push([foreign, np.arange(2.0)])
    with pytest.raises(ValueError, match="byte order"):
        window_tabulation(10, [np.sort(foreign)])
    assert counted.rows == 0


def test_only_columns_with_exact_ks_pvalues_are_counted():
    """Past 10,000 values in either sample SciPy's p-value is asymptotic and reads both
    samples sorted: counting the window would only add work (and memory by the reference)."""
    small, large = (NumericalSummary.from_values(np.arange(float(n))) for n in (1000, 10_001))
    few = NumericalSummary.from_values(np.arange(1000.0) % 4)
    columns = {"small": small, "large": large, "few": few}
    assert set(ks_columns(columns, 1000)) == {"small"}  # auto: KS on the small reference only
    assert set(ks_columns(columns, 1000, "ks")) == {"small", "few"}
    assert set(ks_columns(columns, 10_000, "auto", {"few": "ks"})) == {"small", "few"}
    assert ks_columns(columns, 10_001, "ks") == {}
    assert ks_columns(columns, 1000, "wasserstein", {"small": "psi"}) == {}


def test_a_tabulated_summarys_sorted_values_leave_out_infinite_rows_as_its_counts_do():
    """The kernels count an infinite value as missing: the values a tabulated summary sorts
    for another test are its finite rows, as many as it counts present (as from_values does)."""
    rows = np.array([3.0, np.inf, np.nan, -np.inf, 1.0])
    reference = NumericalSummary.from_values(np.arange(5.0))
    window = TabulatedSummary(lambda: rows, reference, 0.4, present=2, missing=3, outside=0)
    assert window.sorted_values.tolist() == [1.0, 3.0] == NumericalSummary.from_values(rows).sorted_values.tolist()
    assert window.n == window.sorted_values.size
