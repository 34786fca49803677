"""The core install (``pip install driftline``, no extras): what a sidecar gets.

scripts/test.sh makes that environment (``.venv-core``: driftline and pytest only) and names
its Python in ``DRIFTLINE_CORE_PYTHON``. Here the suite's core modules run in it, and each
feature that needs an extra answers with one line naming the extra.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from service.extras import EXTRAS
from tests.conftest import free_socket, require_tool

ROOT = Path(__file__).resolve().parents[1]
# Modules of the suite that need nothing beyond the core install and pytest.
CORE_MODULES = ["test_config.py", "test_engine.py", "test_events.py", "test_features.py",
                "test_native.py", "test_window.py"]


@pytest.fixture(scope="module")
def core_python() -> Path:
    path = os.environ.get("DRIFTLINE_CORE_PYTHON")
    return require_tool("a core-only environment", path and Path(path).exists() and Path(path),
                        "scripts/test.sh makes .venv-core and sets DRIFTLINE_CORE_PYTHON")


def run(command: list, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, **kwargs)


def test_the_core_install_brings_none_of_the_extras(core_python):
    found = run([core_python, "-c", "import importlib.util, json, sys; "
                 "print(json.dumps({m: importlib.util.find_spec(m) is not None for m in sys.argv[1:]}))",
                 *EXTRAS.values(), "niquests", "urllib3_future"])
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout) == dict.fromkeys([*EXTRAS.values(), "niquests", "urllib3_future"], False)


def test_the_suites_core_modules_pass_in_the_core_install(core_python):
    result = run([core_python, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                  *(f"tests/{module}" for module in CORE_MODULES)], timeout=900)
    summary = result.stdout.strip().splitlines()[-1]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " passed" in summary and "skipped" not in summary and "failed" not in summary, summary


def test_the_offline_drift_check_answers_the_same_in_the_core_install(core_python):
    files = ["--reference", ROOT / "examples/drift/reference.csv", "--current", ROOT / "examples/drift/current.csv",
             "--json"]
    core = run([core_python.parent / "driftline", "drift", *files])
    full = run([Path(sys.executable).parent / "driftline", "drift", *files])
    assert core.returncode == full.returncode == 0, core.stderr
    assert json.loads(core.stdout) == json.loads(full.stdout)
    assert json.loads(core.stdout)["features_total"] > 0


def test_the_report_and_a_parquet_upload_answer_501_naming_their_extras(core_python, tmp_path):
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    server = subprocess.Popen([core_python.parent / "driftline", "serve", "--port", str(port)], cwd=tmp_path,
                              env={**os.environ, "DRIFTLINE_STATE_DIR": str(tmp_path / "state")},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            for _ in range(500):
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.02)
            response = client.get("/v1/models/fraud/report")
            upload = client.put("/v1/models/fraud/reference", content=b"PAR1\x00\x00PAR1",
                                headers={"content-type": "application/vnd.apache.parquet"})
            healthy = client.get("/healthz").status_code
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert response.status_code == 501
    assert response.json() == {"detail": "/report needs driftline's [report] extra: "
                                         "pip install 'driftline[report]'"}
    assert upload.status_code == 501
    assert upload.json()["detail"].endswith("pip install 'driftline[parquet]'")
    assert healthy == 200


def test_dashboards_push_exits_2_naming_its_extra(core_python):
    result = run([core_python.parent / "driftline", "dashboards", "push", "--url", "http://127.0.0.1:9"])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "driftline: driftline dashboards push needs driftline's [grafana] extra: pip install 'driftline[grafana]'"]


def test_parquet_inputs_name_their_extra(core_python, tmp_path):
    (tmp_path / "ref.parquet").write_bytes(b"PAR1")
    (tmp_path / "cur.csv").write_text("a\n1\n")
    result = run([core_python.parent / "driftline", "drift", "--reference", tmp_path / "ref.parquet",
                  "--current", tmp_path / "cur.csv"])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].endswith(
        "reading Parquet needs driftline's [parquet] extra: pip install 'driftline[parquet]'")


@pytest.mark.parametrize("config, feature", [
    ({"models": {"fraud": {"reference": {"mlflow": "models:/fraud/7"}}}}, "models.fraud.reference.mlflow"),
    ({"mlflow": {"tracking_uri": "http://127.0.0.1:9"}},
     "MLflow evidence logging (mlflow.tracking_uri, mlflow.log_evidence)"),
])
def test_an_mlflow_configuration_stops_start_up_naming_its_extra(core_python, tmp_path, config, feature):
    path = tmp_path / "driftline.yaml"
    path.write_text(yaml.safe_dump({"state_dir": str(tmp_path / "state"), **config}))
    result = run([core_python.parent / "driftline", "serve", "--config", path, "--port", "0"])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"driftline: {feature} needs driftline's [mlflow] extra: pip install 'driftline[mlflow]'")


def test_the_confluent_kafka_client_stops_start_up_naming_its_extra(core_python, tmp_path):
    path = tmp_path / "driftline.yaml"
    path.write_text(yaml.safe_dump({"state_dir": str(tmp_path / "state"), "kafka": {
        "client": "confluent", "bootstrap_servers": "127.0.0.1:9", "topics": ["model-events"]}}))
    # -m from the repository: this tree's service, not the one the core environment installed
    result = run([core_python, "-m", "service.cli", "serve", "--config", path, "--port", "0"])
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "driftline: kafka.client: confluent needs driftline's [kafka-confluent] extra: "
        "pip install 'driftline[kafka-confluent]'")
