"""The Grafana dashboards: committed JSON == generated, provisioning-friendly, valid PromQL."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from service.observability import dashboards as D
from tests.prometheus_tools import MAJORS, binary

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "dashboards"

# CONTRACT §2: the metric names the dashboards may use.
CONTRACT_METRICS = {
    "driftline_events_total", "driftline_events_rejected_total",
    "driftline_prediction_latency_seconds", "driftline_prediction_errors_total",
    "driftline_labels_total", "driftline_label_correct_total", "driftline_label_delay_seconds",
    "driftline_model_performance", "driftline_feature_drift_score",
    "driftline_feature_drift_detected", "driftline_prediction_drift_score",
    "driftline_drift_share", "driftline_dataset_drift_detected", "driftline_concept_drift_total",
    "driftline_window_samples", "driftline_infra_cpu_utilization_ratio",
    "driftline_infra_memory_bytes", "driftline_infra_gpu_utilization_ratio",
    "driftline_infra_gpu_memory_bytes", "driftline_infra_requests_in_flight",
    "driftline_infra_events_total", "driftline_retrain_triggers_total",
    "driftline_webhook_deliveries_total", "driftline_webhook_pending",
    "driftline_consumer_lag_messages", "driftline_batch_processing_seconds",
    "driftline_build_info",
    # CONTRACT §7 (the reference's missing share beside the window's, as README documents)
    "driftline_feature_missing_ratio", "driftline_feature_reference_missing_ratio",
    "driftline_feature_out_of_range_ratio", "driftline_feature_unseen_ratio", "driftline_features_unexpected",
    # (the estimate's confidence bounds and lower threshold, as README documents)
    "driftline_estimated_performance", "driftline_estimated_performance_lower",
    "driftline_estimated_performance_upper", "driftline_estimated_performance_threshold_lower",
    "driftline_segment_drift_share", "driftline_segment_dataset_drift_detected", "driftline_segment_window_samples",
    "driftline_segment_performance", "driftline_segment_performance_gap",
}
UNITS = {"s", "percentunit", "bytes", "reqps", "ops", "short"}
GENERATED = D.all_dashboards()


def substitute(expr: str, model: str = "fraud", version: str = "7") -> str:
    """Replace Grafana's variables the way Grafana would before sending the query."""
    values = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m",
              "$model_version": version, "$model": model, "$feature": ".*",
              "$server": ".*", "$segment": ".*"}
    for var, value in values.items():  # longest names first: $model_version before $model
        expr = expr.replace(var, value)
    assert "$" not in expr, expr
    return expr


def test_committed_json_is_the_generated_json():
    committed = sorted(p.name for p in COMMITTED.glob("*.json"))
    assert committed == sorted(GENERATED), "run: driftline dashboards export dashboards"
    for name, model in GENERATED.items():
        assert (COMMITTED / name).read_text(encoding="utf-8") == D.render(model), (
            f"{name} differs from service/observability/dashboards.py; regenerate with "
            "`driftline dashboards export dashboards`")


def test_export_writes_every_dashboard(tmp_path):
    paths = D.export(tmp_path / "out")
    assert sorted(p.name for p in paths) == sorted(GENERATED)
    for p in paths:
        assert json.loads(p.read_text()) == GENERATED[p.name]


