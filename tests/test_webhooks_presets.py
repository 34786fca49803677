"""Each preset's request against a stand-in receiver written for these tests, not the vendors' servers.

The receiver plays Airflow 2 and 3, GitHub, GitLab, Jenkins, Kubeflow Pipelines and Argo
Workflows: it checks path, method, headers (auth, content type, API version, signature)
and body, validates the JSON bodies against the request schemas transcribed from each
vendor's published OpenAPI/Swagger description (tests/schemas/), and answers as the API
documents (200/201/204), or 400/404/415/422 with the reason for anything else, which
driftline records as a failed delivery.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from jsonschema import Draft202012Validator

from tests.test_webhooks import RAW_SECRET, Received, receivers, trigger_state, wait_until  # noqa: F401 - fixture

TOKENS = {"AIRFLOW2_USER": "airflow", "AIRFLOW2_PASSWORD": "pw2", "AIRFLOW3_TOKEN": "jwt-3",
          "GITHUB_TOKEN": "ghp_token", "GITLAB_TRIGGER": "glptt-trigger", "JENKINS_USER": "ci",
          "JENKINS_API_TOKEN": "11jenkins", "KFP_TOKEN": "kfp-token", "ARGO_TOKEN": "argo-token",
          "HOOK_SECRET": RAW_SECRET}


class Reject(Exception):
    def __init__(self, status, why):
        super().__init__(why)
        self.status, self.why = status, why


def require(condition, why, status=400):
    if not condition:
        raise Reject(status, why)


SCHEMAS = Path(__file__).parent / "schemas"


def schema_validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.json").read_text())
    Draft202012Validator.check_schema(schema)
    # No format checker: jsonschema checks date-time only with rfc3339-validator installed; the
    # Airflow receiver checks logical_date's format itself.
    return Draft202012Validator(schema)


VALIDATORS = {name: schema_validator(name) for name in (
    "airflow-v1-dag-run", "airflow-v2-trigger-dag-run", "github-workflow-dispatch", "kubeflow-v2beta1-run",
    "argo-workflow-submit-request")}


def require_schema(body: dict, name: str, status: int = 400):
    """The body as the vendor's published request schema allows it (tests/schemas/<name>.json)."""
    errors = [f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}"
              for e in VALIDATORS[name].iter_errors(body)]
    require(not errors, f"{name}: {'; '.join(errors)}", status)


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def json_body(r: Received) -> dict:
    require(r.headers.get("content-type", "").startswith("application/json"), "Content-Type must be JSON", 415)
    try:
        body = json.loads(r.body)
    except ValueError:
        raise Reject(400, "body is not JSON") from None
    require(isinstance(body, dict), "body must be an object")
    return body


def form_body(r: Received) -> list[tuple[str, str]]:
    require(r.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"),
            "Content-Type must be a form", 415)
    return parse_qsl(r.body.decode(), keep_blank_values=True, strict_parsing=True)


def airflow(r: Received, version: str, seen: set):
    require(r.method == "POST", "method", 405)
    require(r.path == f"/api/{version}/dags/retrain_fraud/dagRuns", f"path {r.path}", 404)
    if version == "v1":  # Airflow 2: basic_auth backend
        require(r.headers.get("authorization") == basic("airflow", "pw2"), "auth", 401)
        allowed = {"dag_run_id", "logical_date", "execution_date", "conf", "note", "data_interval_start",
                   "data_interval_end"}
    else:  # Airflow 3: JWT bearer; logical_date is required (nullable)
        require(r.headers.get("authorization") == "Bearer jwt-3", "auth", 401)
        allowed = {"dag_run_id", "logical_date", "run_after", "conf", "note", "data_interval_start",
                   "data_interval_end"}
    body = json_body(r)
    require_schema(body, "airflow-v1-dag-run" if version == "v1" else "airflow-v2-trigger-dag-run", 422)
    require(set(body) <= allowed, f"unknown fields {set(body) - allowed}", 400)
    if version == "v2":
        require("logical_date" in body, "logical_date is required", 422)
        require(body["logical_date"] is None or re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)",
                                                              body["logical_date"]), "logical_date format", 422)
    require(isinstance(body.get("conf"), dict), "conf must be an object")
    require(re.fullmatch(r"[A-Za-z0-9_.~:+-]+", body.get("dag_run_id", "x")), "dag_run_id characters")
    require(body["conf"]["type"] == "driftline.retrain.requested", "conf is the payload")
    if body["dag_run_id"] in seen:
        return 409, {"detail": "DAGRun with DAG ID and run ID exists"}
    seen.add(body["dag_run_id"])
    return 200, {"dag_id": "retrain_fraud", "dag_run_id": body["dag_run_id"], "state": "queued",
                 "conf": body["conf"]}


