"""Drift reports: every feature of a window tested against a reference profile.

The dataset drifts when the share of drifted features reaches ``drift_share`` (Evidently's
``DataDriftPreset`` rule). ``DriftReport.to_dict()`` is the JSON shape of CONTRACT.md §5,
returned by ``GET /v1/models/{model}/drift`` and printed by ``driftline drift --json``.

Prediction drift is the same machinery on a prediction or score column: profile
``{"prediction": reference_predictions}`` and compare it with the window's predictions.

Edge cases, each with a defined answer:

* missing values (None, NaN, +/-inf) are dropped before the test, as Evidently does, and
  ``FeatureDrift.missing`` counts them in the current window;
* a feature with no values left in the reference or the window (Evidently raises an error)
  is reported as not drifted, with the method's no-drift score (p-value 1, distance 0);
* a constant feature is tested like any other (a Z-test p-value of 1 when both samples hold
  the same single value); chi-square over a single category, where SciPy's p-value is
  undefined, reports 1.

``drift_report`` (``detectors.profile``) is the same on two pandas DataFrames.

>>> import numpy as np
>>> from detectors.summaries import summarise
>>> reference = {"amount": summarise(np.arange(300.0) % 50, "numerical")}
>>> report = compare(reference, {"amount": np.arange(300.0) % 50 + 20})
>>> report.features["amount"].method, report.features["amount"].drift
('ks', True)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

from detectors.selection import auto_method
from detectors.stattests import METHODS
from detectors.summaries import ColumnSummary, summarise_columns, type_of


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's verdict: ``score`` is the test's p-value or distance, as Evidently reports it."""

    type: str
    method: str
    score: float
    threshold: float
    drift: bool
    missing: int


@dataclass(frozen=True)
class DriftReport:
    dataset_drift: bool
    drift_share: float
    drifted_features: int
    features_total: int
    features: dict[str, FeatureDrift]

    def to_dict(self) -> dict:
        return {
            "dataset_drift": self.dataset_drift,
            "drift_share": self.drift_share,
            "drifted_features": self.drifted_features,
            "features_total": self.features_total,
            "features": {name: asdict(feature) for name, feature in self.features.items()},
        }


def check_method(name: str) -> None:
    if name != "auto" and name not in METHODS:
        raise ValueError(f"unknown drift method {name!r}; use 'auto' or one of {', '.join(METHODS)}")


def compare(
    reference: Mapping[str, ColumnSummary],
    current_columns: Mapping,
    method: str = "auto",
    threshold: float | None = None,
    drift_share: float = 0.5,
    per_feature_method: Mapping[str, str] | None = None,
) -> DriftReport:
    """Test every feature of ``reference`` (a profile's column summaries) against the same
    column of ``current_columns`` (arrays, or summaries of the same type) with ``method``, or
    ``per_feature_method[name]`` where given.

    ``threshold`` replaces every method's default threshold; ``None`` keeps the defaults.
    """
    per_feature_method = dict(per_feature_method or {})
    check_method(method)
    for name in per_feature_method.values():
        check_method(name)
    unknown = [name for name in per_feature_method if name not in reference]
    if unknown:
        raise ValueError(f"per_feature_method names unprofiled column(s): {', '.join(unknown)}")
    absent = [name for name in reference if name not in current_columns]
    if absent:
        raise ValueError(f"current data lacks profiled column(s): {', '.join(absent)}")
    types = {name: type_of(summary) for name, summary in reference.items()}
    window = summarise_columns({name: current_columns[name] for name in reference}, types)
    features = {
        name: _test_feature(ref, window[name], types[name], per_feature_method.get(name, method), threshold, name)
        for name, ref in reference.items()
    }
    drifted = sum(feature.drift for feature in features.values())
    share = drifted / len(features) if features else 0.0
    return DriftReport(
        dataset_drift=bool(features) and share >= drift_share,
        drift_share=share,
        drifted_features=drifted,
        features_total=len(features),
        features=features,
    )


def _test_feature(ref, cur, column_type: str, method_name: str, threshold, name: str) -> FeatureDrift:
    if method_name == "auto":
        method_name = auto_method(ref, cur, column_type)
    else:
        allowed = METHODS[method_name].column_types
        if column_type not in allowed:
            raise ValueError(
                f"method {method_name!r} does not apply to {column_type} column {name!r} (only to {allowed[0]})"
            )
    method = METHODS[method_name]
    limit = method.default_threshold if threshold is None else float(threshold)
    if ref.n == 0 or cur.n == 0:
        return FeatureDrift(column_type, method_name, method.no_drift_score, limit, False, cur.n_missing)
    score = method.score(ref, cur, column_type)
    return FeatureDrift(column_type, method_name, score, limit, bool(method.drifted(score, limit)), cur.n_missing)

