"""The Kafka client the current test runs driftline on (set by conftest's ``kafka_client``
fixture, read by ``kafka_config``). A module of its own: pytest's conftest module and the
``tests.kafka.conftest`` the tests import are two module objects, this one is one."""

CLIENTS = ("kafka-python", "confluent")
current = {"client": CLIENTS[0]}
