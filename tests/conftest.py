"""Shared fixtures: a real driftline server (uvicorn on a free loopback port) per test; and
:func:`require_tool`, the one rule for tests that need an external tool."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from service.config import load_settings
from service.server import build_app, uvicorn_config


def require_tool(name: str, found, install: str, required: bool = False):
    """``found`` (a path, a module, True) when the tool is there. Without it the test is skipped
    on a developer's machine and fails under CI (env CI set), where scripts/test.sh installs
    every tool, or where ``required``: a CI run never passes with a test left out."""
    if found:
        return found
    missing = f"{name} is not available ({install})"
    if os.environ.get("CI") or required:
        pytest.fail(f"{'CI is set' if os.environ.get('CI') else 'required'} but {missing}", pytrace=False)
    pytest.skip(missing)


def needs_tool(name: str, found, install: str, required: bool = False) -> pytest.MarkDecorator:
    """A mark for a test, or a module's ``pytestmark``: :func:`require_tool` before it runs."""
    return pytest.mark.needs_tool(name, found, install, required)


def pytest_configure(config):
    config.addinivalue_line("markers", "needs_tool(name, found, install): run only with an external tool; "
                                       "skipped without it, failed under CI")


def pytest_runtest_setup(item):
    for mark in item.iter_markers("needs_tool"):
        require_tool(*mark.args)


class LiveServer:
    def __init__(self, app, sock: socket.socket):
        self.app = app
        self.runtime = app.state.runtime
        host, port = sock.getsockname()[:2]
        self.url = f"http://{host}:{port}"
        self._server = uvicorn.Server(uvicorn_config(app, self.runtime.settings, log_level="warning", lifespan="on"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def start(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("driftline did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.client.close()
        self._server.should_exit = True
        self._thread.join(timeout=20)

    @property
    def admin_headers(self) -> dict[str, str]:
        """The admin token's Authorization header, when the server has one (reads need it then)."""
        token = self.runtime.token
        return {"authorization": f"Bearer {token}"} if token else {}

    def metrics(self) -> dict[tuple, float]:
        """/metrics as {(sample name, frozenset of label items): value}."""
        response = self.client.get("/metrics")
        response.raise_for_status()
        samples = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
        return samples

    def metric(self, name: str, **labels) -> float | None:
        return self.metrics().get((name, frozenset(labels.items())))


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
def live_server(tmp_path: Path):
    """Factory: ``live_server(config_dict_or_yaml_path=None, environ=None)`` -> started LiveServer."""
    started: list[LiveServer] = []

    def start(config: dict | str | Path | None = None, environ: dict[str, str] | None = None,
              state_dir: Path | None = None) -> LiveServer:
        environ = dict(environ or {})
        if isinstance(config, dict):
            import yaml

            path = tmp_path / f"config-{len(started)}.yaml"
            path.write_text(yaml.safe_dump(config))
            config = path
        environ.setdefault("DRIFTLINE_STATE_DIR", str(state_dir or tmp_path / f"state-{len(started)}"))
        settings = load_settings(config, environ=environ)
        server = LiveServer(build_app(settings, environ=environ), free_socket()).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
