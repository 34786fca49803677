"""The engine: one object that every edge (HTTP, Kafka, CLI demo) feeds with batches.

It validates nothing itself (see :mod:`service.core.events`) and does no I/O: it routes a
:class:`~service.core.events.Decoded` batch to the :class:`~service.core.model_state.ModelState` of
each model, keeps the counters and histograms that :mod:`service.observability.metrics` exposes, bounds
every label value that comes from events, and tells listeners (retraining policies) about
each :class:`~service.core.model_state.Evaluation`.

All public methods take ``self.lock``: the Kafka consumer thread, HTTP handlers and the
Prometheus scrape may call concurrently.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from service.config import Settings
from service.core import model_checkpoint
from service.core.events import (
    INFRA_GAUGES,
    REASONS,
    Decoded,
    Infra,
    Label,
    PredictionBatch,
    Rejection,
    Validator,
    group_by_model,
)
from service.core.histogram import LABEL_DELAY_BUCKETS, LATENCY_BUCKETS, BatchHistogram
from service.core.model_state import OTHER, Evaluation, ModelState

if TYPE_CHECKING:  # pandas is imported where a table is read (service/ingest/tables.py), not at start-up
    import pandas as pd

log = logging.getLogger("driftline.engine")

BATCH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
Listener = Callable[[Evaluation], None]


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Counters:
    """The engine's counters and histograms as they were at one moment (``Engine.counters``),
    keyed by their Prometheus label values (see service.observability.metrics)."""

    events: dict[tuple[str, str], int]
    rejected: dict[str, int]
    prediction_errors: dict[tuple[str, str], int]
    labels: dict[tuple[str, str], int]
    label_correct: dict[tuple[str, str], int]
    infra_gauges: dict[tuple[str, str], dict[str, float]]
    infra_events: dict[tuple[str, str], int]
    latency: BatchHistogram
    label_delay: BatchHistogram
    batch_seconds: BatchHistogram
    overflow: dict[str, int]


class TooManyModels(Exception):
    """A model past ``limits.max_models`` cannot be given a reference: that many are tracked already."""


class BoundedNames:
    """Admits at most ``limit`` distinct names; the rest become ``__other__`` and are counted.

    >>> names = BoundedNames(2)
    >>> [names.admit(n) for n in ["a", "b", "a", "c"]], names.overflowed
    (['a', 'b', 'a', '__other__'], 1)
    """

    def __init__(self, limit: int):
        self.limit = limit
        self.admitted: set[str] = set()
        self.overflowed = 0  # values mapped to __other__

    def admit(self, name: str) -> str:
        if name in self.admitted:
            return name
        if len(self.admitted) < self.limit:
            self.admitted.add(name)
            return name
        self.overflowed += 1
        return OTHER


class Engine:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time):
        self.settings = settings
        self.clock = clock
        self.lock = threading.RLock()
        limits = settings.limits
        self.validator = Validator(max_features=limits.max_features, max_event_bytes=limits.max_event_bytes)
        self.models: dict[str, ModelState] = {}
        self.model_names = BoundedNames(limits.max_models)
        self._versions: dict[str, BoundedNames] = defaultdict(lambda: BoundedNames(limits.max_model_versions))
        self._servers: dict[str, BoundedNames] = defaultdict(lambda: BoundedNames(limits.max_instances))
        self._infra_words: dict[str, BoundedNames] = defaultdict(lambda: BoundedNames(limits.max_infra_event_kinds))
        self.listeners: list[Listener] = []
        # Counters and gauges, keyed by their Prometheus label values (see service.observability.metrics).
        self.events_total: dict[tuple[str, str], int] = defaultdict(int)
        self.rejected_total: dict[str, int] = {reason: 0 for reason in REASONS}
        self.prediction_errors: dict[tuple[str, str], int] = defaultdict(int)
        self.labels_total: dict[tuple[str, str], int] = defaultdict(int)
        self.label_correct: dict[tuple[str, str], int] = defaultdict(int)
        self.infra_gauges: dict[tuple[str, str], dict[str, float]] = {}
        self.infra_events: dict[tuple[str, str], int] = defaultdict(int)
        self.latency = BatchHistogram(LATENCY_BUCKETS)
        self.label_delay = BatchHistogram(LABEL_DELAY_BUCKETS)
        self.batch_seconds = BatchHistogram(BATCH_BUCKETS)
        # Models changed since the last checkpoint.
        self.dirty: set[str] = set()
        # Present segment values pooled as __other__, counted here as they happen: a model's
        # Segments starts again at 0 with a new reference, and a counter must never go down.
        self.segment_overflow = 0

    # -- feeding ------------------------------------------------------------------------

    def ingest_body(self, body: bytes) -> Decoded:
        """Decode an HTTP body and process it; returns the decoded batch (with rejections)."""
        decoded = self.validator.decode_body(body, self.clock())
        self.process(decoded)
        return decoded

    def reject(self, rejections: Iterable[Rejection]) -> None:
        """Count rejections made outside the validator (oversize bodies, bad CloudEvents)."""
        with self.lock:
            for rejection in rejections:
                self.rejected_total[rejection.reason] = self.rejected_total.get(rejection.reason, 0) + 1

    def process(self, decoded: Decoded) -> list[Evaluation]:
        started = time.perf_counter()
        evaluations: list[Evaluation] = []
        with self.lock:
            self.reject(decoded.rejected)
            for batch in decoded.prediction_batches():
                evaluations += self._predictions(batch)
            for model, events in group_by_model(decoded.labels).items():
                evaluation = self._labels(model, events)
                if evaluation is not None:
                    evaluations.append(evaluation)
            for model, events in group_by_model(decoded.infra).items():
                self._infra(model, events)
            self.batch_seconds.observe((), np.array([time.perf_counter() - started]))
        for evaluation in evaluations:
            for listener in self.listeners:
                try:
                    listener(evaluation)
                except Exception:  # a broken policy must not stop ingestion
                    log.exception("listener failed on %s evaluation of %s", evaluation.kind, evaluation.model)
        return evaluations

    def admit(self, model: str) -> bool:
        """Whether the model is tracked, or can be within ``limits.max_models`` (which it then
        counts against): for names from outside events, such as alerts' model labels."""
        with self.lock:
            return model in self.models or self.model_names.admit(model) != OTHER

    def _state(self, model: str) -> ModelState | None:
        """The model's state, created on first sight; None when over ``limits.max_models``."""
        state = self.models.get(model)
        if state is None and self.model_names.admit(model) != OTHER:
            state = self.models[model] = ModelState(model, self.settings.model(model), self.settings.limits)
        return state

    def _predictions(self, batch: PredictionBatch) -> list[Evaluation]:
        model = batch.model
        state = self._state(model)
        label = model if state is not None else OTHER
        self.events_total[(label, "prediction")] += len(batch)
        bound = self._versions[label].admit
        distinct = set(batch.versions)
        if len(distinct) == 1:  # the common case: one version per batch
            versions = [bound(distinct.pop())] * len(batch)
        else:
            versions = [bound(v) for v in batch.versions]
        latency = batch.latency_ms / 1000.0
        bound_versions = dict.fromkeys(versions)
        for version in bound_versions:
            # One version (the common case): the whole batch, without a Python step per event.
            mask = slice(None) if len(bound_versions) == 1 else np.array([v == version for v in versions])
            failed = int(np.count_nonzero(batch.errors[mask]))
            self.latency.observe((label, version), latency[mask])
            if failed or (label, version) not in self.prediction_errors:
                self.prediction_errors[(label, version)] += failed
        if state is None:
            return []
        self.dirty.add(model)
        segments = state.segments
        pooled = segments.overflowed if segments is not None else 0
        evaluations = state.add_predictions(batch, versions)
        if state.segments is not None:  # the same Segments, or one a closing first-N reference made
            self.segment_overflow += state.segments.overflowed - (pooled if state.segments is segments else 0)
        return evaluations

    def _labels(self, model: str, events: list[Label]) -> Evaluation | None:
        state = self._state(model)
        if state is None:
            self.events_total[(OTHER, "label")] += len(events)
            self.labels_total[(OTHER, "unmatched")] += len(events)
            return None
        self.events_total[(model, "label")] += len(events)
        self.dirty.add(model)
        joined, evaluation = state.add_labels(events, self._versions[model].admit)
        self.labels_total[(model, "matched")] += len(joined.y_true)
        self.labels_total[(model, "unmatched")] += joined.unmatched
        self.labels_total[(model, "duplicate")] += joined.duplicate
        for version, correct in state.correct_by_version(joined).items():
            self.label_correct[(model, version)] += correct
        for version in set(joined.versions):
            self.label_correct.setdefault((model, version), 0)
        if joined.delays:
            self.label_delay.observe((model,), np.array(joined.delays))
        return evaluation

    def _infra(self, model: str, events: list[Infra]) -> None:
        label = model if self._state(model) is not None else OTHER
        self.events_total[(label, "infra")] += len(events)
        servers, words = self._servers[label], self._infra_words[label]
        for event in events:
            server = servers.admit(event.instance)
            values = {name: float(value) for name in INFRA_GAUGES if (value := getattr(event, name)) is not None}
            if values:
                self.infra_gauges.setdefault((label, server), {}).update(values)
            word = event.event
            if word is not None:
                self.infra_events[(label, words.admit(word))] += 1

    # -- views: how the edges read the engine -------------------------------------------
    # Edges (HTTP, metrics, state stores, retraining) read models only through these, never
    # through ``lock``, ``models`` or ``dirty``: ``read`` runs under the engine's lock and
    # returns plain data built from the state (a summary dict, a report, bytes, a frame),
    # never the ModelState itself, so nothing of a model's insides escapes the lock.

    def view(self, model: str, read: Callable[[ModelState], T]) -> T | None:
        """``read(state)`` of one model under the lock; None for a model not tracked."""
        with self.lock:
            state = self.models.get(model)
            return None if state is None else read(state)

    def views(self, read: Callable[[str, ModelState], T]) -> dict[str, T]:
        """``read(name, state)`` of every tracked model, under one hold of the lock."""
        with self.lock:
            return {name: read(name, state) for name, state in self.models.items()}

    def tracks(self, model: str) -> bool:
        with self.lock:
            return model in self.models

    def counters(self) -> Counters:
        """A copy of the engine's counters and histograms, for one scrape."""
        with self.lock:
            return Counters(
                events=dict(self.events_total), rejected=dict(self.rejected_total),
                prediction_errors=dict(self.prediction_errors), labels=dict(self.labels_total),
                label_correct=dict(self.label_correct),
                infra_gauges={key: dict(values) for key, values in self.infra_gauges.items()},
                infra_events=dict(self.infra_events), latency=self.latency.copy(),
                label_delay=self.label_delay.copy(), batch_seconds=self.batch_seconds.copy(),
                overflow=self.overflow)

    # -- what changed since the last checkpoint ------------------------------------------

    def take_dirty(self, models: Iterable[str] | None = None) -> set[str]:
        """The models changed since they were last taken (of ``models``, or all), their marks
        cleared: a state store snapshots and writes them, and gives back with ``mark_dirty``
        those it could not. Taken before the snapshot, a mark is never lost: a change after it
        marks the model again."""
        with self.lock:
            if models is None:
                dirty, self.dirty = self.dirty, set()
                return dirty
            taken = self.dirty.intersection(models)
            self.dirty -= taken
            return taken

    def mark_dirty(self, models: Iterable[str]) -> None:
        with self.lock:
            self.dirty.update(model for model in models if model in self.models)

    def mark_clean(self, models: Iterable[str]) -> None:
        """Models whose state is stored as it is now (restored from, or written to, the store)."""
        with self.lock:
            self.dirty.difference_update(models)

    # -- references, checkpoints ---------------------------------------------------------

    def set_reference(self, model: str, frame: pd.DataFrame, source: str,
                      describe: Callable[[ModelState], T] | None = None) -> T | None:
        """Use ``frame`` as the model's reference; the window restarts. ``describe(state)``, read
        under the same hold of the lock, says what was loaded (a view, as ``view`` returns)."""
        with self.lock:
            state = self._state(model)
            if state is None:
                raise TooManyModels(f"limits.max_models={self.settings.limits.max_models} models are tracked already")
            state.set_reference_frame(frame, source)
            self.dirty.add(model)
            return None if describe is None else describe(state)

    def snapshot(self, model: str) -> bytes:
        with self.lock:
            return model_checkpoint.to_bytes(self.models[model])

    def restore(self, model: str, data: bytes) -> None:
        with self.lock:
            if self.model_names.admit(model) == OTHER:
                return
            self.models[model] = model_checkpoint.from_bytes(data, self.settings.model(model), self.settings.limits)

    def drop(self, model: str) -> None:
        """Forget a model's state (its partition moved to another replica)."""
        with self.lock:
            self.models.pop(model, None)
            self.dirty.discard(model)
            self.model_names.admitted.discard(model)

    @property
    def overflow(self) -> dict[str, int]:
        """Label values folded into ``__other__``, per label name."""
        return {
            "model": self.model_names.overflowed,
            "model_version": sum(b.overflowed for b in self._versions.values()),
            "server": sum(b.overflowed for b in self._servers.values()),
            "event": sum(b.overflowed for b in self._infra_words.values()),
            # Present values of segment features pooled as __other__ (service.core.segments).
            "segment": self.segment_overflow,
        }
