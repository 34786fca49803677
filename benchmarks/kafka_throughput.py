"""Kafka throughput of driftline, against a real broker (scripts/kafka.sh).

Produces N prediction events (20 numeric features, ~650 bytes each) to a fresh topic, then
measures in the same run:

1. the ceiling: a bare consumer loop of the client (``--client``: kafka-python, the default,
   or confluent) that only counts records;
2. driftline end to end on the same client: the KafkaSource component + engine (validation,
   windows, drift evaluation every 1,000 predictions, changelog checkpoints), from the first
   record to the last one processed; ``ratio`` is its rate over the ceiling's;
3. latency from produce to metric update: with driftline caught up, events produced at a
   steady rate; for each record, the time from its producer timestamp to the end of the
   engine batch that counted it (p50/p99).

    .venv/bin/python benchmarks/kafka_throughput.py              # 1,000,000 events
    .venv/bin/python benchmarks/kafka_throughput.py --events 100000 --bootstrap 127.0.0.1:9092
    .venv/bin/python benchmarks/kafka_throughput.py --client confluent   # the kafka-confluent extra
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import orjson  # noqa: E402

FEATURES = [f"feature_{i:02d}" for i in range(20)]


def make_events(n: int, seed: int = 7, start: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    pool = [[round(rng.gauss(0, 1), 6) for _ in FEATURES] for _ in range(997)]
    out = []
    for i in range(start, start + n):
        row = pool[i % 997]
        out.append(orjson.dumps({
            "kind": "prediction", "model": "bench-model", "model_version": "1", "id": f"req-{i:09d}",
            "timestamp": 1_795_000_000.0 + i / 1000, "latency_ms": 12.5, "status": "ok",
            "features": dict(zip(FEATURES, row, strict=True)), "prediction": int(row[0] > 0),
            "score": 0.5 + row[1] / 10}))
    return out


def producer(bootstrap: str):
    from kafka import KafkaProducer

    return KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20, batch_size=1024 * 1024,
                         enable_idempotence=False,
                         max_request_size=8 * 1024 * 1024)


def produce(bootstrap: str, topic: str, values: list[bytes]) -> float:
    prod = producer(bootstrap)
    started = time.perf_counter()
    for value in values:
        prod.send(topic, value=value, key=b"bench-model")
    prod.flush()
    elapsed = time.perf_counter() - started
    prod.close()
    return elapsed


def bare_consumer(client: str, bootstrap: str, topic: str, n: int) -> dict:
    return (bare_confluent if client == "confluent" else bare_kafka_python)(bootstrap, topic, n)


def bare_confluent(bootstrap: str, topic: str, n: int) -> dict:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bare-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "max.partition.fetch.bytes": 8 * 1024 * 1024,
                         "fetch.max.bytes": 64 * 1024 * 1024, "receive.message.max.bytes": 64 * 1024 * 1024 + 512})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    count = 0
    first = None
    cpu = time.process_time()
    deadline = time.monotonic() + 600
    while count < n and time.monotonic() < deadline:
        messages = consumer.consume(5000, 0.5)
        if messages and first is None:
            first = time.perf_counter()
        count += len(messages)
    elapsed = time.perf_counter() - first
    cpu = time.process_time() - cpu
    consumer.close()
    return {"records": count, "seconds": elapsed, "records_per_s": count / elapsed,
            "cpu_us_per_record": cpu / count * 1e6, "records_per_cpu_s": count / cpu}


def bare_kafka_python(bootstrap: str, topic: str, n: int) -> dict:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    count = 0
    first = None
    cpu = time.process_time()
    deadline = time.monotonic() + 600
    while count < n and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500, max_records=5000).values():
            if first is None:
                first = time.perf_counter()
            count += len(records)
    elapsed = time.perf_counter() - first
    cpu = time.process_time() - cpu
    consumer.close()
    return {"records": count, "seconds": elapsed, "records_per_s": count / elapsed,
            "cpu_us_per_record": cpu / count * 1e6, "records_per_cpu_s": count / cpu}


def driftline(client: str, bootstrap: str, topic: str, n: int, latency_events: int, latency_rate: float,
              state_dir: Path) -> dict:
    from service.config import Settings
    from service.kafka.source import KafkaSource
    from service.runtime import Runtime

    suffix = uuid.uuid4().hex[:8]
    settings = Settings(
        state_dir=state_dir,
        kafka={"client": client, "bootstrap_servers": bootstrap, "topics": [topic], "group_id": f"bench-{suffix}",
               "state_topic": f"bench-state-{suffix}", "dead_letter_topic": f"bench-dead-{suffix}",
               "trigger_topic": None, "max_poll_records": 5000},
        models={"default": {"reference": {"first_n": 1000}, "window": {"size": 1000, "step": 1000},
                            "triggers": {"on": []}}})
    runtime = Runtime(settings)
    source = KafkaSource(runtime.engine, settings.kafka, settings.cloudevents, runtime.metrics.consumer_lag,
                         settings.state_dir, changelog=runtime.changelog)
    runtime.add(source)

    marks: dict = {"first": None, "last": None, "count": 0, "batches": 0}
    latencies: list[float] = []
    measuring = threading.Event()

    def on_batch(records: dict, processed_at: float) -> None:
        size = sum(len(batch) for batch in records.values())
        if marks["first"] is None and size:
            marks["first"] = time.perf_counter()
        marks["count"] += size
        marks["batches"] += 1
        marks["last"] = time.perf_counter()
        if measuring.is_set():
            for batch in records.values():
                latencies.extend(processed_at - record.timestamp / 1000.0 for record in batch)

    source.batch_listeners.append(on_batch)
    cpu = time.process_time()
    runtime.start()
    deadline = time.monotonic() + 900
    while marks["count"] < n and time.monotonic() < deadline:
        time.sleep(0.05)
    cpu = time.process_time() - cpu
    elapsed = marks["last"] - marks["first"]
    state = runtime.engine.models["bench-model"]
    throughput = {"records": marks["count"], "seconds": elapsed, "events_per_s": marks["count"] / elapsed,
                  "cpu_us_per_event": cpu / max(1, marks["count"]) * 1e6,
                  "events_per_cpu_s": marks["count"] / cpu, "evaluations": state.evaluations,
                  "records_per_batch": marks["count"] / max(1, marks["batches"]),
                  "accepted": sum(v for (m, k), v in runtime.engine.events_total.items() if m == "bench-model")}

    # Latency: steady produce rate while driftline is caught up.
    measuring.set()
    values = make_events(latency_events, seed=11, start=n)
    prod = producer(bootstrap)
    started = time.perf_counter()
    for i, value in enumerate(values):
        due = started + i / latency_rate
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        prod.send(topic, value=value, key=b"bench-model")
    prod.flush()
    prod.close()
    deadline = time.monotonic() + 60
    while len(latencies) < latency_events and time.monotonic() < deadline:
        time.sleep(0.05)
    runtime.stop()
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else float("nan")

    latency = {"events": len(latencies), "rate_per_s": latency_rate, "p50_ms": pct(0.50), "p99_ms": pct(0.99),
               "max_ms": latencies[-1] * 1000 if latencies else float("nan")}
    return {"throughput": throughput, "latency": latency}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--client", choices=["kafka-python", "confluent"], default="kafka-python",
                        help="the Kafka client of both the bare loop and driftline")
    parser.add_argument("--bootstrap", help="an existing broker (default: start one with scripts/kafka.sh)")
    parser.add_argument("--latency-events", type=int, default=20_000)
    parser.add_argument("--latency-rate", type=float, default=5_000.0, help="events/s while measuring latency")
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="driftline-bench-"))
    env = {**os.environ, "KAFKA_DIR": str(work / "kafka")}
    started_broker = args.bootstrap is None
    if started_broker:
        out = subprocess.run([str(REPO / "scripts" / "kafka.sh"), "start"], env=env, check=True,
                             capture_output=True, text=True)
        bootstrap = out.stdout.strip().splitlines()[-1]
    else:
        bootstrap = args.bootstrap
    try:
        from kafka.admin import KafkaAdminClient, NewTopic

        topic = f"bench-{uuid.uuid4().hex[:8]}"
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        admin.create_topics([NewTopic(topic, 1, 1)])
        admin.close()
        values = make_events(args.events)
        size = sum(map(len, values)) / len(values)
        log = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr, flush=True))
        log(f"producing {args.events:,} events of {size:.0f} bytes to {topic} at {bootstrap} ...")
        produce_s = produce(bootstrap, topic, values)
        del values
        log(f"  produced in {produce_s:.1f}s ({args.events / produce_s:,.0f}/s)")
        log(f"bare {args.client} consumer loop (the ceiling) ...")
        ceiling = bare_consumer(args.client, bootstrap, topic, args.events)
        log(f"  {ceiling['records_per_s']:,.0f} records/s, {ceiling['cpu_us_per_record']:.1f} us CPU per record "
            f"({ceiling['records_per_cpu_s']:,.0f} per CPU second)")
        log(f"driftline end to end on {args.client} (KafkaSource + engine, drift step 1000) ...")
        result = driftline(args.client, bootstrap, topic, args.events, args.latency_events, args.latency_rate,
                           work / "state")
        t, lat = result["throughput"], result["latency"]
        ratio = t["events_per_s"] / ceiling["records_per_s"]
        log(f"  {t['events_per_s']:,.0f} events/s, {t['cpu_us_per_event']:.1f} us CPU per event "
            f"({t['events_per_cpu_s']:,.0f} per CPU second), "
            f"{t['evaluations']} drift evaluations, {t['records_per_batch']:,.0f} records a poll; "
            f"{ratio:.2f}x the bare loop")
        log(f"  produce -> metric update at {lat['rate_per_s']:,.0f}/s: p50 {lat['p50_ms']:.1f} ms, "
            f"p99 {lat['p99_ms']:.1f} ms (max {lat['max_ms']:.1f} ms)")
        summary = {"client": args.client, "events": args.events, "event_bytes": round(size), "produce_s": produce_s,
                   "ceiling": ceiling, **result, "ratio": ratio, "cores": os.cpu_count()}
        print(json.dumps(summary, indent=2))
        return 0
    finally:
        if started_broker:
            subprocess.run([str(REPO / "scripts" / "kafka.sh"), "stop"], env=env, check=False)


if __name__ == "__main__":
    sys.exit(main())
