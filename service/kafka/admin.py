"""What driftline's Kafka clients share: connection options, how their errors read, and the
topics driftline creates when missing."""

from __future__ import annotations

import logging
import os
from typing import Any

from service.config import KafkaConfig

__all__ = ["BOOTSTRAP_TIMEOUT_MS", "MAX_STATE_BYTES", "client_errors", "client_options", "describe_error",
           "ensure_topics"]

log = logging.getLogger("driftline.kafka")

# A model's state holds its windows and the predictions waiting for labels (up to
# labels.max_pending): megabytes. The changelog topic is created to accept records this big.
MAX_STATE_BYTES = 64 * 1024 * 1024
BOOTSTRAP_TIMEOUT_MS = 3000


def client_options(config: KafkaConfig) -> dict[str, Any]:
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


def ensure_topics(config: KafkaConfig) -> None:
    """Create the changelog (compacted, as many partitions as the widest input topic) and the
    dead-letter and trigger topics when missing. Best effort: a broker that auto-creates topics,
    or an operator who created them, makes this a no-op."""
    from kafka.admin import KafkaAdminClient, NewPartitions, NewTopic  # noqa: PLC0415
    from kafka.errors import TopicAlreadyExistsError  # noqa: PLC0415

    changelog = config.state_topic
    admin = KafkaAdminClient(**client_options(config), client_id=f"{config.client_id}-admin",
                             request_timeout_ms=10_000)
    try:
        existing = set(admin.list_topics())
        widths = {}
        described = admin.describe_topics([t for t in config.topics if t in existing]) if existing else []
        for topic in described:
            widths[topic.get("name") or topic.get("topic")] = len(topic.get("partitions") or [])
        width = max(widths.values(), default=1) or 1
        wanted = []
        if changelog and changelog not in existing:
            wanted.append(NewTopic(changelog, width, 1, topic_configs={
                "cleanup.policy": "compact", "min.compaction.lag.ms": "0", "segment.ms": "600000",
                "max.message.bytes": str(MAX_STATE_BYTES)}))
        for topic in (config.dead_letter_topic, config.trigger_topic):
            if topic and topic not in existing:
                wanted.append(NewTopic(topic, 1, 1))
        for topic in wanted:
            try:
                admin.create_topics([topic])
            except TopicAlreadyExistsError:
                pass
        if changelog and changelog in existing:
            (info,) = admin.describe_topics([changelog])
            have = len(info.get("partitions") or [])
            if have < width:
                admin.create_partitions({changelog: NewPartitions(width)})
                log.warning("kafka source: %s grown to %d partitions to match the input", changelog, width)
    finally:
        admin.close()


def describe_error(exc: BaseException) -> str:
    """``Name: message``; kafka-python's errors already start with their name."""
    text = str(exc)
    name = type(exc).__name__
    return text if text.startswith(name) else f"{name}: {text}" if text else name


def client_errors() -> tuple[type, ...]:
    """What a client raises when the broker is away or refuses: expected, logged without a traceback."""
    from kafka.errors import KafkaError  # noqa: PLC0415

    return (KafkaError, ConnectionError, TimeoutError)