def github(r: Received):
    require(r.method == "POST", "method", 405)
    require(r.path == "/repos/acme/models/actions/workflows/retrain.yml/dispatches", f"path {r.path}", 404)
    require(r.headers.get("authorization") == "Bearer ghp_token", "auth", 401)
    require(r.headers.get("accept") == "application/vnd.github+json", "Accept")
    require(r.headers.get("x-github-api-version") == "2022-11-28", "X-GitHub-Api-Version")
    require(r.headers.get("user-agent"), "GitHub requires a User-Agent", 403)
    body = json_body(r)
    require_schema(body, "github-workflow-dispatch", 422)
    require(set(body) <= {"ref", "inputs", "return_run_details"} and isinstance(body.get("ref"), str), "ref", 422)
    inputs = body.get("inputs", {})
    require(isinstance(inputs, dict) and len(inputs) <= 10, "at most 10 inputs", 422)
    require(all(isinstance(v, str) for v in inputs.values()), "inputs must be strings", 422)
    require(len(json.dumps(inputs)) <= 65535, "inputs too large", 422)
    declared = {"driftline_id", "model", "model_version", "reason", "payload"}  # the workflow's inputs
    require(set(inputs) <= declared, f"Unexpected inputs provided: {sorted(set(inputs) - declared)}", 422)
    require(json.loads(inputs["payload"])["id"] == inputs["driftline_id"], "payload input")
    return 204, None


def gitlab(r: Received):
    require(r.method == "POST", "method", 405)
    require(r.path == "/api/v4/projects/group%2Fmodels/trigger/pipeline", f"path {r.path}", 404)
    fields = form_body(r)
    keys = [k for k, _ in fields]
    require(dict(fields).get("token") == "glptt-trigger", "trigger token", 404)
    require(dict(fields).get("ref") == "main", "ref")
    for key in keys:
        require(key in ("token", "ref") or re.fullmatch(r"variables\[[A-Za-z_][A-Za-z0-9_]*\]", key),
                f"unknown field {key}")
    require("variables[DRIFTLINE_PAYLOAD]" in keys, "payload variable")
    require("authorization" not in r.headers, "trigger tokens go in the body")
    return 201, {"id": 4242, "status": "created", "ref": "main"}


def jenkins(r: Received):
    require(r.method == "POST", "method", 405)
    require(r.path == "/job/ml/job/retrain-fraud/buildWithParameters", f"path {r.path}", 404)
    require(r.headers.get("authorization") == basic("ci", "11jenkins"), "user:apitoken", 401)
    fields = dict(form_body(r))
    require({"DRIFTLINE_ID", "DRIFTLINE_MODEL", "DRIFTLINE_REASON", "DRIFTLINE_PAYLOAD"} <= set(fields),
            "parameters")
    return 201, None


def kubeflow(r: Received):
    require(r.method == "POST", "method", 405)
    require(r.path == "/apis/v2beta1/runs", f"path {r.path}", 404)
    require(r.headers.get("authorization") == "Bearer kfp-token", "auth", 401)
    body = json_body(r)
    require_schema(body, "kubeflow-v2beta1-run")
    allowed = {"display_name", "description", "pipeline_version_reference", "pipeline_spec", "runtime_config",
               "service_account", "experiment_id", "recurring_run_id"}
    require(set(body) <= allowed, f"unknown fields {set(body) - allowed}")
    require(isinstance(body.get("display_name"), str) and body["display_name"], "display_name required")
    require(body.get("pipeline_version_reference") == {"pipeline_id": "p-1", "pipeline_version_id": "v-2"},
            "pipeline_version_reference")
    require(body.get("experiment_id") == "e-3", "experiment_id")
    params = (body.get("runtime_config") or {}).get("parameters")
    require(isinstance(params, dict) and "payload" in params, "runtime_config.parameters")
    return 200, {"run_id": "run-1", "state": "PENDING", "display_name": body["display_name"]}


