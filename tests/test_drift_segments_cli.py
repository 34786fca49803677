"""``driftline drift --segment-by COLUMN``: drift per segment of two files, table and JSON."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from detectors import drift_report
from tests.test_drift_cli import driftline


def frames(tmp_path):
    """Regions a, b, c and a rare one; only region b drifts (x and y shifted by 2)."""
    rng = np.random.default_rng(0)

    def frame(rows, shift):
        region = rng.choice(["a", "b", "c", "rare"], rows, p=[0.4, 0.3, 0.29, 0.01])
        moved = np.where(region == "b", shift, 0.0)
        return pd.DataFrame({"region": region, "x": rng.normal(moved), "y": rng.normal(moved),
                             "z": rng.normal(size=rows), "w": rng.normal(size=rows)})

    reference, current = frame(2000, 0.0), frame(1500, 2.0)
    reference.to_csv(tmp_path / "reference.csv", index=False)
    current.to_csv(tmp_path / "current.csv", index=False)
    return reference, current


def test_only_the_drifting_segment_drifts_and_the_gate_fails_on_it(tmp_path):
    reference, current = frames(tmp_path)
    result = driftline("--reference", tmp_path / "reference.csv", "--current", tmp_path / "current.csv",
                       "--segment-by", "region", "--max-segments", "3", "--json", "--fail-on-drift")
    assert result.returncode == 1, result.stderr
    body = json.loads(result.stdout)
    assert body["dataset_drift"] is False  # x and y of 5 columns: below drift_share
    segments = body["segments"]
    assert segments["segment_by"] == "region" and list(segments["segments"]) == ["a", "b", "c", "__other__"]
    assert [name for name, entry in segments["segments"].items() if entry["dataset_drift"]] == ["b"]
    for name in ("a", "b"):  # each segment: Evidently's test of its rows alone, the segment column left out
        ref, cur = reference[reference.region == name], current[current.region == name]
        expected = drift_report(ref.drop(columns="region"), cur.drop(columns="region")).to_dict()
        got = {key: value for key, value in segments["segments"][name].items() if key not in ("reference_rows",
                                                                                              "current_rows")}
        assert got == json.loads(json.dumps(expected))
        assert segments["segments"][name]["current_rows"] == len(cur)
    other = segments["segments"]["__other__"]
    assert other["reference_rows"] == (reference.region == "rare").sum()


def test_the_table_lists_the_segments_and_without_drift_in_any_the_gate_passes(tmp_path):
    frames(tmp_path)
    args = ("--reference", tmp_path / "reference.csv", "--current", tmp_path / "current.csv", "--segment-by", "region")
    table = driftline(*args)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    start = lines.index("segments by region:")
    assert lines[start + 1].split() == ["segment", "ref", "rows", "cur", "rows", "drifted", "share", "dataset", "drift"]
    assert [line.split()[0] for line in lines[start + 2:start + 6]] == ["a", "b", "c", "rare"]
    assert lines[start + 3].endswith("DETECTED") and lines[-1].startswith("dataset drift not detected")
    same = driftline("--reference", tmp_path / "reference.csv", "--current", tmp_path / "reference.csv",
                     "--segment-by", "region", "--fail-on-drift")
    assert same.returncode == 0, same.stdout
    missing = driftline(*args[:4], "--segment-by", "country")
    assert missing.returncode == 2 and "no column 'country'" in missing.stderr
