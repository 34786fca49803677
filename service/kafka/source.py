"""The Kafka source: a consumer-group member that feeds the engine (see docs/kafka.md).

One background thread polls batches, decodes them (driftline events, or KServe/Seldon
CloudEvents when a record carries ``ce_*`` headers), hands them to the engine, sends
rejected records to the dead-letter topic, and commits input offsets only after that work
is safe (at-least-once). With ``kafka.state_topic`` it also checkpoints per-model state and
pending halves to the changelog and restores them with partitions
(:mod:`service.kafka.changelog`); without, halves are journaled in ``state_dir``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from detectors import stattests
from service.config import CloudEventsConfig, KafkaConfig
from service.core.engine import Engine
from service.core.events import Decoded
from service.ingest import cloudevents
from service.ingest.joiner import CloudEventJoiner, decode_kafka
from service.ingest.journal import open_journal
from service.kafka.changelog import Changelog
from service.kafka.clients import Consumer, Producer, load_client
from service.kafka.dead_letters import DeadLetters
from service.kafka.lag import measure_lag, remove_lag

__all__ = ["KafkaSource"]

log = logging.getLogger("driftline.kafka")


class KafkaSource:
    """A runtime component (``start``/``stop``/``ready``) consuming ``config.topics``.

    ``changelog`` is the runtime's state store when ``config.state_topic`` is set (the source
    writes and restores it), None when per-model state is in files."""

    name = "kafka"

    def __init__(self, engine: Engine, config: KafkaConfig, cloudevents_config: CloudEventsConfig, lag_gauge,
                 state_dir: Path, changelog: Changelog | None = None):
        if bool(config.state_topic) != (changelog is not None):
            raise ValueError("a Kafka source with kafka.state_topic needs its changelog, and only then")
        self.engine = engine
        self.config = config
        self.client = load_client(config)
        self.cloudevents_config = cloudevents_config
        self.lag_gauge = lag_gauge
        self.changelog = changelog
        # Without a changelog, pending halves are journaled here (opened in start: the runtime
        # creates state_dir first).
        self.journal_path = None if changelog is not None else state_dir / "cloudevents-kafka.sqlite"
        self.joiner: CloudEventJoiner | None = None
        self.dead_letters = DeadLetters(config.dead_letter_topic)
        self.batch_listeners: list[Callable[[dict, float], None]] = []  # (records, processed_at); benchmarks
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Held by the poll thread while it processes or checkpoints, and by the revocation
        # callback, so a checkpoint never sees half a batch.
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
        self._pending_assignment: list | None = None
        self._last_checkpoint = time.monotonic()
        self._last_lag = 0.0
        self.records = 0  # records consumed (tests, benchmarks)
        self.skipped = 0  # replayed records already in restored state

    # -- component ----------------------------------------------------------------------

    def start(self) -> None:
        config = self.cloudevents_config
        journal = None
        if self.journal_path is not None:
            journal, error = open_journal(self.journal_path)
            if journal is None:  # a full disk: halves wait in memory only, as with a state topic lost
                log.error("kafka source: CloudEvents journal %s cannot be opened (%s); pending halves are kept "
                          "in memory only", self.journal_path, error)
        self.joiner = CloudEventJoiner(self.engine.validator, ttl=config.ttl, max_pending=config.max_pending,
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

    # The poll thread works between _open and _close (and after start): these are its clients
    # and joiner, which every method below may take as present.

    @property
    def consumer(self) -> Consumer:
        if self._consumer is None:
            raise RuntimeError("kafka source: the consumer is used while not connected")
        return self._consumer

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            raise RuntimeError("kafka source: the producer is used while not connected")
        return self._producer

    @property
    def halves(self) -> CloudEventJoiner:
        if self.joiner is None:
            raise RuntimeError("kafka source: the CloudEvents joiner is used before start()")
        return self.joiner

    # -- the loop -----------------------------------------------------------------------

    def _run(self) -> None:
        # SciPy's statistics, whose import would stall the stream ~0.7 s at the first KS test,
        # load before the replica joins its group; here, not on a thread of their own beside
        # kafka-python's while those join (a CI run under load saw two joins go wrong so).
        stattests.load_scipy()
        backoff = 0.5
        while not self._stop.is_set():
            try:
                if self._consumer is None:
                    self._open()
                records = self.consumer.poll(self.config.poll_timeout, self.config.max_poll_records)
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
                if (self.changelog is not None and self._ready
                        and now - self._last_checkpoint >= self.config.checkpoint_interval):
                    with self._work:
                        self._checkpoint()
                if now - self._last_lag >= self.config.lag_interval:
                    self._last_lag = now
                    self._probe()
                backoff = 0.5
            except Exception as exc:  # the loop never dies: log, back off, reconnect
                self._ready, self._broker_failing = False, True
                self._reason = f"broker {self.config.bootstrap_servers} unreachable: {self.client.describe_error(exc)}"
                # service.observability.logs throttles this line while the broker stays away.
                log.warning("kafka source: %s; retrying", self._reason,
                            exc_info=not isinstance(exc, self.client.expected_errors()))
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
        self._close(checkpoint=True)

    def _open(self) -> None:
        if self._reason == "starting":
            self._reason = f"connecting to {self.config.bootstrap_servers}"
        self._producer = self.client.open_producer(self.config)
        try:
            self.client.ensure_topics(self.config)
        except Exception:
            self._producer.close(timeout=1)
            self._producer = None
            raise
        self._consumer = self.client.open_consumer(self.config, self._on_assigned, self._on_revoked_locked,
                                                   self._on_lost)
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
                elif checkpoint and self.changelog is not None:
                    self._checkpoint()
                elif checkpoint:
                    self._commit()
            except Exception as exc:
                log.warning("kafka source: final checkpoint failed: %s", exc)
            try:
                consumer.close(timeout=5 if reachable else 1)
            except Exception:
                log.debug("closing the consumer failed", exc_info=True)
        if producer is not None:
            try:
                producer.close(timeout=5 if reachable else 1)
            except Exception:
                log.debug("closing the producer failed", exc_info=True)
            self._producer = None
        for tp in list(self._assigned):
            remove_lag(self.lag_gauge, tp)
        self._assigned = set()
        self._ready, self._reason = False, "stopped"

    def publish_trigger(self, payload: dict) -> None:
        """A trigger sink: every retraining trigger also goes to ``kafka.trigger_topic``, keyed
        by model, for pipelines that listen on Kafka. Raising makes the trigger manager offer
        the trigger again later (at-least-once)."""
        producer, topic = self._producer, self.config.trigger_topic
        if topic is None:  # server.build_app adds this sink only with a trigger topic
            raise ValueError("kafka.trigger_topic is not set")
        if producer is None:
            raise ConnectionError("not connected to Kafka yet; the trigger will be published when it is")
        future = producer.send(topic, key=str(payload["model"]).encode(),
                               value=orjson.dumps(payload), headers=[("type", str(payload.get("type", "")).encode())])
        future.get(timeout=15)

    # -- batches ------------------------------------------------------------------------

    def _handle(self, records: dict) -> None:
        received_at = time.time()
        for tp, batch in records.items():
            if not batch:
                continue
            key = (tp.topic, tp.partition)
            if self.changelog is not None and self.changelog.replay.covers(key, batch[0].offset):
                kept = self.changelog.replay.kept(key, batch)
                self.skipped += len(batch) - len(kept)
                batch = kept
                if not batch:
                    self._applied[tp] = records[tp][-1].offset + 1
                    continue
            plain, plain_records, cloud = cloudevents.split_kafka_batch(batch)
            decoded = self.engine.validator.decode_records(plain, received_at) if plain else Decoded()
            dead = [(plain_records[r.index], r) for r in decoded.rejected]
            for record in cloud:
                one = decode_kafka(self.halves, record.headers, record.value, received_at, tp.partition)
                if one.rejected:
                    dead.append((record, one.rejected[0]))
                decoded.predictions += one.predictions
                decoded.labels += one.labels
                decoded.infra += one.infra
                decoded.rejected += one.rejected
            self.engine.process(decoded)
            if self.changelog is not None:
                self.changelog.note(tp.partition, decoded.models)
            for record, rejection in dead:
                self.dead_letters.send(self.producer, record, rejection)
            self._applied[tp] = batch[-1].offset + 1
            self.records += len(batch)
        if self.changelog is None:
            self._commit()
        processed_at = time.time()
        for listener in self.batch_listeners:
            listener(records, processed_at)

    def _expire_cloudevents(self) -> None:
        if len(self.halves):
            for partition, decoded in self.halves.expire().items():
                self.engine.process(decoded)
                if self.changelog is not None and partition is not None:
                    self.changelog.note(partition, decoded.models)

    # -- offsets, checkpoints -----------------------------------------------------------

    def _commit(self) -> None:
        offsets = {tp: offset for tp, offset in self._applied.items()
                   if tp in self._assigned and self._committed.get(tp) != offset}
        if not offsets:
            return
        if not self.dead_letters.delivered(self.producer):
            log.info("kafka source: dead letters not yet delivered; commit postponed")
            return
        try:
            self.consumer.commit(offsets)
        except Exception as exc:
            # Rebalancing, or the broker is away: the next commit covers these offsets.
            log.info("kafka source: commit postponed: %s", exc)
            return
        self._committed.update(offsets)

    def _checkpoint(self) -> None:
        self._last_checkpoint = time.monotonic()
        changelog = self.changelog
        if changelog is None:  # the loop checkpoints only with a state topic
            raise RuntimeError("kafka source: a changelog checkpoint without a state topic")
        partitions = {tp.partition for tp in self._assigned} & changelog.held
        if changelog.write(self.producer, self.halves, partitions, self._applied):
            self._commit()

    # -- rebalances (the client calls these inside poll or close) -------------------------

    def _on_revoked_locked(self, revoked) -> None:
        # Normally the poll thread is inside poll() now and the lock is free; the timeout
        # only guards against a checkpoint waiting on this very thread.
        locked = self._work.acquire(timeout=15)
        try:
            self._on_revoked(revoked)
        except Exception:
            log.exception("kafka source: checkpoint on revocation failed")
        finally:
            if locked:
                self._work.release()

    def _on_revoked(self, revoked) -> None:
        """Checkpoint the state of the revoked partitions before anyone else restores it.
        Input offsets are committed later from the poll thread; the changelog's own offsets
        tell a new owner which replayed records to skip."""
        if self.changelog is None:
            return
        partitions = {tp.partition for tp in revoked} & self.changelog.held
        if partitions and self._producer is not None:
            self.changelog.write(self.producer, self.halves, partitions, self._applied)

    def _on_lost(self, lost) -> None:
        # Evicted from the group (e.g. the broker was away longer than the session): another
        # replica may own these partitions now, and writing our state could overwrite theirs.
        # Stop checkpointing them; the next assignment decides whether our state is still the
        # newest (nobody wrote their changelog since us) or must be restored.
        self._assigned = self._assigned - set(lost)
        for tp in lost:
            remove_lag(self.lag_gauge, tp)

    def _on_assigned(self, assigned) -> None:
        # Blocking work (restoring state) happens on the poll thread; until then fetch nothing.
        self._pending_assignment = list(assigned)
        if assigned:
            self.consumer.pause(self._pending_assignment)

    def _apply_assignment(self) -> None:
        """Restore and position newly assigned partitions (on the poll thread). On failure the
        assignment stays pending and is retried; its partitions stay paused meanwhile."""
        pending = self._pending_assignment
        assigned = set(pending or [])
        previous = self._assigned
        for tp in previous - assigned:
            remove_lag(self.lag_gauge, tp)
            self._applied.pop(tp, None)
            self._committed.pop(tp, None)
        self._assigned = assigned
        changelog = self.changelog
        if changelog is None:
            for tp in assigned:
                if tp in previous and tp in self._applied:
                    self.consumer.seek(tp, self._applied[tp])
                else:
                    self._position(tp, None)
            self._resume(assigned, pending)
            return
        partitions = {tp.partition for tp in assigned}
        # Partitions this replica no longer has: forget their models.
        for p in changelog.held - partitions:
            changelog.drop(p, self.halves)
        ends = changelog.ends(self.consumer, partitions)
        for p in sorted(partitions):
            if changelog.is_newest(p, ends.get(p, 0)):
                for tp in assigned:
                    if tp.partition == p:
                        if tp in self._applied:
                            self.consumer.seek(tp, self._applied[tp])
                        else:
                            self._position(tp, None)
                continue
            if p in changelog.held:
                changelog.drop(p, self.halves)
            marker = changelog.restore_partition(p, ends.get(p, 0), self.halves)
            # Start after the last complete checkpoint when the committed offset is behind it.
            for tp in assigned:
                if tp.partition == p:
                    self._position(tp, marker.get(tp.topic, {}).get(str(p)))
        for tp in [tp for tp in self._applied if tp not in assigned]:
            del self._applied[tp]
            self._committed.pop(tp, None)
        self._resume(assigned, pending)

    def _resume(self, assigned, pending) -> None:
        if self._pending_assignment is pending:  # not replaced by a newer rebalance meanwhile
            self._pending_assignment = None
        if assigned:
            self.consumer.resume(list(assigned))
        self._ready, self._reason = True, "connected"
        self._last_lag = 0.0

    def _position(self, tp, checkpointed: int | None) -> None:
        """Seek a newly assigned partition to max(committed, checkpointed), else per auto_offset_reset."""
        committed = self.consumer.committed(tp, timeout=10)
        known = [x for x in (committed, checkpointed) if x is not None]
        if known:
            self.consumer.seek(tp, max(known))
            self._applied[tp] = max(known)
        elif self.config.auto_offset_reset == "earliest":
            self.consumer.seek_to_beginning(tp)
        else:
            self.consumer.seek_to_end(tp)

    # -- lag and health -----------------------------------------------------------------

    def _probe(self) -> None:
        """Refresh the lag gauge; readiness follows whether the broker answered."""
        consumer = self._consumer
        if consumer is None:
            return
        try:
            measure_lag(self.lag_gauge, consumer, list(self._assigned), self._applied)
        except Exception as exc:
            self._ready, self._broker_failing = False, True
            self._reason = f"broker {self.config.bootstrap_servers} unreachable: {self.client.describe_error(exc)}"
            return
        self._broker_failing = False
        self._last_ok = time.monotonic()
        if self._pending_assignment is None:
            self._ready, self._reason = True, "connected"

