"""Column summaries: what the univariate tests need of a column, computed once.

* a numerical column keeps its sorted finite values (its standard deviation and number
  of distinct values are derived from them once, when first needed);
* a categorical column keeps each category with its count.

Missing values (None, NaN and, as in Evidently, +/-inf) are excluded from every
test and counted.

>>> import numpy as np
>>> summarise(np.array(["DE", "FR", "DE", None], dtype=object), CATEGORICAL).counts.tolist()
[2, 1]
>>> summarise(np.array([4.0, np.nan, 1.0]), NUMERICAL).sorted_values.tolist()
[1.0, 4.0]
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

NUMERICAL = "numerical"
CATEGORICAL = "categorical"

# Categories that are whole numbers below this are aligned as codes, through an array
# indexed by code (4 bytes a code, once per reference column).
CODE_LIMIT = 1 << 16
# Up to this many of a window's categories, a dictionary lookup each costs less than numpy's calls.
FEW_CATEGORIES = 16

# Evidently 0.7 (evidently.core.datasets.infer_column_type) treats an integer column with
# at most this many distinct values as categorical.
INTEGER_CARDINALITY_LIMIT = 10


def python_scalar(value: Any) -> Any:
    """A numpy scalar as the equal plain Python value (so it hashes, sorts and serialises)."""
    return value.item() if isinstance(value, np.generic) else value


def is_missing(value: Any) -> bool:
    """None, NaN and +/-inf are missing, as Evidently drops them before a test."""
    if value is None:
        return True
    if isinstance(value, (float, np.floating)):
        return not math.isfinite(value)
    return False


def infer_type(values: np.ndarray) -> str:
    """Evidently's rule for a pandas column: float -> numerical, integer -> categorical
    when it has at most 10 distinct values, bool/object/str -> categorical."""
    kind = values.dtype.kind
    if kind == "f":
        return NUMERICAL
    if kind in "iu":
        return CATEGORICAL if np.unique(values).size <= INTEGER_CARDINALITY_LIMIT else NUMERICAL
    return CATEGORICAL


def type_of(values) -> str:
    """The type of a column given as an array (inferred) or as a summary (its own)."""
    if isinstance(values, NumericalSummary):
        return NUMERICAL
    if isinstance(values, CategoricalSummary):
        return CATEGORICAL
    return infer_type(np.asarray(values))


class NumericalSummary:
    """Sorted finite values (float64); the statistics derived from them are computed on first use.

    ``integer`` says the values came as an integer array: numpy's histogram bins of integer
    data are at least 1 wide, so the binned tests (PSI, KL, Jensen-Shannon, Hellinger)
    need to know.
    """

    def __init__(self, sorted_values: np.ndarray, n_missing: int = 0, integer: bool = False):
        self.sorted_values = sorted_values
        self.n_missing = int(n_missing)
        self.integer = bool(integer)

    @classmethod
    def from_values(cls, values: np.ndarray) -> NumericalSummary:
        values = np.asarray(values)
        if values.dtype.kind in "iu":
            return cls(np.sort(values).astype(np.float64), 0, integer=True)
        ordered = np.sort(np.asarray(values, dtype=np.float64))
        # Sorted, -inf comes first and +inf, then NaN, last: the two ends say whether every
        # value is finite, without a pass over them all.
        if ordered.size == 0 or (ordered[0] > -np.inf and ordered[-1] < np.inf):
            return cls(ordered, 0)
        finite = ordered[np.isfinite(ordered)]
        return cls(finite, int(ordered.size - finite.size))

    @property
    def n(self) -> int:
        return int(self.sorted_values.size)

    @cached_property
    def std(self) -> float:
        """Population standard deviation (numpy's default, as Evidently uses)."""
        return float(np.std(self.sorted_values)) if self.n else 0.0

    @cached_property
    def n_distinct(self) -> int:
        return count_distinct_sorted(self.sorted_values)

    def distinct_counts(self) -> tuple[np.ndarray, np.ndarray]:
        return distinct_counts_sorted(self.sorted_values)

    def ks_statistic_against(self, reference: NumericalSummary) -> float | None:
        """The KS statistic against ``reference`` where it is known already (a window
        counted against it: :class:`detectors.tabulation.TabulatedSummary`), else None."""
        return None

    def outside_of(self, reference: NumericalSummary) -> int | None:
        """How many values lie outside ``reference``'s range, where known already (as above)."""
        return None

    def __repr__(self) -> str:
        return f"NumericalSummary(n={self.n}, n_missing={self.n_missing}, integer={self.integer})"


@dataclass(frozen=True)
class CategoricalSummary:
    """Categories (plain Python values) and how often each occurs, missing values excluded."""

    categories: list
    counts: np.ndarray
    n_missing: int = 0

    @classmethod
    def from_values(cls, values: np.ndarray) -> CategoricalSummary:
        return cls(*count_categories(values))

    @cached_property
    def n(self) -> int:
        return int(self.counts.sum())

    @property
    def n_distinct(self) -> int:
        return len(self.categories)

    @cached_property
    def category_set(self) -> frozenset:
        """The categories as a set, for membership tests."""
        return frozenset(map(python_scalar, self.categories))

    # A reference summary is compared with many windows: what the comparison needs of the
    # reference alone is derived once, on first use.

    @cached_property
    def distinct_categories(self) -> frozenset:
        """The categories as they are (no conversion), for the union with a window's."""
        return frozenset(self.categories)

    @cached_property
    def all_counted(self) -> bool:
        """Every category has a positive count (one counted from values always has)."""
        return bool(np.all(self.counts > 0))

    @cached_property
    def positions(self) -> dict:
        """Each category's index in ``categories``, to align another sample's counts with these."""
        return {key: index for index, key in enumerate(self.categories)}

    @cached_property
    def codes(self) -> np.ndarray | None:
        """The categories as int64 codes when they are distinct whole numbers in
        [0, CODE_LIMIT) (a service window's and its reference's are), else None."""
        try:
            values = np.array(self.categories)
        except (ValueError, TypeError, OverflowError):  # e.g. tuples of unequal length
            return None
        if values.ndim != 1 or values.size == 0 or values.dtype.kind not in "iuf":
            return None
        if not (np.all(values >= 0) and np.all(values < CODE_LIMIT) and np.all(values == np.floor(values))):
            return None  # NaN fails the first test
        codes = values.astype(np.int64)
        return codes if np.unique(codes).size == codes.size else None

    @cached_property
    def code_positions(self) -> np.ndarray | None:
        """Each code's index in ``categories`` (-1 for none, and in the one slot past the
        greatest code, where every greater code is looked up), when the categories are codes."""
        codes = self.codes
        if codes is None:
            return None
        lookup = np.full(int(codes.max()) + 2, -1, dtype=np.int32)
        lookup[codes] = np.arange(codes.size)
        return lookup

    def positions_of(self, window: CategoricalSummary) -> np.ndarray | None:
        """The index in ``categories`` of each of the window's categories (-1: not here), when
        both are codes and the window has more than FEW_CATEGORIES: one array lookup where a
        dictionary takes a Python step a category. Kept on the window, for the tests and the
        quality report that ask in turn."""
        if len(window.categories) <= FEW_CATEGORIES:
            return None
        kept = window.__dict__.get("_positions_in")
        if kept is not None and kept[0] is self:
            return kept[1]
        lookup, codes = self.code_positions, window.codes
        positions = None if lookup is None or codes is None else lookup[np.minimum(codes, lookup.size - 1)]
        window.__dict__["_positions_in"] = (self, positions)
        return positions

    def aligned(self, window: CategoricalSummary) -> tuple[list, np.ndarray, np.ndarray]:
        """The categories of both (these first, then the window's others in its order), with
        this summary's and the window's count of each (0 where one lacks the category)."""
        if window.categories == self.categories:  # a window of codes, in this order: nothing to align
            return list(self.categories), np.asarray(self.counts, dtype=np.int64), \
                np.asarray(window.counts, dtype=np.int64)
        keys = list(self.categories)
        positions = self.positions_of(window)
        if positions is not None:
            unseen = (positions < 0).nonzero()[0]
            if unseen.size:
                positions = positions.copy()  # the kept array stays as looked up
                positions[unseen] = np.arange(len(keys), len(keys) + unseen.size)
                keys.extend(window.categories[index] for index in unseen.tolist())
            window_aligned = np.zeros(len(keys), dtype=np.int64)
            window_aligned[positions] = window.counts  # codes are distinct: no category twice
        else:
            window_aligned = self._aligned_by_value(window, keys)
        aligned = np.zeros(len(keys), dtype=np.int64)
        aligned[: len(self.categories)] = self.counts
        return keys, aligned, window_aligned

    def _aligned_by_value(self, window: CategoricalSummary, keys: list) -> np.ndarray:
        """The window's counts at each of ``keys``' positions, extending ``keys`` (these
        categories) with the window's others, by dictionary lookups."""
        known = self.positions
        unseen: dict = {}  # the window's categories this summary lacks, in the window's order
        indices = []
        for key in window.categories:
            index = known.get(key)
            if index is None:
                index = unseen.get(key)
                if index is None:
                    index = unseen[key] = len(keys)
                    keys.append(key)
            indices.append(index)
        # A category listed twice adds up (a bincount, where an assignment would keep one count).
        return np.bincount(indices, weights=window.counts, minlength=len(keys)).astype(np.int64) \
            if indices else np.zeros(len(keys), dtype=np.int64)

    @classmethod
    def counted(cls, categories: list, counts: np.ndarray, n_missing: int, n: int,
                codes: np.ndarray | None = None) -> CategoricalSummary:
        """A summary whose caller knows ``n`` (the sum of ``counts``) already, saving the sum,
        and maybe ``codes`` (what the cached property would find: the categories as distinct
        int64 codes in [0, CODE_LIMIT))."""
        summary = cls(categories, counts, n_missing)
        # What the cached properties would compute (the dataclass is frozen: no setattr).
        summary.__dict__["n"] = n
        if codes is not None:
            summary.__dict__["codes"] = codes
        return summary


ColumnSummary = NumericalSummary | CategoricalSummary


def count_distinct_sorted(ordered: np.ndarray) -> int:
    return int(ordered.size and 1 + np.count_nonzero(ordered[1:] != ordered[:-1]))


def distinct_counts_sorted(ordered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of a sorted array and their counts, in one linear pass."""
    if ordered.size == 0:
        return ordered, np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    counts = np.diff(np.append(starts, ordered.size))
    return ordered[starts], counts


def count_categories(values: np.ndarray) -> tuple[list, np.ndarray, int]:
    """(categories, counts, missing) of a categorical array.

    Numeric and boolean arrays (e.g. float category codes with NaN = missing) are counted
    with numpy; object arrays with a hash table (collections.Counter), the fastest way to
    count arbitrary Python values.
    """
    values = np.asarray(values)
    if values.dtype.kind in "biuf":
        valid = values[np.isfinite(values)] if values.dtype.kind == "f" else values
        keys, counts = np.unique(valid, return_counts=True)
        return [python_scalar(k) for k in keys], counts.astype(np.int64), int(values.size - valid.size)
    if values.dtype.kind in "US":
        keys, counts = np.unique(values, return_counts=True)
        return [python_scalar(k) for k in keys], counts.astype(np.int64), 0
    tally = Counter(values.tolist())
    missing = 0
    categories: list = []
    category_counts: list[int] = []
    for key, count in tally.items():
        if is_missing(key):
            missing += count
        else:
            categories.append(python_scalar(key))
            category_counts.append(count)
    return categories, np.asarray(category_counts, dtype=np.int64), missing


_sorting_pool: ThreadPoolExecutor | None = None
_sorting_pool_pid = 0


def start_summaries(columns: Mapping, types: Mapping[str, str]) -> Callable[[], dict[str, ColumnSummary]]:
    """Begin summarising many columns; the returned function waits for the summaries.

    numpy's sort releases the GIL, so numerical columns are sorted on a small thread pool
    while categorical ones are counted on this thread (and the caller can go on working
    before it waits)."""
    global _sorting_pool, _sorting_pool_pid
    if _sorting_pool is None or _sorting_pool_pid != os.getpid():  # a forked child has no pool threads
        _sorting_pool = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="driftline")
        _sorting_pool_pid = os.getpid()
    sorting = {
        name: _sorting_pool.submit(summarise, values, NUMERICAL)
        for name, values in columns.items()
        if types[name] == NUMERICAL and not isinstance(values, NumericalSummary)
    }
    counted = {name: summarise(values, types[name]) for name, values in columns.items() if name not in sorting}
    return lambda: {name: sorting[name].result() if name in sorting else counted[name] for name in columns}


def summarise_columns(columns: Mapping, types: Mapping[str, str]) -> dict[str, ColumnSummary]:
    return start_summaries(columns, types)()


def summarise(values, column_type: str) -> ColumnSummary:
    """Summary of a column; a column given already summarised (e.g. counted by pandas, or a
    streaming window that keeps category counts) passes through when its type matches."""
    if isinstance(values, (NumericalSummary, CategoricalSummary)):
        if (column_type == NUMERICAL) != isinstance(values, NumericalSummary):
            raise ValueError(f"a {type(values).__name__} cannot be tested as a {column_type} column")
        return values
    if column_type == NUMERICAL:
        return NumericalSummary.from_values(values)
    if column_type == CATEGORICAL:
        return CategoricalSummary.from_values(values)
    raise ValueError(f"unknown column type {column_type!r}: expected 'numerical' or 'categorical'")
