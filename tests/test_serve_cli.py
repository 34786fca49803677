"""``driftline serve`` as a user starts it: the start-up line, a taken port, an unknown variable."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from service import __version__
from service.core.events import native_decoder_available

REPO = Path(__file__).resolve().parents[1]


def _serve(config: Path, port: int, log: Path, extra_env: dict | None = None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    env.update(extra_env or {})
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--config", str(config),
                                 "--port", str(port)], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_start_up_says_in_one_line_what_runs_where(tmp_path):
    state = tmp_path / "state"
    config = tmp_path / "driftline.yaml"
    config.write_text(yaml.safe_dump({"state_dir": str(state)}))
    port = _free_port()
    log = tmp_path / "serve.log"
    process = _serve(config, port, log)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    text = log.read_text(errors="replace")
    assert code == 0, text  # Ctrl-C is a clean stop
    lines = [line for line in text.splitlines() if f"driftline {__version__}:" in line]
    assert len(lines) == 1, text
    (line,) = lines
    assert str(config) in line and str(state.resolve()) in line, line
    assert f"127.0.0.1:{port}" in line and "no kafka" in line, line
    native = "native decoder active" if native_decoder_available() else "native decoder absent"
    assert native in line, line


def test_a_second_serve_on_a_taken_port_stops_before_touching_the_state_directory(tmp_path):
    state = tmp_path / "state"
    config = tmp_path / "driftline.yaml"
    config.write_text(yaml.safe_dump({"state_dir": str(state)}))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        log = tmp_path / "serve.log"
        process = _serve(config, port, log)
        try:
            code = process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
    text = log.read_text(errors="replace")
    assert code == 2, text
    assert re.search(rf"cannot listen on 127\.0\.0\.1:{port}: .*in use", text), text
    assert not state.exists()

# Libraries an idle sidecar does without: about 150 MB of resident memory together (pandas
# alone ~80 MB), loaded on first use (a reference file, the first KS p-value, a report).
HEAVY_LIBRARIES = ("pandas/_libs", "scipy/stats", "scipy/optimize", "scipy/signal", "scipy/spatial", "evidently",
                   "mlflow", "pyarrow")


def test_an_idle_driftline_has_not_loaded_pandas_or_scipy_stats(tmp_path):
    """The running process' memory map, after start-up and an ingested batch that opens no
    window yet: none of the heavy libraries' extension modules is mapped."""
    config = tmp_path / "driftline.yaml"
    config.write_text(yaml.safe_dump({"state_dir": str(tmp_path / "state")}))
    port = _free_port()
    process = _serve(config, port, tmp_path / "serve.log")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and process.poll() is None, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
        events = [{"kind": "prediction", "model": "m", "features": {"x": float(i), "c": "a"}, "prediction": 1}
              for i in range(50)]
        assert httpx.post(f"http://127.0.0.1:{port}/v1/events", json=events, timeout=10).status_code == 202
        mapped = Path(f"/proc/{process.pid}/maps").read_text()
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    assert "numpy" in mapped  # the check sees extension modules at all
    assert [lib for lib in HEAVY_LIBRARIES if f"/{lib}/" in mapped] == []
