"""A real ``mlflow server`` (SQLite store, local artifacts) on loopback.

A registered model version carries its reference data set as an artifact of its source
run; driftline starts with ``models:/fraud/1`` as the reference, drift is driven over HTTP,
and the trigger's evidence is found in MLflow: the run (metrics, tags), the per-feature
table and the Evidently report artifacts, and the ``driftline.drift=true`` version tag.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest

from service.config import MlflowConfig
from service.integrations.mlflow import download_reference, parse_uri, resolve_version
from tests.conftest import free_socket, require_tool
from tests.test_webhooks import wait_until, wait_until_answers

MLFLOW = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or shutil.which("mlflow")


def reference_frame(n=1000, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"amount": rng.normal(100, 10, n), "age": rng.integers(18, 80, n).astype(float),
                         "country": rng.choice(["DE", "FR", "US"], n), "prediction": rng.integers(0, 2, n)})


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    require_tool("mlflow", MLFLOW, "the mlflow package, a test extra")
    root = tmp_path_factory.mktemp("mlflow")
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    log = open(root / "mlflow.log", "wb")
    env = {**os.environ, "MLFLOW_TRACKING_URI": ""}
    proc = subprocess.Popen([MLFLOW, "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
                             "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1"], stdout=log, stderr=subprocess.STDOUT,
                            env=env, cwd=root, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    try:
        wait_until_answers("mlflow server", f"{url}/health", proc, root / "mlflow.log", timeout=90, every=0.25)
        yield url, root
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(5)
        log.close()


@pytest.fixture(scope="module")
def registered(mlflow_server):
    """Model "fraud" version 1, trained in a run that logged reference/reference.parquet;
    and a run with a CSV reference directory (for runs:/ URIs)."""
    from mlflow.tracking import MlflowClient

    url, root = mlflow_server
    client = MlflowClient(tracking_uri=url, registry_uri=url)
    experiment = client.create_experiment("training")
    run = client.create_run(experiment, run_name="train-fraud")
    data = root / "upload"
    data.mkdir()
    reference_frame().to_parquet(data / "reference.parquet")
    client.log_artifact(run.info.run_id, str(data / "reference.parquet"), "reference")
    (data / "MLmodel").write_text("flavors: {}\n")
    client.log_artifact(run.info.run_id, str(data / "MLmodel"), "model")
    client.set_terminated(run.info.run_id)
    client.create_registered_model("fraud")
    version = client.create_model_version("fraud", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    other = client.create_run(experiment, run_name="csv-reference")
    (data / "ref.csv").write_text(reference_frame(200, seed=1).to_csv(index=False))
    client.log_artifact(other.info.run_id, str(data / "ref.csv"), "datasets/ref")
    client.set_terminated(other.info.run_id)
    return client, version, other.info.run_id, url


def test_uri_forms():
    assert parse_uri("models:/fraud/7") == ("models", {"name": "fraud", "version": "7", "alias": None})
    assert parse_uri("models:/fraud@champion")[1]["alias"] == "champion"
    assert parse_uri("runs:/abc/ref/data.csv") == ("runs", {"run": "abc", "path": "ref/data.csv"})
    assert parse_uri("runs:/abc")[1]["path"] is None
    with pytest.raises(ValueError, match="is not models"):
        parse_uri("s3://bucket/ref.parquet")


def test_a_registered_model_without_version_or_alias_is_refused_before_the_registry_is_asked():
    class NoRegistry:  # any call to the registry fails the test
        def __getattr__(self, name):
            raise AssertionError(f"the registry was asked ({name})")

    with pytest.raises(ValueError, match="no version or alias"):
        resolve_version(NoRegistry(), "fraud", None, None)


def test_download_reference_from_a_version_and_a_run(registered):
    client, version, csv_run, url = registered
    config = MlflowConfig(tracking_uri=url)
    frame = download_reference("models:/fraud/1", config)
    assert len(frame) == 1000 and set(frame.columns) == {"amount", "age", "country", "prediction"}
    client.set_registered_model_alias("fraud", "champion", version.version)
    assert len(download_reference("models:/fraud@champion", config)) == 1000
    assert len(download_reference(f"runs:/{csv_run}/datasets/ref", config)) == 200
    assert len(download_reference(f"runs:/{csv_run}/datasets/ref/ref.csv", config)) == 200
    with pytest.raises(ValueError, match="models:/fraud/99"):
        download_reference("models:/fraud/99", config)
    with pytest.raises(ValueError, match="nothing"):
        download_reference(f"runs:/{csv_run}", MlflowConfig(tracking_uri=url, reference_artifact="nothing"))
    with pytest.raises(ValueError, match="no .parquet, .csv or .jsonl file"):
        download_reference(f"runs:/{version.run_id}/model", config)


def events(n, start, shift=0.0, seed=0):
    rng = np.random.default_rng(seed)
    return b"\n".join(orjson.dumps({
        "kind": "prediction", "model": "fraud", "model_version": "1", "id": f"p{start + i}",
        "features": {"amount": float(rng.normal(100 + shift, 10)), "age": float(rng.integers(18, 80) + shift),
                     "country": str(rng.choice(["DE", "FR", "US"]))},
        "prediction": int(rng.integers(0, 2))}) for i in range(n))


def test_drift_evidence_is_logged_to_mlflow(registered, live_server):
    client, version, _, url = registered
    server = live_server({
        "mlflow": {"tracking_uri": url},
        "models": {"fraud": {"reference": {"mlflow": "models:/fraud/1"}, "window": {"size": 300, "step": 300},
                             "triggers": {"on": ["data_drift"], "consecutive_windows": 1}}},
    })
    assert server.client.get("/readyz").json() == {"ready": True, "reasons": []}
    [model] = server.client.get("/v1/models").json() or [None]
    assert model["reference"]["source"] == "mlflow:models:/fraud/1" and model["reference"]["rows"] == 1000
    assert server.client.post("/v1/events", content=events(300, 0, shift=40, seed=3)).status_code == 202

    def logged():
        items = server.client.get("/v1/triggers", headers=server.admin_headers).json()["triggers"]
        return items[0] if items and items[0]["mlflow"]["state"] in ("logged", "failed") else None

    assert server.client.get("/v1/models/fraud/drift").json()["dataset_drift"] is True
    trigger = wait_until("the MLflow run", logged, timeout=120, every=0.5)
    assert trigger["mlflow"]["state"] == "logged", trigger
    assert trigger["reason"] == "data_drift"
    assert trigger["payload"]["reference"] == {"source": "mlflow:models:/fraud/1"}
    experiment = client.get_experiment_by_name("driftline/fraud")
    [run] = client.search_runs([experiment.experiment_id], f"tags.`driftline.trigger_id` = '{trigger['id']}'")
    assert run.info.run_id == trigger["mlflow"]["run_id"] and run.info.status == "FINISHED"
    assert run.data.tags["driftline.reason"] == "data_drift" and run.data.tags["driftline.model"] == "fraud"
    assert run.data.metrics["drift_share"] >= 0.5 and run.data.metrics["dataset_drift"] == 1.0
    assert "drift_score.amount" in run.data.metrics
    files = {a.path for a in client.list_artifacts(run.info.run_id, "drift")}
    assert files == {"drift/features.json", "drift/features.csv", "drift/trigger.json", "drift/report.html"}
    state_dir = str(server.runtime.settings.state_dir)
    report = Path(client.download_artifacts(run.info.run_id, "drift/report.html", state_dir))
    assert report.stat().st_size > 100_000 and report.read_bytes().lstrip().lower().startswith(b"<!doctype html")
    table = pd.read_csv(client.download_artifacts(run.info.run_id, "drift/features.csv",
                                                  str(server.runtime.settings.state_dir)))
    assert set(table["feature"]) == {"amount", "age", "country"} and bool(table.set_index("feature").loc["amount",
                                                                                                        "drift"])
    tags = client.get_model_version("fraud", "1").tags
    assert tags["driftline.drift"] == "true" and tags["driftline.last_trigger_id"] == trigger["id"]


def test_a_missing_version_makes_driftline_unready(registered, live_server):
    _, _, _, url = registered
    server = live_server({"mlflow": {"tracking_uri": url},
                          "models": {"fraud": {"reference": {"mlflow": "models:/fraud/42"}}}})
    ready = server.client.get("/readyz")
    assert ready.status_code == 503 and "models:/fraud/42" in ready.json()["reasons"][0]
