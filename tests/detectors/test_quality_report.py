"""detectors.quality: exact ratios on known columns, as arrays or as the drift tests' summaries."""

import numpy as np
import pytest

from detectors import ReferenceProfile
from detectors.profile import summarise
from detectors.quality import CHECKS, quality_report


def reference():
    x = np.arange(100, dtype=np.float64)
    x[::10] = np.nan  # 10 % missing in the reference, range [1, 99]
    return ReferenceProfile.from_columns(
        {"x": x, "c": np.array(["a", "b", "c", "a"] * 25, dtype=object), "d": np.ones(100)},
        types={"x": "numerical", "c": "categorical", "d": "numerical"})


def window():
    x = np.full(100, 50.0)
    x[0::5] = np.nan  # 20 missing
    x[1::5] = np.inf  # 20 missing too (as Evidently drops them)
    x[2::5] = 150.0  # 20 above the range
    x[3::10] = 0.5  # 10 below it; x[3::10] is also x[3::5]'s even half
    c = np.array(["a"] * 100, dtype=object)
    c[0::10] = None  # 10 missing
    c[1::10] = "zz"  # 10 unseen
    c[2::10] = "yy"  # 10 unseen
    return {"x": x, "c": c}


def test_exact_ratios_from_arrays():
    report = quality_report(reference(), window(), seen=["x", "c", "extra"])
    x, c, d = (report.features[name] for name in ("x", "c", "d"))
    assert report.samples == 100
    assert (x.type, x.missing, x.reference_missing, x.out_of_range, x.unseen) == ("numerical", 0.4, 0.1, 0.5, None)
    assert (c.type, c.missing, c.reference_missing, c.out_of_range) == ("categorical", 0.1, 0.0, None)
    assert c.unseen == pytest.approx(20 / 90)
    assert (d.missing, d.out_of_range) == (1.0, 0.0)
    assert report.new == ["extra"] and report.absent == ["d"]


def test_summaries_give_the_same_report_as_arrays():
    profile = reference()
    columns = window()
    summaries = {name: summarise(values, profile.types[name]) for name, values in columns.items()}
    assert quality_report(profile, summaries).to_dict() == quality_report(profile, columns).to_dict()


def test_category_codes_and_the_overflow_code():
    # Codes as the service passes them: 0..2 seen in the reference; 3 is the overflow code
    # (__other__), unseen unless the reference overflowed too.
    plain = ReferenceProfile.from_columns({"c": np.array([0.0, 1.0, 2.0, 1.0])}, types={"c": "categorical"})
    overflowed = ReferenceProfile.from_columns({"c": np.array([0.0, 1.0, 2.0, 3.0])}, types={"c": "categorical"})
    codes = {"c": np.array([0.0, 3.0, 3.0, 1.0, np.nan])}
    assert quality_report(plain, codes).features["c"].unseen == 0.5
    assert quality_report(overflowed, codes).features["c"].unseen == 0.0


def test_values_on_the_reference_bounds_are_in_range():
    profile = ReferenceProfile.from_columns({"x": np.array([1.0, 2.0, 3.0])})
    report = quality_report(profile, {"x": np.array([1.0, 3.0, 0.999, 3.001])})
    assert report.features["x"].out_of_range == 0.5


def test_a_reference_feature_without_values_has_no_range_and_no_category():
    profile = ReferenceProfile.from_columns(
        {"x": np.array([np.nan, np.nan]), "c": np.array([None, None], dtype=object)},
        types={"x": "numerical", "c": "categorical"})
    report = quality_report(profile, {"x": np.array([1.0, np.nan]), "c": np.array(["a", None], dtype=object)})
    assert report.features["x"].out_of_range == 1.0 and report.features["c"].unseen == 1.0
    assert report.features["x"].reference_missing == 1.0 and report.features["x"].missing == 0.5


def test_an_empty_window_breaches_nothing():
    report = quality_report(reference(), {})
    assert report.samples == 0 and report.absent == [] and report.features["x"].missing == 0.0
    assert report.breaches(0.0, 0.0, 0.0) == []


def test_breaches_compare_the_missing_share_with_the_reference_s():
    report = quality_report(reference(), window())
    thresholds = dict(zip(CHECKS, (0.25, 0.4, 0.3), strict=True))
    # x: missing 0.4 - 0.1 = 0.3 > 0.25, out of range 0.5 > 0.4; d: missing 1.0; c: unseen 0.22 < 0.3
    assert [(f, check) for f, check, _ in report.breaches(**thresholds)] == [
        ("x", "missing_increase"), ("x", "out_of_range"), ("d", "missing_increase")]
