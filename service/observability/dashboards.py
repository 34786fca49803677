"""Grafana dashboards for driftline, generated from code.

Each ``*_dashboard()`` function returns the dashboard model as a plain dict; the JSON
committed under ``dashboards/`` is ``export()``'s output and a test keeps the two equal
(regenerate with ``driftline dashboards export dashboards``).

The panels, variables and layout are built with :mod:`service.observability.grafana`; this
module holds what each dashboard shows and where.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from service.observability.grafana import (
    Layout,
    dashboard,
    heatmap,
    new_in_window,
    prom_annotation,
    queries,
    query_var,
    render,
    stat,
    state_timeline,
    table,
    target,
    timeseries,
)

__all__ = ["DASHBOARDS", "all_dashboards", "export", "iter_queries", "render"]

# Label selectors of the template variables, spliced into the panels' PromQL.
M = 'model=~"$model"'
MV = 'model=~"$model", model_version=~"$model_version"'
MS = 'model=~"$model", segment=~"$segment"'

MODEL_VAR = query_var("model", "label_values(driftline_events_total, model)", "Model")
# Segments (models.<m>.segments): every segment of every segment feature of the chosen models.
SEGMENT_VAR = query_var(
    "segment", 'label_values(driftline_segment_window_samples{model=~"$model"}, segment)', "Segment")
MODEL_VERSION_VAR = query_var(
    "model_version",
    'label_values(driftline_prediction_latency_seconds_count{model=~"$model"}, model_version)',
    "Model version")


PERF_CLASSIFICATION = "accuracy|precision|recall|f1|roc_auc"
PERF_REGRESSION = "mae|rmse"


def model_overview_dashboard() -> dict[str, Any]:
    lay = Layout()
    lay.row("Traffic")
    lay.add(timeseries("Prediction rate", queries(
        (f'sum by (model) (rate(driftline_events_total{{{M}, kind="prediction"}}[$__rate_interval]))',
         "{{model}}")), "reqps",
        description="Prediction events received per second."), w=8)
    lay.add(timeseries("Error rate", queries(
        (f"sum by (model) (rate(driftline_prediction_errors_total{{{M}}}[$__rate_interval]))"
         f' / sum by (model) (rate(driftline_events_total{{{M}, kind="prediction"}}[$__rate_interval]))',
         "{{model}}")), "percentunit", min_=0,
        description="Share of predictions with status=error (all versions of the model).",
        thresholds=[(None, "green"), (0.05, "red")]), w=8)
    lay.add(timeseries("Latency p50 / p95 / p99", queries(*[
        (f"histogram_quantile({q}, sum by (le, model) "
         f"(rate(driftline_prediction_latency_seconds_bucket{{{MV}}}[$__rate_interval])))",
         f"{{{{model}}}} p{int(q * 100)}") for q in (0.5, 0.95, 0.99)]), "s",
        description="Quantiles of the prediction latency reported in the events (latency_ms).",
        thresholds=[(None, "green"), (0.25, "red")]), w=8)

    lay.row("Model quality")
    lay.add(timeseries("Classification performance", queries(
        (f'driftline_model_performance{{{MV}, metric=~"{PERF_CLASSIFICATION}"}}',
         "{{model}} v{{model_version}} {{metric}}")), "percentunit", min_=0, max_=1,
        description="accuracy, precision, recall, f1 and ROC AUC over the label window."), w=8)
    lay.add(timeseries("Regression error", queries(
        (f'driftline_model_performance{{{MV}, metric=~"{PERF_REGRESSION}"}}',
         "{{model}} v{{model_version}} {{metric}}")), "short", min_=0,
        description="MAE and RMSE over the label window (regression models)."), w=8)
    lay.add(stat("Accuracy", queries(
        (f'driftline_model_performance{{{MV}, metric="accuracy"}}',
         "{{model}} v{{model_version}}")), "percentunit",
        thresholds=[(None, "red"), (0.8, "yellow"), (0.9, "green")],
        description="Latest accuracy per model version."), w=8)
    lay.add(timeseries("Label coverage", queries(
        (f'sum by (model) (increase(driftline_labels_total{{{M}, outcome="matched"}}[1h]))'
         f' / sum by (model) (increase(driftline_events_total{{{M}, kind="prediction"}}[1h]))',
         "{{model}}")), "percentunit", min_=0,
        description="Matched labels / predictions over the last hour: how much of the "
                    "traffic has ground truth yet."), w=8)
    lay.add(timeseries("Labels by outcome", queries(
        (f"sum by (model, outcome) (rate(driftline_labels_total{{{M}}}[$__rate_interval]))",
         "{{model}} {{outcome}}")), "reqps",
        description="Labels per second: matched to a prediction, unmatched (unknown or "
                    "expired prediction) or duplicate."), w=8)
    lay.add(timeseries("Label delay p50 / p95", queries(*[
        (f"histogram_quantile({q}, sum by (le, model) "
         f"(rate(driftline_label_delay_seconds_bucket{{{M}}}[$__rate_interval])))",
         f"{{{{model}}}} p{int(q * 100)}") for q in (0.5, 0.95)]), "s",
        description="Time from prediction to its label."), w=8)
    lay.add(timeseries("Estimated vs realised performance", queries(
        (f"driftline_estimated_performance{{{MV}}}", "{{model}} v{{model_version}} {{metric}} estimated"),
        (f"driftline_model_performance{{{MV}}} and on (model, model_version, metric) "
         f"driftline_estimated_performance{{{MV}}}", "{{model}} v{{model_version}} {{metric}} realised"),
        (f"driftline_estimated_performance_threshold_lower{{{MV}}}",
         "{{model}} v{{model_version}} {{metric}} lower threshold")), "percentunit", min_=0, max_=1,
        description="Performance estimated without labels (CBPE, models.<m>.estimation) over the last window, "
                    "the realised figure of the same metric once labels have arrived (label window), and the "
                    "threshold below which an estimate is a drop (estimated_performance_drop)."), w=16)
    lay.add(timeseries("Estimate confidence bounds", queries(
        (f"driftline_estimated_performance_lower{{{MV}}}", "{{model}} v{{model_version}} {{metric}} lower"),
        (f"driftline_estimated_performance_upper{{{MV}}}", "{{model}} v{{model_version}} {{metric}} upper")),
        "percentunit", min_=0, max_=1,
        description="The estimate +/- 3 sampling errors (NannyML's), within [0, 1]."), w=8)

    lay.row("Drift")
    lay.add(timeseries("Dataset drift share", queries(
        (f"driftline_drift_share{{{M}}}", "{{model}}")), "percentunit", min_=0, max_=1,
        thresholds=[(None, "green"), (0.5, "red")],
        description="Share of drifted features; dataset drift at the configured drift_share "
                    "(0.5 by default)."), w=8)
    lay.add(timeseries("Prediction drift score", queries(
        (f"driftline_prediction_drift_score{{{M}}}", "{{model}} {{method}}")), "short",
        description="Drift of the prediction (or score) distribution, reference vs current "
                    "window (statistic or p-value, per method)."), w=8)
    lay.add(stat("Dataset drift", queries(
        (f"driftline_dataset_drift_detected{{{M}}}", "{{model}}")), "short",
        thresholds=[(None, "green"), (1, "red")],
        mappings=[{"type": "value", "options": {"0": {"text": "no drift", "index": 0},
                                                 "1": {"text": "DRIFT", "index": 1}}}],
        description="Dataset drift verdict on the current window."), w=8)
    lay.add(timeseries("Retraining triggers per hour", queries(
        (new_in_window("driftline_retrain_triggers_total", M, "model, reason", "1h"),
         "{{model}} {{reason}}")), "short", bars=True,
        description="Retraining requests started in the last hour, by reason."), w=24)

    lay.row("Segments")
    lay.add(timeseries("Performance per segment", queries(
        (f"driftline_segment_performance{{{MS}}}", "{{model}} {{segment_by}}={{segment}} {{metric}}")), "short",
        min_=0, description="Each segment's performance over its joined labels of the label window "
                            "(models.<m>.segments; the Segment variable chooses)."), w=8)
    lay.add(timeseries("Performance gap across segments", queries(
        (f"driftline_segment_performance_gap{{{M}}}", "{{model}} by {{segment_by}} {{metric}}")), "short", min_=0,
        description="Largest minus smallest segment figure of a metric, over the segments with at least "
                    "triggers.performance.min_labels joined labels: a fairness signal."), w=8)
    lay.add(timeseries("Segments drifting", queries(
        (f"sum by (model, segment_by) (driftline_segment_dataset_drift_detected{{{MS}}})",
         "{{model}} by {{segment_by}}")), "short", min_=0,
        description="Segments whose own rows drifted from their reference rows; the aggregate can miss "
                    "drift confined to one segment."), w=8)

    return dashboard(
        "driftline-model-overview", "driftline / Model overview",
        "Traffic, latency, quality, labels and drift of monitored models.",
        lay, [MODEL_VAR, MODEL_VERSION_VAR, SEGMENT_VAR],
        annotations=[prom_annotation(
            "Retraining triggers",
            new_in_window("driftline_retrain_triggers_total", M, "model, reason"),
            "Retraining requested: {{model}}", "reason: {{reason}}", "model,reason",
            "rgba(255, 96, 96, 1)")])


def feature_drift_dashboard() -> dict[str, Any]:
    feature_var = query_var(
        "feature", 'label_values(driftline_feature_drift_score{model=~"$model"}, feature)',
        "Feature")
    mf = 'model=~"$model", feature=~"$feature"'
    lay = Layout()
    lay.add(stat("Drift share", queries((f"driftline_drift_share{{{M}}}", "{{model}}")),
                 "percentunit", thresholds=[(None, "green"), (0.5, "red")],
                 description="Share of drifted features in the current window."), w=6, h=5)
    lay.add(stat("Drifted features", queries(
        (f"sum by (model) (driftline_feature_drift_detected{{{M}}})", "{{model}}")), "short",
        thresholds=[(None, "green"), (1, "orange")],
        description="Number of features whose drift test fails."), w=6, h=5)
    lay.add(stat("Window fill", queries((f"driftline_window_samples{{{M}}}", "{{model}}")),
                 "short", description="Samples in the current window."), w=6, h=5)
    lay.add(stat("Dataset drift", queries(
        (f"driftline_dataset_drift_detected{{{M}}}", "{{model}}")), "short",
        thresholds=[(None, "green"), (1, "red")],
        mappings=[{"type": "value", "options": {"0": {"text": "no drift", "index": 0},
                                                 "1": {"text": "DRIFT", "index": 1}}}]),
        w=6, h=5)
    lay.add(heatmap("Drift score per feature", queries(
        (f"max by (model, feature) (driftline_feature_drift_score{{{mf}}})", "{{model}} {{feature}}")),
        "short",
        description="One row per feature, coloured by its drift score (statistic or "
                    "p-value as the method reports it: for ks/chisquare/z a low value means "
                    "drift, for wasserstein/jensenshannon/psi a high one)."), w=24, h=9)
    lay.add(state_timeline("Drift verdict per feature", queries(
        (f"max by (model, feature) (driftline_feature_drift_detected{{{mf}}})",
         "{{model}} {{feature}}")),
        thresholds=[(None, "green"), (1, "red")],
        mappings=[{"type": "value", "options": {"0": {"text": "ok", "color": "green", "index": 0},
                                                 "1": {"text": "drift", "color": "red", "index": 1}}}],
        description="Per-feature drift verdict over time."), w=24, h=9)
    lay.add(table("Drifted features", [target(
        f"driftline_feature_drift_score{{{mf}}} and on (model, feature) "
        f"(driftline_feature_drift_detected{{{mf}}} == 1)",
        "", "A", instant=True, fmt="table")], "short",
        rename={"Value": "score"},
        description="Features drifted now, with the method and score of their test."),
        w=12, h=9)
    lay.add(timeseries("Drift score per feature", queries(
        (f"driftline_feature_drift_score{{{mf}}}", "{{model}} {{feature}} ({{method}})")),
        "short"), w=12, h=9)
    lay.add(timeseries("Window fill", queries(
        (f"driftline_window_samples{{{M}}}", "{{model}}")), "short", min_=0,
        description="Samples in the current comparison window."), w=24, h=7)
    lay.row("Segments")
    lay.add(timeseries("Drift share per segment", queries(
        (f"driftline_segment_drift_share{{{MS}}}", "{{model}} {{segment_by}}={{segment}}")), "percentunit",
        min_=0, max_=1, thresholds=[(None, "green"), (0.5, "red")],
        description="Share of drifted features in each segment's rows of the window, tested against the "
                    "segment's reference rows (models.<m>.segments)."), w=12, h=8)
    lay.add(state_timeline("Dataset drift per segment", queries(
        (f"driftline_segment_dataset_drift_detected{{{MS}}}", "{{model}} {{segment_by}}={{segment}}")),
        thresholds=[(None, "green"), (1, "red")],
        mappings=[{"type": "value", "options": {"0": {"text": "ok", "color": "green", "index": 0},
                                                 "1": {"text": "drift", "color": "red", "index": 1}}}],
        description="Each segment's dataset drift verdict over time."), w=12, h=8)
    lay.add(timeseries("Window fill per segment", queries(
        (f"driftline_segment_window_samples{{{MS}}}", "{{model}} {{segment_by}}={{segment}}")), "short", min_=0,
        description="Each segment's rows in the window at its last evaluation; __other__ pools the values "
                    "beyond limits.max_segments."), w=24, h=7)
    return dashboard(
        "driftline-feature-drift", "driftline / Feature drift",
        "Per-feature drift scores and verdicts, reference vs current window.",
        lay, [MODEL_VAR, feature_var, SEGMENT_VAR])


def data_quality_dashboard() -> dict[str, Any]:
    feature_var = query_var(
        "feature", 'label_values(driftline_feature_missing_ratio{model=~"$model"}, feature)', "Feature")
    mf = 'model=~"$model", feature=~"$feature"'
    rise = f"driftline_feature_missing_ratio{{{mf}}} - driftline_feature_reference_missing_ratio{{{mf}}}"
    share = [(None, "green"), (0.05, "red")]
    lay = Layout()
    lay.add(stat("Largest missing rise", queries((f"max by (model) ({rise})", "{{model}}")), "percentunit",
                 thresholds=[(None, "green"), (0.1, "red")],
                 description="The largest rise of a feature's missing share (null, absent, wrong type) "
                             "over the reference's; the data_quality trigger's default threshold is 0.1."),
            w=6, h=5)
    lay.add(stat("Largest out-of-range share", queries(
        (f"max by (model) (driftline_feature_out_of_range_ratio{{{mf}}})", "{{model}}")), "percentunit",
        thresholds=share, description="The largest share of a numerical feature's values outside the "
                                      "reference's [min, max]."), w=6, h=5)
    lay.add(stat("Largest unseen share", queries(
        (f"max by (model) (driftline_feature_unseen_ratio{{{mf}}})", "{{model}}")), "percentunit",
        thresholds=share, description="The largest share of a categorical feature's values that the "
                                      "reference never had."), w=6, h=5)
    lay.add(stat("New and absent features", queries(
        (f"max by (model, kind) (driftline_features_unexpected{{{M}}})", "{{model}} {{kind}}")), "short",
        thresholds=[(None, "green"), (1, "orange")],
        description="Features in the window's events that the reference lacks (new), reference "
                    "features with no value in the window (absent)."), w=6, h=5)
    lay.add(timeseries("Missing share per feature", queries(
        (f"driftline_feature_missing_ratio{{{mf}}}", "{{model}} {{feature}}"),
        (f"driftline_feature_reference_missing_ratio{{{mf}}}", "{{model}} {{feature}} (reference)")),
        "percentunit", min_=0, max_=1,
        description="Share of the window's rows without a usable value, beside the reference's share."),
        w=12, h=9)
    lay.add(timeseries("Missing rise over the reference", queries((rise, "{{model}} {{feature}}")),
                       "percentunit", thresholds=[(None, "green"), (0.1, "red")],
                       description="Window minus reference missing share, per feature."), w=12, h=9)
    lay.add(timeseries("Out-of-range share per feature", queries(
        (f"driftline_feature_out_of_range_ratio{{{mf}}}", "{{model}} {{feature}}")), "percentunit", min_=0,
        thresholds=share, description="Numerical features: values outside the reference's [min, max]."),
        w=12, h=9)
    lay.add(timeseries("Unseen share per feature", queries(
        (f"driftline_feature_unseen_ratio{{{mf}}}", "{{model}} {{feature}}")), "percentunit", min_=0,
        thresholds=share, description="Categorical features: values the reference never had."), w=12, h=9)
    lay.add(timeseries("New and absent features", queries(
        (f"driftline_features_unexpected{{{M}}}", "{{model}} {{kind}}")), "short", min_=0,
        description="Count of new and of absent features per window."), w=24, h=7)
    return dashboard(
        "driftline-data-quality", "driftline / Data quality",
        "Missing, out-of-range and unseen values per feature, and new or absent features, window vs reference.",
        lay, [MODEL_VAR, feature_var])


def infrastructure_dashboard() -> dict[str, Any]:
    server_var = query_var(
        "server", 'label_values(driftline_infra_cpu_utilization_ratio{model=~"$model"}, server)',
        "Model server")
    mi = 'model=~"$model", server=~"$server"'
    legend = "{{model}} {{server}}"
    lay = Layout()
    lay.add(timeseries("CPU utilization", queries(
        (f"driftline_infra_cpu_utilization_ratio{{{mi}}}", legend)), "percentunit", min_=0), w=12)
    lay.add(timeseries("Memory", queries(
        (f"driftline_infra_memory_bytes{{{mi}}}", legend)), "bytes", min_=0), w=12)
    lay.add(timeseries("GPU utilization", queries(
        (f"driftline_infra_gpu_utilization_ratio{{{mi}}}", legend)), "percentunit", min_=0), w=12)
    lay.add(timeseries("GPU memory", queries(
        (f"driftline_infra_gpu_memory_bytes{{{mi}}}", legend)), "bytes", min_=0), w=12)
    lay.add(timeseries("Requests in flight", queries(
        (f"driftline_infra_requests_in_flight{{{mi}}}", legend)), "short", min_=0), w=12)
    lay.add(timeseries("Infra events", queries(
        (f"sum by (model, event) (increase(driftline_infra_events_total{{{M}}}[$__rate_interval]))",
         "{{model}} {{event}}")), "short", bars=True,
        description="restart, oom_killed, deploy, ... as reported by infra events."), w=12)
    return dashboard(
        "driftline-infrastructure", "driftline / Infrastructure",
        "Resources of the model servers, as reported by infra events.",
        lay, [MODEL_VAR, server_var],
        annotations=[prom_annotation(
            "Infra events",
            new_in_window("driftline_infra_events_total", M, "model, event"),
            "{{event}}: {{model}}", "{{event}} on {{model}}", "model,event",
            "rgba(255, 176, 0, 1)")])


def service_dashboard() -> dict[str, Any]:
    lay = Layout()
    lay.add(timeseries("Events by kind", queries(
        (f"sum by (kind) (rate(driftline_events_total{{{M}}}[$__rate_interval]))", "{{kind}}")),
        "ops", stack=True, description="Accepted events per second."), w=12)
    lay.add(timeseries("Rejected events by reason", queries(
        ("sum by (reason) (rate(driftline_events_rejected_total[$__rate_interval]))",
         "{{reason}}")), "ops", stack=True,
        description="Bad events per second (and sent to the dead-letter topic from Kafka)."),
        w=12)
    lay.add(timeseries("Kafka consumer lag", queries(
        ("sum by (topic, partition) (driftline_consumer_lag_messages)",
         "{{topic}}/{{partition}}")), "short", min_=0,
        description="Messages behind the end of each partition (Kafka sources only)."), w=12)
    lay.add(timeseries("Batch processing time", queries(*[
        (f"histogram_quantile({q}, sum by (le) "
         f"(rate(driftline_batch_processing_seconds_bucket[$__rate_interval])))",
         f"p{int(q * 100)}") for q in (0.5, 0.99)]), "s",
        description="Time to process one batch of events."), w=12)
    lay.add(timeseries("Webhook deliveries by outcome", queries(
        ("sum by (target, outcome) (increase(driftline_webhook_deliveries_total[$__rate_interval]))",
         "{{target}} {{outcome}}")), "short", bars=True,
        description="Retraining webhook attempts: delivered, retried, failed."), w=12)
    lay.add(timeseries("Webhooks pending", queries(
        ("sum by (target) (driftline_webhook_pending)", "{{target}}")), "short", min_=0,
        description="Deliveries waiting in the outbox."), w=12)
    lay.add(table("Build info", [target(
        "driftline_build_info", "", "A", instant=True, fmt="table")], "short",
        exclude=("Time", "__name__", "Value"),
        description="driftline version of each scraped instance."), w=24, h=5)
    return dashboard(
        "driftline-service", "driftline / Service",
        "driftline itself: ingest, rejects, Kafka lag, batches, webhooks, versions.",
        lay, [MODEL_VAR])


DASHBOARDS: dict[str, Callable[[], dict[str, Any]]] = {
    "driftline-model-overview.json": model_overview_dashboard,
    "driftline-feature-drift.json": feature_drift_dashboard,
    "driftline-data-quality.json": data_quality_dashboard,
    "driftline-infrastructure.json": infrastructure_dashboard,
    "driftline-service.json": service_dashboard,
}


def all_dashboards() -> dict[str, dict[str, Any]]:
    """File name -> dashboard model."""
    return {name: build() for name, build in DASHBOARDS.items()}


def export(directory: str | Path) -> list[Path]:
    """Write every dashboard as JSON into ``directory``; returns the paths written."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in all_dashboards().items():
        path = out / name
        path.write_text(render(model), encoding="utf-8")
        written.append(path)
    return written


def iter_queries(model: dict[str, Any]) -> Iterable[tuple[str, str]]:
    """(where, PromQL) for every panel target and Prometheus annotation of a dashboard."""
    for panel in model["panels"]:
        for t in panel.get("targets", []):
            yield f'{model["uid"]} / {panel["title"]} / {t["refId"]}', t["expr"]
    for ann in model["annotations"]["list"]:
        if "expr" in ann:
            yield f'{model["uid"]} / annotation {ann["name"]}', ann["expr"]
