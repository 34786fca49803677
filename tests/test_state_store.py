"""The state store (``state_dir``) under faults: a disk that fills up, odd names, damaged files.

The disk-full tests run the service on a real 3 MB tmpfs (mounting needs root or
passwordless sudo; without either they are skipped, and fail under CI) and fill it up.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import subprocess
import threading
import time
import types
from pathlib import Path

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest

from service.config import KafkaConfig, Settings, WebhookConfig
from service.core.engine import Engine
from service.kafka.changelog import Changelog
from service.kafka.clients import TopicPartition
from service.kafka.source import KafkaSource
from service.retrain.dispatcher import Dispatcher
from service.retrain.outbox import Outbox
from service.runtime import Runtime
from service.storage import checkpoints
from tests.checkpoint_formats import make_fixtures
from tests.conftest import require_tool
from tests.test_api import SMALL, ndjson, traffic
from tests.test_webhooks import hook, wait_until

FORMATS = Path(__file__).parent / "checkpoint_formats"
MODELS = [f"m{i}" for i in range(4)]
FAST = {**SMALL, "checkpoint_interval": "0.2s"}


# -- a small disk ---------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs, unmounted after the test (and after the servers it holds stopped)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    options = f"size=3m,uid={os.geteuid()},gid={os.getegid()}"
    mounted = subprocess.run([*sudo, "mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)],
                             capture_output=True, text=True, timeout=30)
    require_tool("a tmpfs mount", mounted.returncode == 0,
                 f"{mounted.stderr.strip()}; root or passwordless sudo is needed")
    try:
        yield mount_point
    finally:
        subprocess.run([*sudo, "umount", str(mount_point)], check=True, timeout=30)


def free_bytes(directory: Path) -> int:
    stats = os.statvfs(directory)
    return stats.f_bavail * stats.f_frsize


def fill(directory: Path, leave: int = 0) -> Path:
    """Take the disk's free space but ``leave`` bytes with a filler file; returns the file."""
    filler = directory / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for chunk in (1 << 16, 1 << 12):
            block = b"\xff" * chunk
            while free_bytes(directory) - leave >= chunk:
                try:
                    os.write(descriptor, block)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
    finally:
        os.close(descriptor)
    return filler


def views(server) -> dict:
    """What a user sees of every model: summaries and drift reports."""
    summaries = {s["model"]: s for s in server.client.get("/v1/models").json()}
    return {model: (summaries.get(model), server.client.get(f"/v1/models/{model}/drift").json()) for model in MODELS}


def feed(server, start: int, n: int, shift: float = 0.0) -> None:
    """``n`` predictions to each model. (A restored model's verdicts are computed afresh
    over its window: the tests end on a full step, so they equal the last ones.)"""
    for index, model in enumerate(MODELS):
        response = server.client.post("/v1/events", content=ndjson(traffic(model, n, start, shift, seed=index + start)))
        assert response.status_code == 202, response.text


def readiness(server):
    response = server.client.get("/readyz")
    return response.status_code, response.json()


def partial_files(state_dir: Path) -> list[str]:
    return sorted(p.name for p in (state_dir / "models").glob("*.tmp"))


def test_a_full_disk_loses_no_model_state_and_says_so(small_disk, live_server):
    state_dir = small_disk / "state"
    server = live_server(FAST, state_dir=state_dir)
    feed(server, 0, 60)
    wait_until("first checkpoints", lambda: all((state_dir / "models" / f"{m}.state").exists() for m in MODELS))
    sizes = [(state_dir / "models" / f"{m}.state").stat().st_size for m in MODELS]
    filler = fill(small_disk)
    assert free_bytes(small_disk) < min(sizes)

    feed(server, 60, 50, shift=3.0)  # events flow while nothing can be written
    def checkpoints_failing():
        status, body = readiness(server)
        return status == 503 and [r for r in body["reasons"] if r.startswith("state store:")]

    [reason] = wait_until("/readyz false for the checkpoints", checkpoints_failing)
    assert reason.startswith("state store: checkpoints of 4 model(s) cannot be written") and "No space left" in reason
    assert server.metric("driftline_state_write_failures_total", store="checkpoint") >= 4
    assert partial_files(state_dir) == []
    retrain = server.client.post("/v1/models/m0/retrain")
    assert retrain.status_code == 503 and "outbox cannot write" in retrain.json()["detail"], retrain.text
    assert retrain.headers["retry-after"] == "30"
    assert server.metric("driftline_state_write_failures_total", store="outbox") >= 1
    before = views(server)

    freed_at = time.time()
    filler.unlink()
    wait_until("/readyz true again", lambda: readiness(server)[0] == 200)
    assert server.metric("driftline_state_checkpoint_last_success_timestamp_seconds") >= freed_at
    assert server.client.post("/v1/models/m0/retrain").status_code == 202
    server.stop()

    again = live_server(FAST, state_dir=state_dir)
    assert views(again) == before
    assert all(summary["window"]["samples"] == 60 for summary, _ in before.values())


