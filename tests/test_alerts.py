"""Prometheus rules and the Alertmanager example: promtool/amtool checks and rule hygiene."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.prometheus_tools import MAJORS, binary, on_path

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "alerts" / "driftline-rules.yml"
RULE_TESTS = sorted((ROOT / "alerts" / "tests").glob("*.yml"))
AM_CONFIG = ROOT / "alerts" / "alertmanager.yml"
ALERTS_DOC = ROOT / "docs" / "alerts.md"

RETRAIN_ALERTS = {"DriftlineDatasetDriftPersisting", "DriftlinePerformanceBelowThreshold"}
EXPECTED_ALERTS = RETRAIN_ALERTS | {
    "DriftlinePredictionErrorRateHigh", "DriftlineLatencySLOBurnFast",
    "DriftlineLatencySLOBurnSlow", "DriftlineNoPredictionEvents",
    "DriftlinePredictionEventsAbsent", "DriftlineDown", "DriftlineTargetMissing",
    "DriftlineConsumerLagGrowing", "DriftlineWebhookDeliveriesFailing",
    "DriftlineWebhookBacklog", "DriftlineFeatureMissingRise", "DriftlineFeatureOutOfRange",
    "DriftlineFeatureUnseenValues", "DriftlineEstimatedPerformanceDrop",
    "DriftlineSegmentDriftPersisting", "DriftlineSegmentAccuracyGap",
}


def amtool() -> str:
    return on_path("amtool", install="apt install prometheus-alertmanager")


def _alerts() -> dict[str, dict]:
    doc = yaml.safe_load(RULES.read_text())
    return {r["alert"]: r for g in doc["groups"] for r in g["rules"] if "alert" in r}


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)


@pytest.mark.parametrize("major", MAJORS)
def test_promtool_check_rules(major):
    r = _run(binary("promtool", major), "check", "rules", str(RULES))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


@pytest.mark.parametrize("major", MAJORS)
def test_promtool_unit_tests_pass(major):
    assert RULE_TESTS
    r = _run(binary("promtool", major), "test", "rules", *map(str, RULE_TESTS))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "FAILED" not in r.stdout + r.stderr


def test_every_alert_is_unit_tested_firing_and_not_firing():
    firing, silent = set(), set()
    for f in RULE_TESTS:
        for t in yaml.safe_load(f.read_text())["tests"]:
            for case in t.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    alerts = set(_alerts())
    assert alerts == EXPECTED_ALERTS
    assert alerts - firing == set(), "alerts never shown firing"
    assert alerts - silent == set(), "alerts never shown not firing"


def test_alerts_have_runbooks_and_severity():
    doc = ALERTS_DOC.read_text()
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
               for h in re.findall(r"^#+ (.+)$", doc, flags=re.M)}
    for name, rule in _alerts().items():
        ann = rule["annotations"]
        assert ann.get("summary") and ann.get("description"), name
        url = ann["runbook_url"]
        assert url.endswith(f"docs/alerts.md#{name.lower()}"), url
        assert name.lower() in anchors, f"docs/alerts.md has no section for {name}"
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}


def test_retrain_label_only_on_retrain_alerts_and_model_is_kept():
    for name, rule in _alerts().items():
        action = rule["labels"].get("driftline_action")
        if name in RETRAIN_ALERTS:
            assert action == "retrain", name
            # the model label must survive the aggregation so driftline knows what to retrain
            assert re.search(r"by \(model[,)]", rule["expr"]), rule["expr"]
        else:
            assert action is None, name


def test_latency_burn_rate_uses_the_workbook_windows_and_factors():
    fast = _alerts()["DriftlineLatencySLOBurnFast"]["expr"]
    slow = _alerts()["DriftlineLatencySLOBurnSlow"]["expr"]
    for window, factor in (("1h", "14.4"), ("5m", "14.4"), ("6h", "6"), ("30m", "6")):
        assert f"ratio_rate{window}" in fast and f"({factor} *" in fast
    for window, factor in (("1d", "3"), ("2h", "3"), ("3d", "1"), ("6h", "1")):
        assert f"ratio_rate{window}" in slow and f"({factor} *" in slow
    records = {r["record"]: r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"]
               for r in g["rules"] if "record" in r}
    assert records["driftline:latency_slo:objective"].strip() == "vector(0.99)"
    for window in ("5m", "30m", "1h", "2h", "6h", "1d", "3d"):
        expr = records[f"driftline:prediction_latency_slow:ratio_rate{window}"]
        assert 'le="0.25"' in expr and f"[{window}]" in expr


def test_amtool_check_config():
    r = _run(amtool(), "check-config", str(AM_CONFIG))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


@pytest.mark.parametrize("labels, receivers", [
    (["alertname=DriftlineDatasetDriftPersisting", "driftline_action=retrain", "model=fraud"],
     "driftline-retrain,default"),
    (["alertname=DriftlinePerformanceBelowThreshold", "driftline_action=retrain",
      "model=fraud", "model_version=7"], "driftline-retrain,default"),
    (["alertname=DriftlineDown", "job=driftline"], "default"),
    (["alertname=DriftlineLatencySLOBurnFast", "model=fraud"], "default"),
])
def test_alertmanager_routes(labels, receivers):
    r = _run(amtool(), "config", "routes", "test", f"--config.file={AM_CONFIG}", *labels)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == receivers


def test_alertmanager_retrain_receiver_targets_driftline_with_bearer_file():
    cfg = yaml.safe_load(AM_CONFIG.read_text())
    receivers = {r["name"]: r for r in cfg["receivers"]}
    hook = receivers["driftline-retrain"]["webhook_configs"][0]
    assert hook["url"] == "http://driftline:8000/v1/alertmanager"
    auth = hook["http_config"]["authorization"]
    assert auth["type"] == "Bearer" and auth["credentials_file"]
    assert "credentials" not in auth  # no secret in the example
