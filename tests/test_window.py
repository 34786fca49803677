"""The window buffer and its incremental summaries equal a recomputation from scratch."""

import numpy as np
import pytest

from detectors.profile import count_categories
from service.window import CategoryCounts, RingColumns, SortedWindow


@pytest.mark.parametrize("seed", range(5))
def test_incremental_summaries_equal_full_recomputation(seed):
    rng = np.random.default_rng(seed)
    capacity = int(rng.integers(5, 300))
    ring = RingColumns(capacity, ["x", "c"])
    numeric, categories = SortedWindow(), CategoryCounts()
    for _ in range(60):
        n = int(rng.integers(1, 2 * capacity))
        x = rng.normal(size=n).round(1)  # rounding makes duplicates, the hard case for removal
        x[rng.random(n) < 0.1] = np.nan
        c = rng.integers(0, 7, n).astype(float)
        c[rng.random(n) < 0.1] = np.nan
        evicted = ring.append({"x": x, "c": c})
        keep = min(n, capacity)
        numeric.update(x[n - keep:], evicted["x"])
        categories.update(c[n - keep:], evicted["c"])

        window_x, window_c = ring.column("x"), ring.column("c")
        assert ring.count == min(capacity, ring.total)
        if rng.random() < 0.5:  # read the summary at some steps only: changes wait in between
            continue
        sorted_summary = numeric.summary()
        np.testing.assert_array_equal(sorted_summary.sorted_values, np.sort(window_x[~np.isnan(window_x)]))
        assert sorted_summary.n_missing == int(np.isnan(window_x).sum())
        expected = count_categories(window_c)
        summary = categories.summary()
        assert (summary.categories, summary.counts.tolist(), summary.n_missing) == \
            (expected[0], expected[1].tolist(), expected[2])


def test_ring_keeps_the_newest_rows_and_reports_what_it_pushed_out():
    ring = RingColumns(4, ["x"])
    assert ring.append({"x": np.array([1.0, 2.0, 3.0])})["x"].tolist() == []
    assert ring.append({"x": np.array([4.0, 5.0])})["x"].tolist() == [1.0]
    assert ring.column("x").tolist() == [2.0, 3.0, 4.0, 5.0]
    assert ring.append({"x": np.arange(10.0)})["x"].tolist() == [2.0, 3.0, 4.0, 5.0]
    assert ring.column("x").tolist() == [6.0, 7.0, 8.0, 9.0]
    restored = RingColumns.from_bytes(ring.to_bytes(), capacity=3)
    assert restored.column("x").tolist() == [7.0, 8.0, 9.0] and restored.total == 15



def test_sorted_values_are_those_of_a_stable_sort_down_to_the_sign_of_zero():
    """0.0 and -0.0 are equal but not the same bits: they stay in the order they came."""
    rng = np.random.default_rng(0)
    window = SortedWindow()
    first = rng.choice([0.0, -0.0, 1.5, -2.0, np.nan], 3000)
    window.update(first, np.array([]))
    expected = np.sort(first[~np.isnan(first)], kind="stable")
    assert window.summary().sorted_values.tobytes() == expected.tobytes()
    second = rng.choice([0.0, -0.0, 1.5], 1000)
    window.update(second, np.array([]))
    expected = np.sort(np.concatenate((expected, second)), kind="stable")  # window's copies first
    assert window.summary().sorted_values.tobytes() == expected.tobytes()