def test_what_failed_on_a_full_disk_is_written_at_shutdown(small_disk, live_server):
    state_dir = small_disk / "state"
    config = {**SMALL, "checkpoint_interval": "1h"}  # only the rounds this test runs, and the shutdown
    server = live_server(config, state_dir=state_dir)
    feed(server, 0, 60)
    assert server.runtime.state_store.save() == 4
    filler = fill(small_disk)
    feed(server, 60, 50, shift=3.0)
    assert server.runtime.state_store.save() == 0
    assert readiness(server)[0] == 503 and partial_files(state_dir) == []
    before = views(server)
    filler.unlink()
    server.stop()

    again = live_server(config, state_dir=state_dir)
    assert views(again) == before


def test_a_restart_on_a_full_disk_starts_unready_and_recovers_when_space_returns(small_disk, live_server):
    state_dir = small_disk / "state"
    server = live_server(FAST, state_dir=state_dir)
    feed(server, 0, 60)
    feed(server, 60, 50)
    before = views(server)
    server.stop()
    filler = fill(small_disk)

    again = live_server(FAST, state_dir=state_dir)
    assert views(again) == before
    status, body = readiness(again)
    assert status == 503 and any(r.startswith("triggers: the trigger outbox cannot be opened") for r in body["reasons"])
    refused = again.client.post("/v1/models/m0/retrain")
    assert refused.status_code == 503 and "cannot be opened" in refused.json()["detail"]
    filler.unlink()
    wait_until("the outbox opened", lambda: readiness(again)[0] == 200, timeout=15)
    assert again.client.post("/v1/models/m0/retrain").status_code == 202


def test_a_model_that_does_not_fit_does_not_stop_the_others(small_disk, live_server):
    state_dir = small_disk / "state"
    config = {"checkpoint_interval": "1h", "models": {
        "default": SMALL["models"]["default"],
        "big": {"reference": {"first_n": 50}, "window": {"size": 20_000, "step": 20_000}}}}
    server = live_server(config, state_dir=state_dir)
    names = ["big", *MODELS]  # the big one is written first
    for model in names:
        events = traffic(model, 8_000 if model == "big" else 100)
        assert server.client.post("/v1/events", content=ndjson(events)).status_code == 202
    checkpoints = server.runtime.state_store
    assert checkpoints.save() == 5
    sizes = {m: (state_dir / "models" / f"{m}.state").stat().st_size for m in names}
    assert sizes["big"] > 10 * max(sizes[m] for m in MODELS)
    for model in names:
        server.client.post("/v1/events", content=ndjson(traffic(model, 10, start=10_000)))
    fill(small_disk, leave=2 * max(sizes[m] for m in MODELS) + 65536)
    assert free_bytes(small_disk) < sizes["big"]

    assert checkpoints.save() == 4
    assert list(checkpoints.failing) == ["big"] and "big" in server.runtime.engine.dirty
    assert partial_files(state_dir) == []
    for model in MODELS:
        on_disk = Engine(server.runtime.settings)
        on_disk.restore(model, (state_dir / "models" / f"{model}.state").read_bytes())
        assert on_disk.models[model].window_samples == 60 and on_disk.models[model].window.total == 60


# -- names no archive entry can carry ---------------------------------------------------------


