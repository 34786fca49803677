"""A broker that is down from the start, or dies under a connected replica: ``driftline serve``
(the real CLI, on each real client) pointed at a loopback port where nothing listens."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
import yaml

from tests.kafka.conftest import REPO, Broker, kafka_config, wait_for


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_broker_that_is_down_gives_no_log_flood_a_clear_reason_and_a_quick_ctrl_c(tmp_path, kafka_client):
    dead_port, port = _free_port(), _free_port()
    config = tmp_path / "driftline.yaml"
    config.write_text(yaml.safe_dump({
        "state_dir": str(tmp_path / "state"),
        "kafka": {"client": kafka_client, "bootstrap_servers": f"127.0.0.1:{dead_port}",
                  "topics": ["model-events"]}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--config", str(config),
                                    "--port", str(port)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        started = time.monotonic()
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5)
        wait_for(lambda: client.get("/healthz").status_code == 200, timeout=30, message="the server")

        def broker_reason():
            reasons = client.get("/readyz").json()["reasons"]
            return [r for r in reasons if "starting" not in r and "connecting" not in r] and reasons

        reasons = wait_for(broker_reason, timeout=15, message="a readiness reason about the broker")
        (reason,) = reasons
        assert reason.startswith("kafka: ") and f"127.0.0.1:{dead_port}" in reason, reason
        # "kafka: KafkaTimeoutError: KafkaTimeoutError: ..." said the error's name twice.
        assert not re.search(r"(\b\w+: )\1", reason), reason
        time.sleep(max(0.0, started + 20 - time.monotonic()))
        assert client.get("/readyz").status_code == 503

        asked = time.monotonic()
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        assert time.monotonic() - asked < 5.0, f"Ctrl-C took {time.monotonic() - asked:.1f}s"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    lines = [line for line in log_path.read_text(errors="replace").splitlines()
             if re.match(r"\d{4}-\d\d-\d\d ", line)]
    # 20 seconds of an unreachable broker: each distinct message once, however often it recurs.
    templates = [re.sub(r"\d+(\.\d+)?", "#", line.split(" ", 2)[2]) for line in lines]
    repeated = {t for t in templates if templates.count(t) > 1}
    assert not repeated, "\n".join(lines)
    assert len(lines) <= 12, "\n".join(lines)


def test_a_broker_that_dies_under_a_connected_replica_floods_no_log_and_ctrl_c_is_quick(names, tmp_path):
    # A broker of its own: the session's broker, killed here, would be slow to serve the next tests.
    if shutil.which("java") is None:
        pytest.fail("the Kafka tests need a JDK (scripts/kafka.sh fetch)")
    broker = Broker(tmp_path / "kafka-run")
    broker.start()
    try:
        _kill_the_broker_under_a_connected_replica(broker, names, tmp_path)
    finally:
        broker.kill()


def _kill_the_broker_under_a_connected_replica(broker: Broker, names, tmp_path) -> None:
    topic = broker.create_topic(names("gone"))
    port = _free_port()
    config = tmp_path / "driftline.yaml"
    config.write_text(yaml.safe_dump({
        "state_dir": str(tmp_path / "state"),
        "kafka": kafka_config(broker.bootstrap, [topic], names("group"), names("state"), None)}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--config", str(config),
                                    "--port", str(port)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5)
    try:
        wait_for(lambda: client.get("/readyz").status_code == 200, timeout=60, message="ready")
        broker.kill()
        killed_at = len(log_path.read_text(errors="replace").splitlines())
        reasons = wait_for(lambda: client.get("/readyz").json()["reasons"], timeout=30, message="not ready")
        assert reasons[0].startswith(f"kafka: broker {broker.bootstrap} unreachable: "), reasons
        assert not re.search(r"(\b\w+: )\1", reasons[0]), reasons
        time.sleep(15)
        asked = time.monotonic()
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        assert time.monotonic() - asked < 5.0, f"Ctrl-C took {time.monotonic() - asked:.1f}s"
    finally:
        client.close()
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    lines = log_path.read_text(errors="replace").splitlines()[killed_at:]
    # kafka-python reports the lost connections once per client; nothing repeats every second.
    assert len(lines) <= 60, "\n".join(lines)
    templates = [re.sub(r"\d+(\.\d+)?", "#", line.split(" ", 2)[-1]) for line in lines if re.match(r"\d{4}-", line)]
    assert all(templates.count(t) <= 3 for t in templates), "\n".join(lines)


PRELOAD = """
import sys, time
from service.config import Settings
from service.core.engine import Engine
from service.kafka.source import KafkaSource
assert "scipy.stats" not in sys.modules, "imported before the source started"
settings = Settings(state_dir=sys.argv[1], kafka={"client": sys.argv[2], "bootstrap_servers": sys.argv[3],
                                                  "topics": ["t"], "state_topic": None})
source = KafkaSource(Engine(settings), settings.kafka, settings.cloudevents, None, settings.state_dir)
source.start()
deadline = time.monotonic() + 20
while "scipy.stats" not in sys.modules and time.monotonic() < deadline:
    time.sleep(0.05)
print("scipy.stats" in sys.modules)
"""


def test_a_source_loads_scipys_statistics_while_it_waits_for_its_partitions(tmp_path, kafka_client):
    """The first KS test would stall the stream ~0.7 s importing scipy.stats: a replica imports
    it while it waits for the group (here, for a broker that never answers), before any event."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    run = subprocess.run([sys.executable, "-c", PRELOAD, str(tmp_path), kafka_client, f"127.0.0.1:{_free_port()}"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split()[-1] == "True", run.stdout + run.stderr
