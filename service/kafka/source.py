"""The Kafka source: a consumer-group member that feeds the engine (see docs/kafka.md).

One background thread polls batches, decodes them (driftline events, or KServe/Seldon
CloudEvents when a record carries ``ce_*`` headers), hands them to the engine, sends
rejected records to the dead-letter topic, and commits input offsets only after that work
is safe (at-least-once).

Per-model state moves with partitions. Producers key records by model name, so all of a
model's events are in one partition number ``p`` of every input topic (co-partitioned;
the range assignor gives a replica the same partition numbers of every topic). State is
checkpointed to partition ``p`` of the compacted ``state_topic``, keyed by model name,
every ``checkpoint_interval`` and when partitions are revoked; then the input offsets are
committed. Each changelog record also carries the input offsets its state includes, so a
replica that restores partition ``p`` skips the replayed records a model's state already
holds: state is applied exactly once even after a crash; only dead letters and the
per-replica Prometheus counters can see a replayed record twice.

KServe/Seldon CloudEvents halves waiting for their partner are part of that state: each
checkpoint writes the pending halves of partition ``p`` with the same input offsets, so a
replica that takes the partition over (after a rebalance or a crash) restores them and the
response it re-reads joins its request. Without ``state_topic`` they are journaled in
``state_dir`` instead (they survive a restart of the same replica, not a partition move).

Changelog record: key = model name (UTF-8), value = ``MAGIC`` + 4-byte header length +
JSON header (``offsets``: {topic: {partition: next offset}}, ``writer``, ``written_at``) +
the engine's snapshot bytes. Key ``OFFSETS_KEY`` holds only a header: the input offsets
up to which partition ``p`` was completely checkpointed. Key ``PENDING_KEY`` holds the
partition's pending CloudEvents halves (:func:`service.ingest.cloudevents.encode_halves`); a
tombstone when none are left.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
import uuid
from collections import defaultdict
from typing import Any, Callable

import orjson
from kafka import ConsumerRebalanceListener

from service.ingest import cloudevents
from service.events import Decoded, Rejection

log = logging.getLogger("driftline.kafka")

MAGIC = b"DLS1"
OFFSETS_KEY = b"\x00offsets"  # no model name can be this (see events.MODEL_NAME)
PENDING_KEY = b"\x00cloudevents"
_HEADER = struct.Struct(">I")
# A model's state holds its windows and the predictions waiting for labels (up to
# labels.max_pending): megabytes. The changelog topic is created to accept records this big.
MAX_STATE_BYTES = 64 * 1024 * 1024
BOOTSTRAP_TIMEOUT_MS = 3000


def encode_state(header: dict, state: bytes = b"") -> bytes:
    head = orjson.dumps(header)
    return MAGIC + _HEADER.pack(len(head)) + head + state


def decode_state(value: bytes) -> tuple[dict, bytes]:
    if not value.startswith(MAGIC):
        raise ValueError("not a driftline changelog record")
    (size,) = _HEADER.unpack_from(value, len(MAGIC))
    start = len(MAGIC) + _HEADER.size
    return orjson.loads(value[start:start + size]), value[start + size:]


def client_options(config) -> dict[str, Any]:
    """Connection options shared by the consumer, producer and admin client."""
    options: dict[str, Any] = {
        "bootstrap_servers": [s.strip() for s in config.bootstrap_servers.split(",") if s.strip()],
        "security_protocol": config.security_protocol,
        "reconnect_backoff_ms": 100,
        "reconnect_backoff_max_ms": 2000,
        # Each client waits this long for a first broker, then the source backs off and tries
        # again; short, so that stopping while the broker is down takes seconds, not 30.
        "bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS,
    }
    if config.sasl_mechanism:
        options["sasl_mechanism"] = config.sasl_mechanism
        if config.sasl_username_env:
            options["sasl_plain_username"] = os.environ.get(config.sasl_username_env)
        if config.sasl_password_env:
            options["sasl_plain_password"] = os.environ.get(config.sasl_password_env)
    if config.ssl_cafile:
        options["ssl_cafile"] = config.ssl_cafile
    return options


class KafkaSource:
    """A runtime component (``start``/``stop``/``ready``) consuming the configured topics."""

    name = "kafka"

    def __init__(self, runtime):
        self.runtime = runtime
        self.engine = runtime.engine
        self.config = runtime.settings.kafka
        self.lag_gauge = runtime.metrics.consumer_lag
        self.changelog = self.config.state_topic
        if self.changelog:
            # State lives in the changelog topic; file checkpoints would fight over it.
            runtime.file_checkpoints = False
        self.cloudevents_config = runtime.settings.cloudevents
        # Without a changelog, pending halves are journaled here (opened in start: the runtime
        # creates state_dir first).
        self.journal_path = None if self.changelog else runtime.settings.state_dir / "cloudevents-kafka.sqlite"
        self.joiner: cloudevents.CloudEventJoiner | None = None
        runtime.metrics.watch_cloudevents("kafka", lambda: self.joiner)
        # partition number -> the joiner's generation of its halves last written to the changelog
        self._pending_written: dict[int, int] = {}
        self.writer = uuid.uuid4().hex[:12]
        self.batch_listeners: list[Callable[[list, float], None]] = []  # (records, processed_at); benchmarks
        self._consumer = None
        self._producer = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Held by the poll thread while it processes or checkpoints, and by the rebalance
        # callbacks (on kafka-python's IO thread), so a checkpoint never sees half a batch.
        self._work = threading.Lock()
        self._ready = False
        self._reason = "starting"
        self._broker_failing = False  # the last attempt to reach the broker failed
        self._last_ok = time.monotonic()
        self._silence_limit = max(10.0, 5 * self.config.lag_interval)
        # tp -> next offset to process (all below are in the engine's state)
        self._applied: dict[Any, int] = {}
        self._committed: dict[Any, int] = {}
        self._assigned: set = set()
        # partition number -> models whose events came from it; what to checkpoint and drop
        self._partition_models: dict[int, set[str]] = defaultdict(set)
        # partition number -> changelog end offset after our last write (None: never written)
        self._changelog_end: dict[int, int] = {}
        self._held: set[int] = set()  # partition numbers whose state this replica holds
        self._marked: dict[int, dict] = {}  # partition -> offsets in the last OFFSETS_KEY record written
        # Replay after a restore: model -> {(topic, partition): offset}; a record of the model
        # below that offset is already in the restored state.
        self._skip: dict[str, dict[tuple[str, int], int]] = {}
        self._skip_end: dict[tuple[str, int], int] = {}
        self._pending_assignment: list | None = None
        self._lost: set[int] = set()
        self._last_checkpoint = time.monotonic()
        self._last_lag = 0.0
        self.records = 0  # records consumed (tests, benchmarks)
        self.skipped = 0  # replayed records already in restored state
        self.dead_letters = 0
        self._dead_inflight: list = []
        self._dead_backlog: list = []

    # -- component ----------------------------------------------------------------------

    def start(self) -> None:
        config = self.cloudevents_config
        journal = None
        if self.journal_path is not None:
            journal, error = cloudevents.open_journal(self.journal_path)
            if journal is None:  # a full disk: halves wait in memory only, as with a state topic lost
                log.error("kafka source: CloudEvents journal %s cannot be opened (%s); pending halves are kept "
                          "in memory only", self.journal_path, error)
        self.joiner = cloudevents.CloudEventJoiner(self.engine.validator, ttl=config.ttl,
                                                   max_pending=config.max_pending,
                                                   max_pending_bytes=config.max_pending_bytes, journal=journal)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="driftline-kafka", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            # Connected: wait for the final checkpoint. Not connected, or the broker away: there is
            # nothing to checkpoint, and the thread may be blocked in a client call (a bootstrap,
            # an offsets request) that the stop flag cannot interrupt; it is a daemon thread.
            healthy = self._consumer is not None and not self._broker_failing
            self._thread.join(timeout=30 if healthy else 1)
        self._thread = None
        if self.joiner is not None and self.joiner.journal is not None:
            self.joiner.journal.close()

    def ready(self) -> tuple[bool, str]:
        if not self._ready:
            return False, self._reason
        silent = time.monotonic() - self._last_ok
        if silent > self._silence_limit:
            # The poll thread is stuck (e.g. waiting on an unreachable broker): not ready.
            return False, f"broker {self.config.bootstrap_servers} unreachable: no answer for {silent:.0f}s"
        return True, "connected"

    # -- the loop -----------------------------------------------------------------------

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                if self._consumer is None:
                    self._open()
                records = self._consumer.poll(timeout_ms=int(self.config.poll_timeout * 1000),
                                              max_records=self.config.max_poll_records)
                if self._pending_assignment is not None:
                    self._apply_assignment()
                    continue  # positions may have moved: drop what this poll fetched
                if records:
                    with self._work:
                        self._handle(records)
                    self._last_ok = time.monotonic()
                    self._ready, self._reason, self._broker_failing = True, "connected", False
                with self._work:
                    self._expire_cloudevents()
                now = time.monotonic()
                if (self.changelog and self._ready
                        and now - self._last_checkpoint >= self.config.checkpoint_interval):
                    with self._work:
                        self._checkpoint()
                if now - self._last_lag >= self.config.lag_interval:
                    self._last_lag = now
                    self._probe()
                backoff = 0.5
            except Exception as exc:  # the loop never dies: log, back off, reconnect
                self._ready, self._broker_failing = False, True
                self._reason = f"broker {self.config.bootstrap_servers} unreachable: {_describe(exc)}"
                # service.logs throttles this line while the broker stays away.
                log.warning("kafka source: %s; retrying", self._reason, exc_info=not isinstance(exc, _kafka_error()))
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
        self._close(checkpoint=True)

    def _open(self) -> None:
        from kafka import KafkaConsumer, KafkaProducer  # noqa: PLC0415
        from kafka.coordinator.assignors.range import RangePartitionAssignor  # noqa: PLC0415

        options = client_options(self.config)
        if self._reason == "starting":
            self._reason = f"connecting to {self.config.bootstrap_servers}"
        session_ms = int(self.config.session_timeout * 1000)
        self._producer = KafkaProducer(
            **options, client_id=f"{self.config.client_id}-producer", acks="all", linger_ms=5,
            max_block_ms=10_000, request_timeout_ms=10_000, delivery_timeout_ms=30_000,
            max_request_size=MAX_STATE_BYTES)
        try:
            self._ensure_topics()
        except Exception:
            self._producer.close(timeout=1)
            self._producer = None
            raise
        consumer = KafkaConsumer(
            **options, client_id=self.config.client_id, group_id=self.config.group_id,
            enable_auto_commit=False, auto_offset_reset=self.config.auto_offset_reset,
            max_poll_records=self.config.max_poll_records,
            session_timeout_ms=session_ms, heartbeat_interval_ms=max(500, session_ms // 4),
            request_timeout_ms=max(15_000, session_ms + 5_000),
            max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024,
            partition_assignment_strategy=[RangePartitionAssignor])
        consumer.subscribe(self.config.topics, listener=_Listener(self))
        self._consumer = consumer
        self._broker_failing = False
        self._reason = "joining the consumer group"
        log.info("kafka source: consuming %s as group %s from %s", ",".join(self.config.topics),
                 self.config.group_id, self.config.bootstrap_servers)

    def _close(self, checkpoint: bool) -> None:
        consumer, producer = self._consumer, self._producer
        self._consumer = None
        # With the broker away a final checkpoint would only wait out its timeouts; the input
        # since the last checkpoint is replayed instead (at-least-once, see docs/kafka.md).
        reachable = not self._broker_failing
        if consumer is not None:
            try:
                if not reachable:
                    log.warning("kafka source: broker unreachable at stop; input since the last checkpoint "
                                "will be read again")
                elif checkpoint and self.changelog:
                    self._checkpoint()
                elif checkpoint:
                    self._commit()
            except Exception as exc:
                log.warning("kafka source: final checkpoint failed: %s", exc)
            try:
                consumer.close(autocommit=False, timeout_ms=5000 if reachable else 1000)
            except Exception:
                log.debug("closing the consumer failed", exc_info=True)
        if producer is not None:
            try:
                producer.close(timeout=5 if reachable else 1)
            except Exception:
                log.debug("closing the producer failed", exc_info=True)
            self._producer = None
        for tp in list(self._assigned):
            _remove_lag(self.lag_gauge, tp)
        self._assigned = set()
        self._ready, self._reason = False, "stopped"

    def publish_trigger(self, payload: dict) -> None:
        """A trigger sink: every retraining trigger also goes to ``kafka.trigger_topic``, keyed
        by model, for pipelines that listen on Kafka. Raising makes the trigger manager offer
        the trigger again later (at-least-once)."""
        producer = self._producer
        if producer is None:
            raise ConnectionError("not connected to Kafka yet; the trigger will be published when it is")
        future = producer.send(self.config.trigger_topic, key=str(payload["model"]).encode(),
                               value=orjson.dumps(payload), headers=[("type", str(payload.get("type", "")).encode())])
        future.get(timeout=15)

    def _ensure_topics(self) -> None:
        """Create the changelog (compacted, as many partitions as the widest input topic) and the
        dead-letter topic when missing. Best effort: a broker that auto-creates topics, or an
        operator who created them, makes this a no-op."""
        from kafka.admin import KafkaAdminClient, NewPartitions, NewTopic  # noqa: PLC0415
        from kafka.errors import TopicAlreadyExistsError  # noqa: PLC0415

        admin = KafkaAdminClient(**client_options(self.config), client_id=f"{self.config.client_id}-admin",
                                 request_timeout_ms=10_000)
        try:
            existing = set(admin.list_topics())
            widths = {}
            described = admin.describe_topics([t for t in self.config.topics if t in existing]) if existing else []
            for topic in described:
                widths[topic.get("name") or topic.get("topic")] = len(topic.get("partitions") or [])
            width = max(widths.values(), default=1) or 1
            wanted = []
            if self.changelog and self.changelog not in existing:
                wanted.append(NewTopic(self.changelog, width, 1, topic_configs={
                    "cleanup.policy": "compact", "min.compaction.lag.ms": "0", "segment.ms": "600000",
                    "max.message.bytes": str(MAX_STATE_BYTES)}))
            for topic in (self.config.dead_letter_topic, self.config.trigger_topic):
                if topic and topic not in existing:
                    wanted.append(NewTopic(topic, 1, 1))
            for topic in wanted:
                try:
                    admin.create_topics([topic])
                except TopicAlreadyExistsError:
                    pass
            if self.changelog and self.changelog in existing:
                (info,) = admin.describe_topics([self.changelog])
                have = len(info.get("partitions") or [])
                if have < width:
                    admin.create_partitions({self.changelog: NewPartitions(width)})
                    log.warning("kafka source: %s grown to %d partitions to match the input", self.changelog, width)
        finally:
            admin.close()

    # -- batches ------------------------------------------------------------------------

    def _handle(self, records: dict) -> None:
        received_at = time.time()
        for tp, batch in records.items():
            if not batch:
                continue
            key = (tp.topic, tp.partition)
            if self._skip_end.get(key, -1) > batch[0].offset:
                batch = self._drop_replayed(key, batch)
                if not batch:
                    self._applied[tp] = records[tp][-1].offset + 1
                    continue
            plain, plain_records, cloud = [], [], []
            for record in batch:
                if record.headers and cloudevents.is_cloudevent(record.headers):
                    cloud.append(record)
                else:
                    plain.append(record.value)
                    plain_records.append(record)
            decoded = self.engine.validator.decode_records(plain, received_at) if plain else Decoded()
            dead = [(plain_records[r.index], r) for r in decoded.rejected]
            for record in cloud:
                one = cloudevents.decode_kafka(self.joiner, record.headers, record.value, received_at, tp.partition)
                if one.rejected:
                    dead.append((record, one.rejected[0]))
                decoded.predictions += one.predictions
                decoded.labels += one.labels
                decoded.infra += one.infra
                decoded.rejected += one.rejected
            self.engine.process(decoded)
            if self.changelog:
                self._partition_models[tp.partition].update(decoded.models)
            for record, rejection in dead:
                self._dead_letter(record, rejection)
            self._applied[tp] = batch[-1].offset + 1
            self.records += len(batch)
        if not self.changelog:
            self._commit()
        processed_at = time.time()
        for listener in self.batch_listeners:
            listener(records, processed_at)

    def _drop_replayed(self, key: tuple[str, int], batch: list) -> list:
        """Records of the replay window whose model state already includes them are skipped."""
        end = self._skip_end[key]
        kept = []
        for record in batch:
            if record.offset >= end:
                kept.append(record)
                continue
            model = _model_of(record)
            below = self._skip.get(model, {}).get(key) if model is not None else None
            if below is not None and record.offset < below:
                self.skipped += 1
            else:
                kept.append(record)
        if batch[-1].offset + 1 >= end:
            self._skip_end.pop(key, None)
            for offsets in self._skip.values():
                offsets.pop(key, None)
        return kept

    def _dead_letter(self, record, rejection: Rejection) -> None:
        self.dead_letters += 1
        topic = self.config.dead_letter_topic
        if not topic:
            return
        headers = [("reason", rejection.reason.encode()), ("detail", rejection.detail[:1000].encode()),
                   ("origin_topic", record.topic.encode()), ("origin_partition", str(record.partition).encode()),
                   ("origin_offset", str(record.offset).encode()),
                   ("origin_timestamp", str(record.timestamp).encode())]
        headers += [(k, v) for k, v in (record.headers or []) if k.lower().startswith("ce")]
        self._send_dead_letter((topic, record.value, record.key, headers))

    def _send_dead_letter(self, message: tuple) -> None:
        topic, value, key, headers = message
        try:
            future = self._producer.send(topic, value=value, key=key, headers=headers)
        except Exception as exc:  # broker away: retried before the next commit
            log.info("kafka source: dead letter postponed: %s", exc)
            self._dead_backlog.append(message)
            return
        self._dead_inflight.append((future, message))

    def _dead_letters_delivered(self) -> bool:
        """Flush the dead letters; True when every one is acknowledged (else they are resent later)."""
        if not self._dead_inflight and not self._dead_backlog:
            return True
        backlog, self._dead_backlog = self._dead_backlog, []
        for message in backlog:
            self._send_dead_letter(message)
        self._producer.flush(timeout=15)
        inflight, self._dead_inflight = self._dead_inflight, []
        for future, message in inflight:
            if not future.is_done:
                self._dead_inflight.append((future, message))
            elif future.failed():
                self._dead_backlog.append(message)
        return not self._dead_inflight and not self._dead_backlog

    def _expire_cloudevents(self) -> None:
        if len(self.joiner):
            for partition, decoded in self.joiner.expire().items():
                self.engine.process(decoded)
                if self.changelog and partition is not None:
                    self._partition_models[partition].update(decoded.models)

    # -- offsets, checkpoints -----------------------------------------------------------

    def _commit(self) -> None:
        from kafka.structs import OffsetAndMetadata  # noqa: PLC0415

        offsets = {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in self._applied.items()
                   if tp in self._assigned and self._committed.get(tp) != offset}
        if not offsets:
            return
        if not self._dead_letters_delivered():
            log.info("kafka source: dead letters not yet delivered; commit postponed")
            return
        try:
            self._consumer.commit(offsets)
        except Exception as exc:
            # Rebalancing, or the broker is away: the next commit covers these offsets.
            log.info("kafka source: commit postponed: %s", exc)
            return
        for tp, meta in offsets.items():
            self._committed[tp] = meta.offset

    def _write_changelog(self, partitions: set[int]) -> bool:
        """Snapshot the dirty models of ``partitions`` and an offsets marker per partition, flush.
        Returns False (models stay dirty) when the broker did not take them."""
        with self.engine.lock:
            dirty = set(self.engine.dirty)
        written_models: list[str] = []
        futures: list = []
        offsets_by_partition: dict[int, dict] = {}
        pending_generations: dict[int, int] = {}
        try:
            self._send_changelog(partitions, dirty, written_models, futures, offsets_by_partition, pending_generations)
        except Exception as exc:  # too big, broker away for longer than max_block_ms
            log.warning("kafka source: changelog write failed, input offsets not committed: %s", exc)
            return False
        if not futures:
            return True
        if not self._await_changelog(written_models, futures, offsets_by_partition):
            return False
        self._pending_written.update(pending_generations)
        return True

    def _send_changelog(self, partitions, dirty, written_models, futures, offsets_by_partition,
                        pending_generations) -> None:
        for p in partitions:
            offsets: dict[str, dict[str, int]] = defaultdict(dict)
            for tp, offset in self._applied.items():
                if tp.partition == p:
                    offsets[tp.topic][str(p)] = offset
            offsets_by_partition[p] = offsets
            header = {"offsets": offsets, "writer": self.writer, "written_at": time.time()}
            for model in sorted(self._partition_models.get(p, ())):
                if model not in dirty:
                    continue
                try:
                    state = self.engine.snapshot(model)
                except KeyError:
                    continue
                futures.append((p, self._producer.send(self.changelog, key=model.encode(),
                                                       value=encode_state(header, state), partition=p)))
                written_models.append(model)
            generation = self.joiner.generation.get(p, 0)
            if generation != self._pending_written.get(p, 0):
                # Written with the same offsets as the models: a new owner restores the halves
                # pending at exactly the point from which it re-reads the input.
                halves = self.joiner.export(p)
                value = None if halves is None else encode_state(header, halves)
                futures.append((p, self._producer.send(self.changelog, key=PENDING_KEY, value=value, partition=p)))
                pending_generations[p] = generation
            if offsets and (written_models or self._marked.get(p) != offsets):
                futures.append((p, self._producer.send(self.changelog, key=OFFSETS_KEY,
                                                       value=encode_state(header), partition=p)))

    def _await_changelog(self, written_models, futures, offsets_by_partition) -> bool:
        with self.engine.lock:
            self.engine.dirty.difference_update(written_models)
        try:
            self._producer.flush(timeout=15)
            ends = {}
            for p, future in futures:
                metadata = future.get(timeout=1)
                ends[p] = max(ends.get(p, -1), metadata.offset + 1)
        except Exception as exc:
            with self.engine.lock:
                self.engine.dirty.update(written_models)
            log.warning("kafka source: changelog write failed, input offsets not committed: %s", exc)
            return False
        self._changelog_end.update(ends)
        for p in ends:
            self._marked[p] = offsets_by_partition[p]
        return True

    def _checkpoint(self) -> None:
        self._last_checkpoint = time.monotonic()
        partitions = {tp.partition for tp in self._assigned} & self._held
        if self._write_changelog(partitions):
            self._commit()

    # -- rebalances (the listener runs on the consumer's IO thread) ----------------------

    def _on_revoked(self, revoked) -> None:
        """Checkpoint the state of the revoked partitions before anyone else restores it.
        Input offsets are committed later from the poll thread; the changelog's own offsets
        tell a new owner which replayed records to skip."""
        if not self.changelog:
            return
        partitions = {tp.partition for tp in revoked} & self._held
        if partitions and self._producer is not None:
            self._write_changelog(partitions)

    def _on_lost(self, lost) -> None:
        # Evicted from the group (e.g. the broker was away longer than the session): another
        # replica may own these partitions now, and writing our state could overwrite theirs.
        # Stop checkpointing them; the next assignment decides whether our state is still the
        # newest (nobody wrote their changelog since us) or must be restored.
        self._lost |= {tp.partition for tp in lost}
        self._assigned = self._assigned - set(lost)
        for tp in lost:
            _remove_lag(self.lag_gauge, tp)

    def _on_assigned(self, assigned) -> None:
        # Blocking work (restoring state) happens on the poll thread; until then fetch nothing.
        self._pending_assignment = list(assigned)
        if assigned:
            self._consumer.pause(*assigned)

    def _apply_assignment(self) -> None:
        """Restore and position newly assigned partitions (on the poll thread). On failure the
        assignment stays pending and is retried; its partitions stay paused meanwhile."""
        pending = self._pending_assignment
        assigned = set(pending or [])
        previous = self._assigned
        for tp in previous - assigned:
            _remove_lag(self.lag_gauge, tp)
            self._applied.pop(tp, None)
            self._committed.pop(tp, None)
        self._assigned = assigned
        if not self.changelog:
            for tp in assigned:
                if tp in previous and tp in self._applied:
                    self._consumer.seek(tp, self._applied[tp])
                else:
                    self._position(tp, None)
            self._resume(assigned, pending)
            return
        partitions = {tp.partition for tp in assigned}
        # Partitions this replica no longer has: forget their models.
        for p in self._held - partitions:
            self._drop_partition(p)
        ends = self._changelog_ends(partitions)
        for p in sorted(partitions):
            ours = p in self._held and ends.get(p, 0) == self._changelog_end.get(p, 0)
            if ours:
                # Nobody wrote this partition's changelog since us: our state is the newest.
                for tp in assigned:
                    if tp.partition == p:
                        if tp in self._applied:
                            self._consumer.seek(tp, self._applied[tp])
                        else:
                            self._position(tp, None)
                continue
            if p in self._held:
                self._drop_partition(p)
            self._restore_partition(p, [tp for tp in assigned if tp.partition == p], ends.get(p, 0))
        self._lost.clear()
        for tp in [tp for tp in self._applied if tp not in assigned]:
            del self._applied[tp]
            self._committed.pop(tp, None)
        self._resume(assigned, pending)

    def _resume(self, assigned, pending) -> None:
        if self._pending_assignment is pending:  # not replaced by a newer rebalance meanwhile
            self._pending_assignment = None
        if assigned:
            self._consumer.resume(*assigned)
        self._ready, self._reason = True, "connected"
        self._last_lag = 0.0

    def _drop_partition(self, p: int) -> None:
        for model in self._partition_models.pop(p, set()):
            if not any(model in models for models in self._partition_models.values()):
                self.engine.drop(model)
                with self.engine.lock:
                    self.engine.dirty.discard(model)
                self._skip.pop(model, None)
        self.joiner.drop(p)
        self._pending_written.pop(p, None)
        self._held.discard(p)
        self._changelog_end.pop(p, None)
        self._marked.pop(p, None)

    def _changelog_ends(self, partitions: set[int]) -> dict[int, int]:
        from kafka.structs import TopicPartition  # noqa: PLC0415

        if not partitions:
            return {}
        tps = [TopicPartition(self.changelog, p) for p in partitions]
        ends = self._consumer.end_offsets(tps, timeout_ms=15_000)
        return {tp.partition: offset for tp, offset in ends.items()}

    def _restore_partition(self, p: int, input_tps: list, end: int) -> None:
        """Read changelog partition ``p`` to its end; restore its models; position the input."""
        from kafka import KafkaConsumer  # noqa: PLC0415
        from kafka.structs import TopicPartition  # noqa: PLC0415

        latest: dict[bytes, bytes] = {}
        if end > 0:
            reader = KafkaConsumer(**client_options(self.config), client_id=f"{self.config.client_id}-restore",
                                   group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
                                   max_partition_fetch_bytes=16 * 1024 * 1024)
            try:
                tp = TopicPartition(self.changelog, p)
                reader.assign([tp])
                reader.seek_to_beginning(tp)
                deadline = time.monotonic() + 120
                while reader.position(tp, timeout_ms=10_000) < end:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"restoring {self.changelog}[{p}] took over 120s")
                    for records in reader.poll(timeout_ms=500).values():
                        for record in records:
                            if record.value is None:
                                latest.pop(record.key, None)
                            else:
                                latest[record.key] = record.value
            finally:
                reader.close(autocommit=False)
        marker: dict = {}
        restored = 0
        models = self._partition_models[p]
        for key, value in latest.items():
            try:
                header, state = decode_state(value)
            except (ValueError, struct.error, orjson.JSONDecodeError) as exc:
                log.error("kafka source: changelog record %r of partition %d unreadable: %s", key, p, exc)
                continue
            if key == OFFSETS_KEY:
                marker = header.get("offsets", {})
                continue
            if key == PENDING_KEY:
                try:
                    halves = self.joiner.restore(state, origin=p)
                except (ValueError, TypeError, struct.error, orjson.JSONDecodeError) as exc:
                    log.error("kafka source: pending CloudEvents of partition %d unreadable: %s", p, exc)
                    continue
                self._pending_written[p] = self.joiner.generation.get(p, 0)
                log.info("kafka source: restored %d pending CloudEvents half(s) from %s[%d]", halves, self.changelog, p)
                continue
            model = key.decode("utf-8", "replace")
            try:
                self.engine.restore(model, state)
            except Exception as exc:
                log.error("kafka source: state of %s unreadable, starting it afresh: %s", model, exc)
                continue
            restored += 1
            models.add(model)
            offsets = {(topic, int(part)): offset for topic, parts in header.get("offsets", {}).items()
                       for part, offset in parts.items()}
            self._skip[model] = offsets
            for key2, offset in offsets.items():
                if offset > self._skip_end.get(key2, -1):
                    self._skip_end[key2] = offset
        with self.engine.lock:
            self.engine.dirty.difference_update(models)
        self._held.add(p)
        self._changelog_end[p] = end
        # Start after the last complete checkpoint when the committed offset is behind it.
        for tp in input_tps:
            self._position(tp, marker.get(tp.topic, {}).get(str(p)))
        if restored:
            log.info("kafka source: restored %d model(s) from %s[%d]", restored, self.changelog, p)

    def _position(self, tp, checkpointed: int | None) -> None:
        """Seek a newly assigned partition to max(committed, checkpointed), else per auto_offset_reset."""
        committed = self._consumer.committed(tp, timeout_ms=10_000)
        known = [x for x in (committed, checkpointed) if x is not None]
        if known:
            self._consumer.seek(tp, max(known))
            self._applied[tp] = max(known)
        elif self.config.auto_offset_reset == "earliest":
            self._consumer.seek_to_beginning(tp)
        else:
            self._consumer.seek_to_end(tp)

    # -- lag and health -----------------------------------------------------------------

    def _probe(self) -> None:
        """Refresh the lag gauge; readiness follows whether the broker answered."""
        consumer = self._consumer
        if consumer is None:
            return
        assigned = list(self._assigned)
        try:
            if assigned:
                ends = consumer.end_offsets(assigned, timeout_ms=5000)
                for tp in assigned:
                    position = self._applied.get(tp)
                    if position is None:
                        position = consumer.position(tp, timeout_ms=5000)
                    self.lag_gauge.labels(topic=tp.topic, partition=str(tp.partition)).set(
                        max(0, ends.get(tp, position) - position))
            else:
                consumer.topics()  # a metadata round trip
        except Exception as exc:
            self._ready, self._broker_failing = False, True
            self._reason = f"broker {self.config.bootstrap_servers} unreachable: {_describe(exc)}"
            return
        self._broker_failing = False
        self._last_ok = time.monotonic()
        if self._pending_assignment is None:
            self._ready, self._reason = True, "connected"


class _Listener(ConsumerRebalanceListener):
    """kafka-python rebalance listener; delegates to the source."""

    def __init__(self, source: KafkaSource):
        self.source = source

    def on_partitions_revoked(self, revoked):
        # Normally the poll thread is inside poll() now and the lock is free; the timeout
        # only guards against a checkpoint waiting on this very IO thread.
        locked = self.source._work.acquire(timeout=15)
        try:
            self.source._on_revoked(revoked)
        except Exception:
            log.exception("kafka source: checkpoint on revocation failed")
        finally:
            if locked:
                self.source._work.release()

    def on_partitions_assigned(self, assigned):
        self.source._on_assigned(assigned)

    def on_partitions_lost(self, lost):
        self.source._on_lost(lost)


def _model_of(record) -> str | None:
    """The model a record belongs to: its JSON ``model``, or its CloudEvent's model."""
    if record.headers and cloudevents.is_cloudevent(record.headers):
        return cloudevents.model_of(record.headers, record.value)
    try:
        event = orjson.loads(record.value)
    except (orjson.JSONDecodeError, TypeError):
        return None
    model = event.get("model") if isinstance(event, dict) else None
    return model if isinstance(model, str) else None


def _remove_lag(gauge, tp) -> None:
    try:
        gauge.remove(tp.topic, str(tp.partition))
    except KeyError:
        pass


def _describe(exc: BaseException) -> str:
    """``Name: message``; kafka-python's errors already start with their name."""
    text = str(exc)
    name = type(exc).__name__
    return text if text.startswith(name) else f"{name}: {text}" if text else name


def _kafka_error() -> tuple[type, ...]:
    from kafka.errors import KafkaError  # noqa: PLC0415

    return (KafkaError, ConnectionError, TimeoutError)
