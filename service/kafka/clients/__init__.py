"""The Kafka clients driftline can run on, behind one small interface.

``kafka.client`` chooses one: ``kafka-python`` (the default, a core dependency) or
``confluent`` (confluent-kafka on librdkafka, the ``kafka-confluent`` extra). Each is a
module (:mod:`.kafka_python`, :mod:`.confluent`) with the functions of :class:`Client`, whose
consumers and producers behave as :class:`Consumer` and :class:`Producer` say; the source,
the changelog, the dead letters and the lag gauge use nothing else. Timeouts are seconds.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from service import extras
from service.config import KafkaConfig

__all__ = ["CLIENTS", "Client", "Consumer", "Producer", "Record", "TopicPartition", "load_client"]

# kafka.client -> (module, the extra that brings its library or None for the core)
CLIENTS = {"kafka-python": ("service.kafka.clients.kafka_python", None),
           "confluent": ("service.kafka.clients.confluent", "kafka-confluent")}


class TopicPartition(NamedTuple):
    """A partition of a topic; equal to (and hashed as) kafka-python's TopicPartition."""

    topic: str
    partition: int


class Record(NamedTuple):
    """A consumed record, with kafka-python's field names; ``timestamp`` in milliseconds,
    ``headers`` a list of (str, bytes) or None."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list | None


Partitions = Callable[[list], None]  # a rebalance callback: the partitions assigned, revoked or lost


class Consumer(Protocol):
    """A group member (:meth:`Client.open_consumer`, subscribed) or a reader outside any group
    (:meth:`Client.open_reader`). Rebalance callbacks run inside :meth:`poll` or :meth:`close`,
    on the calling thread."""

    def poll(self, timeout: float, max_records: int) -> dict[Any, list]: ...  # partition -> records in offset order

    def assign_at_beginning(self, partitions: list) -> None: ...  # readers: read these from their start

    def pause(self, partitions: list) -> None: ...

    def resume(self, partitions: list) -> None: ...

    def seek(self, partition, offset: int) -> None: ...

    def seek_to_beginning(self, partition) -> None: ...

    def seek_to_end(self, partition) -> None: ...

    def position(self, partition, timeout: float) -> int: ...  # the next offset this consumer reads

    def committed(self, partition, timeout: float) -> int | None: ...

    def commit(self, offsets: dict[Any, int]) -> None: ...  # partition -> next offset; raises when refused

    def end_offsets(self, partitions: list, timeout: float) -> dict[Any, int]: ...

    def list_topics(self, timeout: float) -> None: ...  # a metadata round trip: raises when no broker answers

    def close(self, timeout: float) -> None: ...  # leaves the group without committing


class Delivery(Protocol):
    """What :meth:`Producer.send` returns (kafka-python's future is one)."""

    is_done: bool

    def failed(self) -> bool: ...

    def get(self, timeout: float) -> Any: ...  # the record's metadata (.topic, .partition, .offset); raises on failure


class Producer(Protocol):
    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None, headers: list | None = None,
             partition: int | None = None) -> Delivery: ...

    def flush(self, timeout: float | None = None) -> None: ...

    def close(self, timeout: float) -> None: ...


class Client(Protocol):
    """The functions of a client module."""

    NAME: str

    def open_consumer(self, config: KafkaConfig, on_assign: Partitions, on_revoke: Partitions,
                      on_lost: Partitions) -> Consumer: ...

    def open_reader(self, config: KafkaConfig, max_partition_bytes: int) -> Consumer: ...

    def open_producer(self, config: KafkaConfig) -> Producer: ...

    def ensure_topics(self, config: KafkaConfig) -> None: ...  # create what admin.plan_topics says

    def expected_errors(self) -> tuple[type, ...]: ...  # broker away or refusing: logged without a traceback

    def describe_error(self, exc: BaseException) -> str: ...  # ``Name: message``, for readiness reasons


def load_client(config: KafkaConfig) -> Client:
    """The client module ``config.client`` names; :class:`~service.extras.MissingExtra` when its
    extra is not installed."""
    module, extra = CLIENTS[config.client]
    if extra is not None:
        extras.require(extra, f"kafka.client: {config.client}")
    return importlib.import_module(module)
