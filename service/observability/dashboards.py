"""Grafana dashboards for driftline, generated from code.

Each ``*_dashboard()`` function returns the dashboard model as a plain dict; the JSON
committed under ``dashboards/`` is ``export()``'s output and a test keeps the two equal
(regenerate with ``driftline dashboards export dashboards``).

The JSON is meant for Grafana file provisioning and for the Grafana Helm chart's
dashboard sidecar, so every panel uses the ``datasource`` template variable
(``{"type": "prometheus", "uid": "${datasource}"}``) rather than an import-time
``${DS_PROMETHEUS}`` input, which only works in the import dialog.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable

DS: dict[str, str] = {"type": "prometheus", "uid": "${datasource}"}
TAGS = ["driftline"]
SCHEMA_VERSION = 39

M = 'model=~"$model"'
MV = 'model=~"$model", model_version=~"$model_version"'


# ---------------------------------------------------------------------------------
# a small builder


class _Layout:
    """Places panels left to right on Grafana's 24-column grid, wrapping rows."""

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.row_h = 0
        self.next_id = 1
        self.panels: list[dict[str, Any]] = []

    def add(self, panel: dict[str, Any], w: int = 12, h: int = 8) -> None:
        if self.x + w > 24:
            self.newline()
        panel["id"] = self.next_id
        self.next_id += 1
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_h = max(self.row_h, h)
        self.panels.append(panel)

    def newline(self) -> None:
        if self.x:
            self.y += self.row_h
        self.x = 0
        self.row_h = 0

    def row(self, title: str) -> None:
        self.newline()
        self.panels.append({
            "type": "row", "title": title, "collapsed": False, "panels": [],
            "id": self.next_id, "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
        })
        self.next_id += 1
        self.y += 1


def target(expr: str, legend: str = "__auto", ref: str = "A", *, instant: bool = False,
           fmt: str = "time_series") -> dict[str, Any]:
    t: dict[str, Any] = {
        "datasource": DS,
        "refId": ref,
        "expr": expr,
        "legendFormat": legend,
        "range": not instant,
        "instant": instant,
        "format": fmt,
        "editorMode": "code",
    }
    return t


def _targets(*queries: tuple[str, str]) -> list[dict[str, Any]]:
    return [target(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(queries)]


def timeseries(title: str, targets: list[dict[str, Any]], unit: str = "short", *,
               description: str = "", min_: float | None = None, max_: float | None = None,
               stack: bool = False, bars: bool = False,
               thresholds: list[tuple[float | None, str]] | None = None) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "unit": unit,
        "custom": {
            "drawStyle": "bars" if bars else "line",
            "lineWidth": 1,
            "fillOpacity": 80 if bars else 10,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        },
        "thresholds": _thresholds(thresholds),
    }
    if thresholds:
        defaults["custom"]["thresholdsStyle"] = {"mode": "dashed"}
    if min_ is not None:
        defaults["min"] = min_
    if max_ is not None:
        defaults["max"] = max_
    return {
        "type": "timeseries", "title": title, "description": description, "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {"displayMode": "table", "placement": "bottom", "showLegend": True,
                       "calcs": ["lastNotNull", "max"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def stat(title: str, targets: list[dict[str, Any]], unit: str = "short", *,
         description: str = "", thresholds: list[tuple[float | None, str]] | None = None,
         mappings: list[dict[str, Any]] | None = None, text_mode: str = "auto") -> dict[str, Any]:
    return {
        "type": "stat", "title": title, "description": description, "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit, "thresholds": _thresholds(thresholds),
                                     "mappings": mappings or [],
                                     "color": {"mode": "thresholds"}},
                        "overrides": []},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "colorMode": "background", "graphMode": "area", "textMode": text_mode,
                    "justifyMode": "auto", "orientation": "auto"},
    }


def table(title: str, targets: list[dict[str, Any]], unit: str = "short", *,
          description: str = "", exclude: Iterable[str] = ("Time", "__name__", "job"),
          rename: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "type": "table", "title": title, "description": description, "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit, "thresholds": _thresholds(None)},
                        "overrides": []},
        "options": {"showHeader": True, "cellHeight": "sm",
                    "footer": {"show": False, "reducer": ["sum"], "fields": ""}},
        "transformations": [
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {
                "excludeByName": {name: True for name in exclude},
                "renameByName": rename or {},
            }},
        ],
    }


