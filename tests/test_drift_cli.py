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
    not_tested = payload.pop("not_tested")  # the CLI's two keys beyond the contract's shape
    assert not_tested == {}
    quality = payload.pop("quality")
    assert set(quality) == {"samples", "new_features", "absent_features", "features", "thresholds", "breaches"}
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
    assert payload.pop("not_tested") == {}  # columns left out by --columns are the user's choice
    assert list(payload.pop("quality")["features"]) == ["amount", "score"]  # the columns drift tests
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


def drift_in_process(capsys, *args: str) -> subprocess.CompletedProcess:
    """``driftline drift`` without a new interpreter (seconds each on a busy machine)."""
    import argparse

    from service.commands import drift

    parser = argparse.ArgumentParser()
    drift.add_arguments(parser)
    capsys.readouterr()
    code = drift.run(parser.parse_args(list(map(str, args))))
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, captured.out, captured.err)


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("empty_role", ["reference", "current"])
def test_a_file_without_rows_fails_the_gate(tmp_path, empty_role):
    header_only = tmp_path / "header_only.csv"
    header_only.write_text("amount,age,country,device,score\n")
    files = {"reference": REFERENCE, "current": CURRENT, empty_role: header_only}
    result = driftline("--reference", files["reference"], "--current", files["current"], "--fail-on-drift")
    assert result.returncode == 2, result.stdout
    assert result.stderr == f"driftline drift: {empty_role} file {header_only} has no rows\n"


def test_nothing_left_to_test_fails_the_gate(tmp_path):
    ids = pd.DataFrame({"request_id": [f"r{i}" for i in range(50)], "note": [f"n{i}" for i in range(50)]})
    reference = write_csv(tmp_path / "reference.csv", ids)
    current = write_csv(tmp_path / "current.csv", ids.assign(request_id=[f"s{i}" for i in range(50)]))
    result = driftline("--reference", reference, "--current", current, "--fail-on-drift", "--json")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == ("driftline drift: no column left to test (request_id: text (distinct strings in more "
                             "than half the rows); note: text (distinct strings in more than half the rows))\n")


def test_files_sharing_no_column_name_their_columns(capsys, tmp_path):
    reference = write_csv(tmp_path / "reference.csv", pd.DataFrame({"a": [1.0, 2.0], "c": [3.0, 4.0]}))
    current = write_csv(tmp_path / "current.csv", pd.DataFrame({"p": [1.0, 2.0], "q": [3.0, 4.0]}))
    result = drift_in_process(capsys, "--reference", reference, "--current", current, "--fail-on-drift")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == ("driftline drift: the reference and current data share no column "
                             "(reference: a, c; current: p, q)\n")


def test_columns_without_values_fail_the_gate(capsys, tmp_path):
    reference = write_csv(tmp_path / "reference.csv", pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [0.5, 0.1, 0.2]}))
    current = write_csv(tmp_path / "current.csv", pd.DataFrame({"a": [None, None], "b": [float("inf"), None]}))
    result = drift_in_process(capsys, "--reference", reference, "--current", current, "--fail-on-drift")
    assert result.returncode == 2 and result.stdout == ""
    assert "no column has values in both files" in result.stderr


def test_untested_columns_are_named_on_stderr_and_in_json(tmp_path):
    reference, current = pd.read_csv(REFERENCE), pd.read_csv(CURRENT)
    reference["legacy_flag"] = 1
    current["session"] = [f"s{i}" for i in range(len(current))]
    current["new_feature"] = 0.5
    reference["session"] = [f"t{i}" for i in range(len(reference))]
    paths = write_csv(tmp_path / "reference.csv", reference), write_csv(tmp_path / "current.csv", current)
    result = driftline("--reference", paths[0], "--current", paths[1], "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    expected = {"legacy_flag": "only in the reference file", "new_feature": "only in the current file",
                "session": "text (distinct strings in more than half the rows)"}
    assert payload["not_tested"] == expected
    assert set(payload["features"]) == {"amount", "age", "country", "device", "score"}
    assert result.stderr.splitlines() == [f"driftline drift: column {name!r} not tested: {reason}"
                                          for name, reason in expected.items()]
    table = driftline("--reference", paths[0], "--current", paths[1])
    assert table.returncode == 0 and table.stderr == result.stderr