def argo(r: Received):
    require(r.method == "POST", "method", 405)
    require(r.path == "/api/v1/workflows/ml/submit", f"path {r.path}", 404)
    require(r.headers.get("authorization") == "Bearer argo-token", "auth", 401)
    body = json_body(r)
    require_schema(body, "argo-workflow-submit-request")
    require(set(body) <= {"namespace", "resourceKind", "resourceName", "submitOptions"}, "fields")
    require(body.get("namespace") == "ml", "namespace")
    require(body.get("resourceKind") == "WorkflowTemplate" and body.get("resourceName") == "retrain", "resource")
    options = body.get("submitOptions") or {}
    params = options.get("parameters")
    require(isinstance(params, list) and all(isinstance(p, str) and "=" in p for p in params), "parameters k=v")
    require(any(p.startswith("payload={") for p in params), "payload parameter")
    for label in options.get("labels", "").split(","):
        key, _, value = label.partition("=")
        require(re.fullmatch(r"[A-Za-z0-9./-]+", key) and len(value) <= 63, f"label {label}")
    return 200, {"metadata": {"name": "retrain-x7k2p", "namespace": "ml"}}


def generic(r: Received):
    require(r.method == "POST" and r.path == "/hooks/retrain", "path", 404)
    body = json_body(r)
    require(body.get("type") == "driftline.retrain.requested", "payload")
    return 200, {"ok": True}


@pytest.fixture
def api(receivers):
    rejected: list[str] = []
    seen_runs: set[str] = set()
    lost_once: set[str] = set()

    def respond(r: Received, _n):
        try:
            require(r.signed, "bad or missing Standard Webhooks signature", 401)
            if r.path.startswith("/api/v1/dags"):
                status, body = airflow(r, "v1", seen_runs)
            elif r.path.startswith("/api/v2/dags"):
                status, body = airflow(r, "v2", seen_runs)
                run_id = json.loads(r.body)["dag_run_id"]
                if status == 200 and run_id not in lost_once:
                    lost_once.add(run_id)  # the run is created but the answer is lost: driftline retries
                    return 502, {}, b"bad gateway"
            elif r.path.startswith("/repos/"):
                status, body = github(r)
            elif r.path.startswith("/api/v4/"):
                status, body = gitlab(r)
            elif r.path.startswith("/job/"):
                status, body = jenkins(r)
            elif r.path.startswith("/apis/"):
                status, body = kubeflow(r)
            elif r.path.startswith("/api/v1/workflows"):
                status, body = argo(r)
            else:
                status, body = generic(r)
        except Reject as exc:
            rejected.append(f"{r.path}: {exc.why}")
            return exc.status, {"Content-Type": "application/json"}, json.dumps({"message": exc.why}).encode()
        headers = {"Location": "/queue/item/7/"} if r.path.startswith("/job/") else {}
        return status, headers, b"" if body is None else json.dumps(body).encode()

    receiver = receivers(respond)
    receiver.rejected = rejected
    return receiver


