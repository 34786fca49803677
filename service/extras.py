"""Optional features and the pip extra that brings each.

The core install serves, ingests over HTTP and Kafka, computes drift and performance and
fires webhooks. Five features need heavy packages a sidecar should not carry, so they come
with extras; a feature whose extra is missing says in one line which one to install.

>>> str(MissingExtra("report", "/report"))
"/report needs driftline's [report] extra: pip install 'driftline[report]'"
"""

from __future__ import annotations

import importlib.util

__all__ = ["EXTRAS", "MissingExtra", "available", "require"]

# extra -> the module it brings; pyproject.toml's [project.optional-dependencies] has the rest.
EXTRAS = {
    "parquet": "pyarrow",  # Parquet references and drift inputs (CSV and JSON lines need none)
    "report": "evidently",  # the Evidently HTML report (/report, MLflow evidence)
    "mlflow": "mlflow",  # references from the model registry, evidence runs
    "grafana": "grafana_client",  # `driftline dashboards push`
    "kafka-confluent": "confluent_kafka",  # kafka.client: confluent (librdkafka)
}


class MissingExtra(RuntimeError):
    """A feature was asked for whose extra is not installed."""

    def __init__(self, extra: str, feature: str):
        self.extra = extra
        super().__init__(f"{feature} needs driftline's [{extra}] extra: pip install 'driftline[{extra}]'")


def available(extra: str) -> bool:
    """Whether the module that ``extra`` brings can be imported (without importing it)."""
    return importlib.util.find_spec(EXTRAS[extra]) is not None


def require(extra: str, feature: str) -> None:
    """Raise :class:`MissingExtra` naming ``feature`` unless ``extra`` is installed."""
    if not available(extra):
        raise MissingExtra(extra, feature)
