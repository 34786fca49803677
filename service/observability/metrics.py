"""The Prometheus exposition: exactly the names, types and labels of CONTRACT §2.

Engine figures are read at scrape time by :class:`EngineCollector` (the engine keeps plain
counters and numpy histograms, so ingestion never pays prometheus-client's per-observation
locking). Figures owned by edges (webhooks, Kafka lag, triggers) are ordinary
prometheus-client metrics on the same registry, created by :class:`Metrics`. The registry is
passed in, never the global default, so tests run isolated servers side by side.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from detectors import DriftReport, FeatureDrift
from detectors.quality import QualityReport
from service import __version__
from service.core.engine import Engine
from service.core.estimation import WindowEstimate
from service.core.histogram import BatchHistogram
from service.core.model_state import ModelState
from service.core.segments import SegmentDrift

INFRA_METRICS = {
    "cpu_utilization": ("driftline_infra_cpu_utilization_ratio", "CPU utilisation reported by the model server, 0..1."),
    "memory_bytes": ("driftline_infra_memory_bytes", "Memory used by the model server."),
    "gpu_utilization": ("driftline_infra_gpu_utilization_ratio", "GPU utilisation reported by the model server, 0..1."),
    "gpu_memory_bytes": ("driftline_infra_gpu_memory_bytes", "GPU memory used by the model server."),
    "requests_in_flight": ("driftline_infra_requests_in_flight", "Requests in flight in the model server."),
}
STATE_STORES = ("checkpoint", "outbox")


class Metrics:
    """Every metric of the service on one registry."""

    def __init__(self, engine: Engine, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.registry.register(EngineCollector(engine))
        self.retrain_triggers = Counter(
            "driftline_retrain_triggers", "Retraining triggers raised.", ["model", "reason"], registry=self.registry)
        self.webhook_deliveries = Counter(
            "driftline_webhook_deliveries", "Webhook delivery attempts by outcome.", ["target", "outcome"],
            registry=self.registry)
        self.webhook_pending = Gauge(
            "driftline_webhook_pending", "Webhook deliveries waiting in the outbox.", ["target"],
            registry=self.registry)
        self.consumer_lag = Gauge(
            "driftline_consumer_lag_messages", "Messages between the committed position and the log end.",
            ["topic", "partition"], registry=self.registry)
        # The state store (state_dir): per-model checkpoints and the trigger outbox.
        self.state_write_failures = Counter(
            "driftline_state_write_failures",
            "Failed writes to state_dir: one model's checkpoint (store=checkpoint) or one outbox write (store=outbox).",
            ["store"], registry=self.registry)
        self.state_corrupt_files = Counter(
            "driftline_state_corrupt_files", "Unreadable state files moved aside as *.corrupt-<time>, by store.",
            ["store"], registry=self.registry)
        for store in STATE_STORES:
            self.state_write_failures.labels(store=store)
            self.state_corrupt_files.labels(store=store)
        self.state_checkpoint_last_success = Gauge(
            "driftline_state_checkpoint_last_success_timestamp_seconds",
            "UNIX time of the last checkpoint round that wrote every changed model to state_dir.",
            registry=self.registry)
        self.cloudevents = CloudEventsCollector()
        self.registry.register(self.cloudevents)
        build = Gauge("driftline_build_info", "driftline build; always 1.", ["version"], registry=self.registry)
        build.labels(version=__version__).set(1)

    def watch_cloudevents(self, source: str, joiner: Callable[[], PendingHalves | None]) -> None:
        """Export the pending halves and evictions of a CloudEvents joiner (``source``: http, kafka)."""
        self.cloudevents.sources[source] = joiner


class PendingHalves(Protocol):
    """What the metrics read of a CloudEvents joiner (service.ingest.joiner.CloudEventJoiner)."""

    pending_bytes: int
    evicted: dict[str, int]

    def __len__(self) -> int: ...


class CloudEventsCollector(Collector):
    """Request/response halves waiting for their partner, and those evicted without one."""

    def __init__(self):
        self.sources: dict[str, Callable[[], PendingHalves | None]] = {}

    def collect(self) -> Iterator[Metric]:
        pending = GaugeMetricFamily("driftline_cloudevents_pending", "CloudEvent halves waiting for their partner.",
                                    labels=["source"])
        pending_bytes = GaugeMetricFamily("driftline_cloudevents_pending_bytes",
                                          "Bytes held by CloudEvent halves waiting for their partner.",
                                          labels=["source"])
        evicted = CounterMetricFamily("driftline_cloudevents_evicted",
                                      "CloudEvent halves emitted without their partner, by reason "
                                      "(expired: ttl; count, bytes: the pending bounds).", labels=["source", "reason"])
        for source, get in self.sources.items():
            joiner = get()
            if joiner is None:
                continue
            pending.add_metric([source], len(joiner))
            pending_bytes.add_metric([source], joiner.pending_bytes)
            for reason, count in joiner.evicted.items():
                evicted.add_metric([source, reason], count)
        yield pending
        yield pending_bytes
        yield evicted


@dataclass(frozen=True, slots=True)
class ModelFigures:
    """What a scrape reads of one model, copied under the engine's lock (``Engine.views``).
    Reports are made anew by each evaluation, never changed after, so they are shared."""

    window_samples: int
    performance: dict[str, dict[str, float]]
    concept_counts: dict[str, int]
    report: DriftReport | None
    prediction_drift: FeatureDrift | None
    quality: QualityReport | None
    estimate: WindowEstimate | None
    segment_drift: dict[str, dict[str, SegmentDrift]]
    segment_performance: dict[str, dict[str, dict[str, float]]]
    segment_gap: dict[str, dict[str, float]]

    @classmethod
    def of(cls, name: str, state: ModelState) -> ModelFigures:
        segments = state.segments
        return cls(
            window_samples=state.window_samples,
            performance={version: dict(figures) for version, figures in state.performance.items()},
            concept_counts=dict(state.concept_counts), report=state.report,
            prediction_drift=state.prediction_drift, quality=state.quality, estimate=state.estimate,
            segment_drift={} if segments is None else {by: dict(found) for by, found in segments.drift.items()},
            segment_performance={} if segments is None else {
                by: {segment: dict(figures) for segment, (figures, _) in found.items()}
                for by, found in segments.performance.items()},
            segment_gap={} if segments is None else segments.gap(state.config.triggers.performance.min_labels))


class EngineCollector(Collector):
    def __init__(self, engine: Engine):
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        counters = self.engine.counters()
        models = self.engine.views(ModelFigures.of)
        yield _counter("driftline_events", "Events accepted, by model and kind.", ["model", "kind"], counters.events)
        yield _counter("driftline_events_rejected", "Events rejected, by reason.", ["reason"],
                       {(reason,): n for reason, n in counters.rejected.items()})
        yield _histogram("driftline_prediction_latency_seconds", "Prediction latency reported by the model server.",
                         ["model", "model_version"], counters.latency)
        yield _counter("driftline_prediction_errors", "Predictions with status=error.", ["model", "model_version"],
                       counters.prediction_errors)
        yield _counter("driftline_labels", "Ground-truth labels by join outcome.", ["model", "outcome"],
                       counters.labels)
        yield _counter("driftline_label_correct", "Matched classification labels equal to the prediction.",
                       ["model", "model_version"], counters.label_correct)
        yield _histogram("driftline_label_delay_seconds", "Time from prediction to its label.", ["model"],
                         counters.label_delay)
        yield from _model_families(models)
        yield from _quality_families(models)
        yield from _estimation_families(models)
        yield from _segment_families(models)
        for field, (name, documentation) in INFRA_METRICS.items():
            # `server`, not the event's field name `instance`: Prometheus sets `instance` to the
            # scrape target and renames an exposed one to `exported_instance`.
            family = GaugeMetricFamily(name, documentation, labels=["model", "server"])
            for (model, server), values in counters.infra_gauges.items():
                if field in values:
                    family.add_metric([model, server], values[field])
            yield family
        yield _counter("driftline_infra_events", "Infrastructure events by kind.", ["model", "event"],
                       counters.infra_events)
        yield _histogram("driftline_batch_processing_seconds", "Time the engine spent on one batch.", [],
                         counters.batch_seconds)
        yield _counter("driftline_label_values_overflow",
                       "Label values folded into __other__ because a limits.max_* bound was reached.", ["label"],
                       {(name,): n for name, n in counters.overflow.items()})


def _model_families(models: dict[str, ModelFigures]) -> Iterator[Metric]:
    performance = GaugeMetricFamily("driftline_model_performance", "Performance over the window of joined labels.",
                                    labels=["model", "model_version", "metric"])
    feature_score = GaugeMetricFamily("driftline_feature_drift_score", "Drift statistic or p-value per feature.",
                                      labels=["model", "feature", "method"])
    feature_detected = GaugeMetricFamily("driftline_feature_drift_detected", "1 if the feature drifted.",
                                         labels=["model", "feature"])
    prediction_score = GaugeMetricFamily("driftline_prediction_drift_score", "Drift of the predictions.",
                                         labels=["model", "method"])
    drift_share = GaugeMetricFamily("driftline_drift_share", "Share of drifted features.", labels=["model"])
    dataset = GaugeMetricFamily("driftline_dataset_drift_detected", "1 if the dataset drifted.", labels=["model"])
    concept = CounterMetricFamily("driftline_concept_drift", "Concept drifts detected on the label error stream.",
                                  labels=["model", "detector"])
    samples = GaugeMetricFamily("driftline_window_samples", "Predictions in the current window.", labels=["model"])
    for name, figures in models.items():
        samples.add_metric([name], figures.window_samples)
        for version, values in figures.performance.items():
            for metric, value in values.items():
                performance.add_metric([name, version, metric], value)
        for detector, count in figures.concept_counts.items():
            concept.add_metric([name, detector], count)
        report = figures.report
        if report is not None:
            for feature, result in report.features.items():
                feature_score.add_metric([name, feature, result.method], result.score)
                feature_detected.add_metric([name, feature], float(result.drift))
            drift_share.add_metric([name], report.drift_share)
            dataset.add_metric([name], float(report.dataset_drift))
        drifted = figures.prediction_drift
        if drifted is not None:
            prediction_score.add_metric([name, drifted.method], drifted.score)
    yield from (performance, feature_score, feature_detected, prediction_score, drift_share, dataset, concept, samples)


def _quality_families(models: dict[str, ModelFigures]) -> Iterator[Metric]:
    """Data quality of each model's last window (CONTRACT §7); features are the reference's,
    at most limits.max_features per model, as in the drift figures."""
    missing = GaugeMetricFamily("driftline_feature_missing_ratio",
                                "Share of the window's rows without a usable value of the feature "
                                "(null, absent, or a number feature sent a string).", labels=["model", "feature"])
    reference_missing = GaugeMetricFamily("driftline_feature_reference_missing_ratio",
                                          "The reference's share of rows without a value of the feature.",
                                          labels=["model", "feature"])
    out_of_range = GaugeMetricFamily("driftline_feature_out_of_range_ratio",
                                     "Share of a numerical feature's values in the window outside the "
                                     "reference's [min, max].", labels=["model", "feature"])
    unseen = GaugeMetricFamily("driftline_feature_unseen_ratio",
                               "Share of a categorical feature's values in the window that the reference "
                               "never had.", labels=["model", "feature"])
    unexpected = GaugeMetricFamily("driftline_features_unexpected",
                                   "Features in the window's events that the reference lacks (kind=new), "
                                   "reference features with no value in the window (kind=absent).",
                                   labels=["model", "kind"])
    for name, model in models.items():
        report = model.quality
        if report is None:
            continue
        for feature, figures in report.features.items():
            missing.add_metric([name, feature], figures.missing)
            reference_missing.add_metric([name, feature], figures.reference_missing)
            if figures.out_of_range is not None:
                out_of_range.add_metric([name, feature], figures.out_of_range)
            if figures.unseen is not None:
                unseen.add_metric([name, feature], figures.unseen)
        unexpected.add_metric([name, "new"], len(report.new))
        unexpected.add_metric([name, "absent"], len(report.absent))
    yield from (missing, reference_missing, out_of_range, unseen, unexpected)


def _segment_families(models: dict[str, ModelFigures]) -> Iterator[Metric]:
    """Drift and performance per segment (service.core.segments): at most limits.max_segments + 1
    segments per segment feature; the gap over segments with the performance rule's
    min_labels joined labels."""
    labels = ["model", "segment_by", "segment"]
    drift_share = GaugeMetricFamily("driftline_segment_drift_share",
                                    "Share of drifted features in the segment's rows of the window.", labels=labels)
    dataset = GaugeMetricFamily("driftline_segment_dataset_drift_detected",
                                "1 if the segment's rows of the window drifted from its reference rows.",
                                labels=labels)
    samples = GaugeMetricFamily("driftline_segment_window_samples",
                                "Predictions of the segment in the window at its last evaluation.", labels=labels)
    performance = GaugeMetricFamily("driftline_segment_performance",
                                    "Performance over the segment's joined labels of the label window.",
                                    labels=[*labels, "metric"])
    gap = GaugeMetricFamily("driftline_segment_performance_gap",
                            "Largest minus smallest segment performance, over segments with enough labels.",
                            labels=["model", "segment_by", "metric"])
    for name, model in models.items():
        for segment_by, results in model.segment_drift.items():
            for segment, result in results.items():
                samples.add_metric([name, segment_by, segment], result.samples)
                if result.report is not None:
                    drift_share.add_metric([name, segment_by, segment], result.report.drift_share)
                    dataset.add_metric([name, segment_by, segment], float(result.report.dataset_drift))
        for segment_by, found in model.segment_performance.items():
            for segment, figures in found.items():
                for metric, value in figures.items():
                    performance.add_metric([name, segment_by, segment, metric], value)
        for segment_by, gaps in model.segment_gap.items():
            for metric, value in gaps.items():
                gap.add_metric([name, segment_by, metric], value)
    yield from (drift_share, dataset, samples, performance, gap)


ESTIMATION_FIGURES = {
    # gauge suffix -> (the MetricEstimate field, help text)
    "": ("value", "Performance estimated without labels (CBPE) over the last window, by the model's "
                  "latest version."),
    "_lower": ("lower_confidence_bound", "Lower confidence bound of the estimate (estimate - 3 sampling errors)."),
    "_upper": ("upper_confidence_bound", "Upper confidence bound of the estimate (estimate + 3 sampling errors)."),
    "_threshold_lower": ("lower_threshold", "Alert threshold below which the estimate is a drop "
                                            "(estimated_performance_drop)."),
    "_threshold_upper": ("upper_threshold", "Alert threshold above which the estimate alerts."),
}


def _estimation_families(models: dict[str, ModelFigures]) -> Iterator[Metric]:
    """driftline_estimated_performance{model,model_version,metric} and its bounds and
    thresholds (CONTRACT §7): one series per model and configured metric; an undefined
    value (a window without scores) is left out."""
    for suffix, (field, documentation) in ESTIMATION_FIGURES.items():
        family = GaugeMetricFamily(f"driftline_estimated_performance{suffix}", documentation,
                                   labels=["model", "model_version", "metric"])
        for name, model in models.items():
            estimate = model.estimate
            if estimate is None:
                continue
            for metric, figures in estimate.metrics.items():
                value = getattr(figures, field)
                if value is not None and value == value:
                    family.add_metric([name, estimate.model_version, metric], value)
        yield family


def _counter(name: str, documentation: str, labels: list[str], values: dict) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for key, value in values.items():
        family.add_metric(list(key), value)
    return family


def _histogram(name: str, documentation: str, labels: list[str], histogram: BatchHistogram) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=labels)
    bounds = [_bound(b) for b in histogram.upper_bounds] + ["+Inf"]
    for key in histogram.counts:
        cumulative = histogram.cumulative(key)
        family.add_metric(list(key), list(zip(bounds, cumulative.tolist(), strict=True)), histogram.sums[key])
    return family


def _bound(value: float) -> str:
    return repr(float(value))