def preset_config(url: str) -> dict:
    common = {"secret_env": "HOOK_SECRET", "timeout": "2s", "backoff_initial": "0.1s", "backoff_max": "0.2s",
              "max_attempts": 3}
    return {name: {**common, **cfg} for name, cfg in {
        "airflow2": {"preset": "airflow", "url": url, "dag_id": "retrain_fraud", "airflow_api": "v1",
                     "auth": {"basic_user_env": "AIRFLOW2_USER", "basic_password_env": "AIRFLOW2_PASSWORD"}},
        "airflow3": {"preset": "airflow", "url": url + "/", "dag_id": "retrain_fraud",
                     "auth": {"bearer_env": "AIRFLOW3_TOKEN"}},
        "github": {"preset": "github", "url": url, "repository": "acme/models", "workflow": "retrain.yml",
                   "auth": {"bearer_env": "GITHUB_TOKEN"}},
        "gitlab": {"preset": "gitlab", "url": url, "project_id": "group/models",
                   "trigger_token_env": "GITLAB_TRIGGER"},
        "jenkins": {"preset": "jenkins", "url": url, "job": "ml/retrain-fraud",
                    "auth": {"basic_user_env": "JENKINS_USER", "basic_password_env": "JENKINS_API_TOKEN"}},
        "kubeflow": {"preset": "kubeflow", "url": url, "pipeline_id": "p-1", "pipeline_version_id": "v-2",
                     "experiment_id": "e-3", "auth": {"bearer_env": "KFP_TOKEN"}},
        "argo": {"preset": "argo", "url": url, "namespace": "ml", "workflow_template": "retrain",
                 "auth": {"bearer_env": "ARGO_TOKEN"}},
        "generic": {"preset": "generic", "url": url + "/hooks/retrain"},
    }.items()}


def test_every_preset_is_accepted_by_a_receiver_checking_each_vendors_request_schema(live_server, api):
    hooks = preset_config(api.url)
    server = live_server({"webhooks": hooks, "models": {name: {"triggers": {"webhook": name}} for name in hooks}},
                         environ=TOKENS)
    ids = {}
    for name in hooks:
        response = server.client.post(f"/v1/models/{name}/retrain")
        assert response.status_code == 202, response.text
        ids[name] = response.json()["id"]
    for name, trigger_id in ids.items():
        wait_until(f"{name} delivered", lambda t=trigger_id: trigger_state(server, t)["state"] != "pending")
    assert api.rejected == []
    for name, trigger_id in ids.items():
        state = trigger_state(server, trigger_id)
        assert state["state"] == "delivered", (name, state["delivery"])
    # Airflow 3: the run was created but the 502 hid it; the retry's 409 (same dag_run_id) counts as delivered
    airflow3 = trigger_state(server, ids["airflow3"])["delivery"]
    assert airflow3["attempts"] == 2 and airflow3["last_status"] == 409
    assert server.metric("driftline_webhook_deliveries_total", target="airflow3", outcome="retried") == 1
    for name in hooks:
        assert server.metric("driftline_webhook_deliveries_total", target=name, outcome="delivered") == 1
        assert server.metric("driftline_webhook_deliveries_total", target=name, outcome="failed") == 0


@pytest.mark.parametrize("name, body, why", [
    ("airflow-v1-dag-run", {"dag_run_id": "x", "conf": {}, "run_after": None}, "run_after"),
    ("airflow-v2-trigger-dag-run", {"dag_run_id": "x", "conf": {}}, "logical_date"),
    ("github-workflow-dispatch", {"inputs": {}}, "ref"),
    ("github-workflow-dispatch", {"ref": "main", "inputs": {f"i{n}": "v" for n in range(11)}}, "too many"),
    ("kubeflow-v2beta1-run", {"display_name": "x", "parameters": {}}, "parameters"),
    ("kubeflow-v2beta1-run", {"display_name": "x", "pipeline_version_reference": {"pipeline": "p"}}, "pipeline"),
    ("argo-workflow-submit-request", {"submitOptions": {"parameters": "a=b"}}, "array"),
    ("argo-workflow-submit-request", {"submitOptions": {"generate_name": "x-"}}, "generate_name"),
])
def test_the_vendor_schemas_refuse_a_wrong_body(name, body, why):
    with pytest.raises(Reject, match=why):
        require_schema(body, name)


