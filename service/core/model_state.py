"""Everything driftline knows about one model: reference, window, labels, drift, performance.

A :class:`ModelState` is fed batches of validated events of its model (never one event at a
time) and answers with an :class:`Evaluation` whenever a window step completes or labels
change the performance figures. Memory is bounded by the configuration: the window holds
``window.size`` rows of float64 per feature, the label store ``labels.max_pending``
predictions, each categorical feature at most ``limits.max_categories`` distinct values.

Feature values are stored as float64: numbers as themselves, categories as codes into a
per-feature vocabulary (NaN = missing), which is what the detectors expect.
"""

from __future__ import annotations

import io
import json
import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from detectors import (
    ADWIN,
    DDM,
    CategoricalSummary,
    DriftReport,
    FeatureDrift,
    NumericalSummary,
    PageHinkley,
    ReferenceProfile,
)
from detectors.quality import QualityReport, quality_report
from service.config import LimitsConfig, ModelConfig
from service.core.estimation import WindowEstimate, WindowEstimator, fitted_for
from service.core.events import Label, PredictionBatch
from service.core.features import MAX_NAME_CHARS, FeatureColumns, as_numbers, unknown_names
from service.core.labels import PendingPredictions, classification_metrics, regression_metrics
from service.core.segments import SegmentDrift, Segments, WithSegmentField
from service.core.window import RingColumns, category_counts

if TYPE_CHECKING:  # pandas arrives with the frames; it is imported where one is built (below, service/ingest/tables.py)
    import pandas as pd

log = logging.getLogger("driftline.model_state")

OTHER = "__other__"
PREDICTION, SCORE = "prediction", "score"
# The window (and the first-N collection) holds features and the model's own columns in two
# namespaces, so that a feature may be called "score", "prediction" or anything else.
FEATURE, OWN = "f:", "m:"
TIMESTAMP_COLUMN = OWN + "timestamp"
# Columns of a reference file that are not features.
# Reference rows kept as they are, for the Evidently HTML report (the profile keeps summaries).
REPORT_SAMPLE_ROWS = 5000
UNVERSIONED = "unknown"  # the model_version of an event that names none (CONTRACT §1)
NON_FEATURE_COLUMNS = {"prediction", "score", "label", "id", "timestamp", "model", "model_version", "kind"}
# Version of the checkpoint layout written by ModelState.to_bytes. 1 keyed archive entries by
# model version and feature name; 2 keys them by position, with the names in "meta"; 3 keys
# the window's and the first-N collection's columns by namespace (FEATURE, OWN); 4 adds the
# segments (a "segments" entry; pending predictions carry their segment names).
CHECKPOINT_FORMAT = 4
READABLE_FORMATS = (1, 2, 3, 4)
# Formats 1 and 2: the model's own columns of the window and of the first-N collection, which
# held features under their bare names.
UNSPACED_WINDOW = {PREDICTION: OWN + PREDICTION, SCORE: OWN + SCORE, "__timestamp__": TIMESTAMP_COLUMN}
UNSPACED_COLLECTED = {f"__{PREDICTION}__": OWN + PREDICTION, f"__{SCORE}__": OWN + SCORE}


class UnknownCheckpointFormat(ValueError):
    """A checkpoint written by a driftline whose layout this one cannot read."""


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


