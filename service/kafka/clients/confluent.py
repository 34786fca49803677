"""confluent-kafka (librdkafka) behind :mod:`service.kafka.clients`' interface (``kafka.client:
confluent``, the ``kafka-confluent`` extra).

librdkafka does its network work on its own threads; what Python sees runs on the thread
that calls in: rebalance callbacks inside ``consume``/``close``, delivery reports inside
``poll``/``flush``. Offsets are committed only explicitly (``enable.auto.commit`` false), as
with kafka-python. librdkafka's log lines and errors go to driftline's throttled logger.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, NamedTuple

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, KafkaException, Producer
from confluent_kafka import TopicPartition as ConfluentTopicPartition
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

from service.config import KafkaConfig
from service.kafka.admin import BOOTSTRAP_TIMEOUT_MS, MAX_STATE_BYTES, plan_topics
from service.kafka.admin import describe_error as name_and_message
from service.kafka.clients import Record, TopicPartition

__all__ = ["NAME", "describe_error", "ensure_topics", "expected_errors", "open_consumer", "open_producer",
           "open_reader"]

NAME = "confluent"
log = logging.getLogger("driftline.kafka")
# librdkafka's own lines (connection failures, ...): throttled like kafka-python's (service.logs).
librdkafka_log = logging.getLogger("kafka.librdkafka")


def _on_error(error: KafkaError) -> None:
    # Transient errors (a broker away, ...) are retried by librdkafka and seen by the source as
    # a probe that fails; only fatal ones deserve more than debug.
    if error.fatal():
        log.error("kafka client: %s", error.str())
    else:
        log.debug("kafka client: %s", error.str())


def client_options(config: KafkaConfig) -> dict[str, Any]:
    """Connection options shared by the consumer, producer and admin client."""
    options: dict[str, Any] = {
        "bootstrap.servers": ",".join(s.strip() for s in config.bootstrap_servers.split(",") if s.strip()),
        "security.protocol": config.security_protocol.lower(),
        "reconnect.backoff.ms": 100,
        "reconnect.backoff.max.ms": 2000,
        "log.connection.close": False,
        "logger": librdkafka_log,
        "error_cb": _on_error,
    }
    if config.sasl_mechanism:
        options["sasl.mechanism"] = config.sasl_mechanism
        if config.sasl_username_env:
            options["sasl.username"] = os.environ.get(config.sasl_username_env, "")
        if config.sasl_password_env:
            options["sasl.password"] = os.environ.get(config.sasl_password_env, "")
    if config.ssl_cafile:
        options["ssl.ca.location"] = config.ssl_cafile
    return options


def _ctp(partition, offset: int | None = None) -> ConfluentTopicPartition:
    if offset is None:
        return ConfluentTopicPartition(partition[0], partition[1])
    return ConfluentTopicPartition(partition[0], partition[1], offset)


def _ours(partitions) -> list[TopicPartition]:
    return [TopicPartition(p.topic, p.partition) for p in partitions]


class ConfluentConsumer:
    """A confluent_kafka.Consumer as :class:`service.kafka.clients.Consumer`."""

    def __init__(self, consumer: Consumer, auto_offset_reset: str):
        self.consumer = consumer
        self.auto_offset_reset = auto_offset_reset

    def poll(self, timeout: float, max_records: int) -> dict:
        # consume(n, timeout) waits the whole timeout unless n messages arrive: at a low rate
        # that is the batch's latency. Wait for one message instead (as kafka-python's poll
        # does), then take what else is already fetched without waiting.
        first = self.consumer.poll(timeout)
        if first is None:
            return {}
        messages = [first]
        if max_records > 1:
            messages += self.consumer.consume(max_records - 1, 0)
        batches: dict = {}
        batch: list = []
        topic, partition = None, None
        make = tuple.__new__  # a Record without NamedTuple's Python-level __new__: ~0.3 us a record
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                self._rewind(messages)
                raise KafkaException(error)
            if message.partition() != partition or message.topic() != topic:
                topic, partition = message.topic(), message.partition()
                if topic is None or partition is None:  # librdkafka sets both on every message without an error
                    raise KafkaException(f"a consumed message without topic or partition ({topic}, {partition})")
                batch = batches.setdefault(TopicPartition(topic, partition), [])
            batch.append(make(Record, (topic, partition, message.offset(), message.timestamp()[1], message.key(),
                                       message.value(), message.headers())))
        return batches

    def _rewind(self, messages: list) -> None:
        """Seek each partition back to its first message of this poll. A failed poll hands over
        none of them, and librdkafka's position is past them all: without the seek the next
        poll, and the commit after it, would skip them (at-least-once)."""
        first: dict[tuple[str, int], int] = {}
        for message in messages:
            topic, partition = message.topic(), message.partition()
            if message.error() is None and topic is not None and partition is not None:
                key = (topic, partition)
                first[key] = min(first.get(key, message.offset()), message.offset())
        for (topic, partition), offset in first.items():
            self.consumer.seek(ConfluentTopicPartition(topic, partition, offset))

    def assign_at_beginning(self, partitions: list) -> None:
        self.consumer.assign([_ctp(p, OFFSET_BEGINNING) for p in partitions])

    def pause(self, partitions: list) -> None:
        self.consumer.pause([_ctp(p) for p in partitions])

    def resume(self, partitions: list) -> None:
        self.consumer.resume([_ctp(p) for p in partitions])

    def seek(self, partition, offset: int) -> None:
        self.consumer.seek(_ctp(partition, offset))

    def seek_to_beginning(self, partition) -> None:
        self.consumer.seek(_ctp(partition, OFFSET_BEGINNING))

    def seek_to_end(self, partition) -> None:
        self.consumer.seek(_ctp(partition, OFFSET_END))

    def position(self, partition, timeout: float) -> int:
        """The next offset to read; before the first fetch of a partition (librdkafka knows no
        position yet), its committed offset, else where auto_offset_reset starts."""
        [position] = self.consumer.position([_ctp(partition)])
        if position.offset >= 0:
            return position.offset
        committed = self.committed(partition, timeout)
        if committed is not None:
            return committed
        low, high = self.consumer.get_watermark_offsets(_ctp(partition), timeout=timeout, cached=False)
        return low if self.auto_offset_reset == "earliest" else high

    def committed(self, partition, timeout: float) -> int | None:
        [committed] = self.consumer.committed([_ctp(partition)], timeout=timeout)
        if committed.error is not None:
            raise KafkaException(committed.error)
        return committed.offset if committed.offset >= 0 else None

    def commit(self, offsets: dict) -> None:
        results = self.consumer.commit(offsets=[_ctp(p, offset) for p, offset in offsets.items()],
                                       asynchronous=False)
        for result in results or []:
            if result.error is not None:
                raise KafkaException(result.error)

    def end_offsets(self, partitions: list, timeout: float) -> dict:
        ends = {}
        for partition in partitions:
            _low, high = self.consumer.get_watermark_offsets(_ctp(partition), timeout=timeout, cached=False)
            ends[partition] = high
        return ends

    def list_topics(self, timeout: float) -> None:
        self.consumer.list_topics(timeout=timeout)

    def close(self, timeout: float) -> None:
        self.consumer.close()


def open_consumer(config: KafkaConfig, on_assign, on_revoke, on_lost) -> ConfluentConsumer:
    """A group member subscribed to ``config.topics``, with the range assignor (as kafka-python)."""
    session_ms = int(config.session_timeout * 1000)
    consumer = Consumer({
        **client_options(config), "client.id": config.client_id, "group.id": config.group_id,
        "enable.auto.commit": False, "enable.auto.offset.store": False,
        "auto.offset.reset": config.auto_offset_reset, "partition.assignment.strategy": "range",
        "session.timeout.ms": session_ms, "heartbeat.interval.ms": max(500, session_ms // 4),
        "max.partition.fetch.bytes": 8 * 1024 * 1024, "fetch.max.bytes": 64 * 1024 * 1024,
        "receive.message.max.bytes": 64 * 1024 * 1024 + 512})

    def assigned(consumer, partitions):
        # Assign first (librdkafka would after the callback) so that the source can pause them.
        consumer.assign(partitions)
        on_assign(_ours(partitions))

    consumer.subscribe(list(config.topics), on_assign=assigned,
                       on_revoke=lambda _consumer, partitions: on_revoke(_ours(partitions)),
                       on_lost=lambda _consumer, partitions: on_lost(_ours(partitions)))
    return ConfluentConsumer(consumer, config.auto_offset_reset)


def open_reader(config: KafkaConfig, max_partition_bytes: int) -> ConfluentConsumer:
    # librdkafka needs a group.id even for a consumer that only assigns; nothing is committed.
    return ConfluentConsumer(Consumer({
        **client_options(config), "client.id": f"{config.client_id}-restore",
        "group.id": f"{config.client_id}-restore", "enable.auto.commit": False,
        "enable.auto.offset.store": False, "max.partition.fetch.bytes": max_partition_bytes,
        "receive.message.max.bytes": max(64 * 1024 * 1024, max_partition_bytes) + 512}), "earliest")


class RecordMetadata(NamedTuple):
    topic: str
    partition: int
    offset: int


class _Delivery:
    """The future of one produced record: its delivery report arrives inside poll/flush."""

    __slots__ = ("_producer", "error", "is_done", "metadata")

    def __init__(self, producer: Producer):
        self._producer = producer
        self.is_done = False
        self.error: KafkaError | None = None
        self.metadata: RecordMetadata | None = None

    def report(self, error, message) -> None:
        self.error = error
        if error is None:
            self.metadata = RecordMetadata(message.topic(), message.partition(), message.offset())
        self.is_done = True

    def failed(self) -> bool:
        return self.is_done and self.error is not None

    def get(self, timeout: float) -> RecordMetadata:
        deadline = time.monotonic() + timeout
        while not self.is_done:
            left = deadline - time.monotonic()
            if left <= 0:
                raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "no delivery report in time"))
            self._producer.poll(min(left, 0.1))
        if self.error is not None:
            raise KafkaException(self.error)
        return self.metadata  # type: ignore[return-value]


class ConfluentProducer:
    """A confluent_kafka.Producer as :class:`service.kafka.clients.Producer`."""

    def __init__(self, producer: Producer):
        self.producer = producer

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None, headers: list | None = None,
             partition: int | None = None) -> _Delivery:
        delivery = _Delivery(self.producer)
        options: dict[str, Any] = {}
        if headers:
            options["headers"] = headers
        if partition is not None:
            options["partition"] = partition
        self.producer.produce(topic, value=value, key=key, on_delivery=delivery.report, **options)
        self.producer.poll(0)  # serve the reports that arrived, so that they do not pile up
        return delivery

    def flush(self, timeout: float | None = None) -> None:
        self.producer.flush(-1 if timeout is None else timeout)

    def close(self, timeout: float) -> None:
        self.producer.flush(timeout)


def open_producer(config: KafkaConfig) -> ConfluentProducer:
    # murmur2_random: keyed records land where kafka-python's (and Java's) producer puts them.
    return ConfluentProducer(Producer({
        **client_options(config), "client.id": f"{config.client_id}-producer", "acks": "all",
        "linger.ms": 5, "request.timeout.ms": 10_000, "message.timeout.ms": 30_000,
        "message.max.bytes": MAX_STATE_BYTES, "partitioner": "murmur2_random"}))


def ensure_topics(config: KafkaConfig) -> None:
    admin = AdminClient({**client_options(config), "client.id": f"{config.client_id}-admin"})
    metadata = admin.list_topics(timeout=BOOTSTRAP_TIMEOUT_MS / 1000)
    existing = {name: len(topic.partitions) for name, topic in metadata.topics.items() if topic.error is None}
    plan = plan_topics(config, existing)
    for name, partitions, configs in plan.create:
        [future] = admin.create_topics([NewTopic(name, partitions, 1, config=configs)],
                                       request_timeout=10).values()
        try:
            future.result(timeout=15)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    if plan.grow_changelog_to is not None and config.state_topic is not None:  # plan_topics grows only a state topic
        [future] = admin.create_partitions([NewPartitions(config.state_topic, plan.grow_changelog_to)],
                                           request_timeout=10).values()
        future.result(timeout=15)
        log.warning("kafka source: %s grown to %d partitions to match the input", config.state_topic,
                    plan.grow_changelog_to)


def describe_error(exc: BaseException) -> str:
    """``KafkaException: Local: Broker transport failure`` rather than librdkafka's ``KafkaError{code=...}``."""
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return f"{type(exc).__name__}: {exc.args[0].str()}"
    return name_and_message(exc)


def expected_errors() -> tuple[type, ...]:
    return (KafkaException, BufferError, ConnectionError, TimeoutError)