def test_the_strict_receiver_rejects_a_wrong_shape(live_server, api):
    """The receiver is not a rubber stamp: a GitHub preset pointed at the wrong workflow fails (404, no retry)."""
    hooks = preset_config(api.url)
    hooks["github"]["workflow"] = "other.yml"
    server = live_server({"webhooks": {"github": hooks["github"]}, "models": {"m": {}}}, environ=TOKENS)
    trigger_id = server.client.post("/v1/models/m/retrain").json()["id"]
    state = wait_until("failed", lambda: (s := trigger_state(server, trigger_id))["state"] == "failed" and s)
    assert state["delivery"]["last_status"] == 404 and state["delivery"]["attempts"] == 1
    assert api.rejected and "path" in api.rejected[0]


def test_airflow_409_on_a_first_attempt_is_a_failure(live_server, receivers):
    """A 409 proves our run exists only when an earlier attempt may have created it."""
    conflict = receivers(lambda r, n: (409, {}, b'{"detail": "DAGRun exists"}'))
    hooks = preset_config(conflict.url)
    server = live_server({"webhooks": {"airflow3": hooks["airflow3"]}, "models": {"m": {}}}, environ=TOKENS)
    trigger_id = server.client.post("/v1/models/m/retrain").json()["id"]
    state = wait_until("failed", lambda: (s := trigger_state(server, trigger_id))["state"] == "failed" and s)
    assert state["delivery"]["attempts"] == 1 and state["delivery"]["last_status"] == 409
    body = json.loads(conflict.requests[0].body)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", body["logical_date"])


class FakeAirflow3:
    """A fake of Airflow 3's documented public API (not Airflow itself): ``POST /auth/token``
    with ``{"username", "password"}`` answers 201 ``{"access_token": <JWT>}``; ``/api/v2``
    takes a bearer token until it expires (``expire_tokens()`` plays the 24 hours passing), then
    answers 401 ``{"detail": "Token Expired"}``; ``/api/v1`` no longer exists: a bare 405."""

    def __init__(self, receivers, username="driftline", password="s3cret"):
        self.credentials = {"username": username, "password": password}
        self.issued: list[str] = []
        self.expired: set[str] = set()
        self.runs: list[dict] = []
        self.receiver = receivers(self.respond)
        self.url = self.receiver.url

    def expire_tokens(self):
        self.expired |= set(self.issued)

    def respond(self, r: Received, _n):
        def answer(status, body):
            return status, {"Content-Type": "application/json"}, json.dumps(body).encode()

        if r.path == "/auth/token":
            if r.method != "POST" or json.loads(r.body or b"{}") != self.credentials:
                return answer(401, {"detail": "Invalid credentials"})
            token = f"jwt-{len(self.issued) + 1}"
            self.issued.append(token)
            return answer(201, {"access_token": token})
        if r.path.startswith("/api/v1/"):
            return answer(405, {"detail": "Method Not Allowed"})
        token = r.headers.get("authorization", "").removeprefix("Bearer ")
        if token not in self.issued:
            return answer(401, {"detail": "Not authenticated"})
        if token in self.expired:
            return answer(401, {"detail": "Token Expired"})
        try:
            status, body = airflow(Received(r.method, r.path, {**r.headers, "authorization": "Bearer jwt-3"},
                                            r.body, r.at, r.signed), "v2", set())
        except Reject as exc:
            return answer(exc.status, {"detail": exc.why})
        self.runs.append(json.loads(r.body))
        return answer(status, body)


AIRFLOW3_LOGIN = {"AIRFLOW_USER": "driftline", "AIRFLOW_PASSWORD": "s3cret", "HOOK_SECRET": RAW_SECRET}


def airflow3_hook(url: str, **extra) -> dict:
    return {"preset": "airflow", "url": url, "dag_id": "retrain_fraud", "secret_env": "HOOK_SECRET", "timeout": "2s",
            "backoff_initial": "0.1s", "backoff_max": "0.2s", "max_attempts": 2, **extra}