def engine_with_odd_names() -> tuple[Engine, str, str]:
    settings = Settings.model_validate({"models": {"default": {"reference": {"first_n": 20},
                                                               "window": {"size": 40, "step": 20}}}})
    engine = Engine(settings)
    long_version, odd_feature = "v" * 70_000, "amount\x00cents"
    rng = np.random.default_rng(0)
    frame = {odd_feature: rng.normal(size=30), "plain": rng.normal(size=30)}
    engine.set_reference("m", pd.DataFrame(frame), "upload")
    lines = [orjson.dumps({"kind": "prediction", "model": "m", "id": f"p{i}", "prediction": i % 2,
                           "features": {"plain": float(rng.normal())}}) for i in range(40)]
    batch = engine.validator.decode_lines(lines, received_at=0.0)
    state = engine.models["m"]
    # Model versions as a model server sent them; bounding their length at ingest is not the store's job.
    [predictions] = list(batch.prediction_batches())
    state.add_predictions(predictions, [long_version] * len(predictions))
    labels = engine.validator.decode_lines(
        [orjson.dumps({"kind": "label", "model": "m", "id": f"p{i}", "label": 1}) for i in range(40)], 0.0).labels
    state.add_labels(labels, lambda version: version)
    return engine, long_version, odd_feature


def test_a_70000_character_version_and_a_nul_in_a_feature_name_survive_a_checkpoint():
    engine, long_version, odd_feature = engine_with_odd_names()
    state = engine.models["m"]
    assert list(state.label_windows) == [long_version] and odd_feature in state.reference_sample
    restored = Engine(engine.settings)
    restored.restore("m", engine.snapshot("m"))
    again = restored.models["m"]
    assert list(again.label_windows) == [long_version]
    assert again.label_windows[long_version].count == 40
    assert again.performance == state.performance
    assert list(again.reference_frame().columns) == [odd_feature, "plain"]
    assert again.reference_frame().equals(state.reference_frame())  # what /report shows


@pytest.mark.parametrize("version", [1, 2])
def test_checkpoints_of_earlier_formats_are_read_as_if_never_stopped(version):
    """Checkpoints written by earlier versions (tests/checkpoint_formats) restore to the state
    the same events give this version: verdicts, performance, the window, a first-N reference
    still being collected, and what follows."""
    settings = Settings.model_validate(make_fixtures.SETTINGS)
    fresh = Engine(settings)
    fresh.ingest_body(make_fixtures.history())
    restored = Engine(settings)
    for model in ("m", "c"):
        restored.restore(model, (FORMATS / f"format-{version}" / f"{model}.state").read_bytes())
    more = ndjson(make_fixtures.events("m", 20, start=110, shift=1.0, seed=3) + make_fixtures.events("c", 50, seed=4))
    for engine in (fresh, restored):
        engine.ingest_body(more)
    for model in ("m", "c"):
        state, again = fresh.models[model], restored.models[model]
        assert again.report.to_dict() == state.report.to_dict(), model
        assert again.performance == state.performance and again.evaluations == state.evaluations
        assert again.reference_frame().equals(state.reference_frame())
        assert again.current_frame().equals(state.current_frame())
        assert len(again.pending) == len(state.pending)


# -- damaged and unknown files --------------------------------------------------------------------


def with_format(checkpoint: bytes, version) -> bytes:
    with np.load(io.BytesIO(checkpoint)) as archive:
        blobs = {key: archive[key] for key in archive.files}
    meta = orjson.loads(blobs["meta"].tobytes())
    meta["format"] = version
    blobs["meta"] = np.frombuffer(orjson.dumps(meta), dtype=np.uint8)
    sink = io.BytesIO()
    np.savez(sink, **blobs)
    return sink.getvalue()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "unknown format"])
