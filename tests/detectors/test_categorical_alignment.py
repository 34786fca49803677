"""Categorical tests on category codes, as the service's windows give them: the same answers
(bit for bit where SciPy gives one) whether the window holds the reference's categories, fewer,
or some the reference never had, and however often one reference is compared."""

import warnings

import numpy as np
import pytest
from scipy import stats

from detectors import ReferenceProfile
from detectors.profile import CategoricalSummary
from detectors.quality import quality_report
from detectors.selection import auto_method, distinct_values
from detectors.stattests import aligned_counts, chisquare_pvalue
from service.core.window import category_counts

REFERENCE_CODES = np.repeat([0.0, 1.0, 2.0, 3.0, 4.0, 5.0], [150, 170, 160, 180, 190, 150])


def reference() -> CategoricalSummary:
    return ReferenceProfile.from_columns({"c": REFERENCE_CODES}, types={"c": "categorical"}).columns["c"]


def window(counts: dict[int, int], missing: int = 0) -> np.ndarray:
    codes = np.concatenate([np.full(n, float(code)) for code, n in counts.items()] + [np.full(missing, np.nan)])
    return np.random.default_rng(0).permutation(codes)


def scipy_pvalue(ref: CategoricalSummary, observed: list[int]) -> float:
    expected = np.asarray(ref.counts) * (sum(observed) / ref.n)
    return float(stats.chisquare(observed, expected).pvalue)


@pytest.mark.parametrize("missing", [0, 7])
def test_a_window_of_the_reference_s_categories_is_scipy_s_chisquare_bit_for_bit(missing):
    ref = reference()
    observed = {0: 160, 1: 150, 2: 180, 3: 170, 4: 200, 5: 140}
    cur = category_counts(window(observed, missing))
    assert cur.categories == ref.categories and cur.n == 1000 and cur.n_missing == missing
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no category expects 0: nothing to warn about
        assert chisquare_pvalue(ref, cur, "categorical") == scipy_pvalue(ref, list(observed.values()))
    assert quality_report(ReferenceProfile({"c": ref}, 1000), {"c": cur}).features["c"].unseen == 0.0


def test_a_window_lacking_a_category_observes_zero_there_bit_for_bit():
    ref = reference()
    cur = category_counts(window({0: 300, 1: 200, 3: 250, 5: 250}))
    assert cur.categories == [0.0, 1.0, 3.0, 5.0]
    keys, ref_counts, cur_counts = aligned_counts(ref, cur)
    assert keys == ref.categories and cur_counts.tolist() == [300, 200, 0, 250, 0, 250]
    assert ref_counts.tolist() == ref.counts.tolist()
    assert chisquare_pvalue(ref, cur, "categorical") == scipy_pvalue(ref, [300, 200, 0, 250, 0, 250])
    assert distinct_values(ref, cur) == 6


def test_an_unseen_code_is_drift_with_p_value_0_and_an_unseen_share():
    ref = reference()
    profile = ReferenceProfile({"c": ref}, 1000)
    cur = category_counts(window({0: 300, 2: 200, 7: 50, 5: 450}, missing=10))
    keys, ref_counts, cur_counts = aligned_counts(ref, cur)
    assert keys == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 7.0]
    assert ref_counts.tolist() == [150, 170, 160, 180, 190, 150, 0]
    assert cur_counts.tolist() == [300, 0, 200, 0, 0, 450, 50]
    feature = profile.compare({"c": cur}).features["c"]
    assert (feature.method, feature.score, feature.drift, feature.missing) == ("chisquare", 0.0, True, 10)
    assert quality_report(profile, {"c": cur}).features["c"].unseen == 50 / 1000
    assert distinct_values(ref, cur) == 7
    as_many = category_counts(window({0: 200, 1: 200, 2: 200, 3: 200, 4: 100, 8: 100}))  # 5 never came
    assert len(as_many.categories) == len(ref.categories)
    assert quality_report(profile, {"c": as_many}).features["c"].unseen == 0.1
    assert profile.compare({"c": as_many}).features["c"].score == 0.0
    assert distinct_values(ref, as_many) == 7


def test_one_reference_compared_again_and_again_keeps_its_categories():
    """What a reference derives once for its comparisons is not changed by them."""
    ref = reference()
    first = category_counts(window({0: 10, 7: 5, 5: 10}))
    second = category_counts(window({9: 4, 1: 10, 7: 3}))
    aligned_counts(ref, first)
    keys, ref_counts, cur_counts = aligned_counts(ref, second)
    assert keys == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 9.0]
    assert ref_counts.tolist() == [150, 170, 160, 180, 190, 150, 0, 0]
    assert cur_counts.tolist() == [0, 10, 0, 0, 0, 0, 3, 4]
    assert ref.categories == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert aligned_counts(reference(), second)[0] == keys


def test_a_category_listed_twice_adds_up():
    ref = CategoricalSummary(["a", "b"], np.array([5, 5]))
    cur = CategoricalSummary(["a", "z", "a", "z"], np.array([1, 2, 3, 4]))
    keys, ref_counts, cur_counts = aligned_counts(ref, cur)
    assert (keys, ref_counts.tolist(), cur_counts.tolist()) == (["a", "b", "z"], [5, 5, 0], [4, 0, 6])


def test_a_reference_category_counted_zero_expects_zero_silently():
    ref = CategoricalSummary([0.0, 1.0, 2.0], np.array([5, 0, 5]))
    cur = CategoricalSummary([0.0, 1.0, 2.0], np.array([3, 2, 5]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert chisquare_pvalue(ref, cur, "categorical") == 0.0


@pytest.mark.parametrize(("ref_codes", "cur_counts", "method"), [
    ([0.0, 1.0] * 50, {0: 40, 1: 60}, "z"),  # two categories on both sides
    ([0.0, 1.0] * 50, {0: 40, 1: 50, 2: 10}, "chisquare"),  # a third, unseen
    ([0.0, 1.0, 2.0] * 50, {0: 40, 1: 50, 2: 10}, "chisquare"),
    ([0.0, 1.0, 2.0] * 50, {0: 40, 1: 60}, "chisquare"),  # the reference's third counts
])
def test_auto_counts_the_categories_of_both_samples(ref_codes, cur_counts, method):
    ref = ReferenceProfile.from_columns({"c": np.array(ref_codes)}, types={"c": "categorical"}).columns["c"]
    assert auto_method(ref, category_counts(window(cur_counts)), "categorical") == method
