"""A model's realised performance: labels joined to its pending predictions, a window of
joined labels and its figures per model version, and the concept drift detectors fed with
the errors (ADWIN, Page-Hinkley, and DDM for classifiers)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import numpy as np

from detectors import ADWIN, DDM, PageHinkley
from service.config import LabelsConfig, LimitsConfig
from service.core.columns import Feature
from service.core.events import Label
from service.core.labels import Joined, PendingPredictions, classification_metrics, regression_metrics
from service.core.segments import Segments
from service.core.window import RingColumns

__all__ = ["LabelPerformance", "LabelsAdded"]

ConceptDetector = ADWIN | PageHinkley | DDM
LABEL_COLUMNS = ["y_true", "y_pred", "score"]


@dataclass(slots=True)
class LabelsAdded:
    """What a batch of labels did: the pairs it joined and the concept detectors that fired."""

    joined: Joined
    concept_drifts: list[str]
    latest: float  # the labels' last timestamp


class LabelPerformance:
    """The predictions waiting for their label, and what the labels that came tell."""

    def __init__(self, labels: LabelsConfig, limits: LimitsConfig, regression: bool):
        self.config = labels
        self.limits = limits
        self.pending = PendingPredictions(labels.max_pending, labels.ttl)
        self.label_windows: dict[str, RingColumns] = {}
        self.performance: dict[str, dict[str, float]] = {}
        self.concept: dict[str, ConceptDetector] = {"adwin": ADWIN(), "page_hinkley": PageHinkley()}
        if not regression:  # DDM models a Bernoulli error rate: classification only
            self.concept["ddm"] = DDM()
        self.concept_counts = {name: 0 for name in self.concept}

    def add(self, labels: list[Label], bound_version: Callable[[str], str], task: str | None,
            classes: dict[Any, int], segments: Segments | None) -> LabelsAdded:
        """Join labels to pending predictions, update performance and concept drift; labels
        carry their timestamps (the engine's validator sets each)."""
        latest = max(_seconds(label) for label in labels)
        self.pending.expire(latest)
        joined = self.pending.join(labels)
        if not joined.y_true:
            return LabelsAdded(joined, [], latest)
        versions = [bound_version(v) for v in joined.versions]
        joined.versions = versions
        if task == "regression":
            y_true = np.array([_number(v) for v in joined.y_true], dtype=np.float64)
            y_pred = np.array([_number(v) for v in joined.y_pred], dtype=np.float64)
            errors = np.abs(y_pred - y_true)
            valid = ~np.isnan(errors)
        else:
            codes = Feature("categorical", classes)
            y_true = codes.encode(joined.y_true, self.limits)
            y_pred = codes.encode(joined.y_pred, self.limits)
            valid = ~np.isnan(y_true) & ~np.isnan(y_pred)
            errors = (y_true != y_pred).astype(np.float64)
        figures = partial(self.figures, task, classes)
        scores = np.array(joined.scores, dtype=np.float64)
        version_array = np.array(versions, dtype=object)
        for version in dict.fromkeys(versions):
            mask = (version_array == version) & valid
            ring = self.label_windows.get(version)
            if ring is None:
                ring = self.label_windows[version] = RingColumns(self.config.window, LABEL_COLUMNS)
            ring.append({"y_true": y_true[mask], "y_pred": y_pred[mask], "score": scores[mask]})
            self.performance[version] = {} if ring.count == 0 else figures(
                ring.column("y_true"), ring.column("y_pred"), ring.column("score"))
        if segments is not None:
            segments.add_labels(y_true[valid], y_pred[valid], scores[valid],
                                [key for key, ok in zip(joined.segments, valid.tolist(), strict=True) if ok], figures)
        fired = []
        for name, detector in self.concept.items():
            if name == "ddm" and task == "regression":
                continue
            hits = detector.update_many(errors[valid])
            if len(hits):
                self.concept_counts[name] += len(hits)
                fired.append(name)
        return LabelsAdded(joined, fired, latest)

    def figures(self, task: str | None, classes: dict[Any, int], y_true: np.ndarray, y_pred: np.ndarray,
                scores: np.ndarray) -> dict[str, float]:
        if task == "regression":
            return regression_metrics(y_true, y_pred)
        positive = classes.get(self.config.positive_class)
        return classification_metrics(y_true, y_pred, scores, None if positive is None else float(positive))

    def labels_in_window(self, version: str) -> int:
        ring = self.label_windows.get(version)
        return ring.count if ring else 0


def correct_by_version(joined: Joined, task: str | None) -> dict[str, int]:
    """Joined classifications whose prediction was right, per model version."""
    if task == "regression":
        return {}
    counts: dict[str, int] = {}
    for version, truth, predicted in zip(joined.versions, joined.y_true, joined.y_pred, strict=True):
        if truth == predicted and truth is not None:
            counts[version] = counts.get(version, 0) + 1
    return counts


def _seconds(label: Label) -> float:
    if label.timestamp is None or isinstance(label.timestamp, datetime):
        raise TypeError(f"label {label.id!r} reached the model unvalidated: its timestamp is {label.timestamp!r}")
    return label.timestamp


def _number(value: Any) -> float:
    if type(value) in (int, float) and math.isfinite(value):
        return float(value)
    return math.nan
