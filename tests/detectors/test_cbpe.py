"""CBPE's building blocks against sklearn (the library NannyML calls), and its edge cases.
Whole-estimator parity with NannyML is tests/detectors/test_cbpe_parity.py."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import rankdata
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedShuffleSplit

from detectors.calibration import (
    IsotonicCalibrator,
    average_ranks,
    needs_calibration,
    roc_auc,
    stratified_shuffle_splits,
)
from detectors.cbpe import CBPE, chunk_slices
from detectors.cbpe_multiclass import MulticlassCBPE


@pytest.mark.parametrize("labels", [
    np.array([0, 1] * 50),
    np.r_[np.zeros(997), np.ones(3)],
    np.random.default_rng(2).integers(0, 3, size=1234),
    np.random.default_rng(3).binomial(1, 0.3, size=50_001).astype(float),
], ids=["balanced", "rare", "three-classes", "large"])
def test_splits_are_sklearns_stratified_shuffle_split(labels):
    expected = StratifiedShuffleSplit(n_splits=10, test_size=0.1, random_state=42).split(labels, labels)
    for (train, test), (our_train, our_test) in zip(expected, stratified_shuffle_splits(labels), strict=True):
        np.testing.assert_array_equal(our_train, train)
        np.testing.assert_array_equal(our_test, test)


def test_isotonic_calibrator_is_sklearns_isotonic_regression():
    rng = np.random.default_rng(4)
    scores = np.round(rng.uniform(0.1, 0.9, size=3000), 2)  # many tied scores
    labels = (rng.uniform(size=3000) < scores ** 3).astype(int)
    expected = IsotonicRegression(out_of_bounds="clip", increasing=True).fit(scores, labels)
    queries = np.r_[np.linspace(-0.5, 1.5, 401), scores]
    np.testing.assert_allclose(IsotonicCalibrator().fit(scores, labels).calibrate(queries),
                               expected.predict(queries), atol=1e-12)
    constant = IsotonicCalibrator().fit(np.full(5, 0.3), np.array([0, 1, 1, 0, 1]))
    np.testing.assert_allclose(constant.calibrate(np.array([0.0, 0.3, 1.0])), [0.6, 0.6, 0.6])


def test_roc_auc_is_sklearns_with_ties():
    rng = np.random.default_rng(5)
    scores = np.round(rng.uniform(size=2000), 1)
    labels = (rng.uniform(size=2000) < scores).astype(int)
    assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert np.isnan(roc_auc(np.ones(5), scores[:5]))


@pytest.mark.parametrize("values", [
    np.array([]), np.array([0.4]), np.full(7, 0.2), np.arange(10.0)[::-1],
    np.round(np.random.default_rng(7).uniform(size=5000), 2),  # long runs of ties
    np.random.default_rng(8).integers(0, 3, size=1001).astype(float),
    np.array([0.1, np.nan, 0.1, -np.inf, np.inf]),
], ids=["empty", "one", "all-tied", "descending", "many-ties", "three-values", "non-finite"])
def test_average_ranks_are_scipys_rankdata(values):
    np.testing.assert_array_equal(average_ranks(values), rankdata(values))


def test_calibration_rule_on_calibrated_and_overconfident_scores():
    rng = np.random.default_rng(6)
    scores = rng.beta(2, 2, size=20_000)
    assert needs_calibration((rng.uniform(size=20_000) < scores ** 2).astype(int), scores)
    assert not needs_calibration(np.ones(100), rng.uniform(size=100))  # one class: nothing to learn
    separable = np.r_[np.zeros(50), np.ones(50)]
    assert not needs_calibration(separable, np.r_[rng.uniform(0, 0.4, 50), rng.uniform(0.6, 1, 50)])
    # A class of one row, where sklearn's split raises, is left uncalibrated.
    assert not needs_calibration(np.r_[np.zeros(99), 1.0], rng.uniform(size=100))


def test_chunks_keep_the_remainder():
    assert chunk_slices(25, 10) == [slice(0, 10), slice(10, 20), slice(20, 25)]
    assert chunk_slices(23, None) == [slice(i, i + 2) for i in range(0, 20, 2)] + [slice(20, 22), slice(22, 23)]
    with pytest.raises(ValueError):
        chunk_slices(9, None)


def test_chunks_drop_the_remainder_when_asked():
    assert chunk_slices(25, 10, "drop") == [slice(0, 10), slice(10, 20)]
    assert chunk_slices(20, 10, "drop") == chunk_slices(20, 10) == [slice(0, 10), slice(10, 20)]
    assert chunk_slices(23, None, "drop") == [slice(i, i + 2) for i in range(0, 22, 2)]
    assert chunk_slices(9, 10, "drop") == []
    with pytest.raises(ValueError, match="incomplete"):
        chunk_slices(25, 10, "merge")


def test_a_one_row_remainder_is_left_out_of_the_thresholds_with_drop():
    # The review's case: kept (NannyML's default), the remainder's accuracy of 0 or 1 widens
    # the thresholds (up to (0, 1)); dropped, they are those of the complete chunks.
    rng = np.random.default_rng(0)
    labels, scores, predicted = calibrated_data(rng, 2001)
    complete = CBPE(["accuracy", "f1"], chunk_size=1000).fit(labels[:2000], scores[:2000], predicted[:2000])
    kept = CBPE(["accuracy", "f1"], chunk_size=1000).fit(labels, scores, predicted)
    dropped = CBPE(["accuracy", "f1"], chunk_size=1000, incomplete="drop").fit(labels, scores, predicted)
    assert kept.thresholds["accuracy"][0] < complete.thresholds["accuracy"][0]
    assert kept.thresholds["accuracy"][1] == 1.0 > complete.thresholds["accuracy"][1]
    assert dropped.thresholds == complete.thresholds
    assert 0 < dropped.thresholds["accuracy"][0] < dropped.thresholds["accuracy"][1] < 1
    restored = CBPE.from_bytes(dropped.to_bytes())
    assert restored.incomplete == "drop" and restored.thresholds == dropped.thresholds
    # Without a complete reference chunk there are no computed thresholds, hence no alert.
    tiny = CBPE(["accuracy"], chunk_size=1000, incomplete="drop").fit(labels[:999], scores[:999], predicted[:999])
    assert tiny.thresholds["accuracy"] == (None, None)
    assert not tiny.estimate_chunk(scores[:10], predicted[:10])["accuracy"].alert


def test_multiclass_drops_the_remainder_when_asked():
    rng = np.random.default_rng(12)
    classes = ["a", "b", "c"]
    # A one-row remainder's macro metrics are undefined (NaN, ignored); five rows widen them.
    labels, scores, predicted = multiclass_data(rng, 2005, classes)
    complete = MulticlassCBPE(classes, chunk_size=1000).fit(labels[:2000], scores[:2000], predicted[:2000])
    kept = MulticlassCBPE(classes, chunk_size=1000).fit(labels, scores, predicted)
    dropped = MulticlassCBPE(classes, chunk_size=1000, incomplete="drop").fit(labels, scores, predicted)
    assert kept.thresholds["accuracy"][0] < complete.thresholds["accuracy"][0]
    assert dropped.thresholds == complete.thresholds
    restored = MulticlassCBPE.from_bytes(dropped.to_bytes())
    assert restored.incomplete == "drop" and restored.thresholds == dropped.thresholds
    with pytest.raises(ValueError, match="incomplete"):
        MulticlassCBPE(classes, incomplete="merge")


def calibrated_data(rng, n, low=0.0, high=1.0):
    scores = rng.uniform(low, high, size=n)
    labels = (rng.uniform(size=n) < scores).astype(int)
    return labels, scores, (scores >= 0.5).astype(int)


def test_estimates_follow_the_realised_performance_without_labels():
    rng = np.random.default_rng(7)
    cbpe = CBPE(chunk_size=5000).fit(*calibrated_data(rng, 50_000))
    labels, scores, predicted = calibrated_data(rng, 20_000, 0.25, 0.75)  # a harder population
    for chunk in cbpe.estimate(scores, predicted, y_true=labels):
        # The expected confusion matrix is unbiased for calibrated scores; the ROC AUC estimate
        # ranks by scores that the step-wise isotonic fit ties, so it only follows the direction.
        for name in ("accuracy", "f1", "precision", "recall", "specificity"):
            metric = chunk.metrics[name]
            assert abs(metric.value - metric.realized) < 4 * metric.sampling_error + 0.01, name
        roc = chunk.metrics["roc_auc"]
        assert roc.alert and roc.realized < roc.lower_threshold and abs(roc.value - roc.realized) < 0.05
        assert chunk.metrics["accuracy"].alert


def test_missing_scores_and_predictions_are_left_out_of_their_chunk():
    rng = np.random.default_rng(8)
    cbpe = CBPE(chunk_size=1000).fit(*calibrated_data(rng, 10_000))
    _, scores, predicted = calibrated_data(rng, 1000)
    scores_with_gaps, predicted_with_gaps = scores.copy(), predicted.astype(float)
    scores_with_gaps[[3, 500]] = np.nan
    predicted_with_gaps[7] = np.nan
    gappy = cbpe.estimate_chunk(scores_with_gaps, predicted_with_gaps)
    kept = np.ones(1000, bool)
    kept[[3, 500]] = False
    assert gappy["roc_auc"].value == pytest.approx(cbpe.estimate_chunk(scores[kept], predicted[kept])["roc_auc"].value)
    kept[7] = False
    full = cbpe.estimate_chunk(scores[kept], predicted[kept])
    for name in ("accuracy", "f1", "precision", "recall", "specificity"):
        assert gappy[name].value == pytest.approx(full[name].value), name
        assert gappy[name].sampling_error == pytest.approx(full[name].sampling_error), name
    empty = cbpe.estimate_chunk(np.full(3, np.nan), np.ones(3))
    assert np.isnan(empty["accuracy"].value) and not empty["accuracy"].alert


@pytest.mark.parametrize("arguments, message", [
    ({"metrics": ["auc"]}, "unknown CBPE metric"),
    ({"metrics": []}, "unknown CBPE metric"),
    ({"chunk_size": 0}, "chunk_size"),
    ({"metrics": ["f1"], "thresholds": {"accuracy": (0.5, None)}}, "not estimated"),
    ({"thresholds": {"accuracy": (0.9, 0.8)}}, "below upper"),
    ({"incomplete": "merge"}, "incomplete must be one of keep, drop"),
])
def test_bad_configuration_is_refused(arguments, message):
    with pytest.raises(ValueError, match=message):
        CBPE(**arguments)


def test_reference_must_be_complete_and_estimates_need_a_fit():
    with pytest.raises(RuntimeError, match="fit"):
        CBPE().estimate([0.5], [1])
    with pytest.raises(ValueError, match="missing"):
        CBPE().fit(np.r_[np.nan, np.zeros(99)], np.full(100, 0.5), np.ones(100))
    with pytest.raises(ValueError, match="same length"):
        CBPE().fit(np.zeros(100), np.full(99, 0.5), np.ones(100))
    with pytest.raises(ValueError, match="numbers"):
        CBPE().fit(["yes"] * 100, np.full(100, 0.5), np.ones(100))


def test_configured_thresholds_replace_the_reference_ones():
    rng = np.random.default_rng(9)
    cbpe = CBPE(metrics=["accuracy", "f1"], chunk_size=1000, thresholds={"accuracy": (None, 0.5)})
    cbpe.fit(*calibrated_data(rng, 10_000))
    assert cbpe.thresholds["accuracy"] == (None, 0.5)
    lower, upper = cbpe.thresholds["f1"]
    assert 0 < lower < upper < 1
    _, scores, predicted = calibrated_data(rng, 1000)
    assert cbpe.estimate_chunk(scores, predicted)["accuracy"].alert  # about 0.75 > 0.5


def multiclass_data(rng, n, classes, concentration=1.0):
    scores = rng.dirichlet(np.full(len(classes), concentration), size=n)
    labels = np.array([classes[i] for i in (rng.uniform(size=(n, 1)) > scores.cumsum(axis=1)).sum(axis=1)
                       .clip(max=len(classes) - 1)], dtype=object)
    return labels, scores, np.array(classes, dtype=object)[scores.argmax(axis=1)]


def test_multiclass_score_columns_follow_the_given_class_order():
    rng = np.random.default_rng(10)
    classes = ["c", "a", "b"]
    labels, scores, predicted = multiclass_data(rng, 6000, classes)
    given = MulticlassCBPE(classes, chunk_size=2000).fit(labels, scores, predicted)
    order = [1, 2, 0]  # a, b, c
    in_sorted_order = MulticlassCBPE(["a", "b", "c"], chunk_size=2000).fit(labels, scores[:, order], predicted)
    estimates = given.estimate(scores, predicted)
    sorted_estimates = in_sorted_order.estimate(scores[:, order], predicted)
    for ours, sorted_ones in zip(estimates, sorted_estimates, strict=True):
        assert ours.metrics == sorted_ones.metrics


def test_multiclass_refuses_what_nannyml_cannot_estimate():
    rng = np.random.default_rng(11)
    with pytest.raises(ValueError, match="three distinct classes"):
        MulticlassCBPE(["a", "b"])
    labels, scores, predicted = multiclass_data(rng, 600, ["a", "b", "c"])
    with pytest.raises(ValueError, match="every class"):
        MulticlassCBPE(["a", "b", "c"]).fit(np.where(labels == "c", "a", labels), scores, predicted)
    with pytest.raises(ValueError, match="one column per class"):
        MulticlassCBPE(["a", "b", "c"]).fit(labels, scores[:, :2], predicted)
    estimator = MulticlassCBPE(["a", "b", "c"], chunk_size=300).fit(labels, scores, predicted)
    gappy = predicted.copy()
    gappy[5] = None
    kept = np.arange(600) != 5
    assert estimator.estimate_chunk(scores, gappy)["f1"].value == \
        pytest.approx(estimator.estimate_chunk(scores[kept], predicted[kept])["f1"].value)
