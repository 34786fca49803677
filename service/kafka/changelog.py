"""Per-model state in a compacted Kafka topic: the state store of a Kafka deployment (see docs/kafka.md).

Per-model state moves with partitions. Producers key records by model name, so all of a
model's events are in one partition number ``p`` of every input topic (co-partitioned;
the range assignor gives a replica the same partition numbers of every topic). State is
checkpointed to partition ``p`` of the compacted ``state_topic``, keyed by model name,
every ``checkpoint_interval`` and when partitions are revoked; then the input offsets are
committed. Each changelog record also carries the input offsets its state includes, so a
replica that restores partition ``p`` skips the replayed records a model's state already
holds (:class:`Replay`): state is applied exactly once even after a crash; only dead
letters and the per-replica Prometheus counters can see a replayed record twice.

KServe/Seldon CloudEvents halves waiting for their partner are part of that state: each
checkpoint writes the pending halves of partition ``p`` with the same input offsets, so a
replica that takes the partition over (after a rebalance or a crash) restores them and the
response it re-reads joins its request.

Changelog record: key = model name (UTF-8), value = ``MAGIC`` + 4-byte header length +
JSON header (``offsets``: {topic: {partition: next offset}}, ``writer``, ``written_at``) +
the engine's snapshot bytes. Key ``OFFSETS_KEY`` holds only a header: the input offsets
up to which partition ``p`` was completely checkpointed. Key ``PENDING_KEY`` holds the
partition's pending CloudEvents halves (:func:`service.ingest.halves.encode_halves`); a
tombstone when none are left.
"""

from __future__ import annotations

import logging
import struct
import time
import uuid
from collections import defaultdict

import orjson

from service.config import KafkaConfig
from service.core.engine import Engine
from service.ingest import cloudevents
from service.ingest.joiner import CloudEventJoiner
from service.kafka.clients import TopicPartition, load_client

__all__ = ["MAGIC", "OFFSETS_KEY", "PENDING_KEY", "Changelog", "Replay", "decode_state", "encode_state"]

log = logging.getLogger("driftline.kafka")

MAGIC = b"DLS1"
OFFSETS_KEY = b"\x00offsets"  # no model name can be this (see events.MODEL_NAME)
PENDING_KEY = b"\x00cloudevents"
_HEADER = struct.Struct(">I")
RESTORE_TIMEOUT = 120.0  # seconds to read one changelog partition to its end


def encode_state(header: dict, state: bytes = b"") -> bytes:
    head = orjson.dumps(header)
    return MAGIC + _HEADER.pack(len(head)) + head + state


def decode_state(value: bytes) -> tuple[dict, bytes]:
    if not value.startswith(MAGIC):
        raise ValueError("not a driftline changelog record")
    (size,) = _HEADER.unpack_from(value, len(MAGIC))
    start = len(MAGIC) + _HEADER.size
    return orjson.loads(value[start:start + size]), value[start + size:]


