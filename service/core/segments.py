"""Segments: drift and performance per value of a segment feature (``models.<m>.segments``).

For each segment feature (``segment_by``) the reference's ``limits.max_segments`` most
frequent values get a segment each; every other value, a value the reference never had,
and a missing one fall in ``__other__`` (present values counted in the label-overflow
counter). A segment's reference is the reference rows of its value, summarised once into a
:class:`~detectors.ReferenceProfile` like the aggregate's; its current window is the rows
of the model's window holding its value, read where the window stores them at each
evaluation. Drift is tested with the model's methods, thresholds and ``drift_share`` over
the features other than the segment feature itself (constant within a segment), so a
segment's verdicts are those of Evidently's DataDriftPreset on that segment's rows alone.

Memory, per model: the profiles of one segment feature partition the reference's rows, so
together they hold what the aggregate profile holds (sorted numbers, category counts) once
per segment feature; the window is not copied (a segment's rows are gathered while it is
evaluated, then dropped); performance comes from one ring of ``labels.window`` joined labels
with one segment column per segment feature; a prediction waiting for its label carries its
segment names (references to the kept names, not copies). Label values are bounded: at most
``limits.max_segments + 1`` segments per segment feature.
"""

from __future__ import annotations

import io
import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from detectors import DriftReport, NumericalSummary, ReferenceProfile
from detectors.profile import NUMERICAL
from service.core.window import RingColumns, category_counts

__all__ = ["OTHER", "SEGMENT_FIELD", "SegmentDrift", "SegmentFeature", "Segments", "WithSegmentField"]

log = logging.getLogger("driftline.segments")

OTHER = "__other__"
# A prediction event's own ``segment`` field is read as the feature of this name (where an
# event sends both, the field wins), so ``segments: [segment]`` slices by it.
SEGMENT_FIELD = "segment"
_LABEL_COLUMNS = ("y_true", "y_pred", "score")
_SEGMENT_COLUMN = "s:"  # prefix of a segment feature's column in the label ring


class WithSegmentField:
    """A batch's features (:class:`~service.core.features.FeatureColumns`) with its events'
    ``segment`` field as the feature ``segment``: a string, so never a number."""

    def __init__(self, features, segments: list[str | None]):
        self.features = features
        self.segments = segments

    def __len__(self) -> int:
        return len(self.features)

    def names(self, stop: int) -> list[str]:
        names = self.features.names(stop)
        if SEGMENT_FIELD not in names and any(segment is not None for segment in self.segments[:stop]):
            names.append(SEGMENT_FIELD)
        return names

    def numbers(self, names: list[str], start: int) -> np.ndarray:
        matrix = self.features.numbers(names, start)
        if not isinstance(matrix, np.ndarray):  # the native decoder's bytes
            matrix = np.frombuffer(matrix, dtype=np.float64).reshape(len(names), -1)
        if SEGMENT_FIELD in names:
            matrix = matrix.copy()
            sent = np.array([segment is not None for segment in self.segments[start:]], dtype=bool)
            matrix[names.index(SEGMENT_FIELD)][sent] = np.nan
        return matrix

    def codes(self, name: str, vocabulary: dict, start: int):
        return None if name == SEGMENT_FIELD else self.features.codes(name, vocabulary, start)

    def values(self, name: str, start: int, stop: int) -> list:
        values = self.features.values(name, start, stop)
        if name != SEGMENT_FIELD:
            return values
        return [value if segment is None else segment
                for segment, value in zip(self.segments[start:stop], values, strict=True)]


@dataclass(frozen=True)
class SegmentDrift:
    """A segment's part of the last window: its rows, and its drift report (None when the
    segment has no reference rows or no rows in the window)."""

    samples: int
    report: DriftReport | None


