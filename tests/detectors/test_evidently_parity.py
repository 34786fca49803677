"""driftline's drift verdicts against Evidently 0.7.23's DataDriftPreset on generated data.

Every column shape of ``datasets.make_pair`` (continuous, discrete with <=5, 6..20 and >20
values, binary, constant, missing values, heavy tails; two and many categories, unseen
categories, constant and changed-constant categories, missing categories, booleans), each
unshifted and shifted, with small (<=1000 rows) and large references.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from datasets import make_pair
from evidently_oracle import run_evidently, scores_agree

from detectors import METHODS, ReferenceProfile, drift_report

SHAPES = [(300, 250), (1000, 700), (1001, 400), (4000, 2500)]


def assert_same_verdicts(ours, theirs, drift_share=0.5):
    assert set(ours.features) == set(theirs.columns)
    for name, expected in theirs.columns.items():
        got = ours.features[name]
        where = f"{name}: driftline {got}, Evidently {expected}"
        assert got.method == expected.method, where
        assert got.drift == expected.drift, where
        assert got.threshold == pytest.approx(expected.threshold), where
        if math.isnan(expected.score):
            # chi-square over a single category: SciPy's p-value is undefined, driftline says 1.
            assert got.score == 1.0 and not got.drift, where
        else:
            assert scores_agree(got.score, expected.score), where
    assert ours.drifted_features == theirs.drifted
    assert ours.drift_share == pytest.approx(theirs.share, rel=1e-12)
    assert ours.dataset_drift == theirs.dataset_drift


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("n_ref,n_cur", SHAPES)
def test_auto_matches_evidently(n_ref, n_cur, seed):
    reference, current, numerical, categorical = make_pair(n_ref, n_cur, seed)
    theirs = run_evidently(reference, current, numerical, categorical)
    assert_same_verdicts(drift_report(reference, current), theirs)


def columns_for(method, numerical, categorical):
    allowed = METHODS[method].column_types
    return [name for name in numerical + categorical
            if ("numerical" if name.startswith("num_") else "categorical") in allowed]


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("n_ref,n_cur", SHAPES)
def test_explicit_method_matches_evidently(n_ref, n_cur, method):
    reference, current, numerical, categorical = make_pair(n_ref, n_cur, seed=7)
    columns = columns_for(method, numerical, categorical)
    theirs = run_evidently(
        reference[columns], current[columns],
        [c for c in columns if c in numerical], [c for c in columns if c in categorical], method=method,
    )
    assert_same_verdicts(drift_report(reference, current, columns=columns, method=method), theirs)


@pytest.mark.parametrize(
    "method,threshold,drift_share",
    [("auto", 0.2, 0.5), ("auto", 0.01, 0.3), ("psi", 0.05, 0.8), ("hellinger", 0.3, 0.2)]
)
@pytest.mark.parametrize("n_ref,n_cur", [(500, 500), (3000, 1200)])
def test_custom_threshold_and_drift_share_match_evidently(n_ref, n_cur, method, threshold, drift_share):
    reference, current, numerical, categorical = make_pair(n_ref, n_cur, seed=11, shift=0.3)
    theirs = run_evidently(
        reference, current, numerical, categorical,
        method=None if method == "auto" else method, threshold=threshold, drift_share=drift_share,
    )
    ours = drift_report(reference, current, method=method, threshold=threshold, drift_share=drift_share)
    assert_same_verdicts(ours, theirs, drift_share)


def test_per_feature_methods_match_evidently():
    reference, current, numerical, categorical = make_pair(2000, 800, seed=5)
    per_column = {"num_continuous_moved": "psi", "num_discrete12_same": "ks", "cat_many_moved": "chisquare",
                  "cat_two_same": "hellinger", "num_missing_moved": "kl_div"}
    theirs = run_evidently(reference, current, numerical, categorical, per_column_method=per_column)
    profile = ReferenceProfile.from_dataframe(reference, types={n: "numerical" for n in numerical})
    current_columns = {n: current[n].to_numpy() for n in numerical + categorical}
    assert_same_verdicts(profile.compare(current_columns, per_feature_method=per_column), theirs)


def test_inferred_types_match_evidently():
    """No data definition: Evidently infers types from the current frame (int columns with at
    most 10 distinct values are categorical), and so does drift_report."""
    rng = np.random.default_rng(3)

    def frame(n, shift):
        return pd.DataFrame({
            "int_few": rng.integers(0, 8 + shift, n),
            "int_many": rng.integers(0, 60, n) + shift * 3,
            "float": rng.normal(shift, 1, n),
            "label": np.array(["a", "b", "c"], dtype=object)[rng.integers(0, 3, n)],
            "flag": rng.random(n) < 0.5,
            "tier": pd.Categorical(rng.choice(["gold", "silver", "bronze"], n, p=[0.2, 0.3, 0.5] if shift else None)),
        })

    for n_ref, n_cur in [(800, 600), (2000, 1500)]:
        reference, current = frame(n_ref, 0), frame(n_cur, 1)
        assert_same_verdicts(drift_report(reference, current), run_evidently(reference, current))


def test_profile_from_arrays_matches_dataframe_front_door():
    reference, current, numerical, categorical = make_pair(1500, 600, seed=9)
    types = {**{n: "numerical" for n in numerical}, **{c: "categorical" for c in categorical}}
    profile = ReferenceProfile.from_columns({n: reference[n].to_numpy() for n in types}, types)
    restored = ReferenceProfile.from_bytes(profile.to_bytes())
    window = {n: current[n].to_numpy() for n in types}
    expected = drift_report(reference, current).to_dict()
    assert profile.compare(window).to_dict() == expected
    assert restored.compare(window).to_dict() == expected


def test_shipped_example_matches_evidently():
    examples = Path(__file__).resolve().parents[2] / "examples" / "drift"
    reference, current = pd.read_csv(examples / "reference.csv"), pd.read_csv(examples / "current.csv")
    assert_same_verdicts(drift_report(reference, current), run_evidently(reference, current))


def test_binned_methods_on_large_integer_columns_match_evidently():
    """600,000 integer values over 0..20 (21 distinct): Sturges' width 20/20.2 is below 1,
    and numpy widens bins of integer data to 1 (20 bins, not 21); a column that is integer in
    one file only is binned as floats, as Evidently concatenates the two before binning."""
    rng = np.random.default_rng(12)
    n = 300_000
    per_column = {"int_psi": "psi", "int_kl": "kl_div", "int_js": "jensenshannon", "int_uniform_psi": "psi",
                  "float_in_current_psi": "psi"}

    def frame(p):
        columns = {name: rng.binomial(20, p, n) for name in ("int_psi", "int_kl", "int_js")}
        return pd.DataFrame({**columns, "int_uniform_psi": rng.integers(0, 21, n),
                             "float_in_current_psi": rng.binomial(20, p, n)})

    reference, current = frame(0.5), frame(0.53)
    current["float_in_current_psi"] = current["float_in_current_psi"].astype(np.float64)
    theirs = run_evidently(reference, current, per_column_method=per_column)
    assert {name: column.method for name, column in theirs.columns.items()} == per_column
    restored = ReferenceProfile.from_bytes(ReferenceProfile.from_dataframe(reference).to_bytes())
    assert restored.columns["int_psi"].integer
    window = {name: current[name].to_numpy() for name in current}
    assert_same_verdicts(restored.compare(window, per_feature_method=per_column), theirs)
    ours = drift_report(reference, current, columns=["int_psi", "float_in_current_psi"], method="psi")
    for name in ours.features:
        assert scores_agree(ours.features[name].score, theirs.columns[name].score), name


@pytest.mark.parametrize("n_ref", [300, 1500])
def test_auto_counts_distinct_values_over_both_samples(n_ref):
    """Each sample with at most 5 numbers (2 categories), more of them together: Evidently
    counts the values of both samples together, so KS (Wasserstein over 1000 reference rows)
    and chi-square, not chi-square and Z."""
    reference = pd.DataFrame({"number": np.tile([0.0, 1.0, 2.0], n_ref // 3),
                              "overlapping": np.tile([0.0, 1.0, 2.0, 3.0, 4.0], n_ref // 5),
                              "category": np.tile(["a", "b"], n_ref // 2)})
    current = pd.DataFrame({"number": np.tile([3.0, 4.0, 5.0], 100), "overlapping": np.tile([4.0, 5.0], 150),
                            "category": np.tile(["c", "b"], 150)})
    theirs = run_evidently(reference, current)
    expected = {"number": "ks", "overlapping": "ks", "category": "chisquare"} if n_ref <= 1000 else \
        {"number": "wasserstein", "overlapping": "wasserstein", "category": "jensenshannon"}
    assert {name: column.method for name, column in theirs.columns.items()} == expected
    assert_same_verdicts(drift_report(reference, current), theirs)
