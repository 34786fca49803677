"""The Kafka edge (see docs/kafka.md)."""