def test_an_unreadable_checkpoint_is_moved_aside_once_and_counted(live_server, tmp_path, caplog, damage):
    state_dir = tmp_path / "state"
    server = live_server(SMALL, state_dir=state_dir)
    server.client.post("/v1/events", content=ndjson(traffic("m", 60) + traffic("n", 60)))
    server.stop()
    path = state_dir / "models" / "m.state"
    good = path.read_bytes()
    path.write_bytes({"garbage": b"\x00not a checkpoint" * 10, "truncated": good[: len(good) // 2],
                      "unknown format": with_format(good, 99)}[damage])

    with caplog.at_level(logging.ERROR, logger="driftline.checkpoints"):
        second = live_server(SMALL, state_dir=state_dir)
    [aside] = [p for p in path.parent.iterdir() if p.name.startswith("m.state.corrupt-")]
    assert aside.read_bytes() != good and not path.exists()
    assert any(r.levelno == logging.ERROR and "moved aside" in r.getMessage() for r in caplog.records)
    if damage == "unknown format":
        assert any("format 99 is unknown" in r.getMessage() for r in caplog.records)
    assert second.metric("driftline_state_corrupt_files_total", store="checkpoint") == 1
    assert {s["model"] for s in second.client.get("/v1/models").json()} == {"n"}
    assert readiness(second)[0] == 200
    second.stop()

    caplog.clear()
    third = live_server(SMALL, state_dir=state_dir)  # reported once, not on every start
    assert third.metric("driftline_state_corrupt_files_total", store="checkpoint") == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR and r.name == "driftline.checkpoints"]


@pytest.mark.parametrize("damage", ["not a database", "damaged pages"])
def test_a_damaged_outbox_does_not_stop_start_up(live_server, tmp_path, caplog, damage):
    state_dir = tmp_path / "state"
    server = live_server(SMALL, state_dir=state_dir)
    server.client.post("/v1/events", content=ndjson(traffic("m", 10)))
    for note in range(30):
        assert server.client.post("/v1/models/m/retrain", json={"note": f"{note}" * 500}).status_code == 202
    server.stop()
    outbox = state_dir / "triggers.sqlite"
    if damage == "not a database":
        outbox.write_bytes(b"\x00" * 4096 + b"not sqlite")
    else:
        data = bytearray(outbox.read_bytes())
        assert len(data) > 8 * 4096
        data[2 * 4096:6 * 4096] = b"\xa5" * (4 * 4096)  # pages of the table and its indexes
        outbox.write_bytes(bytes(data))

    with caplog.at_level(logging.ERROR, logger="driftline.webhooks"):
        second = live_server(SMALL, state_dir=state_dir)
    assert readiness(second)[0] == 200
    [aside] = [p for p in state_dir.iterdir() if p.name.startswith("triggers.sqlite.corrupt-")]
    assert any(r.levelno == logging.ERROR and aside.name in r.getMessage() for r in caplog.records)
    assert second.metric("driftline_state_corrupt_files_total", store="outbox") == 1
    assert second.client.get("/v1/triggers").json() == {"triggers": []}
    assert second.client.post("/v1/models/m/retrain").status_code == 202
    assert len(second.client.get("/v1/triggers").json()["triggers"]) == 1


# -- triggers while the outbox cannot write -------------------------------------------------------


def drifting(model: str, start: int, n: int = 20, seed: int = 1):
    return [{**event, "features": {"a": event["features"]["a"] + 5.0, "b": event["features"]["b"]}}
            for event in traffic(model, n, start, seed=seed)]


def test_an_automatic_trigger_starts_its_cooldown_only_once_the_outbox_holds_it(live_server):
    policy = {"reference": {"first_n": 50}, "window": {"size": 20, "step": 20},
              "triggers": {"on": ["data_drift"], "consecutive_windows": 1, "cooldown": "1h"}}
    server = live_server({"models": {"m": policy}})
    server.client.post("/v1/events", content=ndjson(traffic("m", 50)))
    outbox = server.runtime.component("triggers").outbox
    with outbox._lock:
        outbox._db.execute("PRAGMA query_only=1")  # every write now fails, as on a full disk
    server.client.post("/v1/events", content=ndjson(drifting("m", 50)))
    assert server.client.get("/v1/models/m/drift").json()["dataset_drift"] is True
    assert server.metric("driftline_retrain_triggers_total", model="m", reason="data_drift") is None
    assert server.metric("driftline_state_write_failures_total", store="outbox") == 1
    status, body = readiness(server)
    assert status == 503 and any(r.startswith("triggers: the trigger outbox cannot write") for r in body["reasons"])

    with outbox._lock:
        outbox._db.execute("PRAGMA query_only=0")
    assert readiness(server)[0] == 200
    server.client.post("/v1/events", content=ndjson(drifting("m", 70, seed=2)))
    assert server.metric("driftline_retrain_triggers_total", model="m", reason="data_drift") == 1
    [trigger] = server.client.get("/v1/triggers").json()["triggers"]
    assert trigger["reason"] == "data_drift"