class Feature:
    """A feature's type and, for categories, its vocabulary value -> code: at most
    ``limits.max_categories`` values of ``limits.max_vocabulary_bytes`` together; values
    beyond either share the code of ``__other__``."""

    __slots__ = ("kind", "vocab", "overflow_code", "vocab_bytes", "_sized")

    def __init__(self, kind: str, vocab: dict | None = None):
        self.kind = kind
        self.vocab: dict[Any, int] = vocab if vocab is not None else {}
        self.overflow_code: int | None = None
        self.vocab_bytes = string_bytes(self.vocab)
        self._sized = len(self.vocab)  # values vocab_bytes counts

    def encode(self, values: list, limits: LimitsConfig) -> np.ndarray:
        """Raw JSON values (or a float64 array of numbers) -> float64 (numbers) or codes
        (categories), NaN = missing/mismatch."""
        if self.kind == "numerical":
            return values if isinstance(values, np.ndarray) else as_numbers(values)
        get = self.vocab.get
        codes = list(map(get, values))
        if None in codes:
            for i, value in enumerate(values):
                if codes[i] is None and value is not None:
                    code = get(value)
                    codes[i] = code if code is not None else self._new_code(value, limits)
        return np.array(codes, dtype=np.float64)

    def _new_code(self, value: Any, limits: LimitsConfig) -> int:
        vocab = self.vocab
        if len(vocab) != self._sized:  # the classes' dict, which labels and predictions share, grew elsewhere
            self.vocab_bytes, self._sized = string_bytes(vocab), len(vocab)
        size = len(value.encode()) if type(value) is str else 0
        if len(vocab) < limits.max_categories and self.vocab_bytes + size <= limits.max_vocabulary_bytes:
            code = vocab[value] = len(vocab)
            self.vocab_bytes += size
            self._sized += 1
            return code
        if self.overflow_code is None:
            self.overflow_code = vocab.setdefault(OTHER, len(vocab))
        return self.overflow_code


def string_bytes(values) -> int:
    """UTF-8 bytes of the strings among ``values``."""
    return sum(len(value.encode()) for value in values if type(value) is str)


def infer_kind(values: list) -> str:
    """Numbers only -> numerical; strings or booleans -> categorical (Evidently's rule for dtypes)."""
    kinds = set(map(type, values)) - {type(None)}
    return "numerical" if kinds <= {int, float} else "categorical"


def infer_task(predictions: list) -> str:
    kinds = set(map(type, predictions)) - {type(None)}
    if float in kinds and any(type(p) is float and not p.is_integer() for p in predictions):
        return "regression"
    return "classification"


