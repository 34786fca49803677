"""Everything driftline knows about one model: reference, window, labels, drift, performance.

A :class:`ModelState` is fed batches of validated events of its model (never one event at a
time) and answers with an :class:`Evaluation` whenever a window step completes or labels
change the performance figures. Memory is bounded by the configuration: the window holds
``window.size`` rows of float64 per feature (service.core.window), the label store
``labels.max_pending`` predictions, each categorical feature at most
``limits.max_categories`` distinct values.

Its parts live beside it: the columns and vocabularies (service.core.columns), where a
reference comes from (service.core.reference), the labels' performance
(service.core.performance); service.core.model_checkpoint writes and reads it as bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from detectors import CategoricalSummary, DriftReport, FeatureDrift, NumericalSummary, ReferenceProfile
from detectors.quality import QualityReport, quality_report
from detectors.selection import ks_columns
from service.config import LimitsConfig, ModelConfig
from service.core.columns import (
    FEATURE,
    OTHER,
    OWN,
    PREDICTION,
    SCORE,
    TIMESTAMP_COLUMN,
    UNVERSIONED,
    Feature,
    decode_codes,
    infer_task,
)
from service.core.estimation import WindowEstimate, WindowEstimator
from service.core.events import Label, PredictionBatch
from service.core.features import FeatureColumns, as_numbers, unknown_names
from service.core.labels import Joined, PendingPredictions
from service.core.performance import LabelPerformance, correct_by_version
from service.core.reference import FirstNCollection, ReferenceColumns, columns_from_frame
from service.core.segments import SegmentDrift, Segments, WithSegmentField
from service.core.window import RingColumns, category_counts

if TYPE_CHECKING:  # pandas arrives with the frames; it is imported where one is built (service/ingest/tables.py)
    import pandas as pd

# The columns' names are read from here by the engine, the API and the tests too.
__all__ = ["FEATURE", "OTHER", "OWN", "TIMESTAMP_COLUMN", "UNVERSIONED", "Evaluation", "ModelState"]

# Reference rows kept as they are, for the Evidently HTML report (the profile keeps summaries).
REPORT_SAMPLE_ROWS = 5000
Rows = slice | np.ndarray  # the window's rows an evaluation reads: all (a slice) or a mask


@dataclass(slots=True)
class Evaluation:
    """What a model looks like after a window step (``kind="window"``) or a label batch
    (``kind="labels"``); retraining policies and the API read it."""

    kind: str
    model: str
    model_version: str
    evaluated_at: float
    window_start: float | None
    window_end: float | None
    samples: int
    drift: DriftReport | None
    prediction_drift: FeatureDrift | None
    performance: dict[str, float]
    labels_in_window: int
    concept_drifts: list[str] = field(default_factory=list)
    quality: QualityReport | None = None  # window evaluations, with models.<m>.quality.enabled
    estimated: WindowEstimate | None = None  # window evaluations, with models.<m>.estimation
    # With models.<m>.segments: window evaluations, segment_by -> segment -> its drift;
    # label evaluations, segment_by -> segment -> (performance figures, joined labels).
    segment_drift: dict[str, dict[str, SegmentDrift]] | None = None
    segment_performance: dict[str, dict[str, tuple[dict[str, float], int]]] | None = None


class ModelState:
    def __init__(self, name: str, config: ModelConfig, limits: LimitsConfig):
        self.name = name
        self.config = config
        self.limits = limits
        self.task: str | None = None if config.task == "auto" else config.task
        self.features: dict[str, Feature] = {}
        self.reindex_features()
        self.prediction_feature: Feature | None = None
        self.reference: ReferenceProfile | None = None
        self.prediction_reference: ReferenceProfile | None = None
        self.reference_source: str | None = None
        self.reference_rows = 0
        self.reference_sample: dict[str, np.ndarray] = {}
        self.collection = FirstNCollection(name, config.reference.first_n, config, limits)
        self.window: RingColumns | None = None
        self.since_evaluation = 0
        self.evaluations = 0
        self.report: DriftReport | None = None
        self.prediction_report: DriftReport | None = None
        self.quality: QualityReport | None = None
        self.segments: Segments | None = None
        # Every feature name of the reference's source (beyond the features kept: those
        # drift.features leaves out, those past limits.max_features), none of them "new".
        self.reference_names: set[str] = set()
        # Features of events that the reference lacks -> the window's row count (total) after
        # the last batch that carried them; at most limits.max_features, the stalest dropped.
        self.new_feature_rows: dict[str, int] = {}
        self.last_version = UNVERSIONED
        self.classes: dict[Any, int] = {}
        self.outcomes = LabelPerformance(config.labels, limits, regression=config.task == "regression")
        # Fitted on a labelled reference when models.<m>.estimation is set (service.core.estimation).
        self.estimator: WindowEstimator | None = None
        self.estimate: WindowEstimate | None = None

    # The label side's parts, read by the API, the metrics and the retraining evidence.
    @property
    def pending(self) -> PendingPredictions:
        return self.outcomes.pending

    @property
    def label_windows(self) -> dict[str, RingColumns]:
        return self.outcomes.label_windows

    @property
    def performance(self) -> dict[str, dict[str, float]]:
        return self.outcomes.performance

    @property
    def concept_counts(self) -> dict[str, int]:
        return self.outcomes.concept_counts

    # -- reference ----------------------------------------------------------------------

    @property
    def first_n(self) -> int | None:
        return self.config.reference.first_n if self.reference is None and self.reference_source is None else None

    def set_reference_frame(self, frame: pd.DataFrame, source: str) -> None:
        """Use a data set (file, upload, MLflow) as the reference; the window restarts."""
        self._build_reference(columns_from_frame(frame, source, self.config, self.limits, self.task))

    def _build_reference(self, reference: ReferenceColumns) -> None:
        features, rows = reference.features, reference.rows
        self.task = reference.task
        encoded = {name: features[name].encode(reference.columns[name], self.limits) for name in features}
        self.features = features
        self.reindex_features()
        self.reference = ReferenceProfile.from_columns(encoded, types={n: f.kind for n, f in features.items()})
        self.prediction_feature = Feature("categorical" if self.task != "regression" else "numerical", self.classes)
        prediction_columns, prediction_types = {}, {}
        if any(p is not None for p in reference.predictions):
            prediction_columns[PREDICTION] = self.prediction_feature.encode(reference.predictions, self.limits)
            prediction_types[PREDICTION] = self.prediction_feature.kind
        if any(s is not None for s in reference.scores):
            prediction_columns[SCORE] = np.array(reference.scores, dtype=np.float64)
            prediction_types[SCORE] = "numerical"
        self.prediction_reference = (
            ReferenceProfile.from_columns(prediction_columns, types=prediction_types) if prediction_columns else None
        )
        self.reference_source = reference.source
        self.reference_rows = rows
        if rows > REPORT_SAMPLE_ROWS:
            rows_kept = np.sort(np.random.default_rng(0).choice(rows, REPORT_SAMPLE_ROWS, replace=False))
            self.reference_sample = {name: values[rows_kept] for name, values in encoded.items()}
        else:
            self.reference_sample = encoded
        self.collection = FirstNCollection(self.name, self.config.reference.first_n, self.config, self.limits)
        self.window = RingColumns(self.config.window.size, [*(FEATURE + name for name in features),
                                                             OWN + PREDICTION, OWN + SCORE, TIMESTAMP_COLUMN,
                                                             *(OWN + name for name in reference.own_columns)])
        self.since_evaluation = 0
        self.report = self.prediction_report = self.quality = None
        self.estimator, self.estimate = reference.estimator, None  # a first-N reference has no labels to fit one on
        self.reference_names = reference.names
        self.new_feature_rows = {}
        self.segments = Segments.build(self.config.segments, encoded, {n: f.kind for n, f in features.items()},
                                       self._segment_name, self.limits.max_segments, self.config.labels.window)

    def _segment_name(self, feature: str, value: float) -> str:
        """A segment's label value: the category, or the number (an integral one without ``.0``)."""
        kind = self.features[feature]
        if kind.kind == "categorical":
            decoded = next(v for v, code in kind.vocab.items() if code == value)
            return str(decoded)
        return str(int(value)) if value.is_integer() else repr(value)

    def _collect(self, features: FeatureColumns, predictions: list[Any], scores: np.ndarray) -> int:
        """Take rows for the first-N reference, which is built once there are enough; returns
        how many were taken."""
        taken = self.collection.take(features, predictions, scores)
        reference = self.collection.reference(self.task)
        if reference is not None:
            self._build_reference(reference)
        return taken

    # -- predictions --------------------------------------------------------------------

    def add_predictions(self, batch: PredictionBatch, versions: list[str]) -> list[Evaluation]:
        timestamps, predictions, scores = batch.timestamps, batch.predictions, batch.scores
        features = batch.features if batch.segments is None else WithSegmentField(batch.features, batch.segments)
        if self.task is None and any(p is not None for p in predictions):
            self.task = infer_task(predictions)
        # The latest version an event named; an event without one does not erase it.
        named = next((v for v in reversed(versions) if v != UNVERSIONED), None)
        if named is not None:
            self.last_version = named
        start = 0
        if self.reference is None:
            if self.first_n is None:  # waiting for a file/MLflow reference: nothing to compare yet
                self._await_labels(batch, versions, None)
                return []
            start = self._collect(features, predictions, scores)
            if self.reference is None or start == len(batch):
                self._await_labels(batch, versions, None)
                return []
        window, prediction_feature = self.window, self.prediction_feature
        if window is None or prediction_feature is None:
            raise RuntimeError(f"model {self.name}: a reference without its window")  # _build_reference sets both
        encoded = self._encode_features(features, start)
        # The rows taken into a first-N reference belong to no segment.
        self._await_labels(batch, versions, None if self.segments is None
                           else [None] * start + self.segments.keys(encoded))
        columns = {FEATURE + name: values for name, values in encoded.items()}
        if self.config.quality.enabled:
            self._note_new_features(features, window.total + len(batch) - start)
        rest = predictions[start:] if start else predictions
        # Regression: as in a numerical feature, a prediction that is not a number is missing.
        columns[OWN + PREDICTION] = as_numbers(rest) if self.task == "regression" \
            else prediction_feature.encode(rest, self.limits)
        columns[OWN + SCORE] = scores[start:]
        columns[TIMESTAMP_COLUMN] = timestamps[start:]
        if self.estimator is not None and self.estimator.classes is not None:
            columns.update((OWN + name, values) for name, values in
                           self.estimator.score_columns(batch.class_scores, start, len(batch)).items())
        # Appended a step at a time, so that a window is evaluated every `step` predictions
        # however the events were batched (HTTP bodies, Kafka polls of any size).
        evaluations = []
        step, total, offset = self.config.window.step, len(batch) - start, 0
        while offset < total:
            take = min(total - offset, max(1, step - self.since_evaluation))
            window.append({name: values[offset:offset + take] for name, values in columns.items()})
            self.since_evaluation += take
            offset += take
            if self.since_evaluation >= step and window.count >= min(step, window.capacity):
                evaluation = self.evaluate()
                if evaluation is not None:  # never None here: the window has its reference and rows
                    evaluations.append(evaluation)
        return evaluations

    def _await_labels(self, batch: PredictionBatch, versions: list[str], segment_keys: list[Any] | None) -> None:
        """Keep the batch's predictions that have an id for the label join."""
        ids = batch.ids
        missing_ids = ids.count(None)
        if missing_ids == 0:  # the common case: every prediction can be joined to a label
            self.pending.add(cast(list[str], ids), batch.timestamps, versions, batch.predictions, batch.scores,
                             segment_keys)
        elif missing_ids < len(ids):
            keep = [i for i, ident in enumerate(ids) if ident is not None]
            self.pending.add([cast(str, ids[i]) for i in keep], batch.timestamps[keep], [versions[i] for i in keep],
                             [batch.predictions[i] for i in keep], batch.scores[keep],
                             None if segment_keys is None else [segment_keys[i] for i in keep])

    def _encode_features(self, features: FeatureColumns, start: int) -> dict[str, np.ndarray]:
        """One float64 column per reference feature, of the rows from ``start`` on: numbers as
        they are (a string in a numeric feature is a type mismatch, counted missing),
        categories as codes of the feature's vocabulary."""
        out: dict[str, np.ndarray] = {}
        numeric = self._numeric_names
        if numeric:
            matrix = features.numbers(numeric, start)
            if not isinstance(matrix, np.ndarray):  # the native decoder's bytes
                matrix = np.frombuffer(matrix, dtype=np.float64).reshape(len(numeric), -1)
            out.update(zip(numeric, matrix, strict=True))
        for name in self._categorical_names:
            feature = self.features[name]
            codes = features.codes(name, feature.vocab, start)
            if codes is None:
                codes = feature.encode(features.values(name, start, len(features)), self.limits)
            out[name] = np.frombuffer(codes) if isinstance(codes, bytes) else codes
        return out

    def _note_new_features(self, features: FeatureColumns, rows_after: int) -> None:
        """Remember which features of this batch the reference lacks, and when they came."""
        for name in unknown_names(features, self.reference_names):
            self.new_feature_rows.pop(name, None)  # re-inserted last: the dict stays stalest first
            self.new_feature_rows[name] = rows_after
        while len(self.new_feature_rows) > self.limits.max_features:
            del self.new_feature_rows[next(iter(self.new_feature_rows))]

    def reindex_features(self) -> None:
        self._numeric_names = [n for n, f in self.features.items() if f.kind == "numerical"]
        self._categorical_names = [n for n, f in self.features.items() if f.kind == "categorical"]

    def evaluate(self) -> Evaluation | None:
        """Compare the current window with the reference (data and prediction drift)."""
        window = self.window
        if self.reference is None or window is None or window.count == 0:
            return None
        timestamps = window.column(TIMESTAMP_COLUMN)
        rows: Rows = slice(None)
        if self.config.window.max_age is not None:
            rows = timestamps >= timestamps.max() - self.config.window.max_age
            timestamps = timestamps[rows]
        drift = self.config.drift
        if isinstance(rows, slice) and not window.counting_chosen:
            self._tabulate(window)
        current = self._current(window, self.reference, FEATURE, rows)
        self.report = self.reference.compare(current, method=drift.method,
                                             threshold=drift.threshold, drift_share=drift.drift_share,
                                             per_feature_method=drift.per_feature or None)
        if self.config.quality.enabled:
            # Sightings count rows, not time: with window.max_age a feature stays new while the
            # rows that carried it are in the ring, even once they are too old to be compared.
            first_row = window.total - window.count  # the window's oldest row, counted from the first
            seen = [name for name, after in self.new_feature_rows.items() if after > first_row]
            self.quality = quality_report(self.reference, current, seen)
        if self.segments is not None:
            kept = None
            if self.config.window.max_age is not None:  # the same rows, in the order the window stores them
                stored = window.unordered(TIMESTAMP_COLUMN)
                kept = stored >= stored.max() - self.config.window.max_age
            self.segments.evaluate(lambda name: window.unordered(FEATURE + name), kept, drift)
        if self.prediction_reference is not None:
            predictions = self._current(window, self.prediction_reference, OWN, rows)
            self.prediction_report = self.prediction_reference.compare(predictions, method=drift.method,
                                                                       threshold=drift.threshold)
        if self.estimator is not None:
            self.estimate = self._estimate(window, self.estimator, rows)
        self.since_evaluation = 0
        self.evaluations += 1
        return self._evaluation("window", window=(float(timestamps.min()), float(timestamps.max()), timestamps.size))

    def _estimate(self, window: RingColumns, estimator: WindowEstimator, rows: Rows) -> WindowEstimate:
        """The window's estimated performance, its rows in arrival order (ROC AUC's ties)."""
        codes = window.column(OWN + PREDICTION)[rows]
        if estimator.classes is not None:  # multiclass: a score column per class, the classes predicted
            scores = np.column_stack([window.column(OWN + name)[rows] for name in estimator.window_columns])
            values = np.array([None, *self.classes], dtype=object)
            predicted = values[np.where(np.isnan(codes), 0, codes + 1).astype(np.int64)]
            return estimator.estimate(scores, predicted, self.last_version)
        positive = self.classes.get(self.config.labels.positive_class)
        predicted = np.where(np.isnan(codes), np.nan, codes == (np.nan if positive is None else positive))
        return estimator.estimate(window.column(OWN + SCORE)[rows], predicted, self.last_version)

    def _tabulate(self, window: RingColumns) -> None:
        """Have a window (new, or restored) count the columns a KS test takes (detectors.tabulation)."""
        drift, rows = self.config.drift, window.capacity
        tested = ((FEATURE, self.reference, drift.per_feature), (OWN, self.prediction_reference, None))
        window.tabulate({namespace + name: summary for namespace, profile, per_feature in tested if profile is not None
                         for name, summary in ks_columns(profile.columns, rows, drift.method, per_feature).items()})

    @staticmethod
    def _current(window: RingColumns, reference: ReferenceProfile, namespace: str,
                 rows: Rows) -> dict[str, NumericalSummary | CategoricalSummary]:
        """The window's columns of the reference's columns (in ``namespace``), summarised as the
        detectors take them: numbers sorted or counted against the reference (tabulated),
        category codes counted. (Not on the detectors' pool of threads: for 10,000-row
        columns its hand-offs cost more than the sorts it shares.)"""
        current: dict[str, NumericalSummary | CategoricalSummary] = {}
        # Sorting and counting do not depend on the rows' order: unless some are left out,
        # they are read where they are stored, and the tabulated columns are counted already.
        tabulated = window.tabulated() if isinstance(rows, slice) else {}
        read: Callable[[str], np.ndarray] = window.unordered if isinstance(rows, slice) \
            else lambda column: window.column(column)[rows]
        for name, summary in reference.columns.items():
            if (counted := tabulated.get(namespace + name)) is not None:
                current[name] = counted
                continue
            values = read(namespace + name)
            current[name] = category_counts(values) if isinstance(summary, CategoricalSummary) \
                else NumericalSummary.from_values(values)
        return current

    @property
    def prediction_drift(self) -> FeatureDrift | None:
        """Drift of the predicted class/value, or of the score where no prediction is sent."""
        if self.prediction_report is None:
            return None
        features = self.prediction_report.features
        return features.get(PREDICTION) or features.get(SCORE)

    # -- labels -------------------------------------------------------------------------

    def add_labels(self, labels: list[Label], bound_version: Callable[[str], str]) -> tuple[Joined, Evaluation | None]:
        """Join labels to pending predictions, update performance and concept drift."""
        added = self.outcomes.add(labels, bound_version, self.task, self.classes, self.segments)
        if not added.joined.y_true:
            return added.joined, None
        evaluation = self._evaluation("labels", concept_drifts=added.concept_drifts, version=added.joined.versions[-1])
        evaluation.evaluated_at = added.latest
        return added.joined, evaluation

    def correct_by_version(self, joined: Joined) -> dict[str, int]:
        return correct_by_version(joined, self.task)

    # -- views --------------------------------------------------------------------------

    def _evaluation(self, kind: str, window: tuple | None = None, concept_drifts: list[str] | None = None,
                    version: str | None = None) -> Evaluation:
        version = version or self.last_version
        start, end, samples = window if window else (None, None, self.window.count if self.window else 0)
        return Evaluation(kind=kind, model=self.name, model_version=version, evaluated_at=end or 0.0,
                          window_start=start, window_end=end, samples=samples, drift=self.report,
                          prediction_drift=self.prediction_drift,
                          performance=dict(self.performance.get(version, {})),
                          labels_in_window=self.outcomes.labels_in_window(version), concept_drifts=concept_drifts or [],
                          quality=self.quality if kind == "window" else None,
                          estimated=self.estimate if kind == "window" else None,
                          segment_drift=dict(self.segments.drift) if self.segments is not None and kind == "window"
                          else None,
                          segment_performance=self.segments.labelled_performance() if self.segments is not None
                          and kind == "labels" else None)

    @property
    def reference_rows_collected(self) -> int | None:
        """Predictions gathered so far towards a first-N reference (None once it exists)."""
        return None if self.reference is not None else self.collection.rows

    @property
    def window_samples(self) -> int:
        return self.window.count if self.window else 0

    def current_frame(self) -> pd.DataFrame:
        """The current window as a DataFrame with decoded categories (for reports)."""
        import pandas as pd  # noqa: PLC0415 - ~80 MB at import: not at start-up, where no report is asked for

        if self.window is None:
            return pd.DataFrame()
        return pd.DataFrame({name: decode_codes(feature, self.window.column(FEATURE + name))
                             for name, feature in self.features.items()})

    def reference_frame(self) -> pd.DataFrame:
        """A sample of at most REPORT_SAMPLE_ROWS reference rows, categories decoded."""
        import pandas as pd  # noqa: PLC0415 - see current_frame

        return pd.DataFrame({name: decode_codes(self.features[name], values)
                             for name, values in self.reference_sample.items()})

    # -- restore -------------------------------------------------------------------------

    def evaluate_silently(self) -> None:
        """Recompute the verdicts after a restore without counting a new window."""
        since, evaluations = self.since_evaluation, self.evaluations
        self.evaluate()
        self.since_evaluation, self.evaluations = since, evaluations