class Changelog:
    """The changelog topic ``config.state_topic`` as the state store of the runtime.

    Unlike files, it has nothing to restore at start-up nor a timer of its own: the Kafka
    source restores a partition's models when the group assigns it (:meth:`restore_partition`)
    and writes them from its poll loop (:meth:`write`), because each write must carry the
    input offsets the state includes."""

    def __init__(self, engine: Engine, config: KafkaConfig):
        if not config.state_topic:
            raise ValueError("a changelog needs kafka.state_topic")
        self.engine = engine
        self.config = config
        self.topic = config.state_topic
        self.client = load_client(config)
        self.location = f"Kafka topic {self.topic}"
        self.writer = uuid.uuid4().hex[:12]
        self.replay = Replay()
        # partition number -> models whose events came from it; what to checkpoint and drop
        self.partition_models: dict[int, set[str]] = defaultdict(set)
        self.held: set[int] = set()  # partition numbers whose state this replica holds
        # partition number -> changelog end offset after our last write or restore
        self._end: dict[int, int] = {}
        self._marked: dict[int, dict] = {}  # partition -> offsets in the last OFFSETS_KEY record written
        # partition number -> the joiner's generation of its halves last written
        self._pending_written: dict[int, int] = {}

    # -- the state store, as the runtime sees it ------------------------------------------

    def restore(self) -> int:
        """Nothing at start-up: a partition's models are restored when it is assigned."""
        return 0

    def start(self) -> None:
        """Nothing to start: the Kafka source writes the changelog from its poll loop."""

    def stop(self) -> None:
        """Nothing to stop: the Kafka source writes a final checkpoint when it stops."""

    def ready(self) -> tuple[bool, str]:
        # A write that fails leaves the input offsets uncommitted and is retried; the Kafka
        # source's readiness says whether the broker answers.
        return True, ""

    # -- writing ---------------------------------------------------------------------------

    def note(self, partition: int, models) -> None:
        """``models`` had events from input partition ``partition``: their state goes there."""
        self.partition_models[partition].update(models)

    def is_newest(self, partition: int, end: int) -> bool:
        """Nobody wrote ``partition`` since this replica did: the state it holds is the newest."""
        return partition in self.held and end == self._end.get(partition, 0)

    def write(self, producer, joiner: CloudEventJoiner, partitions: set[int], applied: dict) -> bool:
        """Snapshot the dirty models of ``partitions``, their pending halves and an offsets marker
        per partition (``applied``: input partition -> next offset), flush. Returns False
        (models marked dirty again) when the broker did not take them."""
        # Marks taken before the snapshots (see Engine.take_dirty): a change made while this
        # runs marks its model again, for the next write.
        dirty = self.engine.take_dirty({model for p in partitions for model in self.partition_models.get(p, ())})
        written_models: list[str] = []
        futures: list = []
        offsets_by_partition: dict[int, dict] = {}
        pending_generations: dict[int, int] = {}
        try:
            for p in partitions:
                offsets: dict[str, dict[str, int]] = defaultdict(dict)
                for tp, offset in applied.items():
                    if tp.partition == p:
                        offsets[tp.topic][str(p)] = offset
                offsets_by_partition[p] = offsets
                header = {"offsets": offsets, "writer": self.writer, "written_at": time.time()}
                for model in sorted(self.partition_models.get(p, ())):
                    if model not in dirty:
                        continue
                    try:
                        state = self.engine.snapshot(model)
                    except KeyError:
                        continue
                    futures.append((p, producer.send(self.topic, key=model.encode(),
                                                     value=encode_state(header, state), partition=p)))
                    written_models.append(model)
                generation = joiner.generation.get(p, 0)
                if generation != self._pending_written.get(p, 0):
                    # Written with the same offsets as the models: a new owner restores the halves
                    # pending at exactly the point from which it re-reads the input.
                    halves = joiner.export(p)
                    value = None if halves is None else encode_state(header, halves)
                    futures.append((p, producer.send(self.topic, key=PENDING_KEY, value=value, partition=p)))
                    pending_generations[p] = generation
                if offsets and (written_models or self._marked.get(p) != offsets):
                    futures.append((p, producer.send(self.topic, key=OFFSETS_KEY,
                                                     value=encode_state(header), partition=p)))
        except Exception as exc:  # too big, broker away for longer than max_block_ms
            self.engine.mark_dirty(dirty)
            log.warning("kafka source: changelog write failed, input offsets not committed: %s", exc)
            return False
        if not futures:
            return True
        if not self._acknowledged(producer, dirty, futures, offsets_by_partition):
            return False
        self._pending_written.update(pending_generations)
        return True

    def _acknowledged(self, producer, taken: set[str], futures, offsets_by_partition) -> bool:
        try:
            producer.flush(timeout=15)
            ends: dict[int, int] = {}
            for p, future in futures:
                metadata = future.get(timeout=1)
                ends[p] = max(ends.get(p, -1), metadata.offset + 1)
        except Exception as exc:
            self.engine.mark_dirty(taken)
            log.warning("kafka source: changelog write failed, input offsets not committed: %s", exc)
            return False
        self._end.update(ends)
        for p in ends:
            self._marked[p] = offsets_by_partition[p]
        return True

    # -- partitions moving -----------------------------------------------------------------

    def ends(self, consumer, partitions: set[int]) -> dict[int, int]:
        """The changelog's end offset of each partition number."""
        if not partitions:
            return {}
        tps = [TopicPartition(self.topic, p) for p in partitions]
        ends = consumer.end_offsets(tps, timeout=15)
        return {tp.partition: offset for tp, offset in ends.items()}

    def drop(self, partition: int, joiner: CloudEventJoiner) -> None:
        """Forget the models and pending halves of a partition this replica no longer holds."""
        for model in self.partition_models.pop(partition, set()):
            if not any(model in models for models in self.partition_models.values()):
                self.engine.drop(model)
                self.replay.forget(model)
        joiner.drop(partition)
        self._pending_written.pop(partition, None)
        self.held.discard(partition)
        self._end.pop(partition, None)
        self._marked.pop(partition, None)

    def restore_partition(self, partition: int, end: int, joiner: CloudEventJoiner) -> dict:
        """Read changelog partition ``partition`` to ``end``; restore its models and pending
        halves. Returns the offsets of its last complete checkpoint ({topic: {partition: offset}})."""
        p = partition
        latest = self._read(p, end)
        marker: dict = {}
        restored = 0
        models = self.partition_models[p]
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
                    halves = joiner.restore(state, origin=p)
                except (ValueError, TypeError, struct.error, orjson.JSONDecodeError) as exc:
                    log.error("kafka source: pending CloudEvents of partition %d unreadable: %s", p, exc)
                    continue
                self._pending_written[p] = joiner.generation.get(p, 0)
                log.info("kafka source: restored %d pending CloudEvents half(s) from %s[%d]", halves, self.topic, p)
                continue
            model = key.decode("utf-8", "replace")
            try:
                self.engine.restore(model, state)
            except Exception as exc:
                log.error("kafka source: state of %s unreadable, starting it afresh: %s", model, exc)
                continue
            restored += 1
            models.add(model)
            self.replay.remember(model, {(topic, int(part)): offset
                                         for topic, parts in header.get("offsets", {}).items()
                                         for part, offset in parts.items()})
        self.engine.mark_clean(models)
        self.held.add(p)
        self._end[p] = end
        if restored:
            log.info("kafka source: restored %d model(s) from %s[%d]", restored, self.topic, p)
        return marker

    def _read(self, p: int, end: int) -> dict[bytes, bytes]:
        """The latest value of each key of changelog partition ``p`` below offset ``end``."""
        latest: dict[bytes, bytes] = {}
        if end <= 0:
            return latest
        reader = self.client.open_reader(self.config, max_partition_bytes=16 * 1024 * 1024)
        try:
            tp = TopicPartition(self.topic, p)
            reader.assign_at_beginning([tp])
            deadline = time.monotonic() + RESTORE_TIMEOUT
            while reader.position(tp, timeout=10) < end:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"restoring {self.topic}[{p}] took over {RESTORE_TIMEOUT:.0f}s")
                for records in reader.poll(0.5, 5000).values():
                    for record in records:
                        if record.value is None:
                            latest.pop(record.key, None)
                        else:
                            latest[record.key] = record.value
        finally:
            reader.close(timeout=5)
        return latest


