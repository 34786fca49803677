"""pandas DataFrames to profile input: the only place ``detectors`` touches pandas.

Column types follow Evidently 0.7's inference for a pandas column
(``evidently.core.datasets.infer_column_type``): float -> numerical; integer ->
categorical when it has at most 10 distinct values, else numerical; bool, category and
string/object columns of strings -> categorical. Like Evidently's ``DataDriftPreset``,
the default column selection leaves out what is neither: datetimes, objects that are not
strings, and "text" (strings with more distinct values than half the rows, such as ids or
timestamps, which Evidently tests with text-specific methods that driftline does not
have). Named explicitly, string and object columns are tested as categorical.

Numerical columns become float64 arrays with NaN for missing (numpy integer columns stay
integer arrays, which Evidently's binned tests treat differently); categorical columns are
counted here with pandas' hash tables, much faster than counting Python objects one by one.

>>> import pandas as pd
>>> columns, types = frame_columns(pd.DataFrame({"x": [1.5, None, 2.0], "c": ["a", None, "a"]}))
>>> types
{'x': 'numerical', 'c': 'categorical'}
>>> columns["c"].categories, columns["c"].n_missing
(['a'], 1)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from detectors.summaries import (
    CATEGORICAL,
    INTEGER_CARDINALITY_LIMIT,
    NUMERICAL,
    CategoricalSummary,
    python_scalar,
)


def holds_objects(series) -> bool:
    import pandas as pd  # noqa: PLC0415  (pandas on first use: detectors load without it)

    return series.dtype == object or pd.api.types.is_string_dtype(series.dtype)


def infer_frame_type(series, counted: CategoricalSummary | None = None) -> str | None:
    """Evidently's type of a pandas column, or None for text, datetime and other columns.

    ``counted`` is the column's ``count_series`` when already at hand (object columns)."""
    import pandas as pd  # noqa: PLC0415  (pandas on first use: detectors load without it)

    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
        return CATEGORICAL
    if pd.api.types.is_float_dtype(dtype):
        return NUMERICAL
    if pd.api.types.is_integer_dtype(dtype):
        return CATEGORICAL if series.nunique() <= INTEGER_CARDINALITY_LIMIT else NUMERICAL
    if holds_objects(series):
        present = np.flatnonzero(series.notna().to_numpy())
        if not present.size:
            return None
        first, last = series.iat[present[0]], series.iat[present[-1]]
        if not (isinstance(first, str) and isinstance(last, str)):
            return None
        counted = counted or count_series(series)
        return None if counted.n_distinct > counted.n * 0.5 else CATEGORICAL
    return None


def untested_reason(series) -> str:
    """Why the default column selection leaves out a column (``infer_frame_type`` gave None)."""
    present = series.dropna()
    if present.empty:
        return "no values"
    if holds_objects(series) and isinstance(present.iat[0], str):
        return "text (distinct strings in more than half the rows)"
    return f"neither numerical nor categorical (dtype {series.dtype})"


def explicit_frame_type(series, counted: CategoricalSummary | None = None) -> str | None:
    """The type of a column asked for by name: strings and objects count as categorical."""
    inferred = infer_frame_type(series, counted)
    return CATEGORICAL if inferred is None and holds_objects(series) else inferred


def count_series(series) -> CategoricalSummary:
    """Category counts of a pandas column; None/NaN are missing, unused categories dropped."""
    import pandas as pd  # noqa: PLC0415  (pandas on first use: detectors load without it)

    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy()
        uniques = series.cat.categories
    else:
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
    present = codes[codes >= 0]
    counts = np.bincount(present, minlength=len(uniques))
    used = np.flatnonzero(counts)
    categories = [python_scalar(value) for value in np.asarray(uniques, dtype=object)[used]]
    return CategoricalSummary(categories, counts[used].astype(np.int64), int(codes.size - present.size))


def frame_columns(
    df, columns: Iterable[str] | None = None, types: Mapping[str, str] | None = None
) -> tuple[dict, dict[str, str]]:
    """(columns, types) for ``ReferenceProfile.from_columns`` / ``compare``.

    ``types`` fixes the type of the columns it names; the others are inferred. A requested
    column that is absent raises ValueError naming it.
    """
    names = list(df.columns) if columns is None else list(columns)
    absent = [name for name in names if name not in df.columns]
    if absent:
        raise ValueError(f"unknown column(s): {', '.join(map(str, absent))}")
    types = dict(types or {})
    arrays: dict = {}
    resolved: dict[str, str] = {}
    for name in names:
        series = df[name]
        counted = count_series(series) if holds_objects(series) else None
        infer = infer_frame_type if columns is None else explicit_frame_type
        column_type = types.get(name) or infer(series, counted)
        if column_type is None:
            if columns is None:
                continue
            raise ValueError(f"column {name!r} of dtype {series.dtype} is neither numerical nor categorical")
        if column_type == NUMERICAL and isinstance(series.dtype, np.dtype) and series.dtype.kind in "iu":
            arrays[name] = series.to_numpy()  # kept integer: numpy bins integers differently
        elif column_type == NUMERICAL:
            try:
                arrays[name] = series.to_numpy(dtype=np.float64, na_value=np.nan)
            except (TypeError, ValueError):
                raise ValueError(f"column {name!r} is not numerical in every data set") from None
        else:
            arrays[name] = counted or count_series(series)
        resolved[name] = column_type
    return arrays, resolved
