"""MLflow: references from the model registry or a run, and drift evidence logged back.

**Where the reference comes from** (``models.<name>.reference.mlflow``):

* ``models:/<name>/<version>`` (or ``models:/<name>@<alias>``): the registered model
  version's *source run*, artifact ``mlflow.reference_artifact`` (default ``reference``).
  That artifact may be one file (``reference.parquet``) or a directory holding one data
  file (``.parquet``, ``.csv``, ``.jsonl``/``.json``); log it with
  ``mlflow.log_artifact("ref.parquet", artifact_path="reference")`` in the training run.
* ``runs:/<run_id>/<path>``: that artifact of that run (a file, or a directory as above);
  ``runs:/<run_id>`` alone uses ``mlflow.reference_artifact``.

**What is logged on each trigger** (``mlflow.log_evidence``, on a background thread): a run
in the experiment ``<experiment_prefix><model>`` (default ``driftline/<model>``) named
``<reason>-<id8>``, tagged ``driftline.trigger_id``, ``driftline.reason``, ``driftline.model``,
``driftline.model_version``, ``driftline.reference``; metrics ``drift_share``,
``dataset_drift``, ``drifted_features``, ``drift_score.<feature>``, ``performance.<metric>``;
artifacts ``drift/features.json``, ``drift/features.csv``, ``drift/trigger.json`` and
``drift/report.html`` (Evidently's data drift report of the reference against the window).
When the reference is a registered version, that version is tagged
``driftline.drift=true`` and ``driftline.last_trigger_id=<id>``. A trigger id is logged at
most once: a retry after a crash finds the run by its ``driftline.trigger_id`` tag.
"""

from __future__ import annotations

import io
import json
import logging
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from service.config import MlflowConfig
from service.ingest.tables import FORMATS, TableError, read_table
from service.integrations.evidently_report import evidently_html

if TYPE_CHECKING:  # mlflow is imported where a client is made: it takes seconds
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

log = logging.getLogger("driftline.mlflow")

_MODELS = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[^/]+)|@(?P<alias>[^/]+))/?$")
_RUNS = re.compile(r"^runs:/(?P<run>[^/]+)(?:/(?P<path>.+))?$")
_METRIC_NAME = re.compile(r"[^A-Za-z0-9_\-. /]")


def _client(config: MlflowConfig, tracking_uri: str | None = None) -> MlflowClient:
    from mlflow.tracking import MlflowClient  # noqa: PLC0415 - slow import

    uri = tracking_uri or config.tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def parse_uri(uri: str) -> tuple[str, dict]:
    """``("models", {name, version, alias})`` or ``("runs", {run, path})``; ValueError otherwise."""
    match = _MODELS.match(uri)
    if match:
        return "models", match.groupdict()
    match = _RUNS.match(uri)
    if match:
        return "runs", match.groupdict()
    raise ValueError(f"{uri!r} is not models:/<name>/<version>, models:/<name>@<alias> or runs:/<run_id>/<path>")


def resolve_version(client: MlflowClient, name: str, version: str | None, alias: str | None) -> ModelVersion:
    if alias is not None:
        return client.get_model_version_by_alias(name, alias)
    if version is not None and not version.isdigit():
        # A stage (Production, Staging): the newest version in it, as MLflow resolves models:/name/Stage.
        found = client.get_latest_versions(name, stages=[version])
        if not found:
            raise ValueError(f"registered model {name!r} has no version in stage {version!r}")
        return found[0]
    if version is None:  # parse_uri gives a models:/ URI a version or an alias, never neither
        raise ValueError(f"registered model {name!r}: no version or alias to resolve")
    return client.get_model_version(name, version)


def download_reference(uri: str, config: MlflowConfig, max_rows: int | None = None,
                       max_cells: int | None = None) -> pd.DataFrame:
    """The reference data set named by ``uri`` (see the module docstring for the convention),
    refused (:class:`~service.ingest.tables.TooLarge`) above ``max_rows`` rows or ``max_cells`` values."""
    kind, parts = parse_uri(uri)
    client = _client(config)
    try:
        if kind == "models":
            version = resolve_version(client, parts["name"], parts["version"], parts["alias"])
            run_id = version.run_id
            if not run_id:
                raise ValueError(f"{uri}: model version {version.version} has no source run to take the "
                                 f"reference ({config.reference_artifact}) from")
            path = config.reference_artifact
        else:
            run_id, path = parts["run"], parts["path"] or config.reference_artifact
        with tempfile.TemporaryDirectory(prefix="driftline-ref-") as tmp:
            local = Path(client.download_artifacts(run_id, path, tmp))
            return read_table(_data_file(local, uri), max_rows=max_rows, max_cells=max_cells)
    except (TableError, ValueError):
        raise
    except Exception as exc:  # MlflowException, connection errors: one line for the operator
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"{uri}: {message}") from None


def _data_file(local: Path, uri: str) -> Path:
    if local.is_file():
        return local
    candidates = sorted(p for p in local.rglob("*") if p.is_file() and p.suffix.lower() in FORMATS)
    if not candidates:
        raise ValueError(f"{uri}: no .parquet, .csv or .jsonl file in the artifact {local.name!r}")
    if len(candidates) > 1:
        log.warning("%s: several data files in %s, using %s", uri, local.name, candidates[0].name)
    return candidates[0]