def test_uids_and_titles_are_stable_and_unique():
    uids = [m["uid"] for m in GENERATED.values()]
    assert uids == ["driftline-model-overview", "driftline-feature-drift", "driftline-data-quality",
                    "driftline-infrastructure", "driftline-service"]
    assert all(len(u) <= 40 and re.fullmatch(r"[a-z0-9-]+", u) for u in uids)
    titles = [m["title"] for m in GENERATED.values()]
    assert len(set(titles)) == len(titles)
    for m in GENERATED.values():
        assert m["id"] is None  # provisioning assigns ids; a fixed id would clash


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_datasource_variable_is_used_everywhere(name):
    model = GENERATED[name]
    text = json.dumps(model)
    assert "DS_PROMETHEUS" not in text and "__inputs" not in model
    variables = {v["name"]: v for v in model["templating"]["list"]}
    ds = variables["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    assert "model" in variables
    for v in variables.values():
        if v["type"] == "query":
            assert v["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert v["definition"].startswith("label_values(")
    panels = [p for p in model["panels"] if p["type"] != "row"]
    assert panels
    for p in panels:
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    for ann in model["annotations"]["list"]:
        if "expr" in ann:
            assert ann["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_model_overview_has_model_version_and_retrain_annotation():
    m = GENERATED["driftline-model-overview.json"]
    names = [v["name"] for v in m["templating"]["list"]]
    assert names == ["datasource", "model", "model_version", "segment"]
    anns = [a for a in m["annotations"]["list"] if "expr" in a]
    assert any("driftline_retrain_triggers_total" in a["expr"] for a in anns)


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_panels_have_units_ids_and_fit_the_grid(name):
    model = GENERATED[name]
    ids = [p["id"] for p in model["panels"]]
    assert len(set(ids)) == len(ids)
    for p in model["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24
        if p["type"] == "row":
            continue
        assert p["fieldConfig"]["defaults"]["unit"] in UNITS, p["title"]


def test_units_match_what_is_plotted():
    units = {}
    for m in GENERATED.values():
        for p in m["panels"]:
            if p["type"] != "row":
                units[(m["uid"], p["title"])] = p["fieldConfig"]["defaults"]["unit"]
    assert units[("driftline-model-overview", "Latency p50 / p95 / p99")] == "s"
    assert units[("driftline-model-overview", "Prediction rate")] == "reqps"
    assert units[("driftline-model-overview", "Error rate")] == "percentunit"
    assert units[("driftline-model-overview", "Classification performance")] == "percentunit"
    assert units[("driftline-infrastructure", "Memory")] == "bytes"
    assert units[("driftline-infrastructure", "GPU memory")] == "bytes"
    assert units[("driftline-infrastructure", "CPU utilization")] == "percentunit"
    assert units[("driftline-service", "Batch processing time")] == "s"


def test_queries_use_contract_metrics_only():
    used = set()
    for m in GENERATED.values():
        exprs = [e for _, e in D.iter_queries(m)]
        exprs += [v["definition"] for v in m["templating"]["list"] if v["type"] == "query"]
        for expr in exprs:
            for name in re.findall(r"\b(driftline_[a-z_]+)", expr):
                base = re.sub(r"_(bucket|count|sum)$", "", name)
                assert base in CONTRACT_METRICS or name in CONTRACT_METRICS, (name, expr)
                used.add(base if base in CONTRACT_METRICS else name)
    # everything but the concept-drift counter and the label_correct counter is on a panel
    assert CONTRACT_METRICS - used <= {"driftline_concept_drift_total",
                                       "driftline_label_correct_total"}


def test_required_panels_exist():
    titles = {m["uid"]: {p["title"] for p in m["panels"]} for m in GENERATED.values()}
    assert {"Prediction rate", "Error rate", "Latency p50 / p95 / p99",
            "Classification performance", "Regression error", "Label coverage",
            "Label delay p50 / p95", "Estimated vs realised performance", "Dataset drift share",
            "Prediction drift score"} <= titles["driftline-model-overview"]
    assert {"Drift score per feature", "Drift verdict per feature", "Drifted features",
            "Window fill", "Drift share per segment", "Dataset drift per segment",
            "Window fill per segment"} <= titles["driftline-feature-drift"]
    assert {"Performance per segment", "Performance gap across segments",
            "Segments drifting"} <= titles["driftline-model-overview"]
    assert {"CPU utilization", "Memory", "GPU utilization", "GPU memory",
            "Requests in flight", "Infra events"} <= titles["driftline-infrastructure"]
    assert {"Events by kind", "Rejected events by reason", "Kafka consumer lag",
            "Batch processing time", "Webhook deliveries by outcome", "Webhooks pending",
            "Build info"} <= titles["driftline-service"]
    types = {p["type"] for p in GENERATED["driftline-feature-drift.json"]["panels"]}
    assert {"heatmap", "state-timeline", "table"} <= types


@pytest.mark.parametrize("major", MAJORS)
def test_every_query_is_valid_promql(tmp_path, major):
    """promtool parses each query (variables substituted) as a recording rule."""
    rules = []
    for m in GENERATED.values():
        for i, (_, expr) in enumerate(D.iter_queries(m)):
            rules.append({"record": f"check:{m['uid'].replace('-', '_')}:{i}",
                          "expr": substitute(expr)})
    f = tmp_path / "queries.yml"
    f.write_text(yaml.safe_dump({"groups": [{"name": "queries", "rules": rules}]}))
    r = subprocess.run([binary("promtool", major), "check", "rules", str(f)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(rules)} rules found" in r.stdout
