"""What driftline's Kafka clients share: how their errors read, and which topics driftline
creates when missing (each client in :mod:`service.kafka.clients` does the round trips)."""

from __future__ import annotations

from dataclasses import dataclass, field

from service.config import KafkaConfig

__all__ = ["BOOTSTRAP_TIMEOUT_MS", "MAX_STATE_BYTES", "TopicPlan", "describe_error", "plan_topics"]

# A model's state holds its windows and the predictions waiting for labels (up to
# labels.max_pending): megabytes. The changelog topic is created to accept records this big.
MAX_STATE_BYTES = 64 * 1024 * 1024
# Each client waits this long for a first broker, then the source backs off and tries again;
# short, so that stopping while the broker is down takes seconds, not 30.
BOOTSTRAP_TIMEOUT_MS = 3000

CHANGELOG_CONFIGS = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0", "segment.ms": "600000",
                     "max.message.bytes": str(MAX_STATE_BYTES)}


@dataclass
class TopicPlan:
    """Topics to create (name, partitions, topic configs), and the changelog's partition count
    when it must grow to match the widest input topic (else None)."""

    create: list[tuple[str, int, dict[str, str]]] = field(default_factory=list)
    grow_changelog_to: int | None = None


def plan_topics(config: KafkaConfig, existing: dict[str, int]) -> TopicPlan:
    """``existing``: partitions of each topic the broker has (at least the input topics and the
    changelog among them). The changelog is compacted, as wide as the widest input topic; the
    dead-letter and trigger topics have one partition. A broker that auto-creates topics, or
    an operator who created them, makes this an empty plan."""
    width = max((existing[t] for t in config.topics if t in existing), default=1) or 1
    plan = TopicPlan()
    changelog = config.state_topic
    if changelog and changelog not in existing:
        plan.create.append((changelog, width, dict(CHANGELOG_CONFIGS)))
    for topic in (config.dead_letter_topic, config.trigger_topic):
        if topic and topic not in existing:
            plan.create.append((topic, 1, {}))
    if changelog and changelog in existing and existing[changelog] < width:
        plan.grow_changelog_to = width
    return plan


def describe_error(exc: BaseException) -> str:
    """``Name: message``; kafka-python's errors already start with their name."""
    text = str(exc)
    name = type(exc).__name__
    return text if text.startswith(name) else f"{name}: {text}" if text else name