@pytest.mark.parametrize(
    "method,threshold,allowed",
    [("ks", "1.5", "p-value in (0, 1]"), ("ks", "0", "p-value in (0, 1]"), ("chisquare", "-0.01", "p-value"),
     ("z", "nan", "p-value"), ("wasserstein", "-0.1", "distance >= 0"), ("psi", "-1", "distance >= 0"),
     ("hellinger", "inf", "distance >= 0"), ("kl_div", "nan", "distance"), ("jensenshannon", "-1e-9", "distance"),
     # auto picks KS, chi-square and Z on the example: all p-values
     ("auto", "2", "p-value in (0, 1]")],
)
def test_threshold_outside_the_methods_range_exits_2(capsys, method, threshold, allowed):
    result = drift_in_process(capsys, "--reference", REFERENCE, "--current", CURRENT, "--method", method,
                              f"--threshold={threshold}")
    assert result.returncode == 2 and result.stdout == ""
    assert allowed in result.stderr and len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("method,threshold", [("ks", "1"), ("z", "1e-12"), ("psi", "0"), ("wasserstein", "7.5"),
                                              ("auto", "0.9")])
def test_threshold_at_the_edges_of_the_range_is_used(capsys, method, threshold):
    columns = "amount,score" if method in ("ks", "wasserstein") else "country,device" if method == "z" else None
    args = ["--columns", columns] if columns else []
    result = drift_in_process(capsys, "--reference", REFERENCE, "--current", CURRENT, "--method", method,
                              f"--threshold={threshold}", "--json", *args)
    assert result.returncode == 0, result.stderr
    assert {f["threshold"] for f in json.loads(result.stdout)["features"].values()} == {float(threshold)}


@pytest.mark.parametrize("share", ["0", "-0.5", "1.01", "nan"])
def test_drift_share_outside_0_1_exits_2(capsys, share):
    result = drift_in_process(capsys, "--reference", REFERENCE, "--current", CURRENT, f"--drift-share={share}")
    assert result.returncode == 2 and result.stdout == ""
    assert "--drift-share must be between 0 and 1 (0 excluded)" in result.stderr


@pytest.mark.parametrize("role", ["reference", "current"])
def test_a_directory_given_as_a_file_says_so(capsys, tmp_path, role):
    folder = tmp_path / "data.csv"
    folder.mkdir()
    files = {"reference": REFERENCE, "current": CURRENT, role: folder}
    result = drift_in_process(capsys, "--reference", files["reference"], "--current", files["current"])
    assert result.returncode == 2
    assert result.stderr == f"driftline drift: {role} file {folder} is a directory, not a file\n"


def test_data_quality_in_the_table_and_json_and_its_gate(tmp_path):
    reference = write_csv(tmp_path / "reference.csv", pd.DataFrame({
        "x": [float(i) for i in range(100)], "c": ["a", "b"] * 50, "gone": [1.5] * 100}))
    # x: 40 % missing (20 empty, 20 text), 10 of the 60 values outside [0, 99]; c: 20 unseen; a new column.
    x = ["" if i % 5 == 0 else "n/a" if i % 5 == 1 else str(200 + i) if i % 10 == 2 else str(i) for i in range(100)]
    current = write_csv(tmp_path / "current.csv", pd.DataFrame({
        "x": x, "c": ["z" if i % 5 == 0 else "a" for i in range(100)], "extra": [1] * 100}))
    result = driftline("--reference", reference, "--current", current, "--json")
    assert result.returncode == 0, result.stderr
    quality = json.loads(result.stdout)["quality"]
    assert quality["features"]["x"]["missing"] == 0.4 and quality["features"]["x"]["out_of_range"] == 10 / 60
    assert quality["features"]["c"]["unseen"] == 0.2 and quality["features"]["gone"]["missing"] == 1.0
    assert quality["new_features"] == ["extra"] and quality["absent_features"] == ["gone"]
    assert [(b["feature"], b["check"]) for b in quality["breaches"]] == [
        ("x", "missing_increase"), ("x", "out_of_range"), ("c", "unseen"), ("gone", "missing_increase")]
    gate = driftline("--reference", reference, "--current", current, "--fail-on-quality")
    assert gate.returncode == 1
    assert "data quality: 4 figure(s) above the thresholds" in gate.stdout
    assert "new columns: extra   absent columns: gone" in gate.stdout
    assert gate.stdout.splitlines()[-1].startswith("dataset drift ")
    loose = driftline("--reference", reference, "--current", current, "--fail-on-quality",
                      "--max-missing-increase", "1", "--max-out-of-range", "0.2", "--max-unseen", "0.2")
    assert loose.returncode == 0, loose.stdout
    assert driftline("--reference", reference, "--current", reference, "--fail-on-quality").returncode == 0
    wrong = driftline("--reference", reference, "--current", current, "--max-unseen", "2")
    assert wrong.returncode == 2 and "--max-unseen must be between 0 and 1" in wrong.stderr
