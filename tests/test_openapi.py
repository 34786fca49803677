"""The OpenAPI document against the live server: schemathesis runs every check it has.

The server runs with all three tokens set, so schemathesis also proves that every route
declaring the bearer scheme refuses a request without it (``ignored_auth``).
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

ADMIN = "openapi-admin-token"
TOKENS = {"DRIFTLINE_TOKEN": ADMIN, "DRIFTLINE_INGEST_TOKEN": "openapi-ingest-token",
          "DRIFTLINE_READ_TOKEN": "openapi-read-token"}
SMALL = {"models": {"default": {"reference": {"first_n": 20}, "window": {"size": 20, "step": 10}}}}

# What a schema cannot say: a CloudEvent's body must be the KServe/Seldon payload its ce-type
# names, an uploaded reference must parse as a table with at least one feature column, and
# the elements of an event array are checked one by one (the array answers 400 when every one
# is rejected). Such requests are schema-valid and still rejected with reasons, never a 500.
SCHEMATHESIS_TOML = """
[[operations]]
include-path = "/v1/events"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403"]

[[operations]]
include-path = "/v1/cloudevents"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404"]

[[operations]]
include-path = "/v1/models/{model}/reference"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422"]
"""


def test_openapi_declares_the_bearer_scheme_and_error_answers(live_server):
    document = live_server(SMALL, environ=TOKENS).client.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": document["components"]["securitySchemes"]["bearer"][
            "description"]}
    paths = document["paths"]
    for path, method in (("/v1/events", "post"), ("/v1/cloudevents", "post"), ("/v1/alertmanager", "post"),
                         ("/v1/models/{model}/reference", "put"), ("/v1/models/{model}/retrain", "post"),
                         ("/v1/models/{model}/report", "get"), ("/v1/triggers", "get")):
        operation = paths[path][method]
        assert operation["security"] == [{"bearer": []}], path
        assert {"401", "403"} <= set(operation["responses"]), path
        if method != "get":
            assert {"413", "415"} <= set(operation["responses"]), path
    # Error answers are JSON even where success is HTML.
    report_errors = paths["/v1/models/{model}/report"]["get"]["responses"]
    assert set(report_errors["409"]["content"]) == {"application/json"}


def test_schemathesis_all_checks_pass(live_server, tmp_path):
    if _urllib3_replaced():
        pytest.fail("urllib3-future's wheel (grafana-client -> niquests) has replaced urllib3 in this environment, "
                    "and schemathesis' requests transport fails on it ('TrafficPolice' object has no attribute "
                    "'keys'). Install as scripts/test.sh does: URLLIB3_NO_OVERRIDE=1 pip install --no-binary "
                    "urllib3-future ... keeps the two apart.")
    server = live_server(SMALL, environ=TOKENS)
    config = tmp_path / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_TOML)
    command = [str(Path(sys.executable).with_name("st")), "--no-color", "--config-file", str(config), "run",
               f"{server.url}/openapi.json", "--checks", "all", "--header", f"Authorization: Bearer {ADMIN}",
               "--max-examples", "15", "--max-time", "120", "--workers", "1", "--request-timeout", "60",
               "--max-response-time", "30",
               "--seed", "1"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=400, cwd=tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-12000:]
    assert "Tested: 15" in output, output[-4000:]


def _urllib3_replaced() -> bool:
    import urllib3

    return urllib3.__version__ != importlib.metadata.version("urllib3")
