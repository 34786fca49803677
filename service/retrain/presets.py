"""The registry of webhook presets: each shapes the retraining request for the API it targets.

A :class:`Preset` has a name (``webhooks.<target>.preset``), the configuration keys it cannot
do without, and a function from the target's configuration and the payload to the request,
without credentials, signature or User-Agent (:func:`service.retrain.dispatcher.build_request`
adds those). :data:`PRESETS` is the one list of presets: the configuration takes its preset
names and required keys from it, so a preset is added by adding it there.

>>> from types import SimpleNamespace
>>> prepared = PRESETS["generic"].shape(SimpleNamespace(url="http://ci/hook"), {"id": "t1"}, None, None)
>>> prepared.method, prepared.url, prepared.body
('POST', 'http://ci/hook', b'{"id":"t1"}')
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from service.retrain.payload import rfc3339

__all__ = ["PRESETS", "Prepared", "Preset", "WebhookTarget", "pipeline_variables", "string_parameters"]


class WebhookTarget(Protocol):
    """What presets read of a webhook's configuration (:class:`service.config.WebhookConfig`).

    A protocol rather than that class: the configuration takes its preset names from this
    module, so this module cannot import the configuration."""

    url: str
    ref: str | None
    dag_id: str | None
    repository: str | None
    workflow: str | None
    project_id: str | None
    job: str | None
    pipeline_id: str | None
    pipeline_version_id: str | None
    experiment_id: str | None
    namespace: str | None
    workflow_template: str | None

    @property
    def airflow_api(self) -> str: ...


@dataclass
class Prepared:
    """An HTTP request, ready but for its signature headers."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    # Statuses that mean "already done" on a retry (Airflow: 409 for the dag_run_id of our earlier attempt).
    also_delivered_on_retry: frozenset[int] = frozenset()


# config, payload, trigger token (GitLab, Jenkins), the trigger's commit time (Airflow 3) -> request
Shape = Callable[[WebhookTarget, dict, str | None, float | None], Prepared]


@dataclass(frozen=True)
class Preset:
    """A target API: its name, the configuration keys it needs, and how its request is shaped."""

    name: str
    requires: tuple[str, ...]
    shape: Shape


JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


def string_parameters(payload: dict) -> dict[str, str]:
    """The trigger as string parameters (GitHub inputs, Kubeflow/Argo parameters)."""
    return {
        "driftline_id": payload["id"], "model": payload["model"],
        "model_version": str(payload.get("model_version") or "unknown"), "reason": payload["reason"],
        "payload": json.dumps(payload, separators=(",", ":"), sort_keys=True),
    }


def pipeline_variables(payload: dict) -> dict[str, str]:
    """The trigger as CI variables (GitLab pipeline variables, Jenkins build parameters)."""
    params = string_parameters(payload)
    return {"DRIFTLINE_ID": params["driftline_id"], "DRIFTLINE_MODEL": params["model"],
            "DRIFTLINE_MODEL_VERSION": params["model_version"], "DRIFTLINE_REASON": params["reason"],
            "DRIFTLINE_PAYLOAD": params["payload"]}


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _base(url: str) -> str:
    return url.rstrip("/")


def _generic(config: WebhookTarget, payload: dict, trigger_token: str | None, created: float | None) -> Prepared:
    return Prepared("POST", config.url, dict(JSON_HEADERS), _json(payload))


def _airflow(config: WebhookTarget, payload: dict, trigger_token: str | None, created: float | None) -> Prepared:
    """Airflow 2 (/api/v1) and 3 (/api/v2); dag_run_id = the trigger id makes a repeat a 409."""
    body: dict[str, Any] = {"dag_run_id": f"driftline__{payload['id']}", "conf": payload}
    if config.airflow_api == "v2":
        # Required (nullable) in Airflow 3; to the microsecond, so two triggers never share one.
        body["logical_date"] = rfc3339(created, precise=True) if created is not None else payload["triggered_at"]
        body["note"] = f"driftline: {payload['reason']} on {payload['model']}"
    dag_id = quote(config.dag_id or "", safe="")
    url = f"{_base(config.url)}/api/{config.airflow_api}/dags/{dag_id}/dagRuns"
    return Prepared("POST", url, dict(JSON_HEADERS), _json(body), also_delivered_on_retry=frozenset({409}))


