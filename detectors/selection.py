"""Method ``auto``: Evidently 0.7's choice of test per column.

The rule of ``evidently.legacy.calculations.stattests.registry._get_default_stattest``,
where "rows" are the reference's non-missing values and "distinct values" are counted
over reference and current together:

===========================  =================================  ==========================
reference rows               numerical                          categorical
===========================  =================================  ==========================
<= 1000                      > 5 distinct: ``ks``;              > 2 distinct: ``chisquare``;
                             3..5: ``chisquare``; <= 2: ``z``   <= 2: ``z``
> 1000                       > 5 distinct: ``wasserstein``;     ``jensenshannon``
                             otherwise ``jensenshannon``
===========================  =================================  ==========================

>>> import numpy as np
>>> from detectors.profile import NumericalSummary
>>> small = NumericalSummary.from_values(np.arange(500.0))
>>> auto_method(small, small, "numerical")
'ks'
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from detectors.stattests import KS_EXACT_MAX_N
from detectors.summaries import NUMERICAL, CategoricalSummary, ColumnSummary, NumericalSummary

SMALL_REFERENCE_ROWS = 1000
FEW_NUMERICAL_VALUES = 5


def distinct_values(ref: ColumnSummary, cur: ColumnSummary) -> int:
    """Distinct values over both samples, exact up to 5 and a lower bound above (all the
    rule needs), so a continuous column costs no union of its values, and no count of the
    window's either when the reference's (counted once) is above 5 already."""
    if isinstance(ref, NumericalSummary) and isinstance(cur, NumericalSummary):
        if ref.n_distinct > FEW_NUMERICAL_VALUES:
            return ref.n_distinct
        if cur.n_distinct > FEW_NUMERICAL_VALUES:
            return cur.n_distinct
        return int(np.union1d(ref.distinct_counts()[0], cur.distinct_counts()[0]).size)
    if isinstance(ref, CategoricalSummary) and isinstance(cur, CategoricalSummary):
        if cur.categories == ref.categories:  # a window of the reference's categories: nothing to unite
            return len(ref.distinct_categories)
        positions = ref.positions_of(cur)
        if positions is not None:  # distinct codes on both sides: the reference's and the window's others
            return len(ref.categories) + int(np.count_nonzero(positions < 0))
        return len(ref.distinct_categories.union(cur.categories))
    raise TypeError(f"a column's summaries must be of one kind: a {type(ref).__name__} reference "
                    f"against a {type(cur).__name__} window")


def auto_method(ref: ColumnSummary, cur: ColumnSummary, column_type: str) -> str:
    n_values = distinct_values(ref, cur)
    if ref.n <= SMALL_REFERENCE_ROWS:
        if column_type == NUMERICAL and n_values > FEW_NUMERICAL_VALUES:
            return "ks"
        return "chisquare" if n_values > 2 else "z"
    if column_type == NUMERICAL and n_values > FEW_NUMERICAL_VALUES:
        return "wasserstein"
    return "jensenshannon"


def ks_columns(reference: Mapping[str, ColumnSummary], window_rows: int, method: str = "auto",
               per_feature_method: Mapping[str, str] | None = None) -> dict[str, NumericalSummary]:
    """The reference's columns that a comparison with ``method`` (or ``per_feature_method``
    by column) tests with KS whatever the window holds (``ks`` named, or ``auto`` on a small
    numerical reference of more than 5 distinct values: a window can only add values), and
    whose p-value is exact: at most ``KS_EXACT_MAX_N`` values in the reference and in a
    window of ``window_rows``. (Past that SciPy's asymptotic p-value reads both samples
    sorted, so counting a window against the reference would gain nothing.)"""
    per_feature_method = per_feature_method or {}
    if window_rows > KS_EXACT_MAX_N:
        return {}
    return {
        name: ref for name, ref in reference.items()
        if isinstance(ref, NumericalSummary) and 0 < ref.n <= KS_EXACT_MAX_N
        and (per_feature_method.get(name, method) == "ks"
             or (per_feature_method.get(name, method) == "auto" and ref.n <= SMALL_REFERENCE_ROWS
                 and ref.n_distinct > FEW_NUMERICAL_VALUES))
    }
