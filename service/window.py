"""Fixed-capacity column buffers: the sliding window of recent predictions and of joined labels.

Columns are float64 numpy arrays (categorical values are stored as codes, NaN = missing), so
appending a batch is a couple of slice assignments and reading the window is one
``np.roll``-free concatenation. Memory is ``capacity x columns x 8`` bytes, fixed up front.
"""

from __future__ import annotations

import io
import json

import numpy as np

from detectors import CategoricalSummary, NumericalSummary


class RingColumns:
    """The last ``capacity`` rows of a set of float64 columns.

    >>> ring = RingColumns(3, ["x"])
    >>> evicted = ring.append({"x": np.array([1.0, 2.0, 3.0, 4.0])})
    >>> ring.column("x").tolist()
    [2.0, 3.0, 4.0]
    """

    def __init__(self, capacity: int, columns: list[str]):
        self.capacity = capacity
        self._data = {name: np.full(capacity, np.nan) for name in columns}
        self._next = 0  # slot the next row goes to
        self.count = 0  # rows held, <= capacity
        self.total = 0  # rows ever appended

    @property
    def columns(self) -> list[str]:
        return list(self._data)

    def add_column(self, name: str) -> None:
        if name not in self._data:
            self._data[name] = np.full(self.capacity, np.nan)

    def append(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Append rows; ``batch`` maps column -> array, all of one length. Absent columns get NaN.

        Returns the rows pushed out of the window, per column, oldest first (so incremental
        summaries can take them out)."""
        n = len(next(iter(batch.values()))) if batch else 0
        if n == 0:
            return {}
        keep = min(n, self.capacity)
        evicted_count = max(0, self.count + keep - self.capacity)
        oldest = (self._next - self.count) % self.capacity
        slots = (oldest + np.arange(evicted_count)) % self.capacity
        evicted = {name: buffer[slots] for name, buffer in self._data.items()}
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
        return evicted

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
        np.savez(sink, __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
                 **{f"c{i}": values for i, values in enumerate(ordered.values())})
        return sink.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, capacity: int | None = None) -> "RingColumns":
        """Restore; a different ``capacity`` (a changed config) keeps the newest rows that fit."""
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            meta = json.loads(archive["__meta__"].tobytes())
            ring = cls(capacity or meta["capacity"], meta["columns"])
            ring.append({name: archive[f"c{i}"] for i, name in enumerate(meta["columns"])})
        ring.total = meta["total"]
        return ring


class _GatheredChanges:
    """Rows entering and leaving a window, gathered and applied together when the summary is
    read: one numpy pass per window step instead of one per batch and feature.

    Subclasses implement ``_apply(added, removed)``; ``_max_pending`` bounds what waits.
    """

    def __init__(self):
        self._added: list[np.ndarray] = []
        self._removed: list[np.ndarray] = []
        self._pending = 0

    def update(self, added: np.ndarray, removed: np.ndarray) -> None:
        if added.size:
            self._added.append(added)
        if removed.size:
            self._removed.append(removed)
        self._pending += added.size + removed.size
        if self._pending > self._max_pending():
            self._flush()

    def _max_pending(self) -> int:
        return 65_536

    def _flush(self) -> None:
        # Added before removed: a row may have come and gone between two reads.
        if self._added or self._removed:
            self._apply(_joined(self._added), _joined(self._removed))
        self._added, self._removed, self._pending = [], [], 0

    def _apply(self, added: np.ndarray, removed: np.ndarray) -> None:
        raise NotImplementedError


def _joined(batches: list[np.ndarray]) -> np.ndarray:
    if not batches:
        return np.empty(0)
    return np.concatenate(batches) if len(batches) > 1 else batches[0]


class SortedWindow(_GatheredChanges):
    """The sorted finite values of a sliding window, kept up to date by merging.

    Re-sorting a 10,000-row window at every step costs O(n log n) per feature; merging the
    new rows in costs O(n): they are sorted on their own (numpy's SIMD quicksort, ~5x faster
    than its stable sort), and the window and that run are merged by a stable sort, which
    numpy's timsort does in one linear pass over two sorted runs (``np.insert`` at
    ``np.searchsorted`` positions measured slower). The evicted ones are taken out by binary
    search and one boolean mask. Changes are gathered and applied when the summary is read,
    once per window step rather than once per batch.

    >>> window = SortedWindow()
    >>> window.update(np.array([3.0, 1.0, np.nan]), np.array([]))
    >>> window.update(np.array([2.0]), np.array([3.0]))
    >>> window.summary().sorted_values.tolist(), window.summary().n_missing
    ([1.0, 2.0], 1)
    """

    def __init__(self):
        super().__init__()
        self.values = np.empty(0)
        self.n_missing = 0

    def _max_pending(self) -> int:
        return max(4096, 2 * self.values.size)

    def _apply(self, added: np.ndarray, removed: np.ndarray) -> None:
        finite = added[np.isfinite(added)]
        self.n_missing += added.size - finite.size
        if finite.size:
            self.values = np.sort(np.concatenate((self.values, _sorted_stably(finite))), kind="stable")
        finite = removed[np.isfinite(removed)]
        self.n_missing -= removed.size - finite.size
        if finite.size:
            gone = np.sort(finite)
            # Equal values: the k-th copy of v removes the k-th slot holding v.
            rank = np.arange(gone.size) - np.searchsorted(gone, gone, side="left")
            keep = np.ones(self.values.size, dtype=bool)
            keep[np.searchsorted(self.values, gone, side="left") + rank] = False
            self.values = self.values[keep]

    def summary(self) -> NumericalSummary:
        self._flush()
        return NumericalSummary(self.values, self.n_missing)


def _sorted_stably(finite: np.ndarray) -> np.ndarray:
    """``np.sort(finite, kind="stable")`` by numpy's faster default sort.

    Equal finite values are the same bits except 0.0 and -0.0, so only the zeros can come
    out in another order (or, from a sorting network, another mix of signs): they are put
    back as they came.
    """
    ordered = np.sort(finite)
    zeros = finite[finite == 0]
    if zeros.size > 1:
        start = np.searchsorted(ordered, 0.0)
        ordered[start:start + zeros.size] = zeros
    return ordered


class CategoryCounts(_GatheredChanges):
    """Occurrences of each category code in a sliding window (codes are small integers).

    >>> counts = CategoryCounts()
    >>> counts.update(np.array([0.0, 2.0, 2.0, np.nan]), np.array([]))
    >>> counts.update(np.array([]), np.array([0.0]))
    >>> summary = counts.summary()
    >>> summary.categories, summary.counts.tolist(), summary.n_missing
    ([2.0], [2], 1)
    """

    def __init__(self):
        super().__init__()
        self.counts = np.zeros(0, dtype=np.int64)
        self.n_missing = 0

    def _apply(self, added: np.ndarray, removed: np.ndarray) -> None:
        for values, sign in ((added, 1), (removed, -1)):
            valid = values[~np.isnan(values)]
            self.n_missing += sign * (values.size - valid.size)
            if valid.size:
                tally = np.bincount(valid.astype(np.int64))
                if tally.size > self.counts.size:
                    self.counts = np.concatenate((self.counts, np.zeros(tally.size - self.counts.size, np.int64)))
                self.counts[: tally.size] += sign * tally

    def summary(self) -> CategoricalSummary:
        self._flush()
        # Categories as np.unique would list them from the codes: ascending, present ones only.
        present = np.flatnonzero(self.counts)
        return CategoricalSummary([float(code) for code in present], self.counts[present], self.n_missing)