def _github(config: WebhookTarget, payload: dict, trigger_token: str | None, created: float | None) -> Prepared:
    workflow = quote(config.workflow or "", safe="")
    url = f"{_base(config.url)}/repos/{config.repository}/actions/workflows/{workflow}/dispatches"
    headers = {"Content-Type": "application/json", "Accept": "application/vnd.github+json",
               "X-GitHub-Api-Version": "2022-11-28"}
    return Prepared("POST", url, headers, _json({"ref": config.ref, "inputs": string_parameters(payload)}))


def _gitlab(config: WebhookTarget, payload: dict, trigger_token: str | None, created: float | None) -> Prepared:
    url = f"{_base(config.url)}/api/v4/projects/{quote(str(config.project_id), safe='')}/trigger/pipeline"
    form = [("token", trigger_token or ""), ("ref", config.ref or "")]
    form += [(f"variables[{key}]", value) for key, value in pipeline_variables(payload).items()]
    return Prepared("POST", url, {**FORM_HEADERS, "Accept": "application/json"}, urlencode(form).encode())


def _jenkins(config: WebhookTarget, payload: dict, trigger_token: str | None, created: float | None) -> Prepared:
    job_path = "".join(f"/job/{quote(part, safe='')}" for part in (config.job or "").strip("/").split("/"))
    form = list(pipeline_variables(payload).items())
    if trigger_token:
        form.append(("token", trigger_token))
    return Prepared("POST", f"{_base(config.url)}{job_path}/buildWithParameters", dict(FORM_HEADERS),
                    urlencode(form).encode())


def _kubeflow(config: WebhookTarget, payload: dict, trigger_token: str | None, created: float | None) -> Prepared:
    body: dict[str, Any] = {
        "display_name": f"driftline {payload['model']} {payload['reason']} {payload['id'][:8]}",
        "description": f"Retraining requested by driftline ({payload['reason']}), trigger {payload['id']}",
        "pipeline_version_reference": {"pipeline_id": config.pipeline_id,
                                       "pipeline_version_id": config.pipeline_version_id},
        "runtime_config": {"parameters": string_parameters(payload)},
    }
    if config.experiment_id:
        body["experiment_id"] = config.experiment_id
    return Prepared("POST", f"{_base(config.url)}/apis/v2beta1/runs", dict(JSON_HEADERS), _json(body))


def _argo(config: WebhookTarget, payload: dict, trigger_token: str | None, created: float | None) -> Prepared:
    body = {
        "namespace": config.namespace, "resourceKind": "WorkflowTemplate",
        "resourceName": config.workflow_template,
        "submitOptions": {
            "generateName": f"{config.workflow_template}-",
            "parameters": [f"{key}={value}" for key, value in string_parameters(payload).items()],
            "labels": f"driftline.io/trigger-id={payload['id']},driftline.io/reason={payload['reason']}",
        },
    }
    url = f"{_base(config.url)}/api/v1/workflows/{quote(config.namespace or '', safe='')}/submit"
    return Prepared("POST", url, dict(JSON_HEADERS), _json(body))


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset("generic", (), _generic),
        Preset("airflow", ("dag_id",), _airflow),
        Preset("github", ("repository", "workflow", "ref"), _github),
        Preset("gitlab", ("project_id", "trigger_token_env", "ref"), _gitlab),
        Preset("jenkins", ("job",), _jenkins),
        Preset("kubeflow", ("pipeline_id", "pipeline_version_id"), _kubeflow),
        Preset("argo", ("namespace", "workflow_template"), _argo),
    )
}
