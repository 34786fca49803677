"""Safe defaults of the HTTP edge: tokens per route class, JSON-only bodies, no cross-site
requests, start-up refusal on open exposure, bounded reports, redacted upstream answers."""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import time

import httpx
import orjson
import pytest

from service.config import ConfigError, WebhookConfig, load_settings
from service.http.report_routes import ReportCache
from service.retrain.credentials import Credentials
from service.retrain.dispatcher import attempt_delivery
from service.server import check_exposure

EVENT = orjson.dumps({"kind": "prediction", "model": "m", "features": {"a": 1.0}, "prediction": 1})


def test_only_an_ingest_token_closes_admin_and_read_routes(live_server):
    server = live_server(environ={"DRIFTLINE_INGEST_TOKEN": "ingest-secret"})
    ingest = {"authorization": "Bearer ingest-secret"}
    assert server.client.post("/v1/events", content=EVENT, headers=ingest).status_code == 202
    for headers in ({}, ingest):
        assert server.client.put("/v1/models/m/reference", content=b"a\n1\n2\n", headers=headers).status_code == 403
        assert server.client.post("/v1/models/m/retrain", headers=headers).status_code == 403
        assert server.client.post("/v1/alertmanager", json={"alerts": []}, headers=headers).status_code == 403
        assert server.client.get("/v1/triggers", headers=headers).status_code == 403
        assert server.client.get("/v1/models/m/report", headers=headers).status_code == 403
    refused = server.client.post("/v1/models/m/retrain")
    assert "DRIFTLINE_TOKEN" in refused.json()["detail"]


def test_reports_and_triggers_need_the_read_or_admin_token(live_server):
    server = live_server(environ={"DRIFTLINE_TOKEN": "admin-secret", "DRIFTLINE_READ_TOKEN": "read-secret",
                                  "DRIFTLINE_INGEST_TOKEN": "ingest-secret"})
    for route, allowed_status in (("/v1/triggers", 200), ("/v1/models/m/report", 404)):
        assert server.client.get(route).status_code == 401
        for token in ("ingest-secret", "wrong"):
            assert server.client.get(route, headers={"authorization": f"Bearer {token}"}).status_code == 401
        for token in ("read-secret", "admin-secret"):
            assert server.client.get(route, headers={"authorization": f"Bearer {token}"}).status_code == allowed_status
    # The read token is no admin token.
    assert server.client.post("/v1/models/m/retrain", headers={"authorization": "Bearer read-secret"}
                              ).status_code == 401


def test_a_non_ascii_bearer_token_is_a_401(live_server):
    server = live_server(environ={"DRIFTLINE_TOKEN": "admin-secret", "DRIFTLINE_INGEST_TOKEN": "ingest-secret"})
    latin1 = {"authorization": "Bearer caf\xe9".encode("latin-1")}
    assert server.client.post("/v1/events", content=EVENT, headers=latin1).status_code == 401
    assert server.client.post("/v1/models/m/retrain", headers=latin1).status_code == 401


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "text/plain;charset=UTF-8"])
def test_browser_form_and_text_bodies_are_refused_with_415(live_server, content_type):
    server = live_server()
    headers = {"content-type": content_type}
    for method, route, body in (("POST", "/v1/events", EVENT), ("POST", "/v1/cloudevents", b"{}"),
                                ("POST", "/v1/models/m/retrain", b"{}"),
                                ("POST", "/v1/alertmanager", b'{"alerts": []}'),
                                ("PUT", "/v1/models/m/reference", b"a\n1\n2\n")):
        response = server.client.request(method, route, content=body, headers=headers)
        assert response.status_code == 415, (route, response.text)
        assert "application/json" in response.json()["detail"] or "text/csv" in response.json()["detail"]
    assert server.client.get("/v1/models").json() == []
    assert server.client.post("/v1/events", content=EVENT, headers={"content-type": "application/json"}
                              ).status_code == 202


def test_cross_site_browser_requests_are_refused(live_server):
    server = live_server()
    json_type = {"content-type": "application/json"}
    evil = server.client.post("/v1/events", content=EVENT, headers={**json_type, "origin": "http://evil.example"})
    assert evil.status_code == 403
    fetch = server.client.post("/v1/models/m/retrain", headers={"sec-fetch-site": "cross-site"})
    assert fetch.status_code == 403
    same = server.client.post("/v1/events", content=EVENT, headers={
        **json_type, "origin": server.url, "sec-fetch-site": "same-origin"})
    assert same.status_code == 202
    assert [m["model"] for m in server.client.get("/v1/models").json()] == ["m"]


def test_reference_upload_reads_the_declared_content_type(live_server):
    server = live_server()
    # Sniffing would take the leading "[" for a JSON array; the declared type says CSV.
    csv = b"[a],b\n" + b"".join(b"%d,%s\n" % (i, b"xy"[i % 2:i % 2 + 1]) for i in range(30))
    response = server.client.put("/v1/models/m/reference", content=csv, headers={"content-type": "text/csv"})
    assert response.status_code == 200, response.text
    assert response.json()["features"] == {"[a]": "numerical", "b": "categorical"}


def _settings(tmp_path, host: str, **auth):
    return load_settings(environ={"DRIFTLINE_STATE_DIR": str(tmp_path), "DRIFTLINE_HOST": host,
                                  **{f"DRIFTLINE_AUTH__{k.upper()}": str(v).lower() for k, v in auth.items()}})