def state_timeline(title: str, targets: list[dict[str, Any]], *, description: str = "",
                   mappings: list[dict[str, Any]] | None = None,
                   thresholds: list[tuple[float | None, str]] | None = None) -> dict[str, Any]:
    return {
        "type": "state-timeline", "title": title, "description": description, "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": "short", "mappings": mappings or [],
                                     "thresholds": _thresholds(thresholds),
                                     "color": {"mode": "thresholds"},
                                     "custom": {"fillOpacity": 80, "lineWidth": 0}},
                        "overrides": []},
        "options": {"showValue": "never", "mergeValues": True, "rowHeight": 0.9,
                    "alignValue": "left", "legend": {"showLegend": True, "displayMode": "list",
                                                     "placement": "bottom"},
                    "tooltip": {"mode": "single", "sort": "none"}},
    }


def heatmap(title: str, targets: list[dict[str, Any]], unit: str = "short", *,
            description: str = "") -> dict[str, Any]:
    """A heatmap of one row per series (here: per feature), coloured by its value."""
    return {
        "type": "heatmap", "title": title, "description": description, "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {
            "calculate": False,
            "cellGap": 1,
            "color": {"mode": "scheme", "scheme": "Oranges", "scale": "linear",
                      "exponent": 0.5, "steps": 64, "fill": "dark-orange", "reverse": False},
            "rowsFrame": {"layout": "auto"},
            "yAxis": {"axisPlacement": "left", "unit": "short"},
            "cellValues": {"unit": unit},
            "tooltip": {"show": True, "yHistogram": False},
            "legend": {"show": True},
            "exemplars": {"color": "rgba(255,0,255,0.7)"},
        },
    }


def _thresholds(steps: list[tuple[float | None, str]] | None) -> dict[str, Any]:
    steps = steps or [(None, "green")]
    return {"mode": "absolute",
            "steps": [{"value": value, "color": color} for value, color in steps]}


def _datasource_var() -> dict[str, Any]:
    return {
        "type": "datasource", "name": "datasource", "label": "Data source",
        "query": "prometheus", "regex": "", "hide": 0, "refresh": 1,
        "current": {}, "options": [], "includeAll": False, "multi": False,
    }


def query_var(name: str, query: str, label: str, *, multi: bool = True) -> dict[str, Any]:
    """A Prometheus ``label_values(...)`` template variable (multi-select with All)."""
    return {
        "type": "query", "name": name, "label": label, "datasource": DS,
        # the plain-string form: understood by every Grafana version (newer ones migrate it)
        "query": query,
        "definition": query,
        "refresh": 2,  # on time range change
        "sort": 1,
        "multi": multi,
        "includeAll": multi,
        "allValue": ".*" if multi else None,
        "current": {},
        "options": [],
        "hide": 0,
        "regex": "",
    }


MODEL_VAR = query_var("model", "label_values(driftline_events_total, model)", "Model")
# Segments (models.<m>.segments): every segment of every segment feature of the chosen models.
SEGMENT_VAR = query_var(
    "segment", 'label_values(driftline_segment_window_samples{model=~"$model"}, segment)', "Segment")
MS = 'model=~"$model", segment=~"$segment"'
MODEL_VERSION_VAR = query_var(
    "model_version",
    'label_values(driftline_prediction_latency_seconds_count{model=~"$model"}, model_version)',
    "Model version")


def dashboard(uid: str, title: str, description: str, layout: _Layout,
              variables: list[dict[str, Any]], annotations: list[dict[str, Any]] | None = None,
              links: bool = True) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": TAGS,
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "id": None,
        "links": [{"type": "dashboards", "tags": TAGS, "asDropdown": True, "title": "driftline",
                   "includeVars": True, "keepTime": True, "icon": "external link",
                   "targetBlank": False, "tooltip": "", "url": ""}] if links else [],
        "templating": {"list": [_datasource_var(), *variables]},
        "annotations": {"list": [_builtin_annotation(), *(annotations or [])]},
        "panels": layout.panels,
    }


