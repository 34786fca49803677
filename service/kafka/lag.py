"""``driftline_consumer_lag_messages{topic,partition}``: the records of each assigned
partition between the source's position and the log end."""

from __future__ import annotations

__all__ = ["measure_lag", "remove_lag"]


def measure_lag(gauge, consumer, assigned: list, applied: dict) -> None:
    """Set the gauge of every ``assigned`` partition (one round trip for the end offsets);
    with none assigned, a metadata round trip. Raises what the client raises when the broker
    does not answer."""
    if not assigned:
        consumer.list_topics(timeout=5)
        return
    ends = consumer.end_offsets(assigned, timeout=5)
    for tp in assigned:
        position = applied.get(tp)
        if position is None:
            position = consumer.position(tp, timeout=5)
        gauge.labels(topic=tp.topic, partition=str(tp.partition)).set(max(0, ends.get(tp, position) - position))


def remove_lag(gauge, tp) -> None:
    """Forget a partition this replica no longer reads."""
    try:
        gauge.remove(tp.topic, str(tp.partition))
    except KeyError:
        pass