def test_an_alert_the_outbox_could_not_take_is_a_503_and_no_duplicate_when_sent_again(live_server):
    server = live_server({"models": {"fraud": {"triggers": {"cooldown": "1h"}}}})
    alert = {"status": "firing", "fingerprint": "f1", "startsAt": "2026-12-01T00:00:00Z",
             "labels": {"alertname": "Drift", "model": "fraud", "driftline_action": "retrain"}}
    body = {"version": "4", "status": "firing", "alerts": [alert]}
    outbox = server.runtime.component("triggers").outbox
    with outbox._lock:
        outbox._db.execute("PRAGMA query_only=1")
    refused = server.client.post("/v1/alertmanager", json=body)
    assert refused.status_code == 503 and refused.headers["retry-after"] == "30"
    assert "outbox cannot write" in refused.json()["ignored"][0]["why"]
    with outbox._lock:
        outbox._db.execute("PRAGMA query_only=0")
    taken = server.client.post("/v1/alertmanager", json=body)  # Alertmanager's retry
    assert taken.status_code == 200 and len(taken.json()["triggered"]) == 1
    assert server.client.post("/v1/alertmanager", json=body).json()["ignored"][0]["why"] == "duplicate"


def test_a_delivery_thread_outlives_an_outbox_that_cannot_record_its_outcome(tmp_path):
    class Broken(httpx.BaseTransport):
        def handle_request(self, request):
            raise RuntimeError("a transport bug")

    outbox = Outbox(tmp_path / "o.sqlite")
    outbox.add({"id": "t1", "model": "m", "reason": "manual"}, "h", None, time.time())
    with outbox._lock:
        outbox._db.execute("PRAGMA query_only=1")
    dispatcher = Dispatcher(outbox, {"h": WebhookConfig.model_validate(hook("http://127.0.0.1:9/"))}, {},
                            transport=Broken())
    dispatcher.start()
    try:
        wait_until("a failed record", lambda: outbox.write_error is not None)
        with outbox._lock:
            outbox._db.execute("PRAGMA query_only=0")
        wait_until("the outcome recorded", lambda: outbox.get("t1")["state"] == "failed", timeout=15)
    finally:
        dispatcher.stop()
        outbox.close()


def test_a_shutdown_save_waits_for_a_round_still_writing(tmp_path, monkeypatch):
    # stop() saves even when the timer's round outlived its join timeout (a slow disk): the
    # two rounds must not write the same model's temporary file at once.
    engine = Engine(Settings.model_validate(SMALL))
    engine.process(engine.validator.decode_body(ndjson(traffic("m1", 30) + traffic("m2", 30))))
    store = checkpoints.FileCheckpoints(engine, tmp_path, 3600)
    store.directory.mkdir(parents=True)
    inside, release, overlaps = threading.Semaphore(0), threading.Event(), []
    writing = []
    real_write = checkpoints.write_atomically

    def slow_write(path, data):
        writing.append(path)
        overlaps.append(len(writing))
        inside.release()
        release.wait(10)
        try:
            real_write(path, data)
        finally:
            writing.remove(path)

    monkeypatch.setattr(checkpoints, "write_atomically", slow_write)
    first = threading.Thread(target=store.save)
    first.start()
    assert inside.acquire(timeout=10)
    with engine.lock:
        engine.dirty.update(engine.models)
    second = threading.Thread(target=store.save)
    second.start()
    second.join(0.5)
    release.set()
    first.join(10)
    second.join(10)
    assert max(overlaps) == 1
    assert sorted(p.name for p in store.directory.iterdir()) == sorted(f"{m}{checkpoints.SUFFIX}"
                                                                      for m in engine.models)


# -- one state store, chosen when the runtime is built --------------------------------------------


