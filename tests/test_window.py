"""The window buffer, and category codes counted as the detectors count categories."""

import numpy as np
import pytest

from detectors.profile import count_categories
from service.core.window import RingColumns, category_counts


@pytest.mark.parametrize("seed", range(5))
def test_category_counts_equal_the_detectors_counting(seed):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, int(rng.integers(1, 40)), int(rng.integers(0, 3000))).astype(float)
    codes[rng.random(codes.size) < 0.1] = np.nan
    summary, expected = category_counts(codes), count_categories(codes)
    assert (summary.categories, summary.counts.tolist(), summary.n_missing) == \
        (expected[0], expected[1].tolist(), expected[2])
    assert summary.n == int(expected[1].sum()) and summary.counts.dtype == np.int64
    assert all(type(category) is float for category in summary.categories)


def test_category_counts_of_a_window_with_no_missing_value():
    summary = category_counts(np.array([3.0, 0.0, 3.0, 3.0]))
    assert (summary.categories, summary.counts.tolist(), summary.n_missing, summary.n) == ([0.0, 3.0], [1, 3], 0, 4)
    empty = category_counts(np.full(3, np.nan))
    assert (empty.categories, empty.counts.tolist(), empty.n_missing, empty.n) == ([], [], 3, 0)


def test_ring_keeps_the_newest_rows():
    ring = RingColumns(4, ["x"])
    ring.append({"x": np.array([1.0, 2.0, 3.0])})
    assert ring.column("x").tolist() == [1.0, 2.0, 3.0] and ring.count == 3
    ring.append({"x": np.array([4.0, 5.0])})
    assert ring.column("x").tolist() == [2.0, 3.0, 4.0, 5.0]
    ring.append({"x": np.arange(10.0)})
    assert ring.column("x").tolist() == [6.0, 7.0, 8.0, 9.0]
    restored = RingColumns.from_bytes(ring.to_bytes(), capacity=3)
    assert restored.column("x").tolist() == [7.0, 8.0, 9.0] and restored.total == 15


def test_unordered_holds_the_columns_rows_in_storage_order_read_only():
    ring = RingColumns(4, ["x"])
    ring.append({"x": np.array([1.0, 2.0, 3.0])})
    assert ring.unordered("x").tolist() == [1.0, 2.0, 3.0]
    ring.append({"x": np.array([4.0, 5.0, 6.0])})  # wrapped: 5 and 6 overwrote 1 and 2
    assert ring.unordered("x").tolist() == [5.0, 6.0, 3.0, 4.0]
    assert sorted(ring.unordered("x")) == sorted(ring.column("x"))
    with pytest.raises(ValueError):
        ring.unordered("x")[0] = 0.0
    ring.append({"x": np.array([7.0])})  # the ring still writes its buffer
    assert ring.column("x").tolist() == [4.0, 5.0, 6.0, 7.0]
