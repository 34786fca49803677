"""Scale-out: two driftline replicas in one consumer group against one, on a real broker.

Produces N prediction events of 4 models, one per partition of a 4-partition topic (keyed by
model, as a producer would), then in the same run, alternately, ``--repeats`` times each:

- one: one ``driftline serve`` process consumes the topic as its own group;
- two: two processes, started together, share it as one group (a rebalance hands half the
  partitions, and their state through the changelog, to whichever joins second).

Throughput is the events counted (``driftline_events_total``, summed over the replicas) over
the seconds from the first counted event to the last, read from ``/metrics`` every 0.1 s.
The first replica to join consumes alone until the second arrives: that is part of this
figure, as it is of a real scale-out. The steady figure counts only from the moment every
replica owns its share of the partitions (one lag gauge per partition owned).

    .venv/bin/python benchmarks/kafka_scaleout.py --events 400000 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import orjson  # noqa: E402
from kafka_throughput import FEATURES  # noqa: E402

PARTITIONS = 4


def models_on_distinct_partitions() -> list[str]:
    """One model name per partition, by the producer's own partitioner (murmur2 of the key)."""
    from kafka.partitioner.default import murmur2

    chosen: dict[int, str] = {}
    for i in range(10_000):
        name = f"model-{i}"
        chosen.setdefault((murmur2(name.encode()) & 0x7FFFFFFF) % PARTITIONS, name)
        if len(chosen) == PARTITIONS:
            return [chosen[p] for p in sorted(chosen)]
    raise RuntimeError("no model names for every partition")


def produce(bootstrap: str, topic: str, models: list[str], n: int) -> float:
    import random

    from kafka import KafkaProducer

    rng = random.Random(7)
    pool = [[round(rng.gauss(0, 1), 6) for _ in FEATURES] for _ in range(997)]
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20, batch_size=1024 * 1024,
                             max_request_size=8 * 1024 * 1024)
    started = time.perf_counter()
    for i in range(n):
        model, row = models[i % len(models)], pool[i % 997]
        producer.send(topic, key=model.encode(), value=orjson.dumps({
            "kind": "prediction", "model": model, "model_version": "1", "id": f"req-{i:09d}",
            "timestamp": 1_795_000_000.0 + i / 1000, "features": dict(zip(FEATURES, row, strict=True)),
            "prediction": int(row[0] > 0), "score": 0.5 + row[1] / 10}))
    producer.flush()
    producer.close()
    return time.perf_counter() - started


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Replica:
    def __init__(self, config: dict, work: Path, name: str):
        self.port = free_port()
        path = work / f"{name}.yaml"
        path.write_text(yaml.safe_dump({**config, "state_dir": str(work / f"state-{name}"), "log_level": "warning"}))
        env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
        self.log = open(work / f"{name}.log", "wb")
        self.process = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--config", str(path),
                                         "--port", str(self.port)], cwd=REPO, env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)

    def progress(self) -> tuple[int, int]:
        """Events counted, and partitions owned (one lag gauge per partition)."""
        try:
            text = self.client.get("/metrics").text
        except httpx.HTTPError:
            return 0, 0
        events = owned = 0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "driftline_events_total":
                    events += int(sample.value)
                elif sample.name == "driftline_consumer_lag_messages":
                    owned += 1
        return events, owned

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.client.close()
        self.log.close()


def run(replicas: int, bootstrap: str, topic: str, n: int, work: Path) -> dict:
    suffix = uuid.uuid4().hex[:8]
    config = {
        "kafka": {"bootstrap_servers": bootstrap, "topics": [topic], "group_id": f"scale-{suffix}",
                  "state_topic": f"scale-state-{suffix}", "dead_letter_topic": None, "trigger_topic": None,
                  "auto_offset_reset": "earliest", "max_poll_records": 5000},
        "models": {"default": {"reference": {"first_n": 1000}, "window": {"size": 1000, "step": 1000},
                               "triggers": {"on": []}}},
    }
    run_dir = work / f"{replicas}-{suffix}"
    run_dir.mkdir()
    started = [Replica(config, run_dir, f"replica{i}") for i in range(replicas)]
    first = last = settled = None
    cpu_first = cpu_last = (0, 0)
    counted = settled_count = 0
    try:
        deadline = time.monotonic() + 900
        while counted < n and time.monotonic() < deadline:
            progress = [replica.progress() for replica in started]
            counted = sum(events for events, _ in progress)
            now = time.perf_counter()
            if counted and first is None:
                first, cpu_first = now, cpu_jiffies()
            if settled is None and all(owned == PARTITIONS // replicas for _, owned in progress):
                settled, settled_count = now, counted  # every replica owns its share
            last, cpu_last = now, cpu_jiffies()
            time.sleep(0.1)
    finally:
        for replica in started:
            replica.stop()
    if counted < n:
        raise RuntimeError(f"{replicas} replica(s) counted {counted} of {n} events; logs in {run_dir}")
    steady = (counted - settled_count) / (last - settled) if settled is not None and last > settled else float("nan")
    busy, total = cpu_last[0] - cpu_first[0], cpu_last[1] - cpu_first[1]
    return {"replicas": replicas, "events": counted, "seconds": last - first, "events_per_s": counted / (last - first),
            "settled_after_events": settled_count, "steady_events_per_s": steady,
            # Share of the machine's cores busy while counting (replicas, broker and the rest):
            # near 1.0, the cores, not driftline, bound the figure.
            "machine_cpu_busy": busy / total if total else float("nan")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--bootstrap", help="an existing broker (default: start one with scripts/kafka.sh)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="driftline-scaleout-"))
    env = {**os.environ, "KAFKA_DIR": str(work / "kafka")}
    started_broker = args.bootstrap is None
    bootstrap = args.bootstrap or subprocess.run([str(REPO / "scripts" / "kafka.sh"), "start"], env=env, check=True,
                                                 capture_output=True, text=True).stdout.strip().splitlines()[-1]
    try:
        from kafka.admin import KafkaAdminClient, NewTopic

        topic = f"scaleout-{uuid.uuid4().hex[:8]}"
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
        admin.close()
        produce_s = produce(bootstrap, topic, models_on_distinct_partitions(), args.events)
        print(f"produced {args.events:,} events in {produce_s:.1f}s", file=sys.stderr, flush=True)
        results: dict[int, list[dict]] = {1: [], 2: []}
        for _ in range(args.repeats):
            for replicas in (1, 2):
                result = run(replicas, bootstrap, topic, args.events, work)
                print(f"  {replicas} replica(s): {result['events_per_s']:,.0f} events/s, steady "
                      f"{result['steady_events_per_s']:,.0f}/s, machine CPU {result['machine_cpu_busy']:.0%} busy",
                      file=sys.stderr, flush=True)
                results[replicas].append(result)
        summary = {"events": args.events, "cores": os.cpu_count(), "runs": results}
        for key in ("events_per_s", "steady_events_per_s"):
            one = statistics.median(r[key] for r in results[1])
            two = statistics.median(r[key] for r in results[2])
            summary[key] = {"one_replica": one, "two_replicas": two, "ratio": two / one}
        print(json.dumps(summary, indent=2))
        return 0
    finally:
        if started_broker:
            subprocess.run([str(REPO / "scripts" / "kafka.sh"), "stop"], env=env, check=False)


if __name__ == "__main__":
    sys.exit(main())
