"""Kafka test fixtures: one real Apache Kafka broker per session (scripts/kafka.sh), unique
topics per test, producers, replicas as subprocesses, bounded waits. Every test runs once
per Kafka client driftline can use (``kafka.client``; the test id names it)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import orjson
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.kafka.client_choice import CLIENTS, current

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "kafka.sh"


class Broker:
    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.env = {**os.environ, "KAFKA_DIR": str(run_dir)}
        self.bootstrap = ""

    def _script(self, *args: str, timeout: float = 240) -> str:
        result = subprocess.run([str(SCRIPT), *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"scripts/kafka.sh {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout.strip()

    def start(self) -> str:
        self.bootstrap = self._script("start").splitlines()[-1]
        return self.bootstrap

    def stop(self) -> None:
        self._script("stop", timeout=60)

    def kill(self) -> None:
        self._script("kill", timeout=30)

    def admin(self):
        from kafka.admin import KafkaAdminClient

        return KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=15000)

    def create_topic(self, name: str, partitions: int = 1, configs: dict | None = None) -> str:
        from kafka.admin import NewTopic

        admin = self.admin()
        try:
            admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs or {})])
        finally:
            admin.close()
        return name


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    if shutil.which("java") is None or shutil.which("mvn") is None:
        pytest.fail("the Kafka tests need a JDK and Maven (scripts/kafka.sh fetch)")
    broker = Broker(tmp_path_factory.mktemp("kafka-run"))
    broker.start()
    yield broker
    try:
        broker.stop()
    except Exception:
        broker.kill()


@pytest.fixture(autouse=True, params=CLIENTS)
def kafka_client(request) -> str:
    """The client driftline runs on in this test: ``kafka_config`` configures it."""
    current["client"] = request.param
    yield request.param
    current["client"] = CLIENTS[0]


@pytest.fixture
def names():
    """Unique topic/group names for one test."""
    suffix = uuid.uuid4().hex[:8]
    return lambda base: f"{base}-{suffix}"


def producer(bootstrap: str):
    from service.commands.produce import make_producer

    return make_producer(bootstrap, linger_ms=5)


def send(bootstrap: str, topic: str, events, key: str = "model", headers=None, rate: float | None = None) -> int:
    """Produce events (dicts, or raw bytes) keyed by model, at most ``rate``/s; returns the count."""
    prod = producer(bootstrap)
    started = time.monotonic()
    try:
        count = 0
        for event in events:
            if rate and count % 20 == 0:
                ahead = started + count / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            value = event if isinstance(event, bytes) else orjson.dumps(event)
            k = None
            if isinstance(event, dict) and key in event:
                k = str(event[key]).encode()
            prod.send(topic, value=value, key=k, headers=headers)
            count += 1
        prod.flush()
        return count
    finally:
        prod.close(timeout=10)


def send_to_partitions(bootstrap: str, topic: str, values: list[bytes], partitions: int) -> dict[bytes, tuple]:
    """Produce raw values round-robin over ``partitions``; returns value -> (topic, partition,
    offset, timestamp) as the broker acknowledged it."""
    prod = producer(bootstrap)
    try:
        futures = {value: prod.send(topic, value=value, partition=i % partitions) for i, value in enumerate(values)}
        prod.flush()
        return {value: (meta.topic, meta.partition, meta.offset, meta.timestamp)
                for value, meta in ((v, f.get(timeout=30)) for v, f in futures.items())}
    finally:
        prod.close(timeout=10)


def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 30) -> list:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None)
    records = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records += batch
        # a little longer, to see any extra record
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            for batch in consumer.poll(timeout_ms=200).values():
                records += batch
    finally:
        consumer.close()
    return records


def wait_for(predicate, timeout: float, interval: float = 0.2, message: str = "condition"):
    """Poll ``predicate`` until it is truthy. A server that does not answer yet is retried; any
    other exception is a failure at once. The timeout names the outcome of the last poll."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            last = predicate()
        except httpx.TransportError as exc:  # not listening yet, or busy past the client's timeout
            last = exc
        if last and not isinstance(last, Exception):
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message} (last poll: {last!r})")
        time.sleep(interval)


def parse_metrics(text: str) -> dict[tuple, float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def total(samples: dict, name: str, **labels) -> float:
    """Sum of a metric's samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


def kafka_config(bootstrap: str, topics: list[str], group: str, state_topic: str | None,
                 dead_letter_topic: str | None, **extra) -> dict:
    config = {"client": current["client"], "bootstrap_servers": bootstrap, "topics": topics, "group_id": group,
              "state_topic": state_topic, "dead_letter_topic": dead_letter_topic, "trigger_topic": None,
              "checkpoint_interval": "1s", "session_timeout": "6s", "lag_interval": "0.5s",
              "poll_timeout": "0.2s"}
    config.update(extra)
    return config


class Replica:
    """``python -m service.cli serve`` in a subprocess: a driftline replica that can be SIGKILLed."""

    def __init__(self, config: dict, work: Path, name: str):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {**config, "state_dir": str(work / f"state-{name}"), "log_level": "warning"}
        self.config_path = work / f"{name}.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = work / f"{name}.log"
        self._log = open(self.log_path, "wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
        self.process = subprocess.Popen(
            [sys.executable, "-c", "import sys; from service.config import load_settings; "
             "from service.server import serve; s = load_settings(sys.argv[1]); "
             "serve(s.model_copy(update={'port': int(sys.argv[2])}))", str(self.config_path), str(self.port)],
            cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self.client = httpx.Client(base_url=self.url, timeout=10)

    def get(self, path: str):
        return self.client.get(path)

    def metrics(self) -> dict:
        return parse_metrics(self.client.get("/metrics").text)

    def ready(self) -> bool:
        return self.client.get("/readyz").status_code == 200

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.client.close()
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]