class SegmentFeature:
    """One segment feature: the values kept (sorted, as the window stores them: numbers or
    category codes), their names, and each segment's reference profile."""

    def __init__(self, feature: str, values: np.ndarray, names: list[str], profiles: dict[str, ReferenceProfile]):
        self.feature = feature
        self.values = np.asarray(values, dtype=np.float64)
        self.segments = [*names, OTHER]  # a segment's position in the list is its index
        self.position = {name: index for index, name in enumerate(self.segments)}
        self.profiles = profiles

    @classmethod
    def build(cls, feature: str, columns: Mapping[str, np.ndarray], types: Mapping[str, str],
              name_of: Callable[[float], str], max_segments: int) -> SegmentFeature:
        """The reference's ``max_segments`` most frequent values of ``feature`` (ties: the
        smaller value first), and a profile per segment of the other features' rows."""
        column = columns[feature]
        present = column[~np.isnan(column)]
        values, counts = np.unique(present, return_counts=True)
        # A category vocabulary's own overflow value (__other__) is no segment of its own, nor
        # is a value named as one before it (True and "True"): label values must be distinct.
        named: dict[str, float] = {OTHER: math.nan}
        for value in map(float, values[np.argsort(-counts, kind="stable")]):
            if len(named) > max_segments:
                break
            named.setdefault(name_of(value), value)
        del named[OTHER]
        ordered = sorted(named.items(), key=lambda item: item[1])
        top = np.array([value for _, value in ordered], dtype=np.float64)
        names = [name for name, _ in ordered]
        segment = cls(feature, top, names, {})
        index = segment.index(column)
        others = [name for name in columns if name != feature]
        if not others:
            return segment
        # Rows grouped by segment with one sort: each column is gathered once, not once a segment.
        order = np.argsort(index, kind="stable")
        ends = np.concatenate(([0], np.cumsum(np.bincount(index, minlength=len(segment.segments)))))
        gathered = {other: columns[other][order] for other in others}
        for position, name in enumerate(segment.segments):
            start, end = int(ends[position]), int(ends[position + 1])
            if start < end:
                segment.profiles[name] = ReferenceProfile.from_columns(
                    {other: values[start:end] for other, values in gathered.items()},
                    types={other: types[other] for other in others})
        return segment

    def index(self, column: np.ndarray) -> np.ndarray:
        """Each row's segment: the position of its value among the kept ones, else that of
        ``__other__`` (missing values too: NaN equals nothing)."""
        kept = self.values.size
        if kept == 0:
            return np.full(column.size, kept, dtype=np.int64)
        position = np.minimum(np.searchsorted(self.values, column), kept - 1)
        return np.where(self.values[position] == column, position, kept)

    def evaluate(self, read: Callable[[str], np.ndarray], rows: np.ndarray | None, drift) -> dict[str, SegmentDrift]:
        """Test each segment's rows of the window against its profile. ``read`` gives a
        feature's window column in storage order, ``rows`` (same order) the rows to compare
        (None: all); ``drift`` is the model's ``drift`` configuration."""
        index = self.index(read(self.feature))
        if rows is not None:
            index = np.where(rows, index, -1)
        # Rows grouped by segment with one sort, so each column is gathered once, not once a segment.
        order = np.argsort(index, kind="stable")
        ends = np.cumsum(np.bincount(index + 1, minlength=len(self.segments) + 1))
        gathered: dict[str, np.ndarray] = {}
        results: dict[str, SegmentDrift] = {}
        for position, segment in enumerate(self.segments):
            start, end = int(ends[position]), int(ends[position + 1])
            profile = self.profiles.get(segment)
            if start == end and profile is None:
                continue
            report = None
            if start < end and profile is not None:
                current = {}
                for name, kind in profile.types.items():
                    if name not in gathered:
                        gathered[name] = read(name)[order]
                    values = gathered[name][start:end]
                    current[name] = NumericalSummary.from_values(values) if kind == NUMERICAL \
                        else category_counts(values)
                per_feature = {name: method for name, method in drift.per_feature.items() if name in profile.columns}
                report = profile.compare(current, method=drift.method, threshold=drift.threshold,
                                         drift_share=drift.drift_share, per_feature_method=per_feature or None)
            results[segment] = SegmentDrift(end - start, report)
        return results

    def to_meta(self) -> dict:
        return {"feature": self.feature, "values": self.values.tolist(), "names": self.segments[:-1],
                "profiles": [name for name in self.segments if name in self.profiles]}


