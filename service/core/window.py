"""Fixed-capacity column buffers: the sliding window of recent predictions and of joined labels.

Columns are float64 numpy arrays (categorical values are stored as codes, NaN = missing), so
appending a batch is a couple of slice assignments and reading the window is one
``np.roll``-free concatenation. Memory is ``capacity x columns x 8`` bytes, fixed up front,
and for each column counted against a reference (below) ``capacity x 4`` bytes and ~40 bytes
a distinct value of the reference (at most 10,000 values: see ``tabulate``).

A window is mostly summarised from scratch when it is evaluated: numpy's SIMD quicksort
sorts a 10,000-row column in ~56 us, a quarter of what merging a step's 1,000 rows into a
sorted copy and taking 1,000 out cost (~220 us), and category codes are counted by one
``np.bincount``. The exception is a numerical column tested with KS, whose statistic only
needs the rows' counts per cell of the reference's values: :meth:`RingColumns.tabulate`
keeps those counts as rows come and go (``detectors.tabulation``), ~20 ns a row, where
sorting and merging a 1,000-row window cost ~15 us at every evaluation.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from detectors import CategoricalSummary, NumericalSummary
from detectors.profile import CODE_LIMIT
from detectors.tabulation import TabulatedSummary, WindowTabulation


class RingColumns:
    """The last ``capacity`` rows of a set of float64 columns.

    >>> ring = RingColumns(3, ["x"])
    >>> ring.append({"x": np.array([1.0, 2.0, 3.0, 4.0])})
    >>> ring.column("x").tolist()
    [2.0, 3.0, 4.0]
    """

    def __init__(self, capacity: int, columns: list[str]):
        self.capacity = capacity
        self._data = {name: np.full(capacity, np.nan) for name in columns}
        self._next = 0  # slot the next row goes to
        self.count = 0  # rows held, <= capacity
        self.total = 0  # rows ever appended
        # Numerical columns counted against a reference (tabulate: the columns chosen, whether
        # or not the native kernels count them), the native counts, and their summaries as of
        # `total` rows, read once an evaluation.
        self.counting_chosen = False
        self._counted_references: dict[str, NumericalSummary] = {}
        self._counts: Any = None
        self._counted_summaries: tuple[int, dict[str, TabulatedSummary]] | None = None

    @property
    def columns(self) -> list[str]:
        return list(self._data)

    def rename(self, names: dict[str, str]) -> None:
        """Rename columns (old -> new); the others keep their names."""
        self._data = {names.get(name, name): values for name, values in self._data.items()}
        self._counted_references = {names.get(name, name): reference
                                    for name, reference in self._counted_references.items()}
        self._counted_summaries = None

    def tabulate(self, references: Mapping[str, NumericalSummary]) -> None:
        """Count these numerical columns against their references from now on (their rows
        so far included), for :meth:`tabulated`; a reference with no value is left out, and
        nothing is counted where the native kernels are not built."""
        self.counting_chosen = True
        self._counted_references = {name: reference for name, reference in references.items()
                                    if name in self._data and reference.n}
        self._counted_summaries = None
        self._counts = None
        if WindowTabulation is not None and self._counted_references:
            ordered = [reference.sorted_values for reference in self._counted_references.values()]
            self._counts = WindowTabulation(self.capacity, ordered)
            if self.count:
                self._counts.push([self.column(name) for name in self._counted_references])

    def tabulated(self) -> dict[str, TabulatedSummary]:
        """The tabulated columns' summaries (see :meth:`tabulate`), by column; computed once
        for the rows held (as long as no row is appended)."""
        if self._counts is None:
            return {}
        if self._counted_summaries is None or self._counted_summaries[0] != self.total:
            summaries = {
                name: TabulatedSummary(self._rows_now(name), reference, statistic, present, missing, below + above)
                for (name, reference), (statistic, present, missing, below, above)
                in zip(self._counted_references.items(), self._counts.summaries(), strict=True)
            }
            self._counted_summaries = (self.total, summaries)
        return self._counted_summaries[1]

    def _rows_now(self, name: str) -> Callable[[], np.ndarray]:
        """The column's rows as they are now (unordered), read when asked: a summary sorts
        them only if a test needs them. Refused once more rows came, which overwrite them."""
        total = self.total

        def rows() -> np.ndarray:
            if self.total != total:
                raise RuntimeError(f"window column {name!r} read after {self.total - total} more rows came")
            return self.unordered(name)
        return rows

    def append(self, batch: dict[str, np.ndarray]) -> None:
        """Append rows; ``batch`` maps column -> array, all of one length. Absent columns get NaN."""
        n = len(next(iter(batch.values()))) if batch else 0
        if n == 0:
            return
        keep = min(n, self.capacity)
        start = self._next
        # Rows land at start..start+keep (mod capacity), in at most two slices.
        first = min(keep, self.capacity - start)
        for name, buffer in self._data.items():
            values = batch.get(name)
            if values is None:
                buffer[start:start + first] = np.nan
                buffer[:keep - first] = np.nan
            else:
                tail = values[n - keep:]
                buffer[start:start + first] = tail[:first]
                buffer[:keep - first] = tail[first:]
        self._next = (start + keep) % self.capacity
        self.count = min(self.capacity, self.count + n)
        self.total += n
        if self._counts is not None:
            self._counts.push([np.full(n, np.nan) if (values := batch.get(name)) is None
                               else np.ascontiguousarray(values, dtype=np.float64)
                               for name in self._counted_references])

    def unordered(self, name: str) -> np.ndarray:
        """The column's rows in the order they are stored (a read-only view), for whatever
        does not depend on their order (sorting, counting): no copy to put them in order."""
        view = self._data[name][: self.count]
        view.flags.writeable = False
        return view

    def column(self, name: str) -> np.ndarray:
        """The column's rows oldest first (a copy)."""
        buffer = self._data[name]
        if self.count < self.capacity:
            return buffer[: self.count].copy()
        return np.concatenate((buffer[self._next:], buffer[: self._next]))

    def to_bytes(self) -> bytes:
        sink = io.BytesIO()
        ordered = {name: self.column(name) for name in self._data}
        meta = {"capacity": self.capacity, "total": self.total, "columns": list(ordered)}
        # numpy's stub lets a **dict of arrays fill savez's allow_pickle: bool, and so refuses it.
        np.savez(sink, __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
                 **{f"c{i}": values for i, values in enumerate(ordered.values())})  # type: ignore[arg-type]
        return sink.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, capacity: int | None = None) -> RingColumns:
        """Restore; a different ``capacity`` (a changed config) keeps the newest rows that fit."""
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            meta = json.loads(archive["__meta__"].tobytes())
            ring = cls(capacity or meta["capacity"], meta["columns"])
            ring.append({name: archive[f"c{i}"] for i, name in enumerate(meta["columns"])})
        ring.total = meta["total"]
        return ring


def category_counts(codes: np.ndarray) -> CategoricalSummary:
    """A window's category codes (small integers, NaN = missing) counted, as the detectors
    take a categorical column: the categories ascending, as ``np.unique`` lists the codes.

    >>> summary = category_counts(np.array([2.0, 0.0, 2.0, np.nan]))
    >>> summary.categories, summary.counts.tolist(), summary.n_missing
    ([0.0, 2.0], [1, 2], 1)
    """
    missing_rows = np.isnan(codes)
    missing = int(np.count_nonzero(missing_rows))
    valid = codes[~missing_rows] if missing else codes  # most windows have no missing value: no copy
    tally = np.bincount(valid.astype(np.intp)) if valid.size else np.zeros(0, dtype=np.int64)
    present = tally.nonzero()[0]  # np.flatnonzero's ravel costs more than this whole line
    return CategoricalSummary.counted(present.astype(np.float64).tolist(), tally[present], missing, valid.size,
                                      present if present.size and present[-1] < CODE_LIMIT else None)
