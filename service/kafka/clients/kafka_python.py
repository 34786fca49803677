"""kafka-python (pure Python, the default client) behind :mod:`service.kafka.clients`' interface.

Its producer is used as it is (``send`` returns a future with ``is_done``, ``failed`` and
``get``); its consumer is wrapped so that offsets and timeouts read as the interface says."""

from __future__ import annotations

import logging
import os
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata
from kafka.structs import TopicPartition as KafkaTopicPartition

from service.config import KafkaConfig
from service.kafka.admin import BOOTSTRAP_TIMEOUT_MS, MAX_STATE_BYTES, describe_error, plan_topics

__all__ = ["NAME", "describe_error", "ensure_topics", "expected_errors", "open_consumer", "open_producer",
           "open_reader"]

NAME = "kafka-python"
log = logging.getLogger("driftline.kafka")


def client_options(config: KafkaConfig) -> dict[str, Any]:
    """Connection options shared by the consumer, producer and admin client."""
    options: dict[str, Any] = {
        "bootstrap_servers": [s.strip() for s in config.bootstrap_servers.split(",") if s.strip()],
        "security_protocol": config.security_protocol,
        "reconnect_backoff_ms": 100,
        "reconnect_backoff_max_ms": 2000,
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


def _tp(partition) -> KafkaTopicPartition:
    return partition if isinstance(partition, KafkaTopicPartition) else KafkaTopicPartition(*partition)


class _Listener(ConsumerRebalanceListener):
    def __init__(self, on_assign, on_revoke, on_lost):
        self.on_assign, self.on_revoke, self.on_lost = on_assign, on_revoke, on_lost

    def on_partitions_revoked(self, revoked):
        self.on_revoke(list(revoked))

    def on_partitions_assigned(self, assigned):
        self.on_assign(list(assigned))

    def on_partitions_lost(self, lost):
        self.on_lost(list(lost))


class KafkaPythonConsumer:
    """A KafkaConsumer as :class:`service.kafka.clients.Consumer`."""

    def __init__(self, consumer: KafkaConsumer):
        self.consumer = consumer

    def poll(self, timeout: float, max_records: int) -> dict:
        return self.consumer.poll(timeout_ms=int(timeout * 1000), max_records=max_records)

    def assign_at_beginning(self, partitions: list) -> None:
        tps = [_tp(p) for p in partitions]
        self.consumer.assign(tps)
        self.consumer.seek_to_beginning(*tps)

    def pause(self, partitions: list) -> None:
        self.consumer.pause(*(_tp(p) for p in partitions))

    def resume(self, partitions: list) -> None:
        self.consumer.resume(*(_tp(p) for p in partitions))

    def seek(self, partition, offset: int) -> None:
        self.consumer.seek(_tp(partition), offset)

    def seek_to_beginning(self, partition) -> None:
        self.consumer.seek_to_beginning(_tp(partition))

    def seek_to_end(self, partition) -> None:
        self.consumer.seek_to_end(_tp(partition))

    def position(self, partition, timeout: float) -> int:
        return self.consumer.position(_tp(partition), timeout_ms=int(timeout * 1000))

    def committed(self, partition, timeout: float) -> int | None:
        return self.consumer.committed(_tp(partition), timeout_ms=int(timeout * 1000))

    def commit(self, offsets: dict) -> None:
        self.consumer.commit({_tp(p): OffsetAndMetadata(offset, "", -1) for p, offset in offsets.items()})

    def end_offsets(self, partitions: list, timeout: float) -> dict:
        return self.consumer.end_offsets([_tp(p) for p in partitions], timeout_ms=int(timeout * 1000))

    def list_topics(self, timeout: float) -> None:
        self.consumer.topics()

    def close(self, timeout: float) -> None:
        self.consumer.close(autocommit=False, timeout_ms=int(timeout * 1000))


def open_consumer(config: KafkaConfig, on_assign, on_revoke, on_lost) -> KafkaPythonConsumer:
    """A group member subscribed to ``config.topics``; the range assignor gives it the same
    partition numbers of every topic (the changelog's co-partitioning relies on it)."""
    session_ms = int(config.session_timeout * 1000)
    consumer = KafkaConsumer(
        **client_options(config), client_id=config.client_id, group_id=config.group_id,
        enable_auto_commit=False, auto_offset_reset=config.auto_offset_reset,
        max_poll_records=config.max_poll_records,
        session_timeout_ms=session_ms, heartbeat_interval_ms=max(500, session_ms // 4),
        request_timeout_ms=max(15_000, session_ms + 5_000),
        max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024,
        partition_assignment_strategy=[RangePartitionAssignor])
    consumer.subscribe(config.topics, listener=_Listener(on_assign, on_revoke, on_lost))
    return KafkaPythonConsumer(consumer)


def open_reader(config: KafkaConfig, max_partition_bytes: int) -> KafkaPythonConsumer:
    return KafkaPythonConsumer(KafkaConsumer(
        **client_options(config), client_id=f"{config.client_id}-restore", group_id=None,
        enable_auto_commit=False, auto_offset_reset="earliest", max_partition_fetch_bytes=max_partition_bytes))


def open_producer(config: KafkaConfig) -> KafkaProducer:
    return KafkaProducer(
        **client_options(config), client_id=f"{config.client_id}-producer", acks="all", linger_ms=5,
        max_block_ms=10_000, request_timeout_ms=10_000, delivery_timeout_ms=30_000,
        max_request_size=MAX_STATE_BYTES)


def ensure_topics(config: KafkaConfig) -> None:
    from kafka.admin import KafkaAdminClient, NewPartitions, NewTopic  # noqa: PLC0415

    admin = KafkaAdminClient(**client_options(config), client_id=f"{config.client_id}-admin",
                             request_timeout_ms=10_000)
    try:
        names = set(admin.list_topics())
        wanted = [t for t in {*config.topics, config.state_topic} if t and t in names]
        existing = dict.fromkeys(names, 0)
        for topic in admin.describe_topics(wanted) if wanted else []:
            existing[topic.get("name") or topic.get("topic")] = len(topic.get("partitions") or [])
        plan = plan_topics(config, existing)
        for name, partitions, configs in plan.create:
            try:
                admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs)])
            except TopicAlreadyExistsError:
                pass
        if plan.grow_changelog_to is not None:
            admin.create_partitions({config.state_topic: NewPartitions(plan.grow_changelog_to)})
            log.warning("kafka source: %s grown to %d partitions to match the input", config.state_topic,
                        plan.grow_changelog_to)
    finally:
        admin.close()


def expected_errors() -> tuple[type, ...]:
    return (KafkaError, ConnectionError, TimeoutError)
