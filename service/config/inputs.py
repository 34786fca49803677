"""The event inputs' sections: Kafka (``kafka``) and the pairing of inference-logger
CloudEvents (``cloudevents``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from service.config.fields import Duration, Strict

__all__ = ["CloudEventsConfig", "KafkaConfig"]


class CloudEventsConfig(Strict):
    """KServe/Seldon inference-logger CloudEvents: how long and how much a request (or response)
    waits for its other half, over HTTP and Kafka alike."""

    ttl: Duration = 30.0
    max_pending: int = Field(10_000, ge=10)
    # Bodies are kept as received; 48 MiB keeps a partition's pending halves within one
    # changelog record (service.kafka.admin.MAX_STATE_BYTES).
    max_pending_bytes: int = Field(32 * 1024 * 1024, ge=64 * 1024, le=48 * 1024 * 1024)


class KafkaConfig(Strict):
    # The client library (service.kafka.clients): kafka-python (core) or confluent-kafka
    # (librdkafka, the kafka-confluent extra; several times less CPU per record).
    client: Literal["kafka-python", "confluent"] = "kafka-python"
    bootstrap_servers: str = "127.0.0.1:9092"
    topics: list[str] = Field(default_factory=lambda: ["model-events"], min_length=1)
    group_id: str = "driftline"
    dead_letter_topic: str | None = "driftline-dead-letters"
    trigger_topic: str | None = "driftline-triggers"
    # Compacted changelog of per-model state, restored when partitions are assigned.
    state_topic: str | None = "driftline-state"
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    max_poll_records: int = Field(5000, ge=1)
    poll_timeout: Duration = 0.5
    # With state_topic: how often per-model state goes to the changelog, after which the
    # input offsets are committed (a crash replays at most this much input; see docs/kafka.md).
    checkpoint_interval: Duration = 10.0
    # A replica that stops heartbeating loses its partitions after this long.
    session_timeout: Duration = 10.0
    # How often driftline_consumer_lag_messages and readiness are refreshed.
    lag_interval: Duration = 2.0
    client_id: str = "driftline"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username_env: str | None = None
    sasl_password_env: str | None = None
    ssl_cafile: str | None = None


