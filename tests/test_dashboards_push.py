"""``driftline dashboards export|push`` against a local server speaking Grafana's HTTP API."""

from __future__ import annotations

import argparse
import base64
import json
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from service.commands import dashboards as cmd
from service.observability import dashboards as D

ROOT = Path(__file__).resolve().parents[1]
# Overview, feature drift, data quality, infrastructure, service: every push and export has
# each of them, and the committed files are the same set.
DASHBOARDS = 5
TOKEN = "glsa_test-token-not-for-printing"
PASSWORD = "s3cret-password"


class FakeGrafana:
    """The routes grafana-client uses for a push: frontend/settings (its health check),
    folders, dashboards/db."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.folders: list[dict] = []
        self.dashboards: dict[str, dict] = {}  # uid -> stored dashboard
        self.required_auth: str | None = None
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep pytest output clean
                pass

            def _reply(self, status: int, body) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                path = self.path.split("?")[0]
                fake.requests.append({"method": method, "path": path, "body": body,
                                      "headers": dict(self.headers)})
                if fake.required_auth and self.headers.get("Authorization") != fake.required_auth:
                    return self._reply(401, {"message": "Unauthorized"})
                if method == "GET" and path == "/api/health":
                    return self._reply(200, {"database": "ok", "version": "11.3.0",
                                             "commit": "test"})
                if method == "GET" and path == "/api/frontend/settings":  # grafana-client's check
                    return self._reply(200, {"buildInfo": {"version": "11.3.0",
                                                           "commit": "test", "env": "test"}})
                if method == "GET" and path == "/api/folders":
                    return self._reply(200, [{"id": i + 1, "uid": f["uid"], "title": f["title"]}
                                             for i, f in enumerate(fake.folders)])
                if method == "POST" and path == "/api/folders":
                    if any(f["title"] == body["title"] for f in fake.folders):
                        return self._reply(409, {"message": "a folder with that name exists"})
                    folder = {"uid": body.get("uid") or f"f{len(fake.folders) + 1}x",
                              "title": body["title"]}
                    fake.folders.append(folder)
                    return self._reply(200, {"id": len(fake.folders), **folder,
                                             "url": f"/dashboards/f/{folder['uid']}/"})
                if method == "POST" and path == "/api/dashboards/db":
                    dash = body["dashboard"]
                    uid = dash["uid"]
                    if uid in fake.dashboards and not body.get("overwrite"):
                        return self._reply(412, {"message": "The dashboard has been changed "
                                                 "by someone else", "status": "version-mismatch"})
                    version = fake.dashboards.get(uid, {}).get("version", 0) + 1
                    fake.dashboards[uid] = {"dashboard": dash, "version": version,
                                            "folderUid": body.get("folderUid")}
                    return self._reply(200, {"id": len(fake.dashboards), "uid": uid,
                                             "status": "success", "version": version,
                                             "url": f"/d/{uid}/{uid}", "slug": uid})
                return self._reply(404, {"message": "Not found"})

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def posts(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["method"] == "POST" and r["path"] == path]


@pytest.fixture
def grafana():
    fake = FakeGrafana()
    fake.thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()
    fake.thread.join(5)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for var in ("GRAFANA_TOKEN", "GRAFANA_USER", "GRAFANA_PASSWORD", "GRAFANA_URL"):
        monkeypatch.delenv(var, raising=False)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="driftline dashboards")
    cmd.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_push_with_token_creates_folder_and_posts_every_dashboard(grafana, monkeypatch, capsys):
    monkeypatch.setenv("GRAFANA_TOKEN", TOKEN)
    grafana.required_auth = f"Bearer {TOKEN}"
    assert cmd.run(parse("push", "--url", grafana.url)) == 0

    out = capsys.readouterr()
    assert TOKEN not in out.out + out.err
    assert all(r["headers"].get("Authorization") == f"Bearer {TOKEN}" for r in grafana.requests)
    [folder_post] = grafana.posts("/api/folders")
    assert folder_post["body"]["title"] == "driftline"
    folder_uid = grafana.folders[0]["uid"]

    posts = grafana.posts("/api/dashboards/db")
    expected = D.all_dashboards()
    assert len(posts) == len(expected) == DASHBOARDS
    by_uid = {p["body"]["dashboard"]["uid"]: p["body"] for p in posts}
    for model in expected.values():
        body = by_uid[model["uid"]]
        assert body["dashboard"] == model  # exactly the committed JSON
        assert body["folderUid"] == folder_uid
        assert body["overwrite"] is False
        assert body["dashboard"]["id"] is None
    assert out.out.count("pushed ") == DASHBOARDS


def test_push_with_basic_auth_into_existing_folder_with_overwrite(grafana, monkeypatch, capsys):
    monkeypatch.setenv("GRAFANA_USER", "admin")
    monkeypatch.setenv("GRAFANA_PASSWORD", PASSWORD)
    basic = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    grafana.required_auth = basic
    grafana.folders.append({"uid": "mlmon", "title": "ML monitoring"})

    rc = cmd.run(parse("push", "--url", grafana.url, "--folder", "ML monitoring", "--overwrite"))
    assert rc == 0
    out = capsys.readouterr()
    assert PASSWORD not in out.out + out.err
    assert grafana.posts("/api/folders") == []  # found, not created
    posts = grafana.posts("/api/dashboards/db")
    assert len(posts) == DASHBOARDS
    assert {p["body"]["folderUid"] for p in posts} == {"mlmon"}
    assert {p["body"]["overwrite"] for p in posts} == {True}
    assert all(r["headers"]["Authorization"] == basic for r in grafana.requests)


def test_second_push_needs_overwrite(grafana, monkeypatch, capsys):
    monkeypatch.setenv("GRAFANA_TOKEN", TOKEN)
    assert cmd.run(parse("push", "--url", grafana.url)) == 0
    capsys.readouterr()
    assert cmd.run(parse("push", "--url", grafana.url)) == 1
    err = capsys.readouterr().err
    assert "--overwrite" in err and "driftline-model-overview" in err
    assert len(grafana.posts("/api/folders")) == 1  # the folder is reused by title
    assert cmd.run(parse("push", "--url", grafana.url, "--overwrite")) == 0
    assert {d["version"] for d in grafana.dashboards.values()} == {2}


def test_push_general_folder_sends_no_folder_uid(grafana, monkeypatch):
    assert cmd.run(parse("push", "--url", grafana.url, "--folder", "")) == 0
    posts = grafana.posts("/api/dashboards/db")
    assert posts and all("folderUid" not in p["body"] for p in posts)
    assert grafana.posts("/api/folders") == []
    assert all("Authorization" not in r["headers"] for r in grafana.requests)


def test_push_url_from_environment(grafana, monkeypatch):
    monkeypatch.setenv("GRAFANA_URL", grafana.url)
    assert cmd.run(parse("push")) == 0
    assert len(grafana.posts("/api/dashboards/db")) == DASHBOARDS


def test_wrong_credentials_fail_cleanly(grafana, monkeypatch, capsys):
    grafana.required_auth = "Bearer right"
    monkeypatch.setenv("GRAFANA_TOKEN", TOKEN)
    assert cmd.run(parse("push", "--url", grafana.url)) == 1
    out = capsys.readouterr()
    assert "error" in out.err and TOKEN not in out.out + out.err
    assert grafana.posts("/api/dashboards/db") == []


def test_unreachable_grafana_fails_without_leaking_url_password(capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rc = cmd.run(parse("push", "--url", f"http://admin:{PASSWORD}@127.0.0.1:{port}",
                       "--timeout", "2"))
    assert rc == 1
    out = capsys.readouterr()
    assert PASSWORD not in out.out + out.err
    assert f"127.0.0.1:{port}" in out.err


def test_export_command_writes_the_committed_files(tmp_path, capsys):
    assert cmd.run(parse("export", str(tmp_path))) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(D.DASHBOARDS)
    for name in names:
        assert (tmp_path / name).read_text() == (ROOT / "dashboards" / name).read_text()
    assert capsys.readouterr().out.count(".json") == DASHBOARDS


def test_standalone_module_entry_point(tmp_path):
    r = subprocess.run([sys.executable, "-m", "service.commands.dashboards", "export",
                        str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert len(list(tmp_path.glob("*.json"))) == DASHBOARDS


def test_driftline_cli_dashboards_subcommand(tmp_path):
    """Once service/cli.py registers `dashboards`: `python -m service.cli dashboards export`."""
    r = subprocess.run([sys.executable, "-m", "service.cli", "dashboards", "export",
                        str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(list(tmp_path.glob("*.json"))) == DASHBOARDS


def test_the_committed_dashboards_are_the_ones_pushed():
    assert len(list((ROOT / "dashboards").glob("*.json"))) == len(D.all_dashboards()) == DASHBOARDS
