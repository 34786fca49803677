"""Run Evidently 0.7.23's ``DataDriftPreset`` (new API) and read back its verdicts."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import pandas as pd

DISPLAY_NAMES = {
    "K-S p_value": "ks",
    "chi-square p_value": "chisquare",
    "Z-test p_value": "z",
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
    "PSI": "psi",
    "Hellinger distance": "hellinger",
    "Kullback-Leibler divergence": "kl_div",
}


@dataclass
class EvidentlyColumn:
    method: str
    score: float
    threshold: float
    drift: bool


@dataclass
class EvidentlyResult:
    columns: dict[str, EvidentlyColumn]
    drifted: int
    share: float
    dataset_drift: bool


def run_evidently(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numerical=None,
    categorical=None,
    method=None,
    threshold=None,
    drift_share=0.5,
    per_column_method=None,
) -> EvidentlyResult:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    preset = DataDriftPreset(
        method=method, threshold=threshold, drift_share=drift_share, per_column_method=per_column_method
    )
    report = Report([preset], include_tests=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if numerical is None and categorical is None:
            snapshot = report.run(current, reference)
        else:
            definition = DataDefinition(numerical_columns=numerical or [], categorical_columns=categorical or [])
            snapshot = report.run(
                Dataset.from_pandas(current, data_definition=definition),
                Dataset.from_pandas(reference, data_definition=definition),
            )
        result = snapshot.dict()
    verdicts = {}
    dataset_drift = None
    for test in result["tests"]:
        if test["name"].startswith("Value Drift for column "):
            verdicts[test["name"][len("Value Drift for column "):]] = str(test["status"]).endswith("FAIL")
        elif test["name"].startswith("Share of Drifted Columns"):
            dataset_drift = str(test["status"]).endswith("FAIL")
    columns = {}
    drifted = share = None
    for metric in result["metrics"]:
        config = metric["config"]
        if config["type"].endswith("DriftedColumnsCount"):
            drifted, share = metric["value"]["count"], metric["value"]["share"]
        elif config["type"].endswith("ValueDrift"):
            name = config["column"]
            method_name = config["method"]
            columns[name] = EvidentlyColumn(
                method=DISPLAY_NAMES.get(method_name, method_name),
                score=float(metric["value"]),
                threshold=float(config["threshold"]),
                drift=verdicts[name],
            )
    return EvidentlyResult(columns, int(drifted), float(share), bool(dataset_drift))


def scores_agree(ours: float, theirs: float) -> bool:
    if math.isnan(theirs):
        return False
    return math.isclose(ours, theirs, rel_tol=1e-6, abs_tol=1e-12)


def skip_widget_rendering(monkeypatch) -> None:
    """Evidently builds plotly widgets for every column, ~80% of its run time; the drift
    numbers do not depend on them, so these tests turn them off (for one test at a time:
    the service's HTML report in other tests needs them)."""
    from evidently.metrics.column_statistics import ValueDriftCalculation
    from evidently.presets.drift import DataDriftPreset

    monkeypatch.setattr(ValueDriftCalculation, "_render", lambda self, *args, **kwargs: [])
    monkeypatch.setattr(DataDriftPreset, "render", lambda self, *args, **kwargs: [])