class ModelState:
    def __init__(self, name: str, config: ModelConfig, limits: LimitsConfig):
        self.name = name
        self.config = config
        self.limits = limits
        self.task: str | None = None if config.task == "auto" else config.task
        self.features: dict[str, Feature] = {}
        self._index_features()
        self.prediction_feature: Feature | None = None
        self.reference: ReferenceProfile | None = None
        self.prediction_reference: ReferenceProfile | None = None
        self.reference_source: str | None = None
        self.reference_rows = 0
        self.reference_sample: dict[str, np.ndarray] = {}
        # Raw values of the first predictions while the reference is being collected.
        self._collected: dict[str, list] = {}
        self._collected_rows = 0
        self._collected_bytes: int | None = None  # of the strings collected; None: not counted yet
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
        self.pending = PendingPredictions(config.labels.max_pending, config.labels.ttl)
        self.label_windows: dict[str, RingColumns] = {}
        self.performance: dict[str, dict[str, float]] = {}
        self.concept = self._concept_detectors()
        self.concept_counts = {name: 0 for name in self.concept}
        # Fitted on a labelled reference when models.<m>.estimation is set (service.core.estimation).
        self.estimator: WindowEstimator | None = None
        self.estimate: WindowEstimate | None = None

    # -- reference ----------------------------------------------------------------------

    @property
    def first_n(self) -> int | None:
        return self.config.reference.first_n if self.reference is None and self.reference_source is None else None

    def set_reference_frame(self, frame: pd.DataFrame, source: str) -> None:
        """Use a data set (file, upload, MLflow) as the reference; the window restarts."""
        import pandas as pd  # noqa: PLC0415 - ~80 MB at import: not at start-up, where no table is read

        predictions = _scalars(PREDICTION, frame[PREDICTION].astype(object).where(frame[PREDICTION].notna(), None)
                               .tolist()) if PREDICTION in frame.columns else []
        if predictions and self.task is None:
            self.task = infer_task(predictions)
        estimator = None
        if self.config.estimation is not None:
            if self.task == "regression":
                raise ValueError("estimation is for classifiers; this model's predictions are numbers (regression)")
            estimator = WindowEstimator.fit(self.config.estimation, self.config.window.size, frame,
                                            self.config.labels.positive_class)
        # A multiclass estimator's score_<class> columns are the model's, not features.
        own = NON_FEATURE_COLUMNS | set(estimator.reference_columns if estimator is not None else ())
        wanted = self.config.drift.features
        every_name = [str(c) for c in frame.columns if str(c) not in own]
        names = [c for c in frame.columns if str(c) not in own and (wanted is None or c in wanted)]
        names = names[: self.limits.max_features]
        if not names:
            raise ValueError("the reference has no feature columns")
        long = next((str(name) for name in names if len(str(name)) > MAX_NAME_CHARS), None)
        if long is not None:
            raise ValueError(f"reference column name {long[:40]!r}... is longer than {MAX_NAME_CHARS} characters")
        features: dict[str, Feature] = {}
        columns: dict[str, list] = {}
        for name in names:
            series = frame[name]
            numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
            if numeric:  # as an array: a list of Python floats costs 4x the memory and time
                values = series.to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                values = _scalars(name, series.astype(object).where(series.notna(), None).tolist())
            features[str(name)] = Feature("numerical" if numeric else "categorical")
            columns[str(name)] = values
        scores = []
        if SCORE in frame.columns:
            if not pd.api.types.is_numeric_dtype(frame[SCORE]) and frame[SCORE].notna().any():
                raise ValueError(f"reference column {SCORE!r} must hold numbers")
            scores = frame[SCORE].tolist()
        self._build_reference(features, columns, predictions, scores, len(frame), source,
                              estimator.window_columns if estimator is not None else ())
        self.reference_names = set(every_name)
        self.estimator = estimator

    def _build_reference(self, features: dict[str, Feature], columns: dict[str, list], predictions: list,
                         scores: list, rows: int, source: str, own_columns=()) -> None:
        encoded = {name: features[name].encode(columns[name], self.limits) for name in features}
        self.features = features
        self._index_features()
        self.reference = ReferenceProfile.from_columns(encoded, types={n: f.kind for n, f in features.items()})
        self.prediction_feature = Feature("categorical" if self.task != "regression" else "numerical", self.classes)
        prediction_columns, prediction_types = {}, {}
        if any(p is not None for p in predictions):
            prediction_columns[PREDICTION] = self.prediction_feature.encode(predictions, self.limits)
            prediction_types[PREDICTION] = self.prediction_feature.kind
        if any(s is not None for s in scores):
            prediction_columns[SCORE] = np.array(scores, dtype=np.float64)
            prediction_types[SCORE] = "numerical"
        self.prediction_reference = (
            ReferenceProfile.from_columns(prediction_columns, types=prediction_types) if prediction_columns else None
        )
        self.reference_source = source
        self.reference_rows = rows
        if rows > REPORT_SAMPLE_ROWS:
            rows_kept = np.sort(np.random.default_rng(0).choice(rows, REPORT_SAMPLE_ROWS, replace=False))
            self.reference_sample = {name: values[rows_kept] for name, values in encoded.items()}
        else:
            self.reference_sample = encoded
        self._collected, self._collected_rows, self._collected_bytes = {}, 0, 0
        self.window = RingColumns(self.config.window.size, [*(FEATURE + name for name in features),
                                                             OWN + PREDICTION, OWN + SCORE, TIMESTAMP_COLUMN,
                                                             *(OWN + name for name in own_columns)])
        self.since_evaluation = 0
        self.report = self.prediction_report = self.quality = None
        self.estimator, self.estimate = None, None  # a first-N reference has no labels to fit it on
        self.reference_names = set(features)
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

    def _collect(self, features: FeatureColumns, predictions: list, scores: np.ndarray) -> int:
        """Take rows for the first-N reference; returns how many were taken."""
        take = min(len(features), self.config.reference.first_n - self._collected_rows)
        collected = self._collected
        if self._collected_bytes is None:  # restored from a checkpoint
            self._collected_bytes = sum(map(string_bytes, collected.values()))
        predictions_key, scores_key = OWN + PREDICTION, OWN + SCORE
        for name in features.names(take):
            if FEATURE + name not in collected:
                if len(collected) >= self.limits.max_features + 2:  # the features, predictions and scores
                    continue
                collected[FEATURE + name] = [None] * self._collected_rows
        for key, values in collected.items():
            if key.startswith(FEATURE):
                added = features.values(key[len(FEATURE):], 0, take)
                self._collected_bytes += string_bytes(added)
                values += added
        collected.setdefault(predictions_key, [None] * self._collected_rows).extend(predictions[:take])
        self._collected_bytes += string_bytes(predictions[:take])
        collected.setdefault(scores_key, [None] * self._collected_rows).extend(
            score if score == score else None for score in scores[:take].tolist())  # NaN: not sent
        self._collected_rows += take
        full = self._collected_bytes >= self.limits.max_first_n_bytes
        if full and self._collected_rows < self.config.reference.first_n:
            log.warning("model %s: first-N reference closed at %d rows: their strings reached "
                        "limits.max_first_n_bytes=%d", self.name, self._collected_rows, self.limits.max_first_n_bytes)
        if full or self._collected_rows >= self.config.reference.first_n:
            predictions_ref = collected.pop(predictions_key)
            scores_ref = collected.pop(scores_key)
            wanted = self.config.drift.features
            columns = {key[len(FEATURE):]: values for key, values in collected.items()
                       if wanted is None or key[len(FEATURE):] in wanted}
            features_ref = {name: Feature(infer_kind(values)) for name, values in columns.items()}
            every_name = {key[len(FEATURE):] for key in collected}
            self._build_reference(features_ref, columns, predictions_ref, scores_ref, self._collected_rows,
                                  f"first_n:{self.config.reference.first_n}")
            self.reference_names = every_name
        return take

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
        encoded = self._encode_features(features, start)
        # The rows taken into a first-N reference belong to no segment.
        self._await_labels(batch, versions, None if self.segments is None
                           else [None] * start + self.segments.keys(encoded))
        columns = {FEATURE + name: values for name, values in encoded.items()}
        if self.config.quality.enabled:
            self._note_new_features(features, self.window.total + len(batch) - start)
        rest = predictions[start:] if start else predictions
        # Regression: as in a numerical feature, a prediction that is not a number is missing.
        columns[OWN + PREDICTION] = as_numbers(rest) if self.task == "regression" \
            else self.prediction_feature.encode(rest, self.limits)
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
            self.window.append({name: values[offset:offset + take] for name, values in columns.items()})
            self.since_evaluation += take
            offset += take
            if self.since_evaluation >= step and self.window.count >= min(step, self.window.capacity):
                evaluations.append(self.evaluate())
        return evaluations

    def _await_labels(self, batch: PredictionBatch, versions: list[str], segment_keys: list | None) -> None:
        """Keep the batch's predictions that have an id for the label join."""
        ids = batch.ids
        missing_ids = ids.count(None)
        rows = zip(batch.timestamps.tolist(), versions, batch.predictions, batch.scores.tolist()) \
            if segment_keys is None else \
            zip(batch.timestamps.tolist(), versions, batch.predictions, batch.scores.tolist(), segment_keys)
        if missing_ids == 0:  # the common case: every prediction can be joined to a label
            self.pending.add(ids, rows)
        elif missing_ids < len(ids):
            keyed = [(i, row) for i, row in zip(ids, rows) if i is not None]
            self.pending.add([k for k, _ in keyed], [r for _, r in keyed])

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
            out.update(zip(numeric, matrix))
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

    def _index_features(self) -> None:
        self._numeric_names = [n for n, f in self.features.items() if f.kind == "numerical"]
        self._categorical_names = [n for n, f in self.features.items() if f.kind == "categorical"]

    def evaluate(self) -> Evaluation | None:
        """Compare the current window with the reference (data and prediction drift)."""
        if self.reference is None or self.window is None or self.window.count == 0:
            return None
        timestamps = self.window.column(TIMESTAMP_COLUMN)
        rows = slice(None)
        if self.config.window.max_age is not None:
            rows = timestamps >= timestamps.max() - self.config.window.max_age
            timestamps = timestamps[rows]
        drift = self.config.drift
        current = self._current(self.reference, FEATURE, rows)
        self.report = self.reference.compare(current, method=drift.method,
                                             threshold=drift.threshold, drift_share=drift.drift_share,
                                             per_feature_method=drift.per_feature or None)
        if self.config.quality.enabled:
            # Sightings count rows, not time: with window.max_age a feature stays new while the
            # rows that carried it are in the ring, even once they are too old to be compared.
            first_row = self.window.total - self.window.count  # the window's oldest row, counted from the first
            seen = [name for name, after in self.new_feature_rows.items() if after > first_row]
            self.quality = quality_report(self.reference, current, seen)
        if self.segments is not None:
            kept = None
            if self.config.window.max_age is not None:  # the same rows, in the order the window stores them
                stored = self.window.unordered(TIMESTAMP_COLUMN)
                kept = stored >= stored.max() - self.config.window.max_age
            self.segments.evaluate(lambda name: self.window.unordered(FEATURE + name), kept, drift)
        if self.prediction_reference is not None:
            self.prediction_report = self.prediction_reference.compare(
                self._current(self.prediction_reference, OWN, rows), method=drift.method, threshold=drift.threshold)
        if self.estimator is not None:
            self.estimate = self._estimate(rows)
        self.since_evaluation = 0
        self.evaluations += 1
        return self._evaluation("window", window=(float(timestamps.min()), float(timestamps.max()), timestamps.size))

    def _estimate(self, rows) -> WindowEstimate:
        """The window's estimated performance, its rows in arrival order (ROC AUC's ties)."""
        codes = self.window.column(OWN + PREDICTION)[rows]
        if self.estimator.classes is not None:  # multiclass: a score column per class, the classes predicted
            scores = np.column_stack([self.window.column(OWN + name)[rows] for name in self.estimator.window_columns])
            values = np.array([None, *self.classes], dtype=object)
            predicted = values[np.where(np.isnan(codes), 0, codes + 1).astype(np.int64)]
            return self.estimator.estimate(scores, predicted, self.last_version)
        positive = self.classes.get(self.config.labels.positive_class)
        predicted = np.where(np.isnan(codes), np.nan, codes == (np.nan if positive is None else positive))
        return self.estimator.estimate(self.window.column(OWN + SCORE)[rows], predicted, self.last_version)

    def _current(self, reference: ReferenceProfile, namespace: str, rows) -> dict:
        """The window's columns of the reference's columns (in ``namespace``), summarised as the
        detectors take them: numbers sorted, category codes counted. (Here, not on the
        detectors' pool of threads: for 10,000-row columns its hand-offs cost more than the
        sorts it shares.)"""
        current = {}
        # Sorting and counting do not depend on the rows' order: unless some are left out,
        # they are read where they are stored.
        read = self.window.unordered if isinstance(rows, slice) else lambda column: self.window.column(column)[rows]
        for name, summary in reference.columns.items():
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

    def add_labels(self, labels: list[Label], bound_version) -> tuple[Any, Evaluation | None]:
        """Join labels to pending predictions, update performance and concept drift."""
        self.pending.expire(max(label.timestamp for label in labels))
        joined = self.pending.join(labels)
        if not joined.y_true:
            return joined, None
        versions = [bound_version(v) for v in joined.versions]
        joined.versions = versions
        if self.task == "regression":
            y_true = np.array([_number(v) for v in joined.y_true], dtype=np.float64)
            y_pred = np.array([_number(v) for v in joined.y_pred], dtype=np.float64)
            errors = np.abs(y_pred - y_true)
            valid = ~np.isnan(errors)
        else:
            classes = Feature("categorical", self.classes)
            y_true = classes.encode(joined.y_true, self.limits)
            y_pred = classes.encode(joined.y_pred, self.limits)
            valid = ~np.isnan(y_true) & ~np.isnan(y_pred)
            errors = (y_true != y_pred).astype(np.float64)
        scores = np.array(joined.scores, dtype=np.float64)
        version_array = np.array(versions, dtype=object)
        for version in dict.fromkeys(versions):
            mask = (version_array == version) & valid
            ring = self.label_windows.get(version)
            if ring is None:
                ring = self.label_windows[version] = RingColumns(self.config.labels.window, ["y_true", "y_pred", "score"])
            ring.append({"y_true": y_true[mask], "y_pred": y_pred[mask], "score": scores[mask]})
            self.performance[version] = self._performance(ring)
        if self.segments is not None:
            self.segments.add_labels(y_true[valid], y_pred[valid], scores[valid],
                                     [key for key, ok in zip(joined.segments, valid.tolist()) if ok], self._figures)
        fired = []
        for name, detector in self.concept.items():
            if name == "ddm" and self.task == "regression":
                continue
            hits = detector.update_many(errors[valid])
            if len(hits):
                self.concept_counts[name] += len(hits)
                fired.append(name)
        evaluation = self._evaluation("labels", concept_drifts=fired, version=versions[-1])
        evaluation.evaluated_at = max(label.timestamp for label in labels)
        return joined, evaluation

    def correct_by_version(self, joined) -> dict[str, int]:
        if self.task == "regression":
            return {}
        counts: dict[str, int] = {}
        for version, truth, predicted in zip(joined.versions, joined.y_true, joined.y_pred):
            if truth == predicted and truth is not None:
                counts[version] = counts.get(version, 0) + 1
        return counts

    def _performance(self, ring: RingColumns) -> dict[str, float]:
        if ring.count == 0:
            return {}
        return self._figures(ring.column("y_true"), ring.column("y_pred"), ring.column("score"))

    def _figures(self, y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray) -> dict[str, float]:
        if self.task == "regression":
            return regression_metrics(y_true, y_pred)
        positive = self.classes.get(self.config.labels.positive_class)
        return classification_metrics(y_true, y_pred, scores, None if positive is None else float(positive))

    def _concept_detectors(self) -> dict[str, Any]:
        detectors = {"adwin": ADWIN(), "page_hinkley": PageHinkley()}
        if self.config.task != "regression":
            # DDM models a Bernoulli error rate: classification only.
            detectors["ddm"] = DDM()
        return detectors

    # -- views --------------------------------------------------------------------------

    def _evaluation(self, kind: str, window: tuple | None = None, concept_drifts: list[str] | None = None,
                    version: str | None = None) -> Evaluation:
        version = version or self.last_version
        ring = self.label_windows.get(version)
        start, end, samples = window if window else (None, None, self.window.count if self.window else 0)
        return Evaluation(kind=kind, model=self.name, model_version=version, evaluated_at=end or 0.0,
                          window_start=start, window_end=end, samples=samples, drift=self.report,
                          prediction_drift=self.prediction_drift,
                          performance=dict(self.performance.get(version, {})),
                          labels_in_window=ring.count if ring else 0, concept_drifts=concept_drifts or [],
                          quality=self.quality if kind == "window" else None,
                          estimated=self.estimate if kind == "window" else None,
                          segment_drift=dict(self.segments.drift) if self.segments is not None and kind == "window"
                          else None,
                          segment_performance=dict(self.segments.performance) if self.segments is not None
                          and kind == "labels" else None)

    @property
    def reference_rows_collected(self) -> int | None:
        """Predictions gathered so far towards a first-N reference (None once it exists)."""
        return None if self.reference is not None else self._collected_rows

    @property
    def window_samples(self) -> int:
        return self.window.count if self.window else 0

    def current_frame(self) -> pd.DataFrame:
        """The current window as a DataFrame with decoded categories (for reports)."""
        import pandas as pd  # noqa: PLC0415 - see set_reference_frame

        if self.window is None:
            return pd.DataFrame()
        return pd.DataFrame({name: _decode(feature, self.window.column(FEATURE + name))
                             for name, feature in self.features.items()})

    def reference_frame(self) -> pd.DataFrame:
        """A sample of at most REPORT_SAMPLE_ROWS reference rows, categories decoded."""
        import pandas as pd  # noqa: PLC0415 - see set_reference_frame

        return pd.DataFrame({name: _decode(self.features[name], values) for name, values in self.reference_sample.items()})

    # -- checkpoints --------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The checkpoint: an ``.npz`` archive of byte blobs, no pickle. Entries are keyed by
        position (``labels/0``, ``sample/0``) and the names they stand for (model versions,
        feature names: any string an event sent) are kept in the JSON ``meta`` entry, as an
        archive entry's name is bounded (64 KiB) and cut at a NUL."""
        label_versions, sample_features = list(self.label_windows), list(self.reference_sample)
        meta = {
            "format": CHECKPOINT_FORMAT,
            "name": self.name, "task": self.task, "reference_source": self.reference_source,
            "reference_rows": self.reference_rows, "since_evaluation": self.since_evaluation,
            "evaluations": self.evaluations, "last_version": self.last_version,
            "features": {n: [f.kind, list(f.vocab)] for n, f in self.features.items()},
            "classes": list(self.classes), "collected": self._collected, "collected_rows": self._collected_rows,
            "performance": self.performance,
            "concept": {n: d.to_state() for n, d in self.concept.items()}, "concept_counts": self.concept_counts,
            "label_versions": label_versions, "sample_features": sample_features,
            "reference_names": sorted(self.reference_names), "new_feature_rows": self.new_feature_rows,
        }
        blobs = {"meta": json.dumps(meta).encode(), "pending": self.pending.to_bytes()}
        if self.reference is not None:
            blobs["reference"] = self.reference.to_bytes()
        if self.prediction_reference is not None:
            blobs["prediction_reference"] = self.prediction_reference.to_bytes()
        if self.window is not None:
            blobs["window"] = self.window.to_bytes()
        if self.estimator is not None:
            blobs["estimator"] = self.estimator.to_bytes()
        if self.segments is not None:
            blobs["segments"] = self.segments.to_bytes()
        for index, version in enumerate(label_versions):
            blobs[f"labels/{index}"] = self.label_windows[version].to_bytes()
        for index, name in enumerate(sample_features):
            blobs[f"sample/{index}"] = self.reference_sample[name].tobytes()
        sink = io.BytesIO()
        np.savez(sink, **{k: np.frombuffer(v, dtype=np.uint8) for k, v in blobs.items()})
        return sink.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, config: ModelConfig, limits: LimitsConfig) -> "ModelState":
        """Restore a checkpoint of a format in ``READABLE_FORMATS``; raises
        :class:`UnknownCheckpointFormat` for any other, before reading anything else."""
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            blobs = {key: archive[key].tobytes() for key in archive.files}
        meta = json.loads(blobs["meta"])
        version = meta.get("format", 1)
        if version not in READABLE_FORMATS:
            raise UnknownCheckpointFormat(f"checkpoint format {version!r} is unknown to this driftline, "
                                          f"which reads formats {', '.join(map(str, READABLE_FORMATS))}")
        if version == 1:  # entries keyed by the names themselves
            label_blobs = {k[len("labels/"):]: b for k, b in blobs.items() if k.startswith("labels/")}
            sample_blobs = {k[len("sample/"):]: b for k, b in blobs.items() if k.startswith("sample/")}
        else:
            label_blobs = {v: blobs[f"labels/{i}"] for i, v in enumerate(meta["label_versions"])}
            sample_blobs = {n: blobs[f"sample/{i}"] for i, n in enumerate(meta["sample_features"])}
        state = cls(meta["name"], config, limits)
        state.task = meta["task"]
        state.reference_source, state.reference_rows = meta["reference_source"], meta["reference_rows"]
        state.since_evaluation, state.evaluations = meta["since_evaluation"], meta["evaluations"]
        state.last_version = meta["last_version"]
        state.classes = {value: code for code, value in enumerate(meta["classes"])}
        for name, (kind, vocab) in meta["features"].items():
            state.features[name] = Feature(kind, {value: code for code, value in enumerate(vocab)})
        state._index_features()
        state.reference_names = set(meta.get("reference_names", state.features))
        state.new_feature_rows = dict(meta.get("new_feature_rows", {}))
        state.prediction_feature = Feature("categorical" if state.task != "regression" else "numerical", state.classes)
        state._collected, state._collected_rows = meta["collected"], meta["collected_rows"]
        if version < 3:
            state._collected = {UNSPACED_COLLECTED.get(key, FEATURE + key): values
                                for key, values in state._collected.items()}
        state.pending.load_bytes(blobs["pending"])
        state.performance = meta["performance"]
        for name, detector_state in meta["concept"].items():
            if name in state.concept:
                state.concept[name] = type(state.concept[name]).from_state(detector_state)
        state.concept_counts.update(meta["concept_counts"])
        if "reference" in blobs:
            state.reference = ReferenceProfile.from_bytes(blobs["reference"])
        if "prediction_reference" in blobs:
            state.prediction_reference = ReferenceProfile.from_bytes(blobs["prediction_reference"])
        if "estimator" in blobs and config.estimation is not None:
            estimator = WindowEstimator.from_bytes(blobs["estimator"])
            if estimator.fitted_for == fitted_for(config.estimation, config.window.size,
                                                  config.labels.positive_class):
                state.estimator = estimator
        if "window" in blobs:
            state.window = RingColumns.from_bytes(blobs["window"], config.window.size)
            if version < 3:
                state.window.rename({name: UNSPACED_WINDOW.get(name, FEATURE + name) for name in state.window.columns})
        for version_name, blob in label_blobs.items():
            state.label_windows[version_name] = RingColumns.from_bytes(blob, config.labels.window)
        for name, blob in sample_blobs.items():
            state.reference_sample[name] = np.frombuffer(blob, dtype=np.float64).copy()
        if "segments" in blobs and config.segments:
            state.segments = Segments.from_bytes(blobs["segments"], config.segments, config.labels.window)
        if state.reference is not None and state.window is not None and state.window.count:
            state.evaluate_silently()
        return state

    def evaluate_silently(self) -> None:
        """Recompute the verdicts after a restore without counting a new window."""
        since, evaluations = self.since_evaluation, self.evaluations
        self.evaluate()
        self.since_evaluation, self.evaluations = since, evaluations


_JSON_SCALARS = {str, int, float, bool, type(None)}
_NESTED = (dict, list, tuple, set, np.ndarray)


def _scalars(column: Any, values: list) -> list:
    """A reference column's values as JSON scalars, as events carry them: nested values
    (objects, arrays) are refused; other types (dates, decimals, bytes) become strings."""
    if set(map(type, values)) <= _JSON_SCALARS:
        return values
    if any(isinstance(value, _NESTED) for value in values):
        raise ValueError(f"reference column {str(column)!r} holds nested values (objects or arrays); "
                         "a column holds numbers, strings, booleans or nulls")
    return [value if type(value) in _JSON_SCALARS else str(value) for value in values]


def _number(value: Any) -> float:
    if type(value) in (int, float) and math.isfinite(value):
        return float(value)
    return math.nan


def _decode(feature: Feature, codes: np.ndarray) -> np.ndarray:
    if feature.kind == "numerical":
        return codes
    values = np.array([None, *feature.vocab], dtype=object)
    index = np.where(np.isnan(codes), 0, codes + 1).astype(np.int64)
    return values[index]
