"""``driftline drift``: files in, a table or CONTRACT §5 JSON out, exit codes for CI gates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from detectors import drift_report

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "examples" / "drift" / "reference.csv"
CURRENT = ROOT / "examples" / "drift" / "current.csv"


def driftline(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service.cli", "drift", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_table_by_default_and_exit_zero_without_gate():
    result = driftline("--reference", REFERENCE, "--current", CURRENT)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[2].split() == ["feature", "type", "method", "score", "threshold", "drift", "missing"]
    assert any(line.split()[:3] == ["amount", "numerical", "ks"] and "DRIFT" in line for line in lines)
    assert lines[-1] == "dataset drift DETECTED: 3 of 5 features drifted (share 0.60, threshold 0.5)"


def test_json_is_the_contract_shape_and_the_gate_fails_on_drift():
    result = driftline("--reference", REFERENCE, "--current", CURRENT, "--json", "--fail-on-drift")
    assert result.returncode == 1
    payload = json.loads(result.stdout)
    assert payload == drift_report(pd.read_csv(REFERENCE), pd.read_csv(CURRENT)).to_dict()
    assert set(payload) == {"dataset_drift", "drift_share", "drifted_features", "features_total", "features"}
    assert set(payload["features"]["amount"]) == {"type", "method", "score", "threshold", "drift", "missing"}
    assert payload["features"]["amount"]["missing"] == 16


def test_gate_passes_without_drift():
    result = driftline("--reference", REFERENCE, "--current", REFERENCE, "--fail-on-drift")
    assert result.returncode == 0, result.stderr
    assert "dataset drift not detected: 0 of 5" in result.stdout


def test_options_reach_the_report(tmp_path):
    result = driftline("--reference", REFERENCE, "--current", CURRENT, "--json", "--columns", "amount,score",
                       "--method", "psi", "--threshold", "0.3", "--drift-share", "1")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert list(payload["features"]) == ["amount", "score"]
    assert {f["method"] for f in payload["features"].values()} == {"psi"}
    assert {f["threshold"] for f in payload["features"].values()} == {0.3}
    expected = drift_report(pd.read_csv(REFERENCE), pd.read_csv(CURRENT), columns=["amount", "score"],
                            method="psi", threshold=0.3, drift_share=1.0)
    assert payload == expected.to_dict()


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".ndjson", ".csv.gz"])
def test_parquet_and_json_lines_read_like_csv(tmp_path, suffix):
    reference, current = pd.read_csv(REFERENCE), pd.read_csv(CURRENT)
    paths = []
    for name, frame in (("reference", reference), ("current", current)):
        path = tmp_path / f"{name}{suffix}"
        if suffix == ".parquet":
            frame.to_parquet(path)
        elif suffix == ".csv.gz":
            frame.to_csv(path, index=False)
        else:
            frame.to_json(path, orient="records", lines=True)
        paths.append(path)
    result = driftline("--reference", paths[0], "--current", paths[1], "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["drifted_features"] == 3


@pytest.mark.parametrize(
    "args,reason",
    [
        (["--reference", "nope.csv", "--current", CURRENT], "reference file not found: nope.csv"),
        (["--reference", REFERENCE, "--current", REFERENCE.with_suffix(".txt")], "current file not found"),
        (["--reference", REFERENCE, "--current", CURRENT, "--columns", "amount,zip"],
         "unknown column(s) in reference data: zip"),
        (["--reference", REFERENCE, "--current", CURRENT, "--columns", "country", "--method", "ks"],
         "'ks' does not apply to categorical column 'country'"),
        (["--reference", REFERENCE, "--current", CURRENT, "--drift-share", "2"], "--drift-share must be between"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args, reason):
    result = driftline(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert reason in result.stderr


def test_unreadable_formats_exit_2(tmp_path):
    unknown = tmp_path / "data.xlsx"
    unknown.write_text("x")
    broken = tmp_path / "data.parquet"
    broken.write_text("not parquet at all")
    for path, reason in ((unknown, "use .csv, .parquet or .jsonl"), (broken, "as parquet")):
        result = driftline("--reference", path, "--current", CURRENT)
        assert result.returncode == 2
        assert reason in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_functions_without_the_cli(capsys):
    import argparse

    from service.commands import drift

    parser = argparse.ArgumentParser()
    drift.add_arguments(parser)
    args = parser.parse_args(["--reference", str(REFERENCE), "--current", str(CURRENT), "--fail-on-drift"])
    assert drift.run(args) == 1
    assert "dataset drift DETECTED" in capsys.readouterr().out