def test_airflow3_logs_in_for_a_token_and_renews_it_when_it_expires(live_server, receivers):
    fake = FakeAirflow3(receivers)
    hook = airflow3_hook(fake.url, auth={"username_env": "AIRFLOW_USER", "password_env": "AIRFLOW_PASSWORD"})
    server = live_server({"webhooks": {"airflow3": hook}, "models": {"m": {}}}, environ=AIRFLOW3_LOGIN)

    def deliver():
        trigger_id = server.client.post("/v1/models/m/retrain").json()["id"]
        return wait_until("delivery", lambda: (s := trigger_state(server, trigger_id))["state"] != "pending" and s)

    first = deliver()
    assert first["state"] == "delivered" and fake.issued == ["jwt-1"], first["delivery"]
    fake.expire_tokens()  # a day later
    second = deliver()
    assert second["state"] == "delivered", second["delivery"]
    assert second["delivery"]["attempts"] == 1 and fake.issued == ["jwt-1", "jwt-2"]
    assert [run["conf"]["id"] for run in fake.runs] == [first["id"], second["id"]]
    # The password and the tokens stay out of the API's answers.
    listing = server.client.get("/v1/triggers").text
    assert "s3cret" not in listing and "jwt-" not in listing


def test_airflow3_static_token_expiry_and_a_v1_preset_say_what_to_set(live_server, receivers):
    fake = FakeAirflow3(receivers)
    fake.issued.append("jwt-static")
    fake.expire_tokens()
    hooks = {"static": airflow3_hook(fake.url, auth={"bearer_env": "AIRFLOW_TOKEN"}),
             "old_api": airflow3_hook(fake.url, airflow_api="v1", auth={"basic_user_env": "AIRFLOW_USER",
                                                                        "basic_password_env": "AIRFLOW_PASSWORD"})}
    server = live_server({"webhooks": hooks, "models": {name: {"triggers": {"webhook": name}} for name in hooks}},
                         environ={**AIRFLOW3_LOGIN, "AIRFLOW_TOKEN": "jwt-static"})
    errors = {}
    for name in hooks:
        trigger_id = server.client.post(f"/v1/models/{name}/retrain").json()["id"]
        state = wait_until(name, lambda t=trigger_id: (s := trigger_state(server, t))["state"] != "pending" and s)
        assert state["state"] == "failed", state
        errors[name] = state["delivery"]["last_error"]
    assert "HTTP 401" in errors["static"] and "username_env" in errors["static"], errors
    assert "HTTP 405" in errors["old_api"] and "airflow_api: v2" in errors["old_api"], errors


# -- the registry ----------------------------------------------------------------------------


def test_the_config_takes_preset_names_and_required_keys_from_the_registry():
    from typing import get_args

    from pydantic import ValidationError

    from service.config import WebhookConfig
    from service.retrain.presets import PRESETS

    assert get_args(WebhookConfig.model_fields["preset"].annotation) == tuple(PRESETS)
    with pytest.raises(ValidationError, match="'generic', 'airflow'"):
        WebhookConfig(preset="tekton", url="http://ci")
    for name, preset in PRESETS.items():
        complete = {key: "x" for key in preset.requires}
        WebhookConfig(preset=name, url="http://ci", **complete)
        for key in preset.requires:
            with pytest.raises(ValidationError, match=f"preset {name} needs {key}"):
                WebhookConfig(preset=name, url="http://ci", **{**complete, key: None})


def test_each_preset_shapes_its_request_without_credentials():
    """Credentials are the dispatcher's to add: a preset's request carries none of them."""
    from service.config import WebhookConfig
    from service.retrain.presets import PRESETS

    payload = {"id": "0b8f-uuid", "model": "fraud", "model_version": "7", "reason": "data_drift",
               "triggered_at": "2026-11-28T08:05:00Z"}
    for name, preset in PRESETS.items():
        config = WebhookConfig(preset=name, url="http://ci/", **{key: "x" for key in preset.requires},
                               auth={"bearer_env": "B"})
        prepared = preset.shape(config, payload, "trigger-secret", 1795766400.5)
        assert prepared.method == "POST" and prepared.url.startswith("http://ci/")
        assert "Authorization" not in prepared.headers and "User-Agent" not in prepared.headers
        assert b"0b8f-uuid" in prepared.body
        assert (b"trigger-secret" in prepared.body) == (name in ("gitlab", "jenkins"))
