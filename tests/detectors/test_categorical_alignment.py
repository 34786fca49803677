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


# Windows of more than FEW_CATEGORIES codes are aligned through an array indexed by code.

MANY = 40  # codes 0..39 in the reference


def many_reference() -> ReferenceProfile:
    return ReferenceProfile.from_columns({"c": np.repeat(np.arange(float(MANY)), np.arange(1, MANY + 1))},
                                         types={"c": "categorical"})


def by_hand(ref: CategoricalSummary, counts: dict[int, int]) -> tuple[list, list, list]:
    """The alignment spelled out: the reference's codes, then the window's others ascending."""
    keys = list(ref.categories) + [float(code) for code in sorted(counts) if float(code) not in ref.categories]
    reference_counts = dict(zip(ref.categories, ref.counts.tolist(), strict=True))
    return keys, [reference_counts.get(key, 0) for key in keys], [counts.get(int(key), 0) for key in keys]


def test_many_codes_lacking_some_of_the_reference_s_are_scipy_s_chisquare_bit_for_bit():
    ref = many_reference().columns["c"]
    counts = {code: 10 + code for code in range(MANY) if code % 7}
    cur = category_counts(window(counts))
    assert len(cur.categories) > 16 and cur.categories != ref.categories
    keys, ref_counts, cur_counts = aligned_counts(ref, cur)
    assert (keys, ref_counts.tolist(), cur_counts.tolist()) == by_hand(ref, counts)
    assert chisquare_pvalue(ref, cur, "categorical") == scipy_pvalue(ref, cur_counts.tolist())
    assert distinct_values(ref, cur) == MANY
    assert quality_report(many_reference(), {"c": cur}).features["c"].unseen == 0.0


def test_many_codes_some_unseen_beyond_the_reference_s_greatest():
    profile = many_reference()
    ref = profile.columns["c"]
    counts = {code: 5 for code in range(3, MANY + 30, 2)}  # 41, 43, ... the reference never had
    cur = category_counts(window(counts, missing=4))
    # the test first, then the quality report, on the same window summary (as an evaluation does)
    feature = profile.compare({"c": cur}).features["c"]
    assert (feature.method, feature.score, feature.drift, feature.missing) == ("chisquare", 0.0, True, 4)
    unseen = sum(n for code, n in counts.items() if code >= MANY)
    assert quality_report(profile, {"c": cur}).features["c"].unseen == unseen / sum(counts.values())
    keys, ref_counts, cur_counts = aligned_counts(ref, cur)
    assert (keys, ref_counts.tolist(), cur_counts.tolist()) == by_hand(ref, counts)
    assert distinct_values(ref, cur) == MANY + len([code for code in counts if code >= MANY])


def test_one_window_against_two_references_gets_each_one_s_answer():
    wide = many_reference().columns["c"]
    narrow = ReferenceProfile.from_columns({"c": np.arange(20.0)}, types={"c": "categorical"}).columns["c"]
    counts = {code: 3 for code in range(1, MANY + 5)}  # 40..44 unseen in both, 20..39 in the narrow one
    cur = category_counts(window(counts))
    assert distinct_values(wide, cur) == MANY + 5 and distinct_values(narrow, cur) == MANY + 5
    assert aligned_counts(narrow, cur)[0] == by_hand(narrow, counts)[0]
    assert aligned_counts(wide, cur)[0] == by_hand(wide, counts)[0]
    assert quality_report(ReferenceProfile({"c": narrow}, 20), {"c": cur}).features["c"].unseen == 25 / 44
    assert quality_report(ReferenceProfile({"c": wide}, 820), {"c": cur}).features["c"].unseen == 5 / 44


@pytest.mark.parametrize(("categories", "codes"), [
    ([0.0, 3.0, 2.0], [0, 3, 2]),
    ([4, 1], [4, 1]),
    ([True, 2.0], [1, 2]),  # True == 1.0, as a dictionary has it
    (["a", "b"], None),
    ([0.0, 0.5], None),
    ([-1.0, 2.0], None),
    ([0.0, float(1 << 16)], None),
    ([2.0, 2.0], None),  # listed twice: aligned by value, where counts add up
    ([float("nan"), 1.0], None),
    ([(1, 2), (3,)], None),
    ([], None),
])
def test_categories_are_codes_only_when_distinct_whole_numbers_in_range(categories, codes):
    found = CategoricalSummary(categories, np.ones(len(categories), dtype=np.int64)).codes
    assert (None if found is None else found.tolist()) == codes
