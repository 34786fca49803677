"""Reference profiles: a reference data set summarised once, reused for every window.

Each feature is reduced to what the univariate tests need (``detectors.summaries``), so
comparing a window against the reference never touches the raw reference rows again. This
module sits above the summaries, the DataFrame adapter (``detectors.frames``) and the tests
(``detectors.report``), and ties them together.

The summary names are re-exported here, where they were first defined.

>>> import numpy as np
>>> profile = ReferenceProfile.from_columns(
...     {"amount": np.array([1.0, 2.0, np.nan, 4.0]), "country": np.array(["DE", "FR", "DE", None], dtype=object)})
>>> profile.types
{'amount': 'numerical', 'country': 'categorical'}
>>> profile.columns["country"].counts.tolist()
[2, 1]
>>> ReferenceProfile.from_bytes(profile.to_bytes()).columns["amount"].sorted_values.tolist()
[1.0, 2.0, 4.0]
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from detectors.frames import frame_columns
from detectors.report import DriftReport, compare
from detectors.summaries import (
    CATEGORICAL,
    CODE_LIMIT,
    INTEGER_CARDINALITY_LIMIT,
    NUMERICAL,
    CategoricalSummary,
    ColumnSummary,
    NumericalSummary,
    count_categories,
    count_distinct_sorted,
    distinct_counts_sorted,
    infer_type,
    is_missing,
    python_scalar,
    start_summaries,
    summarise,
    summarise_columns,
    type_of,
)

__all__ = [
    "CATEGORICAL",
    "CODE_LIMIT",
    "INTEGER_CARDINALITY_LIMIT",
    "NUMERICAL",
    "CategoricalSummary",
    "ColumnSummary",
    "NumericalSummary",
    "ReferenceProfile",
    "count_categories",
    "count_distinct_sorted",
    "distinct_counts_sorted",
    "drift_report",
    "infer_type",
    "is_missing",
    "python_scalar",
    "start_summaries",
    "summarise",
    "summarise_columns",
    "type_of",
]


class ReferenceProfile:
    """A reference data set summarised per feature, built once and compared with many windows.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> profile = ReferenceProfile.from_columns({"amount": rng.normal(size=500)})
    >>> report = profile.compare({"amount": rng.normal(1.0, size=500)})
    >>> report.features["amount"].method, report.features["amount"].drift
    ('ks', True)
    """

    def __init__(self, columns: Mapping[str, ColumnSummary], n_rows: int):
        self.columns: dict[str, ColumnSummary] = dict(columns)
        self.n_rows = int(n_rows)

    @property
    def types(self) -> dict[str, str]:
        return {
            name: NUMERICAL if isinstance(summary, NumericalSummary) else CATEGORICAL
            for name, summary in self.columns.items()
        }

    @classmethod
    def from_columns(
        cls, columns: Mapping[str, np.ndarray], types: Mapping[str, str] | None = None
    ) -> ReferenceProfile:
        """Summarise column arrays; a column missing from ``types`` gets Evidently's inferred type."""
        types = dict(types or {})
        resolved = {name: types.get(name) or type_of(values) for name, values in columns.items()}
        summaries = summarise_columns(columns, resolved)
        lengths = {summary.n + summary.n_missing for summary in summaries.values()}
        if len(lengths) > 1:
            raise ValueError(f"reference columns differ in length: {sorted(lengths)}")
        return cls(summaries, lengths.pop() if lengths else 0)

    @classmethod
    def from_dataframe(cls, df, columns: Iterable[str] | None = None, types: Mapping[str, str] | None = None):
        """Summarise a pandas DataFrame (pandas is needed only here and in ``drift_report``)."""
        arrays, resolved = frame_columns(df, columns, types)
        return cls.from_columns(arrays, resolved)

    def compare(self, current_columns, method="auto", threshold=None, drift_share=0.5, per_feature_method=None):
        """Test a window of current data against this reference; see ``detectors.report.compare``."""
        return compare(self.columns, current_columns, method, threshold, drift_share, per_feature_method)

    def to_bytes(self) -> bytes:
        """Compact checkpoint: an ``.npz`` archive of arrays plus a JSON header, no pickle."""
        header: dict[str, Any] = {"n_rows": self.n_rows, "columns": []}
        arrays: dict[str, np.ndarray] = {}
        for index, (name, summary) in enumerate(self.columns.items()):
            if isinstance(summary, NumericalSummary):
                header["columns"].append({"name": name, "type": NUMERICAL, "n_missing": summary.n_missing,
                                          "integer": summary.integer})
                arrays[f"c{index}"] = summary.sorted_values
            else:
                header["columns"].append(
                    {"name": name, "type": CATEGORICAL, "categories": summary.categories,
                     "n_missing": summary.n_missing}
                )
                arrays[f"c{index}"] = summary.counts
        buffer = io.BytesIO()
        # numpy's stub lets a **dict of arrays fill allow_pickle: bool, and so refuses it.
        np.savez_compressed(buffer, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
                            **arrays)  # type: ignore[arg-type]
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ReferenceProfile:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            header = json.loads(archive["header"].tobytes().decode())
            columns: dict[str, ColumnSummary] = {}
            for index, meta in enumerate(header["columns"]):
                array = archive[f"c{index}"]
                if meta["type"] == NUMERICAL:
                    columns[meta["name"]] = NumericalSummary(array, meta["n_missing"], meta.get("integer", False))
                else:
                    columns[meta["name"]] = CategoricalSummary(meta["categories"], array, meta["n_missing"])
        return cls(columns, header["n_rows"])

    def __repr__(self) -> str:
        return f"ReferenceProfile(n_rows={self.n_rows}, columns={self.types})"


def drift_report(
    reference_df,
    current_df,
    columns=None,
    method: str = "auto",
    threshold: float | None = None,
    drift_share: float = 0.5,
) -> DriftReport:
    """Compare two pandas DataFrames, column types inferred from the current data as
    Evidently's ``Report.run(current, reference)`` does.

    ``columns`` defaults to every numerical and categorical column of the current data.

    >>> import pandas as pd
    >>> ref = pd.DataFrame({"amount": [float(i % 50) for i in range(300)], "country": ["DE", "FR", "US"] * 100})
    >>> cur = pd.DataFrame({"amount": [float(i % 50) + 20 for i in range(300)], "country": ["DE", "FR", "US"] * 100})
    >>> report = drift_report(ref, cur)
    >>> report.features["amount"].method, report.features["amount"].drift
    ('ks', True)
    >>> report.to_dict()["drift_share"], report.dataset_drift
    (0.5, True)
    """
    current, types = frame_columns(current_df, columns)
    absent = [name for name in current if name not in reference_df.columns]
    if absent:
        raise ValueError(f"reference data lacks column(s): {', '.join(map(str, absent))}")
    current_summaries = start_summaries(current, types)  # sorts while the reference is read
    reference, _ = frame_columns(reference_df, list(current), types)
    profile = ReferenceProfile.from_columns(reference, types)
    return compare(profile.columns, current_summaries(), method, threshold, drift_share)
