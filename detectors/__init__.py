"""driftline's drift detectors: pure numpy/SciPy computation, no I/O.

* :class:`ReferenceProfile` summarises a reference once; ``profile.compare(window)``
  returns a :class:`DriftReport` of per-feature :class:`FeatureDrift` verdicts, with
  Evidently 0.7's methods, thresholds and ``auto`` choice.
* :func:`drift_report` does the same for two pandas DataFrames.
* :func:`estimate_performance` estimates a classifier's performance per chunk without labels
  (:class:`CBPE` binary, :class:`MulticlassCBPE`: NannyML 0.13.1's confidence-based
  performance estimation).
* :class:`ADWIN`, :class:`PageHinkley` and :class:`DDM` watch a stream of errors or losses
  for concept drift, with River's defaults and detections.
"""

from detectors.adwin import ADWIN
from detectors.cbpe import CBPE
from detectors.cbpe_multiclass import MulticlassCBPE
from detectors.ddm import DDM
from detectors.estimate import PerformanceEstimate, estimate_performance
from detectors.page_hinkley import PageHinkley
from detectors.profile import CategoricalSummary, NumericalSummary, ReferenceProfile, drift_report
from detectors.report import DriftReport, FeatureDrift
from detectors.stattests import METHODS

__all__ = [
    "ADWIN",
    "CBPE",
    "DDM",
    "METHODS",
    "MulticlassCBPE",
    "CategoricalSummary",
    "DriftReport",
    "FeatureDrift",
    "NumericalSummary",
    "PageHinkley",
    "PerformanceEstimate",
    "ReferenceProfile",
    "drift_report",
    "estimate_performance",
]
