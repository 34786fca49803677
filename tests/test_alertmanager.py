"""A real Alertmanager (Debian ``prometheus-alertmanager``) on loopback notifies driftline.

An alert posted to Alertmanager's API (``POST /api/v2/alerts``) with
``driftline_action="retrain"`` reaches ``POST /v1/alertmanager`` (bearer token from a
credentials file, as in alerts/alertmanager.yml) and becomes exactly one trigger; its
re-post and its resolution do not add any.
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import yaml

from tests.conftest import free_socket, needs_tool
from tests.test_webhooks import wait_until, wait_until_answers

AM = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
pytestmark = needs_tool("Alertmanager", AM, "apt install prometheus-alertmanager")
TOKEN = "am-test-token"


def free_port() -> int:
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture
def alertmanager(tmp_path, live_server):
    server = live_server({"models": {"fraud": {"triggers": {"cooldown": "1h"}}}}, environ={"DRIFTLINE_TOKEN": TOKEN})
    (tmp_path / "token").write_text(TOKEN)
    config = {
        "route": {"receiver": "driftline", "group_by": ["alertname", "model"], "group_wait": "1s",
                  "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "driftline", "webhook_configs": [{
            "url": f"{server.url}/v1/alertmanager", "send_resolved": True, "max_alerts": 0,
            "http_config": {"authorization": {"type": "Bearer", "credentials_file": str(tmp_path / "token")}}}]}],
    }
    (tmp_path / "am.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = open(tmp_path / "alertmanager.log", "wb")
    proc = subprocess.Popen([AM, f"--config.file={tmp_path / 'am.yml'}", f"--storage.path={tmp_path / 'am-data'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
                             "--log.level=debug"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    try:
        wait_until_answers("alertmanager ready", f"{url}/-/ready", proc, tmp_path / "alertmanager.log", timeout=30,
                           every=0.1)
        yield server, url, tmp_path / "alertmanager.log"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


# Observed after the receiver answered (alertmanager_notifications_total counts attempts as they start).
ANSWERED = "alertmanager_notification_latency_seconds_count"


def notifications(am_url: str, metric: str = "alertmanager_notifications_total") -> float:
    text = httpx.get(f"{am_url}/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(metric + "{") and 'integration="webhook"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_an_alert_through_real_alertmanager_becomes_one_trigger(alertmanager):
    server, am, log_path = alertmanager
    starts = datetime.now(UTC).replace(microsecond=0)
    firing = [
        {"labels": {"alertname": "DriftlineDatasetDriftPersisting", "model": "fraud", "model_version": "7",
                    "driftline_action": "retrain", "severity": "warning"},
         "annotations": {"summary": "dataset drift persists"}, "startsAt": starts.isoformat(),
         "generatorURL": "http://prometheus.example/graph"},
        {"labels": {"alertname": "DriftlineLatencySLOBurnFast", "model": "fraud", "severity": "page"},
         "annotations": {}, "startsAt": starts.isoformat()},
    ]
    assert httpx.post(f"{am}/api/v2/alerts", json=firing, timeout=5).status_code == 200

    def one_trigger():
        items = server.client.get("/v1/triggers", headers=server.admin_headers).json()["triggers"]
        return items if items else None

    [trigger] = wait_until("the trigger at driftline", one_trigger, timeout=30)
    assert trigger["reason"] == "alert" and trigger["model"] == "fraud"
    assert trigger["payload"]["model_version"] == "7"
    evidence = trigger["payload"]["evidence"]["alert"]
    assert evidence["alertname"] == "DriftlineDatasetDriftPersisting" and len(evidence["fingerprint"]) == 16
    answered = wait_until("the firing notification answered", lambda: notifications(am, ANSWERED), timeout=30)
    assert notifications(am) >= 1

    # Alertmanager sees the same alert again (Prometheus re-sends firing alerts every evaluation)
    assert httpx.post(f"{am}/api/v2/alerts", json=firing, timeout=5).status_code == 200
    # ... then it resolves: Alertmanager notifies driftline with status "resolved"
    ended = datetime.now(UTC) - timedelta(seconds=1)
    resolved = [dict(alert, endsAt=ended.isoformat()) for alert in firing]
    assert httpx.post(f"{am}/api/v2/alerts", json=resolved, timeout=5).status_code == 200
    # Alertmanager observes a notification's latency once driftline answered it, and driftline
    # decides synchronously: nothing about this one can arrive later.
    wait_until("the resolved notification answered", lambda: notifications(am, ANSWERED) > answered, timeout=30)
    assert len(server.client.get("/v1/triggers", headers=server.admin_headers).json()["triggers"]) == 1
    assert server.metric("driftline_retrain_triggers_total", model="fraud", reason="alert") == 1
    assert notifications(am, "alertmanager_notifications_failed_total") == 0
