"""A sliding window's numerical columns counted against a reference, for the KS test
without sorting the window.

The two-sample KS statistic needs both samples' step functions at every value of either
sample. Against a fixed reference, a window's value only matters by the cell of the
reference's values it falls in (below the least, at a value, between two, above the
greatest); a window that counts its rows per cell as they come and go has the statistic in
one pass over the cells when it is evaluated, where sorting the window and merging it with
the reference cost ~15 us a column of 1,000 rows. The same counts give the quality
figures: missing values, and values below or above the reference's range.

The counting is native (``detectors._kernels.WindowTabulation``); where it is not built,
:data:`WindowTabulation` is None and windows are sorted as before.

>>> import numpy as np
>>> from detectors.summaries import NumericalSummary
>>> reference = NumericalSummary.from_values(np.arange(10.0))
>>> if WindowTabulation is not None:
...     tabulation = WindowTabulation(4, [reference.sorted_values])
...     tabulation.push([np.array([1.0, 12.0, np.nan, 3.0, 4.0])])  # 1.0 leaves: 4 rows are kept
...     (statistic, present, missing, below, above), = tabulation.summaries()
...     window = TabulatedSummary(lambda: np.array([12.0, np.nan, 3.0, 4.0]), reference, statistic, present,
...                               missing, below + above)
...     print(window.n, window.n_missing, window.outside_of(reference), window.sorted_values.tolist())
... else:
...     print("3 1 1 [3.0, 4.0, 12.0]")
3 1 1 [3.0, 4.0, 12.0]
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from types import ModuleType

import numpy as np

from detectors.summaries import NumericalSummary

_kernels: ModuleType | None
try:
    from detectors import _kernels
except ImportError:  # built only where a Rust toolchain was at install
    _kernels = None

# A build of the kernels from before WindowTabulation lacks it: windows are sorted then.
WindowTabulation = getattr(_kernels, "WindowTabulation", None)

__all__ = ["TabulatedSummary", "WindowTabulation"]


class TabulatedSummary(NumericalSummary):
    """A window's numerical column as a :class:`WindowTabulation` counted it against
    ``reference``: its KS statistic against that reference and its counts are known; its
    sorted values (which a test other than KS, or another reference, needs) are computed on
    first use from ``rows()``, the window's rows in any order (called at most once).
    """

    def __init__(self, rows: Callable[[], np.ndarray], reference: NumericalSummary, statistic: float,
                 present: int, missing: int, outside: int):
        # Not NumericalSummary.__init__, which takes the sorted values this computes on first use.
        self.n_missing, self.integer = int(missing), False
        self._rows = rows
        self._reference = reference.sorted_values
        self._statistic = float(statistic)
        self._present = int(present)
        self._outside = int(outside)

    @cached_property
    def sorted_values(self) -> np.ndarray:  # type: ignore[override]  # an attribute of the base class
        ordered = np.sort(self._rows())
        return ordered[np.isfinite(ordered)]

    @property
    def n(self) -> int:
        return self._present

    def ks_statistic_against(self, reference: NumericalSummary) -> float | None:
        if reference.sorted_values is self._reference and self._present:
            return self._statistic
        return None

    def outside_of(self, reference: NumericalSummary) -> int | None:
        return self._outside if reference.sorted_values is self._reference else None