def _builtin_annotation() -> dict[str, Any]:
    return {"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts", "type": "dashboard"}


def new_in_window(counter: str, selector: str, by: str, window: str = "2m") -> str:
    """Counter increments in the last ``window``, including a series' first appearance.

    ``increase()`` needs two samples, so a counter child that appears already at 1 (the first
    retraining trigger of a model, say) would never show; the ``unless ... offset`` branch
    counts such new series with their whole value.
    """
    series = f"{counter}{{{selector}}}"
    return (f"sum by ({by}) (increase({series}[{window}])) > 0"
            f" or sum by ({by}) ({series} unless {series} offset {window})")


def prom_annotation(name: str, expr: str, title: str, text: str, tags: str,
                    color: str) -> dict[str, Any]:
    return {"name": name, "datasource": DS, "enable": True, "hide": False, "iconColor": color,
            "expr": expr, "step": "60s", "titleFormat": title, "textFormat": text,
            "tagKeys": tags, "useValueForTime": False}


# ---------------------------------------------------------------------------------
# the dashboards

PERF_CLASSIFICATION = "accuracy|precision|recall|f1|roc_auc"
PERF_REGRESSION = "mae|rmse"


def model_overview_dashboard() -> dict[str, Any]:
    lay = _Layout()
    lay.row("Traffic")
    lay.add(timeseries("Prediction rate", _targets(
        (f'sum by (model) (rate(driftline_events_total{{{M}, kind="prediction"}}[$__rate_interval]))',
         "{{model}}")), "reqps",
        description="Prediction events received per second."), w=8)
    lay.add(timeseries("Error rate", _targets(
        (f"sum by (model) (rate(driftline_prediction_errors_total{{{M}}}[$__rate_interval]))"
         f' / sum by (model) (rate(driftline_events_total{{{M}, kind="prediction"}}[$__rate_interval]))',
         "{{model}}")), "percentunit", min_=0,
        description="Share of predictions with status=error (all versions of the model).",
        thresholds=[(None, "green"), (0.05, "red")]), w=8)
    lay.add(timeseries("Latency p50 / p95 / p99", _targets(*[
        (f"histogram_quantile({q}, sum by (le, model) "
         f"(rate(driftline_prediction_latency_seconds_bucket{{{MV}}}[$__rate_interval])))",
         f"{{{{model}}}} p{int(q * 100)}") for q in (0.5, 0.95, 0.99)]), "s",
        description="Quantiles of the prediction latency reported in the events (latency_ms).",
        thresholds=[(None, "green"), (0.25, "red")]), w=8)

    lay.row("Model quality")
    lay.add(timeseries("Classification performance", _targets(
        (f'driftline_model_performance{{{MV}, metric=~"{PERF_CLASSIFICATION}"}}',
         "{{model}} v{{model_version}} {{metric}}")), "percentunit", min_=0, max_=1,
        description="accuracy, precision, recall, f1 and ROC AUC over the label window."), w=8)
    lay.add(timeseries("Regression error", _targets(
        (f'driftline_model_performance{{{MV}, metric=~"{PERF_REGRESSION}"}}',
         "{{model}} v{{model_version}} {{metric}}")), "short", min_=0,
        description="MAE and RMSE over the label window (regression models)."), w=8)
    lay.add(stat("Accuracy", _targets(
        (f'driftline_model_performance{{{MV}, metric="accuracy"}}',
         "{{model}} v{{model_version}}")), "percentunit",
        thresholds=[(None, "red"), (0.8, "yellow"), (0.9, "green")],
        description="Latest accuracy per model version."), w=8)
    lay.add(timeseries("Label coverage", _targets(
        (f'sum by (model) (increase(driftline_labels_total{{{M}, outcome="matched"}}[1h]))'
         f' / sum by (model) (increase(driftline_events_total{{{M}, kind="prediction"}}[1h]))',
         "{{model}}")), "percentunit", min_=0,
        description="Matched labels / predictions over the last hour: how much of the "
                    "traffic has ground truth yet."), w=8)
    lay.add(timeseries("Labels by outcome", _targets(
        (f"sum by (model, outcome) (rate(driftline_labels_total{{{M}}}[$__rate_interval]))",
         "{{model}} {{outcome}}")), "reqps",
        description="Labels per second: matched to a prediction, unmatched (unknown or "
                    "expired prediction) or duplicate."), w=8)
    lay.add(timeseries("Label delay p50 / p95", _targets(*[
        (f"histogram_quantile({q}, sum by (le, model) "
         f"(rate(driftline_label_delay_seconds_bucket{{{M}}}[$__rate_interval])))",
         f"{{{{model}}}} p{int(q * 100)}") for q in (0.5, 0.95)]), "s",
        description="Time from prediction to its label."), w=8)
    lay.add(timeseries("Estimated vs realised performance", _targets(
        (f"driftline_estimated_performance{{{MV}}}", "{{model}} v{{model_version}} {{metric}} estimated"),
        (f"driftline_model_performance{{{MV}}} and on (model, model_version, metric) "
         f"driftline_estimated_performance{{{MV}}}", "{{model}} v{{model_version}} {{metric}} realised"),
        (f"driftline_estimated_performance_threshold_lower{{{MV}}}",
         "{{model}} v{{model_version}} {{metric}} lower threshold")), "percentunit", min_=0, max_=1,
        description="Performance estimated without labels (CBPE, models.<m>.estimation) over the last window, "
                    "the realised figure of the same metric once labels have arrived (label window), and the "
                    "threshold below which an estimate is a drop (estimated_performance_drop)."), w=16)
    lay.add(timeseries("Estimate confidence bounds", _targets(
        (f"driftline_estimated_performance_lower{{{MV}}}", "{{model}} v{{model_version}} {{metric}} lower"),
        (f"driftline_estimated_performance_upper{{{MV}}}", "{{model}} v{{model_version}} {{metric}} upper")),
        "percentunit", min_=0, max_=1,
        description="The estimate +/- 3 sampling errors (NannyML's), within [0, 1]."), w=8)

    lay.row("Drift")
    lay.add(timeseries("Dataset drift share", _targets(
        (f"driftline_drift_share{{{M}}}", "{{model}}")), "percentunit", min_=0, max_=1,
        thresholds=[(None, "green"), (0.5, "red")],
        description="Share of drifted features; dataset drift at the configured drift_share "
                    "(0.5 by default)."), w=8)
    lay.add(timeseries("Prediction drift score", _targets(
        (f"driftline_prediction_drift_score{{{M}}}", "{{model}} {{method}}")), "short",
        description="Drift of the prediction (or score) distribution, reference vs current "
                    "window (statistic or p-value, per method)."), w=8)
    lay.add(stat("Dataset drift", _targets(
        (f"driftline_dataset_drift_detected{{{M}}}", "{{model}}")), "short",
        thresholds=[(None, "green"), (1, "red")],
        mappings=[{"type": "value", "options": {"0": {"text": "no drift", "index": 0},
                                                 "1": {"text": "DRIFT", "index": 1}}}],
        description="Dataset drift verdict on the current window."), w=8)
    lay.add(timeseries("Retraining triggers per hour", _targets(
        (new_in_window("driftline_retrain_triggers_total", M, "model, reason", "1h"),
         "{{model}} {{reason}}")), "short", bars=True,
        description="Retraining requests started in the last hour, by reason."), w=24)

    lay.row("Segments")
    lay.add(timeseries("Performance per segment", _targets(
        (f"driftline_segment_performance{{{MS}}}", "{{model}} {{segment_by}}={{segment}} {{metric}}")), "short",
        min_=0, description="Each segment's performance over its joined labels of the label window "
                            "(models.<m>.segments; the Segment variable chooses)."), w=8)
    lay.add(timeseries("Performance gap across segments", _targets(
        (f"driftline_segment_performance_gap{{{M}}}", "{{model}} by {{segment_by}} {{metric}}")), "short", min_=0,
        description="Largest minus smallest segment figure of a metric, over the segments with at least "
                    "triggers.performance.min_labels joined labels: a fairness signal."), w=8)
    lay.add(timeseries("Segments drifting", _targets(
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
    lay = _Layout()
    lay.add(stat("Drift share", _targets((f"driftline_drift_share{{{M}}}", "{{model}}")),
                 "percentunit", thresholds=[(None, "green"), (0.5, "red")],
                 description="Share of drifted features in the current window."), w=6, h=5)
    lay.add(stat("Drifted features", _targets(
        (f"sum by (model) (driftline_feature_drift_detected{{{M}}})", "{{model}}")), "short",
        thresholds=[(None, "green"), (1, "orange")],
        description="Number of features whose drift test fails."), w=6, h=5)
    lay.add(stat("Window fill", _targets((f"driftline_window_samples{{{M}}}", "{{model}}")),
                 "short", description="Samples in the current window."), w=6, h=5)
    lay.add(stat("Dataset drift", _targets(
        (f"driftline_dataset_drift_detected{{{M}}}", "{{model}}")), "short",
        thresholds=[(None, "green"), (1, "red")],
        mappings=[{"type": "value", "options": {"0": {"text": "no drift", "index": 0},
                                                 "1": {"text": "DRIFT", "index": 1}}}]),
        w=6, h=5)
    lay.add(heatmap("Drift score per feature", _targets(
        (f"max by (model, feature) (driftline_feature_drift_score{{{mf}}})", "{{model}} {{feature}}")),
        "short",
        description="One row per feature, coloured by its drift score (statistic or "
                    "p-value as the method reports it: for ks/chisquare/z a low value means "
                    "drift, for wasserstein/jensenshannon/psi a high one)."), w=24, h=9)
    lay.add(state_timeline("Drift verdict per feature", _targets(
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
    lay.add(timeseries("Drift score per feature", _targets(
        (f"driftline_feature_drift_score{{{mf}}}", "{{model}} {{feature}} ({{method}})")),
        "short"), w=12, h=9)
    lay.add(timeseries("Window fill", _targets(
        (f"driftline_window_samples{{{M}}}", "{{model}}")), "short", min_=0,
        description="Samples in the current comparison window."), w=24, h=7)
    lay.row("Segments")
    lay.add(timeseries("Drift share per segment", _targets(
        (f"driftline_segment_drift_share{{{MS}}}", "{{model}} {{segment_by}}={{segment}}")), "percentunit",
        min_=0, max_=1, thresholds=[(None, "green"), (0.5, "red")],
        description="Share of drifted features in each segment's rows of the window, tested against the "
                    "segment's reference rows (models.<m>.segments)."), w=12, h=8)
    lay.add(state_timeline("Dataset drift per segment", _targets(
        (f"driftline_segment_dataset_drift_detected{{{MS}}}", "{{model}} {{segment_by}}={{segment}}")),
        thresholds=[(None, "green"), (1, "red")],
        mappings=[{"type": "value", "options": {"0": {"text": "ok", "color": "green", "index": 0},
                                                 "1": {"text": "drift", "color": "red", "index": 1}}}],
        description="Each segment's dataset drift verdict over time."), w=12, h=8)
    lay.add(timeseries("Window fill per segment", _targets(
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
    lay = _Layout()
    lay.add(stat("Largest missing rise", _targets((f"max by (model) ({rise})", "{{model}}")), "percentunit",
                 thresholds=[(None, "green"), (0.1, "red")],
                 description="The largest rise of a feature's missing share (null, absent, wrong type) "
                             "over the reference's; the data_quality trigger's default threshold is 0.1."),
            w=6, h=5)
    lay.add(stat("Largest out-of-range share", _targets(
        (f"max by (model) (driftline_feature_out_of_range_ratio{{{mf}}})", "{{model}}")), "percentunit",
        thresholds=share, description="The largest share of a numerical feature's values outside the "
                                      "reference's [min, max]."), w=6, h=5)
    lay.add(stat("Largest unseen share", _targets(
        (f"max by (model) (driftline_feature_unseen_ratio{{{mf}}})", "{{model}}")), "percentunit",
        thresholds=share, description="The largest share of a categorical feature's values that the "
                                      "reference never had."), w=6, h=5)
    lay.add(stat("New and absent features", _targets(
        (f"max by (model, kind) (driftline_features_unexpected{{{M}}})", "{{model}} {{kind}}")), "short",
        thresholds=[(None, "green"), (1, "orange")],
        description="Features in the window's events that the reference lacks (new), reference "
                    "features with no value in the window (absent)."), w=6, h=5)
    lay.add(timeseries("Missing share per feature", _targets(
        (f"driftline_feature_missing_ratio{{{mf}}}", "{{model}} {{feature}}"),
        (f"driftline_feature_reference_missing_ratio{{{mf}}}", "{{model}} {{feature}} (reference)")),
        "percentunit", min_=0, max_=1,
        description="Share of the window's rows without a usable value, beside the reference's share."),
        w=12, h=9)
    lay.add(timeseries("Missing rise over the reference", _targets((rise, "{{model}} {{feature}}")),
                       "percentunit", thresholds=[(None, "green"), (0.1, "red")],
                       description="Window minus reference missing share, per feature."), w=12, h=9)
    lay.add(timeseries("Out-of-range share per feature", _targets(
        (f"driftline_feature_out_of_range_ratio{{{mf}}}", "{{model}} {{feature}}")), "percentunit", min_=0,
        thresholds=share, description="Numerical features: values outside the reference's [min, max]."),
        w=12, h=9)
    lay.add(timeseries("Unseen share per feature", _targets(
        (f"driftline_feature_unseen_ratio{{{mf}}}", "{{model}} {{feature}}")), "percentunit", min_=0,
        thresholds=share, description="Categorical features: values the reference never had."), w=12, h=9)
    lay.add(timeseries("New and absent features", _targets(
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
    lay = _Layout()
    lay.add(timeseries("CPU utilization", _targets(
        (f"driftline_infra_cpu_utilization_ratio{{{mi}}}", legend)), "percentunit", min_=0), w=12)
    lay.add(timeseries("Memory", _targets(
        (f"driftline_infra_memory_bytes{{{mi}}}", legend)), "bytes", min_=0), w=12)
    lay.add(timeseries("GPU utilization", _targets(
        (f"driftline_infra_gpu_utilization_ratio{{{mi}}}", legend)), "percentunit", min_=0), w=12)
    lay.add(timeseries("GPU memory", _targets(
        (f"driftline_infra_gpu_memory_bytes{{{mi}}}", legend)), "bytes", min_=0), w=12)
    lay.add(timeseries("Requests in flight", _targets(
        (f"driftline_infra_requests_in_flight{{{mi}}}", legend)), "short", min_=0), w=12)
    lay.add(timeseries("Infra events", _targets(
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
    lay = _Layout()
    lay.add(timeseries("Events by kind", _targets(
        (f"sum by (kind) (rate(driftline_events_total{{{M}}}[$__rate_interval]))", "{{kind}}")),
        "ops", stack=True, description="Accepted events per second."), w=12)
    lay.add(timeseries("Rejected events by reason", _targets(
        ("sum by (reason) (rate(driftline_events_rejected_total[$__rate_interval]))",
         "{{reason}}")), "ops", stack=True,
        description="Bad events per second (and sent to the dead-letter topic from Kafka)."),
        w=12)
    lay.add(timeseries("Kafka consumer lag", _targets(
        ("sum by (topic, partition) (driftline_consumer_lag_messages)",
         "{{topic}}/{{partition}}")), "short", min_=0,
        description="Messages behind the end of each partition (Kafka sources only)."), w=12)
    lay.add(timeseries("Batch processing time", _targets(*[
        (f"histogram_quantile({q}, sum by (le) "
         f"(rate(driftline_batch_processing_seconds_bucket[$__rate_interval])))",
         f"p{int(q * 100)}") for q in (0.5, 0.99)]), "s",
        description="Time to process one batch of events."), w=12)
    lay.add(timeseries("Webhook deliveries by outcome", _targets(
        ("sum by (target, outcome) (increase(driftline_webhook_deliveries_total[$__rate_interval]))",
         "{{target}} {{outcome}}")), "short", bars=True,
        description="Retraining webhook attempts: delivered, retried, failed."), w=12)
    lay.add(timeseries("Webhooks pending", _targets(
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


def render(model: dict[str, Any]) -> str:
    return json.dumps(model, indent=2, sort_keys=True) + "\n"


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
