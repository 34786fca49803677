"""driftline's CBPE against NannyML 0.13.1's, run in its own virtualenv.

scripts/install-nannyml.sh makes that virtualenv and scripts/test.sh exports its python as
NANNYML_PYTHON (default here: <repo>/.venv-nannyml/bin/python). Each case writes the data as
.npz files, runs tests/detectors/nannyml_cbpe_oracle.py there, and compares every chunk, of
the reference and of the analysis data: the estimate within 0.005, the alert verdict, the
thresholds, the sampling error and the calibration decision.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from detectors.cbpe import BINARY_METRICS, CBPE
from detectors.cbpe_multiclass import MULTICLASS_METRICS, MulticlassCBPE
from tests.conftest import require_tool

NANNYML_VERSION = "0.13.1"
ROOT = Path(__file__).resolve().parents[2]
ORACLE = Path(__file__).with_name("nannyml_cbpe_oracle.py")
TOLERANCE = 0.005


@pytest.fixture(scope="module")
def nannyml_python() -> Path:
    path = Path(os.environ.get("NANNYML_PYTHON") or ROOT / ".venv-nannyml" / "bin" / "python")
    return require_tool("a NannyML environment", path.exists() and path,
                        f"none at {path}: run scripts/install-nannyml.sh (scripts/test.sh does)")


def save_multiclass(path: Path, classes, y_true, y_pred_proba, y_pred) -> str:
    np.savez(path, y_true=np.asarray(y_true, str), y_pred_proba=np.asarray(y_pred_proba, float),
             y_pred=np.asarray(y_pred, str), classes=np.asarray(classes, str))
    return str(path)


def generated_multiclass(rng, n: int, classes, concentration: float, sharpen: float):
    """Scores from a Dirichlet distribution; labels drawn from the scores raised to ``sharpen``
    and renormalised (1: calibrated; above 1: under-confident scores)."""
    scores = rng.dirichlet(np.full(len(classes), concentration), size=n)
    truth = scores ** sharpen / (scores ** sharpen).sum(axis=1, keepdims=True)
    cumulative = truth.cumsum(axis=1)
    labels = np.asarray(classes)[(rng.uniform(size=(n, 1)) > cumulative).sum(axis=1).clip(max=len(classes) - 1)]
    return labels, scores, np.asarray(classes)[scores.argmax(axis=1)]


def save(path: Path, y_true, y_pred_proba, y_pred) -> str:
    np.savez(path, y_true=np.asarray(y_true, float), y_pred_proba=np.asarray(y_pred_proba, float),
             y_pred=np.asarray(y_pred, float))
    return str(path)


def generated(rng, n: int, calibrated: bool, shift: float = 0.0):
    """Scores from a beta distribution moved by ``shift``; labels drawn with probability equal
    to the score (a calibrated model) or to its square (over-confident: calibration needed)."""
    scores = np.clip(rng.beta(2.0, 2.0, size=n) + shift, 0.0, 1.0)
    truth = scores if calibrated else scores ** 2
    labels = (rng.uniform(size=n) < truth).astype(int)
    return labels, scores, (scores >= 0.5).astype(int)


def drifting(rng, calibrated: bool):
    """A reference, and analysis data whose scores move down, then up."""
    reference = generated(rng, 12_345, calibrated)
    parts = [generated(rng, 4000, calibrated), generated(rng, 4000, calibrated, shift=-0.15),
             generated(rng, 2500, calibrated, shift=0.2)]
    return reference, [np.concatenate(columns) for columns in zip(*parts, strict=True)]


def cases(directory: Path) -> dict[str, dict]:
    """Every case's spec; generated data is written to ``directory`` here, shipped data sets
    by the oracle."""
    specs = {}
    for dataset, chunk_size in (("synthetic_car_loan", 5000), ("synthetic_binary_classification", None)):
        specs[dataset] = {"dataset": dataset, "reference": str(directory / f"{dataset}-reference.npz"),
                          "analysis": str(directory / f"{dataset}-analysis.npz"), "metrics": list(BINARY_METRICS),
                          "chunk_size": chunk_size}
    rng = np.random.default_rng(20261202)
    for name, calibrated in (("calibrated", True), ("miscalibrated", False)):
        reference, analysis = drifting(rng, calibrated)
        if calibrated:
            # A missing score is left out of its chunk (NannyML cannot calibrate one, so only here).
            analysis[1][[17, 4001, 9000]] = np.nan
        specs[name] = {"reference": save(directory / f"{name}-reference.npz", *reference),
                       "analysis": save(directory / f"{name}-analysis.npz", *analysis),
                       "metrics": list(BINARY_METRICS), "chunk_size": 1000}
    reference = generated(rng, 6000, calibrated=False)
    analysis = generated(rng, 6000, calibrated=False, shift=-0.1)
    specs["configured_thresholds"] = {
        "reference": save(directory / "thresholds-reference.npz", *reference),
        "analysis": save(directory / "thresholds-analysis.npz", *analysis),
        "metrics": ["accuracy", "f1", "roc_auc"], "chunk_size": 750,
        "thresholds": {"accuracy": [0.74, None], "f1": [None, 0.54]}}
    specs["synthetic_multiclass_classification"] = {
        "dataset": "synthetic_multiclass_classification", "chunk_size": 6000, "metrics": list(MULTICLASS_METRICS),
        "reference": str(directory / "multiclass-reference.npz"),
        "analysis": str(directory / "multiclass-analysis.npz")}
    classes = ["red", "green", "blue", "amber"]  # not in sorted order: the score columns follow this one
    reference = generated_multiclass(rng, 8000, classes, 0.7, sharpen=2.0)
    parts = [generated_multiclass(rng, 3000, classes, 0.7, 2.0), generated_multiclass(rng, 3500, classes, 2.5, 2.0)]
    analysis = [np.concatenate(columns) for columns in zip(*parts, strict=True)]
    specs["multiclass_generated"] = {
        "reference": save_multiclass(directory / "mc-reference.npz", classes, *reference),
        "analysis": save_multiclass(directory / "mc-analysis.npz", classes, *analysis),
        "metrics": list(MULTICLASS_METRICS), "chunk_size": 1000}
    return specs


@pytest.fixture(scope="module")
def nannyml(nannyml_python, tmp_path_factory) -> dict[str, tuple[dict, dict]]:
    """case name -> (spec, NannyML's results), from one run of the oracle."""
    directory = tmp_path_factory.mktemp("cbpe-parity")
    specs = cases(directory)
    cases_path, out_path = directory / "cases.json", directory / "nannyml.json"
    cases_path.write_text(json.dumps(specs))
    env = {**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"}
    completed = subprocess.run([str(nannyml_python), str(ORACLE), str(cases_path), str(out_path)],
                               capture_output=True, text=True, timeout=900, env=env)
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads(out_path.read_text())
    assert {result["version"] for result in results.values()} == {NANNYML_VERSION}
    return {name: (spec, results[name]) for name, spec in specs.items()}


def assert_parity(spec: dict, nannyml: dict) -> dict[str, float]:
    """Compare every chunk; return the largest estimate difference per metric."""
    reference, analysis = np.load(spec["reference"]), np.load(spec["analysis"])
    if "classes" in reference:
        estimator = MulticlassCBPE(reference["classes"].tolist(), spec["metrics"], chunk_size=spec.get("chunk_size"),
                                   thresholds=spec.get("thresholds"))
    else:
        estimator = CBPE(spec["metrics"], chunk_size=spec.get("chunk_size"), thresholds=spec.get("thresholds"))
    estimator.fit(reference["y_true"], reference["y_pred_proba"], reference["y_pred"])
    assert estimator.calibrated == nannyml["needs_calibration"]
    largest = dict.fromkeys(spec["metrics"], 0.0)
    for period, data in (("reference", reference), ("analysis", analysis)):
        ours = estimator.estimate(data["y_pred_proba"], data["y_pred"])
        theirs = nannyml[period]
        assert [(chunk.start, chunk.end) for chunk in ours] == [(chunk["start"], chunk["end"]) for chunk in theirs]
        for chunk, expected in zip(ours, theirs, strict=True):
            for name in spec["metrics"]:
                mine, nml = chunk.metrics[name], expected["metrics"][name]
                where = f"{period} chunk [{chunk.start}:{chunk.end}) {name}"
                assert abs(mine.value - nml["value"]) <= TOLERANCE, where
                largest[name] = max(largest[name], abs(mine.value - nml["value"]))
                assert mine.alert == nml["alert"], where
                assert mine.lower_threshold == pytest.approx(nml["lower_threshold"], abs=1e-9), where
                assert mine.upper_threshold == pytest.approx(nml["upper_threshold"], abs=1e-9), where
                assert mine.sampling_error == pytest.approx(nml["sampling_error"], rel=1e-6), where
                assert mine.upper_confidence_bound == pytest.approx(nml["upper_confidence_boundary"], abs=1e-6), where
                assert mine.lower_confidence_bound == pytest.approx(nml["lower_confidence_boundary"], abs=1e-6), where
    return largest


@pytest.mark.parametrize("dataset", ["synthetic_car_loan", "synthetic_binary_classification"])
def test_shipped_datasets_match_nannyml_0_13_1(nannyml, dataset):
    spec, result = nannyml[dataset]
    assert result["needs_calibration"]
    assert any(chunk["metrics"]["roc_auc"]["alert"] for chunk in result["analysis"])  # the shift is seen
    print(dataset, assert_parity(spec, result))


@pytest.mark.parametrize("case", ["calibrated", "miscalibrated"])
def test_generated_data_match_nannyml_0_13_1(nannyml, case):
    spec, result = nannyml[case]
    assert result["needs_calibration"] is (case == "miscalibrated")
    assert any(chunk["metrics"]["accuracy"]["alert"] for chunk in result["analysis"])
    print(case, assert_parity(spec, result))


@pytest.mark.parametrize("case", ["synthetic_multiclass_classification", "multiclass_generated"])
def test_multiclass_matches_nannyml_0_13_1(nannyml, case):
    spec, result = nannyml[case]
    assert any(result["needs_calibration"])
    assert any(chunk["metrics"]["roc_auc"]["alert"] for chunk in result["analysis"])
    print(case, assert_parity(spec, result))


def test_configured_thresholds_match_nannyml_0_13_1(nannyml):
    spec, result = nannyml["configured_thresholds"]
    assert_parity(spec, result)
    for name in ("accuracy", "f1"):  # the configured bounds split the chunks
        verdicts = {chunk["metrics"][name]["alert"] for chunk in result["analysis"]}
        assert verdicts == {True, False}, name