def test_start_up_refuses_a_non_loopback_address_without_an_admin_token(tmp_path, caplog):
    with pytest.raises(ConfigError, match="DRIFTLINE_TOKEN"):
        check_exposure(_settings(tmp_path, "0.0.0.0"), {})
    with pytest.raises(ConfigError):
        check_exposure(_settings(tmp_path, "::"), {"DRIFTLINE_INGEST_TOKEN": "i", "DRIFTLINE_READ_TOKEN": "r"})
    check_exposure(_settings(tmp_path, "0.0.0.0"), {"DRIFTLINE_TOKEN": "t"})
    for loopback in ("127.0.0.1", "::1", "localhost"):
        check_exposure(_settings(tmp_path, loopback), {})
    with caplog.at_level(logging.WARNING, logger="driftline"):
        check_exposure(_settings(tmp_path, "0.0.0.0", allow_unauthenticated=True), {})
    assert "every route is open" in caplog.text


def test_serve_exits_2_before_binding_an_open_public_address(tmp_path, monkeypatch, capsys):
    from service import server
    from service.commands import serve as serve_command

    listened = []

    def listen(host, port):  # records the address instead of binding it
        listened.append(host)
        raise server.ListenError("not bound in this test")

    monkeypatch.setattr(server, "listen", listen)
    for name in ("DRIFTLINE_TOKEN", "DRIFTLINE_INGEST_TOKEN", "DRIFTLINE_READ_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DRIFTLINE_STATE_DIR", str(tmp_path))
    assert serve_command.run(argparse.Namespace(config=None, host="0.0.0.0", port=8000)) == 2
    assert listened == [] and "refusing to serve 0.0.0.0:8000" in capsys.readouterr().err
    monkeypatch.setenv("DRIFTLINE_TOKEN", "t")
    assert serve_command.run(argparse.Namespace(config=None, host="0.0.0.0", port=8000)) == 2
    assert listened == ["0.0.0.0"]


def test_report_cache_renders_one_at_a_time_and_reuses_within_the_ttl():
    now = [0.0]
    cache = ReportCache(ttl=30, clock=lambda: now[0])
    renders = []

    def renderer(model, started: asyncio.Event, release: asyncio.Event):
        async def render():
            renders.append(model)
            started.set()
            await release.wait()
            return f"<html>{model} {len(renders)}</html>"
        return render

    async def scenario():
        started, release = asyncio.Event(), asyncio.Event()
        first = asyncio.create_task(cache.get("a", renderer("a", started, release)))
        await started.wait()
        same = asyncio.create_task(cache.get("a", renderer("a", asyncio.Event(), release)))
        other = await cache.get("b", renderer("b", asyncio.Event(), release))
        release.set()
        results = await asyncio.gather(first, same)
        again = await cache.get("a", renderer("a", asyncio.Event(), release))
        now[0] = 31.0
        later = await cache.get("a", renderer("a", asyncio.Event(), release))
        return results, other, again, later

    (first, same), other, again, later = asyncio.run(scenario())
    assert other is None  # another report is rendering: the route answers 503
    assert first == same == again == "<html>a 1</html>"
    assert later == "<html>a 2</html>" and renders == ["a", "a"]


@pytest.mark.parametrize("preset, auth, extra, secrets", [
    ("generic", {"bearer_env": "T"}, {}, ["bearer-secret-value"]),
    ("generic", {"basic_user_env": "U", "basic_password_env": "P"}, {},
     ["basic-password-value", "dXNlcjpiYXNpYy1wYXNzd29yZC12YWx1ZQ=="]),
    ("generic", {"header": "X-Api-Key", "header_env": "H"}, {}, ["header-secret-value"]),
    ("gitlab", {}, {"project_id": "1", "trigger_token_env": "G"}, ["gitlab-trigger-value"]),
])
def test_an_echoing_receiver_never_gets_credentials_into_the_stored_error(preset, auth, extra, secrets):
    environ = {"T": "bearer-secret-value", "U": "user", "P": "basic-password-value", "H": "header-secret-value",
               "G": "gitlab-trigger-value", "S": "signing-secret"}
    config = WebhookConfig(preset=preset, url="http://receiver.invalid", auth=auth, secret_env="S", **extra)

    def echo(request: httpx.Request) -> httpx.Response:
        """Echoes the body and the headers a proxy would not add, as a debugging endpoint does."""
        common = {"host", "accept", "accept-encoding", "connection", "user-agent", "content-length", "content-type"}
        headers = {k: v for k, v in request.headers.items() if k not in common}
        return httpx.Response(500, json={"body": request.content.decode()[:60], "headers": headers})

    payload = {"id": "0b8f", "model": "m", "model_version": "1", "reason": "manual",
               "triggered_at": "2026-12-02T00:00:00Z"}
    with httpx.Client(transport=httpx.MockTransport(echo)) as client:
        attempt = attempt_delivery(client, config, Credentials.from_env(config, environ), payload)
    assert attempt.outcome == "retry" and attempt.error.startswith("HTTP 500: ")
    assert len(attempt.error) <= 220
    for secret in secrets:
        assert secret not in attempt.error
    assert "[redacted]" in attempt.error


def test_a_body_that_does_not_arrive_in_time_is_a_408(live_server):
    server = live_server({"server": {"body_timeout": "1s"}})
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"kind\"")
        started = time.monotonic()
        answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert 0.9 < time.monotonic() - started < 5
    assert server.client.get("/healthz").status_code == 200


def test_a_report_on_columns_without_values_is_a_409_not_a_500(live_server):
    server = live_server({"models": {"default": {"reference": {"first_n": 20}, "window": {"size": 20, "step": 10}}}})
    events = b"\n".join(orjson.dumps({"kind": "prediction", "model": "m", "features": {"a": None}, "prediction": 1})
                        for _ in range(40))
    assert server.client.post("/v1/events", content=events).status_code == 202
    response = server.client.get("/v1/models/m/report")
    assert response.status_code == 409 and "no column has values" in response.json()["detail"]
