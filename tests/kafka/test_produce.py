"""``driftline produce`` against the real broker: NDJSON and JSON arrays, keys, rate."""

from __future__ import annotations

import argparse
import json

import pytest
from kafka.partitioner.default import murmur2

from service.commands import produce
from tests.kafka.conftest import read_topic

pytestmark = pytest.mark.kafka


def run(file, bootstrap, topic, key="model", rate=None) -> int:
    parser = argparse.ArgumentParser()
    produce.add_arguments(parser)
    argv = [str(file), "--bootstrap", bootstrap, "--topic", topic, "--key", key]
    if rate:
        argv += ["--rate", str(rate)]
    return produce.run(parser.parse_args(argv))


def test_produce_ndjson_keyed_by_model(broker, names, tmp_path, capsys):
    topic = broker.create_topic(names("produce"), partitions=3)
    events = [{"kind": "prediction", "model": f"m{i % 4}", "id": f"r{i}", "features": {"x": i}} for i in range(40)]
    path = tmp_path / "events.ndjson"
    path.write_text("\n".join(json.dumps(e) for e in events) + "\n\nnot json\n")
    assert run(path, broker.bootstrap, topic) == 0
    assert "produced 41 event(s)" in capsys.readouterr().out
    records = read_topic(broker.bootstrap, topic, expected=41)
    assert len(records) == 41
    for record in records:
        if record.value == b"not json":
            assert record.key is None
            continue
        model = json.loads(record.value)["model"]
        assert record.key == model.encode()
        assert record.partition == (murmur2(record.key) & 0x7FFFFFFF) % 3


def test_produce_json_array_keyed_by_id_with_a_rate(broker, names, tmp_path):
    topic = broker.create_topic(names("produce"), partitions=1)
    events = [{"kind": "label", "model": "m", "id": f"r{i}", "label": 1} for i in range(20)]
    path = tmp_path / "events.json"
    path.write_text(json.dumps(events))
    assert run(path, broker.bootstrap, topic, key="id", rate=200) == 0
    records = read_topic(broker.bootstrap, topic, expected=20)
    assert [r.key for r in records] == [f"r{i}".encode() for i in range(20)]
    assert [json.loads(r.value) for r in records] == events


def test_produce_reports_a_missing_file(tmp_path, capsys):
    assert run(tmp_path / "missing.ndjson", "127.0.0.1:1", "t") == 2
    assert "cannot read" in capsys.readouterr().err


def test_the_readme_example_file_replays_and_driftline_consumes_it(broker, names, live_server):
    """The README's `driftline produce ... examples/events.ndjson`, consumed by driftline."""
    import subprocess
    import sys
    from pathlib import Path

    from tests.kafka.conftest import kafka_config, wait_for

    topic = broker.create_topic(names("readme"))
    driftline = Path(sys.executable).parent / "driftline"
    example = Path(__file__).resolve().parents[2] / "examples" / "events.ndjson"
    result = subprocess.run([str(driftline), "produce", "--bootstrap", broker.bootstrap, "--topic", topic,
                             str(example)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = example.read_text().splitlines()
    server = live_server({"kafka": kafka_config(broker.bootstrap, [topic], names("group"), None, None),
                          "models": {"default": {"reference": {"first_n": 100}, "window": {"size": 200}}}})
    wait_for(lambda: server.metric("driftline_events_total", model="fraud", kind="prediction") == 300, 30,
             message="all predictions consumed")
    assert server.metric("driftline_labels_total", model="fraud", outcome="matched") == 100
    assert server.metric("driftline_infra_events_total", model="fraud", event="deploy") == 1
    assert len(lines) == 401
