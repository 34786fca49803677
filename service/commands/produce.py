"""``driftline produce``: replay a file of events into a Kafka topic.

For demos, load tests and users' own checks of a deployment. The file is NDJSON (one
event per line) or one JSON array; each event becomes one record, its value the event's
JSON. Lines are sent as they are, unparsed ones too, so a file can also exercise the
dead-letter topic.

Keys: ``model`` (default) keys each record by its model name, which is what driftline's
scale-out needs (all of a model's predictions and labels in one partition, see
docs/kafka.md); ``id`` keys by request id; ``none`` sends no key (round-robin).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import orjson


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="NDJSON or a JSON array of events; - for standard input")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", metavar="HOST:PORT",
                        help="Kafka bootstrap servers, comma-separated (default 127.0.0.1:9092)")
    parser.add_argument("--topic", default="model-events", help="topic to write to (default model-events)")
    parser.add_argument("--key", choices=("model", "id", "none"), default="model",
                        help="record key: the event's model name (default), its id, or none")
    parser.add_argument("--rate", type=float, default=None, metavar="N",
                        help="at most N events per second (default: as fast as possible)")
    parser.add_argument("--repeat", type=int, default=1, metavar="K", help="send the file K times (default 1)")


def read_values(data: bytes) -> list[bytes]:
    """The events of a file as record values: a JSON array's elements, else its non-blank lines."""
    stripped = data.strip()
    if stripped.startswith(b"["):
        try:
            parsed = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, list):
            return [orjson.dumps(event) for event in parsed]
    return [line.strip() for line in stripped.split(b"\n") if line.strip()]


def record_key(value: bytes, mode: str) -> bytes | None:
    """The key of one record: the event's ``model`` or ``id`` field, or None."""
    if mode == "none":
        return None
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(event, dict):
        return None
    field = event.get("model" if mode == "model" else "id")
    return None if field is None else str(field).encode()


def produce(producer, topic: str, values: Iterable[bytes], key: str = "model",
            rate: float | None = None) -> int:
    """Send every value to ``topic`` (keyed per ``key``), paced to ``rate``/s; flushes; returns the count."""
    started = time.monotonic()
    sent = 0
    for value in values:
        if rate:
            ahead = started + sent / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        producer.send(topic, value=value, key=record_key(value, key))
        sent += 1
    producer.flush()
    return sent


def _repeated(values: list[bytes], times: int) -> Iterator[bytes]:
    for _ in range(times):
        yield from values


def make_producer(bootstrap: str, **overrides):
    from kafka import KafkaProducer  # noqa: PLC0415 - keep `driftline --help` fast

    options = dict(bootstrap_servers=bootstrap.split(","), acks="all", linger_ms=20,
                   batch_size=256 * 1024, retries=10, max_in_flight_requests_per_connection=1,
                   client_id="driftline-produce")
    options.update(overrides)
    return KafkaProducer(**options)


def run(args: argparse.Namespace) -> int:
    try:
        data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        print(f"driftline produce: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    values = read_values(data)
    if not values:
        print(f"driftline produce: {args.file} holds no events", file=sys.stderr)
        return 1
    from kafka.errors import KafkaError  # noqa: PLC0415

    started = time.monotonic()
    try:
        producer = make_producer(args.bootstrap)
        try:
            sent = produce(producer, args.topic, _repeated(values, max(1, args.repeat)), args.key, args.rate)
        finally:
            producer.close(timeout=10)
    except KafkaError as exc:
        print(f"driftline produce: Kafka at {args.bootstrap}: {exc}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - started
    print(f"produced {sent} event(s) to {args.topic} in {elapsed:.2f}s ({sent / max(elapsed, 1e-9):,.0f}/s)")
    return 0
