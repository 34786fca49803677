"""The window buffer, and category codes counted as the detectors count categories."""

import os

import numpy as np
import pytest

from detectors.profile import count_categories
from detectors.summaries import NumericalSummary
from detectors.tabulation import WindowTabulation
from service.core.window import RingColumns, category_counts
from tests.conftest import require_tool


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


def test_a_counted_window_renamed_counts_its_columns_under_their_new_names():
    """A window counting columns against references (tabulate) keys their summaries by the
    names a rename gives them, counts the rows pushed under those names, and counts a row of
    a batch that lacks the column as missing, as the window stores it."""
    require_tool("the native kernels detectors._kernels", WindowTabulation,
                 "pip builds them where Rust's cargo is on the PATH",
                 required=os.environ.get("DRIFTLINE_NATIVE_REQUIRED") == "1")
    reference = NumericalSummary.from_values(np.arange(10.0))
    ring = RingColumns(4, ["x", "y"])
    # A reference with no value is left out (the kernels refuse an empty one).
    ring.tabulate({"x": reference, "y": NumericalSummary.from_values(np.array([]))})
    ring.append({"x": np.array([1.0, 20.0, np.nan]), "y": np.array([1.0, 2.0, 3.0])})
    assert list(ring.tabulated()) == ["x"]
    ring.rename({"x": "feature.x"})
    assert list(ring.tabulated()) == ["feature.x"]
    ring.append({"feature.x": np.array([-5.0, 3.0])})  # 1.0 leaves: 20, NaN, -5, 3 are held
    summary = ring.tabulated()["feature.x"]
    assert (summary.n, summary.n_missing, summary.outside_of(reference)) == (3, 1, 2)
    assert summary.sorted_values.tolist() == [-5.0, 3.0, 20.0]
    ring.append({"y": np.array([7.0])})  # a batch without the column: its row is missing there
    summary = ring.tabulated()["feature.x"]
    assert (summary.n, summary.n_missing, summary.outside_of(reference)) == (2, 2, 1)
    assert summary.sorted_values.tolist() == [-5.0, 3.0]