class Replay:
    """After a restore, the records of the re-read input that a model's restored state
    already includes: they are skipped, so state is applied exactly once."""

    def __init__(self):
        # model -> {(topic, partition): offset}; a record of the model below that offset is
        # already in the restored state.
        self._below: dict[str, dict[tuple[str, int], int]] = {}
        self._end: dict[tuple[str, int], int] = {}  # (topic, partition) -> where skipping can stop

    def remember(self, model: str, offsets: dict[tuple[str, int], int]) -> None:
        self._below[model] = offsets
        for key, offset in offsets.items():
            if offset > self._end.get(key, -1):
                self._end[key] = offset

    def forget(self, model: str) -> None:
        self._below.pop(model, None)

    def covers(self, key: tuple[str, int], offset: int) -> bool:
        """Whether a batch of input partition ``key`` starting at ``offset`` may hold records to skip."""
        return self._end.get(key, -1) > offset

    def kept(self, key: tuple[str, int], batch: list) -> list:
        """The records of ``batch`` (from input partition ``key``) not yet in their model's state."""
        end = self._end[key]
        kept = []
        for record in batch:
            if record.offset >= end:
                kept.append(record)
                continue
            model = _model_of(record)
            below = self._below.get(model, {}).get(key) if model is not None else None
            if below is None or record.offset >= below:
                kept.append(record)
        if batch[-1].offset + 1 >= end:
            self._end.pop(key, None)
            for offsets in self._below.values():
                offsets.pop(key, None)
        return kept


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
