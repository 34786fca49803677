"""Data quality of a window against a reference: what broke in the data, apart from drift.

A pipeline bug that fills a feature with nulls or with codes nobody has seen shows up here
as that, per feature:

* ``missing``: share of the window's rows without a usable value (None, NaN, +/-inf; a
  caller counts a value of the wrong type as missing before it gets here), beside
  ``reference_missing``, the reference's share, so that the change shows;
* ``out_of_range`` (numerical): share of the window's present values outside the
  reference's [min, max];
* ``unseen`` (categorical): share of the window's present values the reference never had;

and per window, the features events carry that the reference lacks (``new``) and the
reference's features with no value in the window (``absent``).

Both ratios of present values are taken over the present values only, so that a feature
turning 40 % null reads as missing 0.4 and leaves ``out_of_range`` and ``unseen`` alone. A
reference feature with no value at all has no range and no category: every present value
of the window is then out of range, or unseen.

Columns come as arrays or as the summaries the drift tests take
(:class:`~detectors.profile.NumericalSummary`, :class:`~detectors.profile.CategoricalSummary`),
so a caller that has summarised a window for the drift tests pays only a binary search per
numerical feature and a set lookup per distinct category here. Categories are compared by
value: a caller that encodes categories as codes (and folds values beyond a vocabulary
bound into one overflow code) passes codes for both, and the overflow code is unseen
exactly when the reference never overflowed.

>>> import numpy as np
>>> profile = ReferenceProfile.from_columns(
...     {"amount": np.array([1.0, 5.0, 3.0, np.nan]), "country": np.array(["DE", "FR", "DE", "FR"], dtype=object)})
>>> report = quality_report(profile, {"amount": np.array([2.0, 9.0, np.nan, np.nan]),
...                                   "country": np.array(["DE", "US", "US", None], dtype=object)},
...                         seen=["amount", "country", "device"])
>>> report.features["amount"]
FeatureQuality(type='numerical', missing=0.5, reference_missing=0.25, out_of_range=0.5, unseen=None)
>>> report.features["country"].unseen, report.new, report.absent
(0.6666666666666666, ['device'], [])
>>> report.breaches(missing_increase=0.1, out_of_range=0.05, unseen=0.05)
[('amount', 'missing_increase', 0.25), ('amount', 'out_of_range', 0.5),
 ('country', 'missing_increase', 0.25), ('country', 'unseen', 0.6666666666666666)]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

import numpy as np

from detectors.profile import (
    CATEGORICAL,
    NUMERICAL,
    CategoricalSummary,
    ColumnSummary,
    NumericalSummary,
    ReferenceProfile,
    python_scalar,
    summarise,
)

__all__ = ["CHECKS", "FeatureQuality", "QualityReport", "quality_report"]

# The thresholds a report is held to, by name: ``QualityReport.breaches`` takes one of each.
CHECKS = ("missing_increase", "out_of_range", "unseen")


@dataclass(frozen=True)
class FeatureQuality:
    """One feature's figures in a window; ``out_of_range`` is None for a categorical feature,
    ``unseen`` for a numerical one."""

    type: str
    missing: float
    reference_missing: float
    out_of_range: float | None
    unseen: float | None


@dataclass(frozen=True)
class QualityReport:
    """A window's data quality: ``features`` holds every reference feature; ``new`` the
    features seen in the window's events that the reference lacks, ``absent`` the reference
    features with no value in the window (both sorted)."""

    samples: int
    features: dict[str, FeatureQuality]
    new: list[str]
    absent: list[str]

    def to_dict(self) -> dict:
        return {"samples": self.samples, "new_features": list(self.new), "absent_features": list(self.absent),
                "features": {name: asdict(figures) for name, figures in self.features.items()}}

    def breaches(self, missing_increase: float, out_of_range: float, unseen: float) -> list[tuple[str, str, float]]:
        """``(feature, check, value)`` for each figure above its threshold: the missing share's
        rise over the reference's, the out-of-range share, the unseen share (the names of
        :data:`CHECKS`). Features in the order of ``features``."""
        found = []
        for name, figures in self.features.items():
            rise = figures.missing - figures.reference_missing
            if rise > missing_increase:
                found.append((name, "missing_increase", rise))
            if figures.out_of_range is not None and figures.out_of_range > out_of_range:
                found.append((name, "out_of_range", figures.out_of_range))
            if figures.unseen is not None and figures.unseen > unseen:
                found.append((name, "unseen", figures.unseen))
        return found


def quality_report(reference: ReferenceProfile, current: Mapping[str, np.ndarray | ColumnSummary],
                   seen: Iterable[str] = ()) -> QualityReport:
    """The quality of a window against a reference.

    Parameters
    ----------
    reference
        The reference, summarised.
    current
        The window's columns by feature, as arrays or summaries of the reference's type
        for that feature; a reference feature missing here is missing in every row.
    seen
        Names of the features the window's events carried (even as null), to find the
        ``new`` ones; the features of ``current`` count as seen.

    Returns
    -------
    QualityReport
        ``samples`` is the length of the window's columns (0 for none).
    """
    summaries = {name: summarise(current[name], kind)
                 for name, kind in reference.types.items() if name in current}
    samples = max((s.n + s.n_missing for s in summaries.values()), default=0)
    features: dict[str, FeatureQuality] = {}
    absent = []
    for name, summary in reference.columns.items():
        window = summaries.get(name)
        present = window.n if window is not None else 0
        if present == 0 and samples:
            absent.append(name)
        rows = reference.n_rows
        reference_missing = summary.n_missing / rows if rows else 0.0
        missing = (samples - present) / samples if samples else 0.0
        if isinstance(summary, NumericalSummary):
            outside = _outside(summary, window) if isinstance(window, NumericalSummary) and present else 0
            features[name] = FeatureQuality(NUMERICAL, missing, reference_missing,
                                            outside / present if present else 0.0, None)
        else:
            unknown = _unseen(summary, window) if isinstance(window, CategoricalSummary) and present else 0
            features[name] = FeatureQuality(CATEGORICAL, missing, reference_missing, None,
                                            unknown / present if present else 0.0)
    new = sorted((set(seen) | set(current)) - reference.columns.keys())
    return QualityReport(samples, features, new, sorted(absent))


def _outside(reference: NumericalSummary, window: NumericalSummary) -> int:
    """Values of the window below the reference's least or above its greatest (both sorted)."""
    if reference.n == 0:
        return window.n
    counted = window.outside_of(reference)  # a window counted against this reference has it
    if counted is not None:
        return counted
    values, least, greatest = window.sorted_values, reference.sorted_values[0], reference.sorted_values[-1]
    below = int(np.searchsorted(values, least, side="left")) if values[0] < least else 0
    above = values.size - int(np.searchsorted(values, greatest, side="right")) if values[-1] > greatest else 0
    return below + above


def _unseen(reference: CategoricalSummary, window: CategoricalSummary) -> int:
    """Values of the window in categories the reference does not have."""
    if window.categories == reference.categories:  # the reference's categories, every one known
        return 0
    positions = reference.positions_of(window)
    if positions is not None:  # codes on both sides: -1 where the reference lacks the code
        return int(window.counts[positions < 0].sum())
    known = reference.category_set
    return int(sum(count for category, count in zip(window.categories, window.counts.tolist(), strict=True)
                   if python_scalar(category) not in known))
