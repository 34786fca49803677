"""driftline's service: every edge (HTTP, Kafka, webhooks, MLflow, metrics) around one engine."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("driftline")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"
