"""The Kafka edge (see docs/kafka.md).

- :mod:`~service.kafka.source`: the consumer-group member and its poll loop.
- :mod:`~service.kafka.changelog`: per-model state and pending CloudEvents halves in the
  compacted state topic; the runtime's state store when ``kafka.state_topic`` is set.
- :mod:`~service.kafka.dead_letters`: rejected records to the dead-letter topic.
- :mod:`~service.kafka.admin`: client options, and the topics created when missing.
- :mod:`~service.kafka.lag`: the consumer-lag gauge.
"""
