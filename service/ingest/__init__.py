"""Ingest adapters that need no web framework: KServe/Seldon inference-logger CloudEvents.

- :mod:`~service.ingest.cloudevents`: CloudEvents attributes from HTTP headers or Kafka
  record headers (binary and structured mode), and the model an event belongs to.
- :mod:`~service.ingest.bodies`: V1, V2 (open inference) and Seldon payloads -> rows.
- :mod:`~service.ingest.halves`: a request or response waiting for its partner, and the
  bytes that carry pending halves to the Kafka changelog.
- :mod:`~service.ingest.joiner`: requests and responses joined into prediction events.
- :mod:`~service.ingest.journal`: pending halves on disk (SQLite).
- :mod:`~service.ingest.sink`: the HTTP sink's joiner as a runtime component; its route is
  in :mod:`service.http.cloudevents_routes`, the Kafka source's joiner in
  :mod:`service.kafka.source`.
"""
