"""Run NannyML's CBPE on files and write its per-chunk results as JSON.

Runs in NannyML's own virtual environment (scripts/install-nannyml.sh), not driftline's:
    python nannyml_cbpe_oracle.py CASES.json OUT.json
CASES maps a case name to a spec: the reference and analysis files (.npz with y_true,
y_pred_proba, y_pred; for a multiclass case also classes, the order of the score matrix's
columns), the metrics, chunk_size and constant thresholds; with "dataset" set to one of
NannyML's shipped data sets, the script first writes that data set's columns to those two
files. OUT maps each case name to its results (one NannyML start for every case).
"""

import json
import math
import os
import sys
import warnings

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
warnings.filterwarnings("ignore")

import nannyml as nml  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from nannyml.thresholds import ConstantThreshold  # noqa: E402

# name -> (loader, label column)
DATASETS = {
    "synthetic_car_loan": (nml.load_synthetic_car_loan_dataset, "repaid"),
    "synthetic_binary_classification": (nml.load_synthetic_binary_classification_dataset, "work_home_actual"),
}
MULTICLASS_CLASSES = ["prepaid_card", "highstreet_card", "upmarket_card"]


def write_dataset(name: str, reference_path: str, analysis_path: str) -> None:
    if name == "synthetic_multiclass_classification":
        reference, analysis, targets = nml.load_synthetic_multiclass_classification_dataset()
        for frame, path in ((reference, reference_path), (analysis.merge(targets, on="id"), analysis_path)):
            np.savez(path, y_true=frame["y_true"].to_numpy(dtype=str), y_pred=frame["y_pred"].to_numpy(dtype=str),
                     y_pred_proba=frame[[f"y_pred_proba_{name}" for name in MULTICLASS_CLASSES]].to_numpy(dtype=float),
                     classes=np.array(MULTICLASS_CLASSES))
        return
    loader, label = DATASETS[name]
    reference, analysis, targets = loader()
    analysis = analysis.merge(targets, on="id") if label not in analysis.columns else analysis
    for frame, path in ((reference, reference_path), (analysis, analysis_path)):
        np.savez(path, y_true=frame[label].to_numpy(dtype=float),
                 y_pred_proba=frame["y_pred_proba"].to_numpy(dtype=float),
                 y_pred=frame["y_pred"].to_numpy(dtype=float))


def number(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return bool(value) if isinstance(value, (bool, np.bool_)) else float(value)


def run_case(spec: dict) -> dict:
    if spec.get("dataset"):
        write_dataset(spec["dataset"], spec["reference"], spec["analysis"])
    frames = {}
    classes = None
    for role in ("reference", "analysis"):
        arrays = np.load(spec[role])
        if "classes" in arrays:  # multiclass: a score column per class
            classes = arrays["classes"].tolist()
            columns = {"y_true": arrays["y_true"], "y_pred": arrays["y_pred"]}
            columns.update({f"proba_{index}": arrays["y_pred_proba"][:, index] for index in range(len(classes))})
            frames[role] = pd.DataFrame(columns)
        else:
            frames[role] = pd.DataFrame({name: arrays[name] for name in ("y_true", "y_pred_proba", "y_pred")})
    thresholds = {name: ConstantThreshold(lower=lower, upper=upper)
                  for name, (lower, upper) in (spec.get("thresholds") or {}).items()}
    if classes is None:
        outputs, problem = "y_pred_proba", "classification_binary"
    else:
        outputs = {name: f"proba_{index}" for index, name in enumerate(classes)}
        problem = "classification_multiclass"
    estimator = nml.CBPE(y_true="y_true", y_pred="y_pred", y_pred_proba=outputs, metrics=spec["metrics"],
                         chunk_size=spec.get("chunk_size"), problem_type=problem, thresholds=thresholds or None)
    estimator.fit(frames["reference"])
    if classes is None:
        calibrated = bool(estimator.needs_calibration)
    else:  # per class, in sorted class order
        calibrated = [type(estimator._calibrators[name]).__name__ != "NoopCalibrator" for name in sorted(classes)]
    result = {"version": nml.__version__, "needs_calibration": calibrated}
    for period, data in (("reference", frames["reference"]), ("analysis", frames["analysis"].drop(columns="y_true"))):
        table = estimator.estimate(data).filter(period="analysis").to_df()
        result[period] = [
            {"start": int(row[("chunk", "start_index")]), "end": int(row[("chunk", "end_index")]) + 1,
             "metrics": {name: {field: number(row[(name, field)]) for field in
                                ("value", "sampling_error", "upper_confidence_boundary", "lower_confidence_boundary",
                                 "upper_threshold", "lower_threshold", "alert")}
                         for name in spec["metrics"]}}
            for _, row in table.iterrows()]
    return result


def main(cases_path: str, out_path: str) -> None:
    with open(cases_path) as handle:
        cases = json.load(handle)
    with open(out_path, "w") as handle:
        json.dump({name: run_case(spec) for name, spec in cases.items()}, handle)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
