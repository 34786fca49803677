"""Retraining webhooks against real HTTP receivers on loopback: signing, retries, outcomes, outbox.

Each receiver is an ``http.server`` thread on a free port that verifies the Standard
Webhooks signature and answers from a script (500 twice then 200, a hang past the
timeout, 400, 429 with Retry-After). driftline runs as a real uvicorn server (or, for the
crash test, as ``python -m service.cli serve`` killed with SIGKILL between attempts).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml

from service.config import WebhookConfig
from service.retrain.credentials import Credentials
from service.retrain.dispatcher import backoff_delay, build_request, retry_after_seconds
from service.retrain.outbox import Outbox
from service.retrain.signing import secret_bytes, sign, verify
from tests.conftest import free_socket

ROOT = Path(__file__).resolve().parents[1]
RAW_SECRET = "a raw shared secret"
WHSEC = "whsec_" + base64.b64encode(b"\x01\x02binary-key\xff" * 2).decode()


# -- a real receiver ---------------------------------------------------------------------


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    signed: bool

    def json(self):
        return json.loads(self.body)


class Receiver:
    """HTTP server thread; ``respond(received, n) -> (status, headers, body)`` or a float (hang seconds)."""

    def __init__(self, respond: Callable, secret: bytes | None = secret_bytes(RAW_SECRET)):
        self.requests: list[Received] = []
        self.respond = respond
        self.secret = secret
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                signed = outer.secret is not None and verify(outer.secret, headers, body)
                item = Received(self.command, self.path, headers, body, time.time(), signed)
                with outer._lock:
                    outer.requests.append(item)
                    n = len(outer.requests)
                answer = outer.respond(item, n)
                if isinstance(answer, (int, float)) and not isinstance(answer, bool):
                    time.sleep(answer)
                    answer = (200, {}, b"late")
                status, extra, payload = answer
                try:
                    self.send_response(status)
                    for key, value in extra.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up (timeout test)

            do_POST = do_PUT = do_GET = _handle

            def log_message(self, *args):
                pass

        sock = free_socket()
        port = sock.getsockname()[1]
        sock.close()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def wait(self, n: int, timeout: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.requests) >= n:
                    return list(self.requests)
            time.sleep(0.02)
        raise AssertionError(f"expected {n} request(s), got {len(self.requests)}")


def script(*answers):
    """Answer the n-th request with answers[n-1] (the last one repeats)."""
    def respond(_received, n):
        answer = answers[min(n, len(answers)) - 1]
        return (answer, {}, b"{}") if isinstance(answer, int) and not isinstance(answer, bool) and answer >= 100 \
            else answer
    return respond


@pytest.fixture
def receivers():
    made: list[Receiver] = []
    default_secret = secret_bytes(RAW_SECRET)

    def make(respond, secret=default_secret) -> Receiver:
        receiver = Receiver(respond, secret)
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        receiver.close()


def wait_until(what: str, check: Callable, timeout: float = 20.0, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def wait_until_answers(what: str, url: str, process: subprocess.Popen, log: Path, timeout: float,
                       every: float = 0.2) -> None:
    """Wait until ``url`` answers 200; fail at once, with the end of ``log``, if ``process`` died."""
    def answers():
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(what, answers, timeout=timeout, every=every)


def trigger_state(server, trigger_id: str) -> dict:
    for item in server.client.get("/v1/triggers", headers=server.admin_headers).json()["triggers"]:
        if item["id"] == trigger_id:
            return item
    raise AssertionError(f"trigger {trigger_id} not listed")


def hook(url: str, **extra) -> dict:
    return {"url": url, "secret_env": "HOOK_SECRET", "timeout": "0.5s", "backoff_initial": "0.1s",
            "backoff_max": "0.4s", "max_attempts": 4, **extra}


# -- unit: the spec's test vector, backoff, Retry-After, config checks -----------------------


def test_standard_webhooks_test_vector_and_secret_formats():
    # The test vector published with the Standard Webhooks reference libraries.
    secret = secret_bytes("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    body = b'{"test": 2432232314}'
    assert sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == \
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert secret_bytes("plain") == b"plain"
    with pytest.raises(ValueError):
        secret_bytes("whsec_not base64!")
    now = int(time.time())
    headers = {"webhook-id": "x", "webhook-timestamp": str(now), "webhook-signature": sign(b"k", "x", now, b"b")}
    assert verify(b"k", headers, b"b") and not verify(b"k", headers, b"tampered") and not verify(b"j", headers, b"b")
    stale = dict(headers, **{"webhook-timestamp": str(now - 3600),
                             "webhook-signature": sign(b"k", "x", now - 3600, b"b")})
    assert not verify(b"k", stale, b"b")


def test_backoff_grows_with_jitter_and_retry_after_parses():
    config = WebhookConfig(url="http://x", backoff_initial=1, backoff_max=8)
    for attempt, step in [(1, 1), (2, 2), (3, 4), (4, 8), (9, 8)]:
        delays = {round(backoff_delay(config, attempt), 6) for _ in range(50)}
        assert all(step / 2 <= d <= step for d in delays) and len(delays) > 1
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert 55 <= retry_after_seconds(time.strftime("%a, %d %b %Y %H:%M:%S GMT",
                                                   time.gmtime(time.time() + 60))) <= 61


def test_preset_parameters_are_required_by_the_config():
    from service.config import ConfigError, load_settings

    for preset, needs in [("airflow", "dag_id"), ("github", "repository"), ("gitlab", "project_id"),
                          ("jenkins", "job"), ("kubeflow", "pipeline_id"), ("argo", "namespace")]:
        with pytest.raises(ConfigError, match=needs):
            load_settings(None, environ={"DRIFTLINE_WEBHOOKS": json.dumps({"h": {"preset": preset,
                                                                                   "url": "http://x"}})})
    with pytest.raises(ConfigError, match="webhooks.h.url"):
        load_settings(None, environ={"DRIFTLINE_WEBHOOKS": json.dumps({"h": {"url": "ftp://x"}})})


def test_outbox_keeps_one_row_per_id_and_survives_reopen(tmp_path):
    outbox = Outbox(tmp_path / "o.sqlite")
    payload = {"id": "t1", "model": "m", "reason": "manual", "triggered_at": "2026-01-01T00:00:00Z"}
    assert outbox.add(payload, "h", None, time.time()) is True
    assert outbox.add(payload, "h", None, time.time()) is False
    outbox.close()
    reopened = Outbox(tmp_path / "o.sqlite")
    row, _ = reopened.next_due("h")
    assert row["id"] == "t1" and reopened.pending_counts() == {"h": 1}
    reopened.close()


def test_secrets_are_not_in_the_outbox_or_the_request_line(tmp_path):
    config = WebhookConfig(url="http://h/x", preset="gitlab", project_id="g/p", trigger_token_env="T",
                           auth={"bearer_env": "B"})
    creds = Credentials.from_env(config, {"T": "trigger-secret", "B": "bearer-secret",
                                          "DRIFTLINE_WEBHOOK_SECRET": "s"})
    prepared = build_request(config, {"id": "i", "model": "m", "reason": "manual", "model_version": "1"}, creds)
    assert "trigger-secret" not in prepared.url and b"token=trigger-secret" in prepared.body
    assert prepared.url == "http://h/x/api/v4/projects/g%2Fp/trigger/pipeline"


# -- real receivers, real driftline ------------------------------------------------------


def test_delivery_outcomes_and_counters(live_server, receivers):
    flaky = receivers(script(500, 500, 200))
    hanging = receivers(script(3.0))
    refusing = receivers(script(400))
    request_timeout = receivers(script(408, 200))
    limited = receivers(lambda r, n: (429, {"Retry-After": "1"}, b"slow down") if n == 1 else (202, {}, b""))
    whsec = receivers(script(204), secret=secret_bytes(WHSEC))
    closed = free_socket()
    dead_url = f"http://127.0.0.1:{closed.getsockname()[1]}/hook"
    closed.close()
    config = {
        "webhooks": {"flaky": hook(flaky.url + "/hook"), "hanging": hook(hanging.url + "/hook", max_attempts=2),
                     "refusing": hook(refusing.url + "/hook"), "limited": hook(limited.url + "/hook"),
                     "request_timeout": hook(request_timeout.url + "/hook"),
                     "whsec": hook(whsec.url + "/hook", secret_env="WHSEC_SECRET"),
                     "dead": hook(dead_url, max_attempts=3)},
        "models": {name: {"triggers": {"webhook": name}}
                   for name in ("flaky", "hanging", "refusing", "request_timeout", "limited", "whsec", "dead")},
    }
    server = live_server(config, environ={"HOOK_SECRET": RAW_SECRET, "WHSEC_SECRET": WHSEC,
                                          "DRIFTLINE_TOKEN": "admin"})
    auth = {"Authorization": "Bearer admin"}
    assert server.client.post("/v1/models/flaky/retrain").status_code == 401
    ids = {}
    for name in config["models"]:
        response = server.client.post(f"/v1/models/{name}/retrain", headers=auth, json={"note": "test"})
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["triggered"] and body["reason"] == "manual" and body["target"] == name
        ids[name] = body["id"]
    assert server.client.post("/v1/models/nosuch/retrain", headers=auth).status_code == 404

    def finished(name):
        return trigger_state(server, ids[name])["state"] in ("delivered", "failed")

    for name in ids:
        wait_until(f"{name} finished", lambda name=name: finished(name), timeout=30)

    # 500, 500, 200: the same id three times, signed each time, delivered on the third attempt
    attempts = flaky.wait(3)
    assert [r.headers["webhook-id"] for r in attempts] == [ids["flaky"]] * 3
    assert all(r.signed and r.method == "POST" and r.path == "/hook" for r in attempts)
    assert all(r.json()["id"] == ids["flaky"] for r in attempts)
    assert attempts[2].at - attempts[1].at >= 0.05  # backoff between attempts (0.1s step, jittered)
    payload = attempts[0].json()
    assert payload["type"] == "driftline.retrain.requested" and payload["model"] == "flaky"
    assert payload["reason"] == "manual" and payload["evidence"]["note"] == "test"
    assert set(payload) >= {"id", "type", "model", "model_version", "reason", "triggered_at", "window", "evidence",
                            "reference"}
    state = trigger_state(server, ids["flaky"])
    assert state["delivery"]["attempts"] == 3 and state["delivery"]["last_status"] == 200

    # hang past the 0.5s timeout twice (max_attempts 2): failed
    state = trigger_state(server, ids["hanging"])
    assert state["state"] == "failed" and state["delivery"]["attempts"] == 2
    assert "timeout" in state["delivery"]["last_error"]
    # 400: no retry
    assert len(refusing.requests) == 1 and trigger_state(server, ids["refusing"])["state"] == "failed"
    # 408 Request Timeout: the receiver timed out reading; retried like a 5xx, same id
    assert [r.headers["webhook-id"] for r in request_timeout.wait(2)] == [ids["request_timeout"]] * 2
    state = trigger_state(server, ids["request_timeout"])
    assert state["state"] == "delivered" and state["delivery"]["attempts"] == 2
    # 429 + Retry-After: 1 -> the second attempt waits at least a second
    first, second = limited.wait(2)
    assert second.at - first.at >= 0.95 and trigger_state(server, ids["limited"])["state"] == "delivered"
    # a whsec_ secret is base64-decoded before signing
    assert whsec.wait(1)[0].signed and trigger_state(server, ids["whsec"])["state"] == "delivered"
    # connection refused three times: failed
    state = trigger_state(server, ids["dead"])
    assert state["state"] == "failed" and state["delivery"]["attempts"] == 3
    assert "connection" in state["delivery"]["last_error"]

    expected = {
        "flaky": (1, 2, 0), "hanging": (0, 1, 1), "refusing": (0, 0, 1), "request_timeout": (1, 1, 0),
        "limited": (1, 1, 0), "whsec": (1, 0, 0), "dead": (0, 2, 1),
    }
    metrics = server.metrics()
    for name, (delivered, retried, failed) in expected.items():
        for outcome, value in (("delivered", delivered), ("retried", retried), ("failed", failed)):
            got = metrics.get(("driftline_webhook_deliveries_total", frozenset({"target": name,
                                                                                "outcome": outcome}.items())))
            assert got == value, (name, outcome, got)
        assert metrics[("driftline_webhook_pending", frozenset({"target": name}.items()))] == 0
        assert metrics[("driftline_retrain_triggers_total",
                        frozenset({"model": name, "reason": "manual"}.items()))] == 1
    text = server.client.get("/metrics").text
    assert RAW_SECRET not in text and WHSEC not in text


def test_pending_gauge_counts_the_outbox(live_server, receivers):
    slow = receivers(script(503))
    server = live_server({"webhooks": {"slow": hook(slow.url, backoff_initial="30s", backoff_max="60s")},
                          "models": {"m": {}}}, environ={"HOOK_SECRET": RAW_SECRET})
    for _ in range(2):
        assert server.client.post("/v1/models/m/retrain").status_code == 202
    slow.wait(2)
    # The receiver answered both; each attempt is counted once the outbox has recorded it.
    wait_until("2 attempts counted",
               lambda: server.metric("driftline_webhook_deliveries_total", target="slow", outcome="retried") == 2)
    assert server.metric("driftline_webhook_pending", target="slow") == 2
    [first, second] = server.client.get("/v1/triggers?model=m", headers=server.admin_headers).json()["triggers"]
    assert first["delivery"]["next_attempt_at"] is not None and first["state"] == "pending"


def test_sigkill_between_attempts_delivers_one_id(tmp_path, receivers):
    """driftline is killed (SIGKILL) after a failed attempt; after a restart the same id is delivered once."""
    receiver = receivers(script(500, 200))
    port_sock = free_socket()
    port = port_sock.getsockname()[1]
    port_sock.close()
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump({
        "state_dir": str(tmp_path / "state"),
        "webhooks": {"pipeline": hook(receiver.url + "/hook", backoff_initial="3s", backoff_max="3s")},
        "models": {"fraud": {}},
    }))
    env = {**os.environ, "HOOK_SECRET": RAW_SECRET, "PYTHONPATH": str(ROOT)}
    base = f"http://127.0.0.1:{port}"

    def start() -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--config", str(config), "--port",
                                 str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=open(tmp_path / "driftline.log", "ab"))

        wait_until_answers("driftline ready", f"{base}/readyz", proc, tmp_path / "driftline.log", timeout=60)
        return proc

    proc = start()
    try:
        response = httpx.post(f"{base}/v1/models/fraud/retrain", timeout=10)
        assert response.status_code == 202
        trigger_id = response.json()["id"]
        receiver.wait(1)  # the 500
        # ... recorded in the outbox as a retry due in 1.5-3s: now driftline dies
        wait_until("the retry scheduled", lambda: httpx.get(f"{base}/v1/triggers").json()["triggers"][0]
                   ["delivery"]["attempts"] == 1, timeout=5, every=0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        time.sleep(3.5)  # the retry would have been due now: nobody is there to send it
        assert len(receiver.requests) == 1
        proc = start()
        receiver.wait(2, timeout=30)
        wait_until("delivered", lambda: httpx.get(f"{base}/v1/triggers").json()["triggers"][0]["state"]
                   == "delivered", timeout=20)
        # Delivered, with no attempt scheduled: nothing more will be sent for this trigger.
        [listed] = httpx.get(f"{base}/v1/triggers").json()["triggers"]
        assert listed["delivery"]["attempts"] == 2 and listed["delivery"]["next_attempt_at"] is None
        ids = [r.headers["webhook-id"] for r in receiver.requests]
        assert ids == [trigger_id, trigger_id] and len(set(ids)) == 1
        assert all(r.signed and r.json()["id"] == trigger_id for r in receiver.requests)
        log = (tmp_path / "driftline.log").read_text()
        assert "retrying in" in log and RAW_SECRET not in log
        assert RAW_SECRET.encode() not in (tmp_path / "state" / "triggers.sqlite").read_bytes()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_outbox_prunes_finished_rows_and_fails_orphans(tmp_path):
    outbox = Outbox(tmp_path / "o.sqlite")
    for i in range(30):
        outbox.add({"id": f"t{i}", "model": "m", "reason": "manual"}, "gone" if i == 29 else "h", None, time.time())
        if i < 29:
            outbox.record(f"t{i}", "delivered", 1, 200, None, None)
        outbox.mark_published(f"t{i}")
    assert outbox.orphans(["h"]) == 1 and outbox.get("t29")["state"] == "failed"
    outbox.prune(keep=10)
    ids = [row["id"] for row in outbox.recent(100)]
    assert len(ids) == 10 and ids[0] == "t29"
    outbox.close()


def test_a_whsec_delivery_verifies_with_the_official_standardwebhooks_library(live_server, receivers, caplog):
    from standardwebhooks import Webhook
    from standardwebhooks.webhooks import WebhookVerificationError

    verified = []

    def official(received, _n):
        try:
            verified.append(Webhook(WHSEC).verify(received.body, received.headers))
        except WebhookVerificationError as exc:
            return 401, {}, str(exc).encode()
        return 204, {}, b""

    receiver = receivers(official, secret=None)
    plain = receivers(script(204), secret=None)
    config = {"webhooks": {"whsec": hook(receiver.url + "/hook", secret_env="WHSEC_SECRET"),
                           "plain": hook(plain.url + "/hook", secret_env="PLAIN_SECRET")},
              "models": {"m": {"triggers": {"webhook": "whsec"}}}}
    caplog.set_level("WARNING", logger="driftline")
    server = live_server(config, environ={"WHSEC_SECRET": WHSEC, "PLAIN_SECRET": RAW_SECRET})
    response = server.client.post("/v1/models/m/retrain", json={"note": "official verify"})
    assert response.status_code == 202, response.text
    trigger_id = response.json()["id"]
    wait_until("delivery", lambda: trigger_state(server, trigger_id)["state"] in ("delivered", "failed"))
    assert trigger_state(server, trigger_id)["state"] == "delivered"
    assert verified and verified[0]["id"] == trigger_id
    # A plain-text secret: the official libraries would base64-decode it, so driftline warns.
    warnings = [r.getMessage() for r in caplog.records if "whsec_" in r.getMessage()]
    assert len(warnings) == 1 and "webhook plain" in warnings[0] and "PLAIN_SECRET" in warnings[0], warnings
    assert RAW_SECRET not in warnings[0]
