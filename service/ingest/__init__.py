"""Ingest adapters: KServe/Seldon inference-logger CloudEvents."""
