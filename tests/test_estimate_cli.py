"""``driftline estimate``: CBPE on two files, a table or JSON out, exit codes for CI gates."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from detectors import estimate_performance
from service.cli import main


def frame(rng, n: int, low: float = 0.0, high: float = 1.0, labels: bool = True) -> pd.DataFrame:
    score = rng.uniform(low, high, size=n)
    data = {"score": score, "prediction": (score >= 0.5).astype(int)}
    if labels:
        data["label"] = (rng.uniform(size=n) < score).astype(int)
    return pd.DataFrame(data)


@pytest.fixture()
def files(tmp_path):
    rng = np.random.default_rng(11)
    reference, current = tmp_path / "reference.csv", tmp_path / "current.csv"
    frame(rng, 5000).to_csv(reference, index=False)
    pd.concat([frame(rng, 2000, labels=False), frame(rng, 2000, 0.3, 0.7, labels=False)]).to_csv(current, index=False)
    return reference, current


def run(capsys, *args) -> tuple[int, str, str]:
    code = main(["estimate", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_table_shows_every_chunk_and_the_alerts(files, capsys):
    reference, current = files
    code, out, _ = run(capsys, "--reference", reference, "--current", current, "--chunk-size", 1000)
    assert code == 0
    lines = out.splitlines()
    assert lines[2].split() == ["chunk", "rows", "roc_auc", "f1", "precision", "recall", "specificity", "accuracy"]
    chunk_rows = [line for line in lines if line.startswith("[")]
    assert len(chunk_rows) == 4
    assert all(line.count("!") == 0 for line in chunk_rows[:2]) and chunk_rows[3].count("!") >= 2
    assert lines[-1].startswith("chunks alerting: roc_auc 2 of 4")


def test_json_is_estimate_performance_and_the_gate_fails_on_alert(files, capsys):
    reference, current = files
    code, out, _ = run(capsys, "--reference", reference, "--current", current, "--chunk-size", 1000, "--json",
                       "--metrics", "accuracy,roc_auc", "--fail-on-alert")
    assert code == 1
    payload = json.loads(out)
    expected = estimate_performance(pd.read_csv(reference), pd.read_csv(current), metrics=["accuracy", "roc_auc"],
                                    chunk_size=1000)
    assert payload == json.loads(json.dumps(expected.to_dict()))
    assert payload["alerts"] == {"accuracy": 2, "roc_auc": 2}
    assert payload["chunks"][0]["metrics"]["accuracy"]["realized"] is None


def test_labels_in_the_current_file_give_realised_values_and_columns_are_named(tmp_path, capsys):
    rng = np.random.default_rng(12)
    names = {"score": "p", "prediction": "yhat", "label": "y"}
    reference, current = tmp_path / "reference.jsonl", tmp_path / "current.csv"
    frame(rng, 4000).rename(columns=names).to_json(reference, orient="records", lines=True)
    frame(rng, 4000).rename(columns=names).to_csv(current, index=False)
    code, out, err = run(capsys, "--reference", reference, "--current", current, "--json", "--y-true", "y",
                         "--y-pred", "yhat", "--y-pred-proba", "p", "--fail-on-alert")
    assert code == 0, err
    chunks = json.loads(out)["chunks"]
    assert len(chunks) == 10  # ten chunks by default
    for chunk in chunks:
        accuracy = chunk["metrics"]["accuracy"]
        assert abs(accuracy["value"] - accuracy["realized"]) < 0.06


@pytest.mark.parametrize("change, message", [
    (lambda ref: ref.drop(columns="label"), "reference data lacks column 'label'"),
    (lambda ref: ref.assign(label=ref.label + 1), "y_true must be 0 or 1"),
    (lambda ref: ref.assign(score="high"), "reference column 'score' must hold numbers"),
    (lambda ref: ref.assign(label=np.where(np.arange(len(ref)) == 3, np.nan, ref.label)), "missing labels"),
])
def test_bad_input_is_one_line_and_exit_two(files, capsys, change, message):
    reference, current = files
    change(pd.read_csv(reference)).to_csv(reference, index=False)
    code, out, err = run(capsys, "--reference", reference, "--current", current)
    assert code == 2 and out == ""
    assert err.startswith("driftline estimate: ") and message in err and err.count("\n") == 1


@pytest.mark.parametrize("args, message", [
    (["--chunk-size", "0"], "--chunk-size must be positive"),
    (["--metrics", "auc"], "unknown metric(s) auc"),
    (["--chunk-size", "99999"], ""),  # one chunk larger than the file is allowed
])
def test_options_are_checked(files, capsys, args, message):
    reference, current = files
    code, _, err = run(capsys, "--reference", reference, "--current", current, *args)
    assert code == (2 if message else 0), err
    assert message in err


def test_missing_file_is_exit_two(tmp_path, capsys):
    code, _, err = run(capsys, "--reference", tmp_path / "absent.csv", "--current", tmp_path / "absent.csv")
    assert code == 2 and err.startswith("driftline estimate: ")


def test_multiclass_scores_are_named_class_by_class(tmp_path, capsys):
    rng = np.random.default_rng(13)

    def multiclass(n, concentration):
        scores = rng.dirichlet(np.full(3, concentration), size=n)
        labels = (rng.uniform(size=(n, 1)) > scores.cumsum(axis=1)).sum(axis=1).clip(max=2)
        return pd.DataFrame({"p0": scores[:, 0], "p1": scores[:, 1], "p2": scores[:, 2],
                             "prediction": scores.argmax(axis=1), "label": labels})

    reference, current = tmp_path / "reference.csv", tmp_path / "current.csv"
    multiclass(3000, 0.8).to_csv(reference, index=False)
    pd.concat([multiclass(1000, 0.8), multiclass(1000, 4.0)]).drop(columns="label").to_csv(current, index=False)
    code, out, err = run(capsys, "--reference", reference, "--current", current, "--y-pred-proba", "0=p0,1=p1,2=p2",
                         "--chunk-size", 500, "--json", "--metrics", "accuracy")
    assert code == 0, err
    payload = json.loads(out)
    assert set(payload["calibrated"]) == {"0", "1", "2"}
    assert [chunk["metrics"]["accuracy"]["alert"] for chunk in payload["chunks"]] == [False, False, True, True]
    code, _, err = run(capsys, "--reference", reference, "--current", current, "--y-pred-proba", "0=p0,1")
    assert code == 2 and "CLASS=COLUMN" in err