class Segments:
    """A model's segments: per segment feature its :class:`SegmentFeature`, the last window's
    :class:`SegmentDrift` per segment, and performance per segment from joined labels."""

    def __init__(self, by: dict[str, SegmentFeature], label_window: int):
        self.by = by
        self.labels = RingColumns(label_window, [*_LABEL_COLUMNS, *(_SEGMENT_COLUMN + name for name in by)])
        self.drift: dict[str, dict[str, SegmentDrift]] = {}
        # segment_by -> segment -> (figures, joined labels they are computed over)
        self.performance: dict[str, dict[str, tuple[dict[str, float], int]]] = {}
        self.overflowed = 0  # present values pooled as __other__ (predictions seen)
        # segment feature -> the segments the last label batch added labels to: the evidence a
        # performance_drop streak of theirs may count (the others' figures did not change, or
        # changed only by losing their oldest labels).
        self.labelled: dict[str, set[str]] = {}

    @classmethod
    def build(cls, wanted: list[str], columns: Mapping[str, np.ndarray], types: Mapping[str, str],
              name_of: Callable[[str, float], str], max_segments: int, label_window: int) -> Segments | None:
        """Segments of the features in ``wanted`` that the reference has (encoded columns);
        None when there are none."""
        missing = [name for name in wanted if name not in columns]
        if missing:
            log.warning("segment feature(s) %s not in the reference: not segmented", ", ".join(missing))
        by = {name: SegmentFeature.build(name, columns, types, partial(name_of, name), max_segments)
              for name in wanted if name in columns}
        return cls(by, label_window) if by else None

    # -- predictions and windows ---------------------------------------------------------

    def keys(self, columns: Mapping[str, np.ndarray]) -> list[tuple[str, ...]]:
        """Each row's segment names, one per segment feature (what a prediction waiting for
        its label keeps); counts the present values pooled as ``__other__``."""
        per_feature = []
        for name, segment in self.by.items():
            column = columns[name]
            index = segment.index(column)
            other = index == len(segment.segments) - 1
            self.overflowed += int(np.count_nonzero(other & ~np.isnan(column)))
            per_feature.append(np.array(segment.segments, dtype=object)[index].tolist())
        return list(zip(*per_feature, strict=True))

    def evaluate(self, read: Callable[[str], np.ndarray], rows: np.ndarray | None, drift) -> None:
        self.drift = {name: segment.evaluate(read, rows, drift) for name, segment in self.by.items()}

    # -- labels --------------------------------------------------------------------------

    def add_labels(self, y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray, keys: list,
                   performance: Callable[[np.ndarray, np.ndarray, np.ndarray], dict[str, float]]) -> None:
        """Joined labels (valid ones, class codes or numbers) with their predictions' segment
        names (None: made before the reference); the figures per segment are recomputed."""
        self.labelled = {}
        if not len(y_true):
            return
        batch = {"y_true": y_true, "y_pred": y_pred, "score": scores}
        for position, (name, segment) in enumerate(self.by.items()):
            lookup = segment.position
            batch[_SEGMENT_COLUMN + name] = np.array(
                [np.nan if key is None or position >= len(key) else lookup.get(key[position], np.nan) for key in keys],
                dtype=np.float64)
        ring = self.labels
        # Only the segments the batch adds labels to, or takes the oldest ones from, change.
        evicted = max(0, ring.count + len(y_true) - ring.capacity)
        changed = {name: set(batch[_SEGMENT_COLUMN + name].tolist())
                   | set(ring.column(_SEGMENT_COLUMN + name)[:evicted].tolist()) for name in self.by}
        self.labelled = {name: {segment.segments[int(position)] for position in batch[_SEGMENT_COLUMN + name].tolist()
                                if position == position} for name, segment in self.by.items()}
        ring.append(batch)
        y_true, y_pred, scores = (ring.column(column) for column in _LABEL_COLUMNS)
        for name, segment in self.by.items():
            index = ring.column(_SEGMENT_COLUMN + name)
            figures = dict(self.performance.get(name, {}))
            for position in changed[name]:
                if position != position:  # NaN: a label of no segment
                    continue
                segment_name = segment.segments[int(position)]
                rows = index == position
                count = int(np.count_nonzero(rows))
                if count:
                    figures[segment_name] = (performance(y_true[rows], y_pred[rows], scores[rows]), count)
                else:
                    figures.pop(segment_name, None)
            self.performance[name] = figures

    def labelled_performance(self) -> dict[str, dict[str, tuple[dict[str, float], int]]]:
        """The figures of the segments the last label batch added labels to (see ``labelled``)."""
        return {name: {segment: found for segment, found in self.performance.get(name, {}).items()
                       if segment in self.labelled.get(name, ())} for name in self.by}

    def gap(self, min_labels: int) -> dict[str, dict[str, float]]:
        """Per segment feature and metric: the largest minus the smallest figure over the
        segments of at least ``min_labels`` joined labels (two segments at least)."""
        gaps: dict[str, dict[str, float]] = {}
        for name, figures in self.performance.items():
            values: dict[str, list[float]] = {}
            for metrics, count in figures.values():
                if count >= min_labels:
                    for metric, value in metrics.items():
                        if value == value:
                            values.setdefault(metric, []).append(value)
            gaps[name] = {metric: max(found) - min(found) for metric, found in values.items() if len(found) >= 2}
        return gaps

    # -- views ---------------------------------------------------------------------------

    def to_dict(self, min_labels: int) -> dict[str, Any]:
        """``GET /v1/models/{model}/segments``: per segment feature, per segment its window
        rows, drift verdicts and performance, and the performance gap."""
        gaps = self.gap(min_labels)
        body: dict[str, Any] = {}
        for name, segment in self.by.items():
            drift = self.drift.get(name, {})
            performance = self.performance.get(name, {})
            segments = {}
            for segment_name in segment.segments:
                result, figures = drift.get(segment_name), performance.get(segment_name)
                if result is None and figures is None and segment_name not in segment.profiles:
                    continue
                report = result.report if result is not None else None
                segments[segment_name] = {
                    "samples": result.samples if result is not None else 0,
                    "reference_rows": segment.profiles[segment_name].n_rows if segment_name in segment.profiles else 0,
                    "drift_share": None if report is None else report.drift_share,
                    "dataset_drift": None if report is None else report.dataset_drift,
                    "features": {} if report is None else report.to_dict()["features"],
                    "performance": figures[0] if figures else {},
                    "labels": figures[1] if figures else 0,
                }
            body[name] = {"segments": segments, "performance_gap": gaps.get(name, {})}
        return body

    # -- checkpoints ---------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """An ``.npz`` archive (no pickle): the kept values and names as JSON, each profile's
        own archive, the label ring."""
        meta = {"by": [segment.to_meta() for segment in self.by.values()], "overflowed": self.overflowed,
                "performance": self.performance}
        blobs = {"meta": json.dumps(meta).encode(), "labels": self.labels.to_bytes()}
        for index, segment in enumerate(self.by.values()):
            for position, name in enumerate(segment.segments):
                if name in segment.profiles:
                    blobs[f"profile/{index}/{position}"] = segment.profiles[name].to_bytes()
        sink = io.BytesIO()
        arrays = {key: np.frombuffer(value, dtype=np.uint8) for key, value in blobs.items()}
        # numpy's stub lets a **dict of arrays fill savez's allow_pickle: bool, and so refuses it.
        np.savez(sink, **arrays)  # type: ignore[arg-type]
        return sink.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, wanted: list[str], label_window: int) -> Segments | None:
        """Restore; segment features no longer configured are left out (None: none remain)."""
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            blobs = {key: archive[key].tobytes() for key in archive.files}
        meta = json.loads(blobs["meta"])
        by: dict[str, SegmentFeature] = {}
        for index, entry in enumerate(meta["by"]):
            if entry["feature"] not in wanted:
                continue
            segment = SegmentFeature(entry["feature"], np.array(entry["values"], dtype=np.float64), entry["names"], {})
            for position, name in enumerate(segment.segments):
                blob = blobs.get(f"profile/{index}/{position}")
                if blob is not None:
                    segment.profiles[name] = ReferenceProfile.from_bytes(blob)
            by[segment.feature] = segment
        if not by:
            return None
        segments = cls(by, label_window)
        segments.overflowed = int(meta.get("overflowed", 0))
        if list(by) == [entry["feature"] for entry in meta["by"]]:  # the same features: the labels' columns hold
            segments.labels = RingColumns.from_bytes(blobs["labels"], label_window)
            segments.performance = {name: {segment: (figures, count) for segment, (figures, count) in found.items()}
                                    for name, found in meta["performance"].items()}
        return segments
