"""Defined answers where Evidently raises or returns NaN, and the building blocks' exactness."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from detectors import METHODS, ReferenceProfile, drift_report
from detectors.profile import CategoricalSummary, NumericalSummary
from detectors.selection import distinct_values
from detectors.stattests import histogram_sorted, ks_pvalue, ks_statistic, sturges_edges, wasserstein_sorted


@pytest.mark.parametrize("method", ["auto", "jensenshannon", "psi", "hellinger", "kl_div", "ks", "wasserstein"])
def test_empty_numerical_window_is_not_drift(method):
    profile = ReferenceProfile.from_columns({"x": np.arange(50.0)})
    feature = profile.compare({"x": np.full(20, np.nan)}, method=method).features["x"]
    assert not feature.drift
    assert feature.missing == 20
    assert feature.score == (1.0 if METHODS[feature.method].score_is_p_value else 0.0)


def test_empty_reference_and_window_columns_are_defined():
    profile = ReferenceProfile.from_columns(
        {"x": np.full(10, np.nan), "c": np.array([None] * 10, dtype=object)}, {"x": "numerical", "c": "categorical"}
    )
    report = profile.compare({"x": np.array([1.0, 2.0]), "c": np.array([None, "a"], dtype=object)})
    assert report.to_dict() == {
        "dataset_drift": False, "drift_share": 0.0, "drifted_features": 0, "features_total": 2,
        "features": {
            "x": {"type": "numerical", "method": "z", "score": 1.0, "threshold": 0.05, "drift": False, "missing": 0},
            "c": {"type": "categorical", "method": "z", "score": 1.0, "threshold": 0.05, "drift": False, "missing": 1},
        },
    }


def test_infinities_are_missing():
    profile = ReferenceProfile.from_columns({"x": np.array([1.0, 2.0, np.inf, 3.0])})
    assert profile.columns["x"].n == 3
    feature = profile.compare({"x": np.array([1.0, -np.inf, np.nan, 2.0])}).features["x"]
    assert feature.missing == 2


CONSTANT_REFERENCE = {"x": np.full(2000, 4.0), "c": np.array(["k"] * 2000, dtype=object)}
SAME_CONSTANT = {"x": np.full(300, 4.0), "c": np.array(["k"] * 300, dtype=object)}
OTHER_CONSTANT = {"x": np.full(300, 5.0), "c": np.array(["j"] * 300, dtype=object)}


@pytest.mark.parametrize("method", ["auto", *METHODS])
def test_constant_columns_never_give_nan(method):
    """Every method on every column type it applies to: the same constant is no drift (and a
    finite no-drift score), another constant is drift."""
    applicable = [name for name, column_type in (("x", "numerical"), ("c", "categorical"))
                  if method == "auto" or column_type in METHODS[method].column_types]
    profile = ReferenceProfile.from_columns({name: CONSTANT_REFERENCE[name] for name in applicable})
    for window, drifted in ((SAME_CONSTANT, False), (OTHER_CONSTANT, True)):
        report = profile.compare({name: window[name] for name in applicable}, method=method)
        assert list(report.features) == applicable
        for name, feature in report.features.items():
            assert np.isfinite(feature.score), (method, name, feature)
            assert feature.drift == drifted, (method, name, feature)


def test_unseen_categories_count_against_the_reference():
    profile = ReferenceProfile.from_columns({"c": np.array(["a", "b"] * 50, dtype=object)})
    feature = profile.compare({"c": np.array(["a", "b", "zz", "zz"] * 25, dtype=object)}).features["c"]
    assert feature.method == "chisquare" and feature.score == 0.0 and feature.drift


def test_float_category_codes_are_categories():
    profile = ReferenceProfile.from_columns({"c": np.array([0.0, 1.0, 2.0, np.nan] * 30)}, {"c": "categorical"})
    assert profile.columns["c"].categories == [0.0, 1.0, 2.0]
    feature = profile.compare({"c": np.array([0.0, 1.0, np.nan, np.nan] * 30)}).features["c"]
    assert feature.missing == 60 and feature.type == "categorical"


def test_errors_name_the_problem():
    profile = ReferenceProfile.from_columns({"x": np.arange(10.0), "c": np.array(list("ab") * 5, dtype=object)})
    window = {"x": np.arange(10.0), "c": np.array(list("ab") * 5, dtype=object)}
    with pytest.raises(ValueError, match="unknown drift method 'tvd'"):
        profile.compare(window, method="tvd")
    with pytest.raises(ValueError, match="'ks' does not apply to categorical column 'c'"):
        profile.compare(window, method="ks")
    with pytest.raises(ValueError, match="per_feature_method names unprofiled column\\(s\\): y"):
        profile.compare(window, per_feature_method={"y": "psi"})
    with pytest.raises(ValueError, match="lacks profiled column"):
        profile.compare({"x": window["x"]})
    with pytest.raises(ValueError, match="unknown column"):
        drift_report(pd.DataFrame({"x": [1.0]}), pd.DataFrame({"x": [1.0]}), columns=["y"])


def test_prediction_drift_is_a_profile_of_the_prediction_column():
    rng = np.random.default_rng(0)
    profile = ReferenceProfile.from_columns({"prediction": rng.integers(0, 2, 5000).astype(bool),
                                             "score": rng.beta(2, 5, 5000)})
    report = profile.compare({"prediction": rng.random(1000) < 0.8, "score": rng.beta(5, 2, 1000)})
    assert report.features["prediction"].method == "jensenshannon"
    assert report.features["score"].method == "wasserstein"
    assert report.dataset_drift


def test_profile_serialisation_is_json_and_npz_only():
    profile = ReferenceProfile.from_columns({
        "x": np.array([1.5, np.nan, 3.0]), "flag": np.array([True, False, True]),
        "c": np.array(["a", None, 1], dtype=object),
    })
    data = profile.to_bytes()
    with np.load(__import__("io").BytesIO(data), allow_pickle=False) as archive:
        header = json.loads(archive["header"].tobytes())
    assert [column["name"] for column in header["columns"]] == ["x", "flag", "c"]
    restored = ReferenceProfile.from_bytes(data)
    assert restored.types == profile.types and restored.n_rows == 3
    assert restored.columns["c"].categories == ["a", 1] and restored.columns["c"].n_missing == 1
    assert restored.columns["flag"].categories == [False, True]
    assert restored.columns["x"].sorted_values.tolist() == [1.5, 3.0]


@pytest.mark.parametrize("size,low,high", [(1, 2.0, 2.0), (37, -1.0, 4.5), (200_000, -3.3, 7.1), (5, 0.0, 1e-300)])
def test_sturges_edges_equal_numpy(size, low, high):
    sample = np.linspace(low, high, size)
    np.testing.assert_array_equal(sturges_edges(size, low, high), np.histogram_bin_edges(sample, bins="sturges"))


def test_histogram_of_sorted_values_equals_numpy():
    rng = np.random.default_rng(1)
    values = np.sort(np.round(rng.normal(size=5000), 2))
    edges = np.histogram_bin_edges(np.concatenate([values, [5.0]]), bins="sturges")
    np.testing.assert_array_equal(histogram_sorted(values, edges), np.histogram(values, edges)[0])


@pytest.mark.parametrize("n,m", [(1, 1), (3, 7), (1000, 999), (2500, 4000), (10, 10)])
def test_wasserstein_equals_scipy(n, m):
    rng = np.random.default_rng(n + m)
    u, v = np.sort(rng.normal(size=n)), np.sort(rng.gamma(2.0, size=m))
    assert wasserstein_sorted(u, v) == pytest.approx(stats.wasserstein_distance(u, v), rel=1e-12)


def test_default_columns_leave_out_what_evidently_would_not_test():
    n = 200
    frame = pd.DataFrame({
        "amount": np.linspace(0, 1, n),
        "request_id": [f"req-{i}" for i in range(n)],  # "text" to Evidently: more distinct values than n/2
        "seen_at": pd.date_range("2026-01-01", periods=n, freq="min"),
        "mixed": [1, "a"] * (n // 2),  # objects that are not all strings
        "country": ["DE", "FR"] * (n // 2),
    })
    assert list(drift_report(frame, frame).features) == ["amount", "country"]
    named = drift_report(frame, frame, columns=["request_id", "mixed"])
    assert {f.type for f in named.features.values()} == {"categorical"}
    with pytest.raises(ValueError, match="neither numerical nor categorical"):
        drift_report(frame, frame, columns=["seen_at"])


def test_no_columns_is_no_drift():
    report = ReferenceProfile.from_columns({}).compare({})
    assert report.to_dict() == {"dataset_drift": False, "drift_share": 0.0, "drifted_features": 0,
                                "features_total": 0, "features": {}}


def test_a_column_only_in_current_is_named():
    with pytest.raises(ValueError, match="reference data lacks column\\(s\\): extra"):
        drift_report(pd.DataFrame({"x": [1.0, 2.0]}), pd.DataFrame({"x": [1.0, 2.0], "extra": [0.5, 0.7]}))


def test_profiles_work_in_a_forked_child():
    import multiprocessing

    profile = ReferenceProfile.from_columns({"x": np.arange(100.0)})  # the parent's pool exists now
    with multiprocessing.get_context("fork").Pool(1) as pool:
        report = pool.apply(profile.compare, ({"x": np.arange(100.0) + 1},))
    assert report.features["x"].method == "ks"


@pytest.mark.parametrize("values", ["continuous", "rounded", "few"])
def test_ks_statistic_is_scipys_arithmetic_bit_for_bit(values):
    rng = np.random.default_rng(len(values))
    for _ in range(300):
        n, m = rng.integers(1, 400, 2)
        draw = {"continuous": lambda size: rng.normal(size=size),
                "rounded": lambda size: rng.normal(size=size).round(1),
                "few": lambda size: rng.integers(0, 4, size).astype(float)}[values]
        u, v = np.sort(draw(n)), np.sort(draw(m) + rng.choice([0.0, 0.5]))
        data_all = np.concatenate([u, v])  # scipy.stats.ks_2samp's own lines
        cddiffs = np.searchsorted(u, data_all, side="right") / n - np.searchsorted(v, data_all, side="right") / m
        assert ks_statistic(u, v) == max(np.clip(-cddiffs.min(), 0, 1), cddiffs.max())


@pytest.mark.parametrize("n,m", [(1000, 1000), (40, 90), (300, 1000), (7, 3)])
def test_ks_pvalue_is_scipys_public_ks_2samp(n, m):
    rng = np.random.default_rng(n * m)
    for shift, digits in ((0.0, 1), (0.2, 3), (0.5, 12)):
        u, v = np.sort(rng.normal(size=n).round(digits)), np.sort(rng.normal(shift, size=m).round(digits))
        assert ks_pvalue(NumericalSummary(u), NumericalSummary(v), "numerical") == stats.ks_2samp(u, v).pvalue


def test_ks_pvalue_depends_on_the_window_size_for_the_same_statistic():
    """One reference, windows of several sizes in one process, each entirely above the
    reference: the statistic is 1 every time, the p-value is not (cached p-values must be
    keyed by both sizes)."""
    reference = NumericalSummary(np.arange(1000.0))
    pvalues = []
    for size in (50, 200, 1000, 200, 50, 30):
        window = np.arange(size) + 5000.0
        assert ks_statistic(reference.sorted_values, window) == 1.0
        pvalues.append(ks_pvalue(reference, NumericalSummary(window), "numerical"))
        assert pvalues[-1] == stats.ks_2samp(reference.sorted_values, window).pvalue, size
    assert len(set(pvalues)) == 4


@pytest.mark.parametrize("ref_kind, cur_kind", [("categorical", "numerical"), ("numerical", "categorical")])
def test_summaries_of_two_kinds_are_a_type_error_naming_both(ref_kind, cur_kind):
    summaries = {"numerical": NumericalSummary.from_values(np.arange(3.0)),
                 "categorical": CategoricalSummary.from_values(np.array(["a", "b"], dtype=object))}
    with pytest.raises(TypeError, match=f"{ref_kind.capitalize()}Summary reference against a "
                                        f"{cur_kind.capitalize()}Summary window"):
        distinct_values(summaries[ref_kind], summaries[cur_kind])


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("ref_kind, cur_kind", [("categorical", "numerical"), ("numerical", "categorical")])
def test_every_method_refuses_summaries_of_two_kinds_naming_both(method, ref_kind, cur_kind):
    rng = np.random.default_rng(3)
    summaries = {"numerical": NumericalSummary.from_values(rng.normal(size=100)),
                 "categorical": CategoricalSummary.from_values(np.array(["a", "b"] * 50, dtype=object))}
    with pytest.raises(TypeError, match=f"a {ref_kind.capitalize()}Summary reference against a "
                                        f"{cur_kind.capitalize()}Summary window"):
        METHODS[method].score(summaries[ref_kind], summaries[cur_kind], ref_kind)