class EvidenceLogger:
    """Logs a trigger's evidence as an MLflow run; used on the trigger aftercare thread."""

    def __init__(self, tracking_uri: str, config: MlflowConfig):
        self.tracking_uri = tracking_uri
        self.config = config
        self._experiments: dict[str, str] = {}

    def _experiment(self, client: MlflowClient, model: str) -> str:
        name = f"{self.config.experiment_prefix}{model}"
        if name not in self._experiments:
            found = client.get_experiment_by_name(name)
            if found is None:
                try:
                    self._experiments[name] = client.create_experiment(name, tags={"driftline.model": model})
                except Exception:  # created concurrently by another driftline
                    found = client.get_experiment_by_name(name)
                    if found is None:
                        raise
                    self._experiments[name] = found.experiment_id
            else:
                self._experiments[name] = found.experiment_id
        return self._experiments[name]

    def log(self, payload: dict, drift: dict | None, frames: tuple | None) -> str:
        """Log (or find, after a crash) the run of this trigger; returns its run id."""
        from mlflow.entities import Metric  # noqa: PLC0415

        client = _client(self.config, self.tracking_uri)
        experiment_id = self._experiment(client, payload["model"])
        trigger_id = payload["id"]
        existing = client.search_runs([experiment_id], filter_string=f"tags.`driftline.trigger_id` = '{trigger_id}'",
                                      max_results=1)
        if existing and existing[0].info.status == "FINISHED":
            run_id = existing[0].info.run_id
            self._tag_version(client, payload)
            return run_id
        source = (payload.get("reference") or {}).get("source")
        tags = {"driftline.trigger_id": trigger_id, "driftline.reason": payload["reason"],
                "driftline.model": payload["model"], "driftline.model_version": str(payload.get("model_version")),
                "driftline.reference": str(source), "mlflow.note.content":
                    f"driftline retraining trigger ({payload['reason']}) of model {payload['model']}"}
        run = existing[0] if existing else client.create_run(
            experiment_id, run_name=f"{payload['reason']}-{trigger_id[:8]}", tags=tags)
        run_id = run.info.run_id
        try:
            evidence = payload.get("evidence") or {}
            stamp = int(_seconds(payload.get("triggered_at")) * 1000)
            metrics: dict[str, float] = {}
            if evidence.get("drift_share") is not None:
                metrics["drift_share"] = float(evidence["drift_share"])
            if evidence.get("dataset_drift") is not None:
                metrics["dataset_drift"] = float(bool(evidence["dataset_drift"]))
            metrics["drifted_features"] = float(len(evidence.get("drifted_features") or []))
            for metric, value in (evidence.get("performance") or {}).items():
                if value is not None:
                    metrics[f"performance.{metric}"] = float(value)
            table = []
            for feature, result in ((drift or {}).get("features") or {}).items():
                table.append({"feature": feature, **result})
                if result.get("score") is not None:
                    metrics[_metric_name(f"drift_score.{feature}")] = float(result["score"])
            predicted = evidence.get("prediction_drift")
            if predicted and predicted.get("score") is not None:
                metrics["prediction_drift_score"] = float(predicted["score"])
            client.log_batch(run_id, metrics=[Metric(k, v, stamp, 0) for k, v in metrics.items()],
                             params=[])
            client.log_text(run_id, json.dumps(drift or {}, indent=2, default=str), "drift/features.json")
            if table:
                sink = io.StringIO()
                pd.DataFrame(table).to_csv(sink, index=False)
                client.log_text(run_id, sink.getvalue(), "drift/features.csv")
            client.log_text(run_id, json.dumps(payload, indent=2), "drift/trigger.json")
            if frames is not None:
                client.log_text(run_id, evidently_html(*frames), "drift/report.html")
            client.set_terminated(run_id, "FINISHED")
        except Exception:
            client.set_terminated(run_id, "FAILED")
            raise
        self._tag_version(client, payload)
        log.info("MLflow: evidence of trigger %s logged as run %s", trigger_id, run_id)
        return run_id

    def _tag_version(self, client: MlflowClient, payload: dict) -> None:
        source = (payload.get("reference") or {}).get("source") or ""
        if not self.config.tag_versions or not source.startswith("mlflow:models:/"):
            return
        _, parts = parse_uri(source[len("mlflow:"):])
        version = resolve_version(client, parts["name"], parts["version"], parts["alias"])
        client.set_model_version_tag(parts["name"], version.version, "driftline.drift", "true")
        client.set_model_version_tag(parts["name"], version.version, "driftline.last_trigger_id", payload["id"])
        client.set_model_version_tag(parts["name"], version.version, "driftline.last_reason", payload["reason"])


def _metric_name(name: str) -> str:
    return _METRIC_NAME.sub("_", name)[:250]


def _seconds(stamp: str | None) -> float:
    import time  # noqa: PLC0415
    from datetime import datetime  # noqa: PLC0415

    if not stamp:
        return time.time()
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