def test_the_state_store_is_files_without_a_state_topic_and_the_kafka_changelog_with_one(tmp_path):
    """With ``kafka.state_topic`` every replica's state is in the changelog: a checkpoint file
    left in ``state_dir`` is not restored and nothing is written to files, with no Kafka source
    having to switch the files off."""
    files = {**SMALL, "state_dir": str(tmp_path)}
    runtime = Runtime(Settings.model_validate(files))
    assert isinstance(runtime.state_store, checkpoints.FileCheckpoints) and runtime.changelog is None
    runtime.start()
    runtime.engine.process(runtime.engine.validator.decode_body(ndjson(traffic("m1", 30))))
    runtime.stop()
    assert (tmp_path / "models" / "m1.state").exists()

    kafka = {"bootstrap_servers": "127.0.0.1:9", "topics": ["events"], "state_topic": "state"}
    runtime = Runtime(Settings.model_validate({**files, "kafka": kafka}))
    assert runtime.state_store is runtime.changelog and runtime.changelog.topic == "state"
    runtime.start()
    assert "m1" not in runtime.engine.models
    runtime.engine.process(runtime.engine.validator.decode_body(ndjson(traffic("m2", 30))))
    assert runtime.ready()[1] == []
    runtime.stop()
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["m1.state"]


def test_a_kafka_source_with_a_state_topic_is_given_the_runtimes_changelog(tmp_path):
    kafka = {"bootstrap_servers": "127.0.0.1:9", "topics": ["events"], "state_topic": "state"}
    runtime = Runtime(Settings.model_validate({**SMALL, "state_dir": str(tmp_path), "kafka": kafka}))
    settings = runtime.settings
    with pytest.raises(ValueError, match="changelog"):
        KafkaSource(runtime.engine, settings.kafka, settings.cloudevents, runtime.metrics.consumer_lag, tmp_path)
    source = KafkaSource(runtime.engine, settings.kafka, settings.cloudevents, runtime.metrics.consumer_lag,
                         tmp_path, changelog=runtime.changelog)
    assert source.changelog is runtime.changelog and source.journal_path is None
    without = settings.kafka.model_copy(update={"state_topic": None})
    source = KafkaSource(runtime.engine, without, settings.cloudevents, runtime.metrics.consumer_lag, tmp_path)
    assert source.journal_path == tmp_path / "cloudevents-kafka.sqlite"


class _Delivered:
    def get(self, timeout):
        return types.SimpleNamespace(offset=0)


class _ChangingProducer:
    """A producer during whose send of model ``m`` another thread changes ``m`` (an HTTP
    reference upload landing while the poll thread writes the changelog); ``fail`` makes the
    flush fail, as a broker gone away would."""

    def __init__(self, engine, fail: bool = False):
        self.engine, self.fail, self.keys = engine, fail, []

    def send(self, topic, key=None, value=None, partition=None, headers=None):
        if key == b"m":
            self.engine.set_reference("m", pd.DataFrame({"x": [9.0, 8.0, 7.0] * 10}), "upload-2")
        self.keys.append(key)
        return _Delivered()

    def flush(self, timeout=None):
        if self.fail:
            raise TimeoutError("the broker did not acknowledge")


@pytest.mark.parametrize("fail", [False, True], ids=["written", "write failed"])
def test_a_change_made_while_the_changelog_is_written_stays_marked(fail):
    """The model is marked changed again, for the next write: nothing acknowledged is lost."""
    engine = Engine(Settings())
    engine.set_reference("m", pd.DataFrame({"x": [1.0, 2.0, 3.0] * 10}), "upload-1")
    engine.set_reference("n", pd.DataFrame({"x": [1.0, 2.0, 3.0] * 10}), "upload-1")  # partition 1's, not written
    changelog = Changelog(engine, KafkaConfig(bootstrap_servers="127.0.0.1:9", topics=["in"], state_topic="state"))
    changelog.note(0, {"m"})
    changelog.note(1, {"n"})
    producer = _ChangingProducer(engine, fail)
    no_halves = types.SimpleNamespace(generation={})
    assert changelog.write(producer, no_halves, {0}, {TopicPartition("in", 0): 5}) is not fail
    assert b"m" in producer.keys
    assert engine.take_dirty() == {"m", "n"}
    assert engine.view("m", lambda state: state.reference_source) == "upload-2"
