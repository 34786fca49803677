"""Tests of the Helm chart helm/driftline and its examples.

The helm CLI is taken from the env var HELM, else from .tools/bin/helm (where
scripts/install-helm.sh builds it), else from PATH. Without a helm binary these tests are
skipped locally, and fail under CI (env CI set), where scripts/install-helm.sh must run
before pytest.

What they prove:
  * `helm lint --strict` and `helm template` pass for both modes and every values file in
    helm/driftline/ci/, and for the example charts in helm/examples/;
  * every rendered core manifest validates against the Kubernetes JSON schemas
    (kubernetes-validate, strict: unknown fields are errors);
  * the PrometheusRule specs are exactly the rule files in alerts/ and the dashboard
    ConfigMaps hold exactly the JSON files in dashboards/ (the chart reads them through
    symlinks, also after `helm package`);
  * values of a wrong type fail `helm template` with the schema's message.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "helm" / "driftline"
EXAMPLES = ROOT / "helm" / "examples"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
ALERTS = ROOT / "alerts"
DASHBOARDS = ROOT / "dashboards"
KUBE_VERSION = "1.37.0"

CORE_KINDS = {
    "ConfigMap",
    "Deployment",
    "PersistentVolumeClaim",
    "PodDisruptionBudget",
    "Secret",
    "Service",
    "ServiceAccount",
}
MONITORING_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}


def _find_helm() -> str | None:
    env = os.environ.get("HELM")
    if env:
        return env if Path(env).is_file() else None
    local = ROOT / ".tools" / "bin" / "helm"
    if local.is_file():
        return str(local)
    return shutil.which("helm")


HELM = _find_helm()

NO_HELM = ("set HELM=/path/to/helm or run scripts/install-helm.sh, which builds .tools/bin/helm "
           "from the Go module helm.sh/helm/v3")


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    require_tool("helm", HELM, NO_HELM)
    proc = subprocess.run([HELM, *args], capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def render(chart: Path | str = CHART, *values: Path | str, sets: dict | None = None,
           release: str = "rel", namespace: str = "monitoring") -> list[dict]:
    args = ["template", release, str(chart), "--namespace", namespace,
            "--kube-version", KUBE_VERSION]
    for v in values:
        args += ["-f", str(v)]
    for k, v in (sets or {}).items():
        args += ["--set", f"{k}={v}"]
    out = helm(*args).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict], kind: str) -> dict:
    found = by_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


def k8s_validate(doc: dict) -> None:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        path = ".".join(str(p) for p in e.path)
        pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} invalid at {path}: {e.message}")


def check_monitoring_object(doc: dict) -> None:
    """No JSON schema ships for the prometheus-operator CRDs: check their shape by hand."""
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    spec = doc["spec"]
    if doc["kind"] == "PrometheusRule":
        assert isinstance(spec["groups"], list) and spec["groups"]
        for g in spec["groups"]:
            assert isinstance(g["name"], str)
            for r in g["rules"]:
                assert ("alert" in r) != ("record" in r) and isinstance(r["expr"], (str, int, float))
        return
    endpoints = spec["endpoints" if doc["kind"] == "ServiceMonitor" else "podMetricsEndpoints"]
    assert spec["selector"]["matchLabels"]
    for ep in endpoints:
        assert set(ep) <= {"port", "path", "interval", "scrapeTimeout", "relabelings",
                           "metricRelabelings"}, ep
        assert ep["path"] == "/metrics" and ep["port"]


def alert_rule_files() -> list[Path]:
    files = sorted([*ALERTS.glob("*.yml"), *ALERTS.glob("*.yaml")])
    return [f for f in files if "groups" in (yaml.safe_load(f.read_text()) or {})]


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


# --------------------------------------------------------------------------- lint


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda v: v.name if v else "defaults")
def test_lint(values):
    args = ["lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION]
    if values:
        args += ["-f", str(values)]
    proc = helm(*args)
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize("example", ["kserve-sidecar", "model-server-sidecar"])
def test_lint_examples(example):
    proc = helm("lint", "--strict", str(EXAMPLES / example), "--kube-version", KUBE_VERSION)
    assert "0 chart(s) failed" in proc.stdout


# ------------------------------------------------------------ render and validate


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda v: v.name)
def test_template_renders_valid_manifests(values):
    mode = yaml.safe_load(values.read_text()).get("mode", "standalone")
    docs = render(CHART, values)
    kinds = {d["kind"] for d in docs}
    assert kinds <= CORE_KINDS | MONITORING_KINDS, kinds
    for doc in docs:
        assert doc["metadata"]["namespace"] == "monitoring"
        if doc["kind"] in CORE_KINDS:
            k8s_validate(doc)
        else:
            check_monitoring_object(doc)
    if mode == "standalone":
        assert {"Deployment", "Service", "ConfigMap"} <= kinds
    else:
        # sidecar mode renders only what the sidecars share
        assert not kinds & {"Deployment", "Service", "PodDisruptionBudget",
                            "PersistentVolumeClaim", "ServiceAccount"}
        assert "ConfigMap" in kinds


def _driftline_container(deploy: dict) -> dict:
    return next(c for c in deploy["spec"]["template"]["spec"]["containers"] if c["name"] == "driftline")


def assert_hardened(container: dict, pod_spec: dict) -> None:
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 10001
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert {"/tmp", "/var/lib/driftline", "/etc/driftline"} <= set(mounts)
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert volumes[mounts["/etc/driftline"]]["configMap"]["name"].endswith("-config")
    port_names = {p["name"] for p in container["ports"]}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["port"] in port_names
    assert container["readinessProbe"]["httpGet"]["port"] in port_names
    args = container["args"]
    assert args[0] == "serve" and args[args.index("--config") + 1] == "/etc/driftline/config.yaml"


def test_standalone_defaults():
    docs = render()
    deploy = one(docs, "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    c = _driftline_container(deploy)
    assert_hardened(c, pod)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    assert deploy["spec"]["replicas"] == 1
    assert c["image"] == "driftline/driftline:0.1.0"
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    state = next(v for v in pod["volumes"] if v["name"] == "driftline-state")
    assert "emptyDir" in state
    # the Service and the PDB select exactly the Deployment's pods
    labels = deploy["spec"]["template"]["metadata"]["labels"]
    svc = one(docs, "Service")
    assert svc["spec"]["selector"].items() <= labels.items()
    assert svc["spec"]["ports"][0]["targetPort"] in {p["name"] for p in c["ports"]}
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1
    # monitoring objects are opt-in
    assert not {d["kind"] for d in docs} & MONITORING_KINDS
    assert not [d for d in by_kind(docs, "ConfigMap") if "grafana_dashboard" in d["metadata"]["labels"]]


def test_config_map_holds_values_config_with_state_dir_pinned():
    values = CHART / "ci" / "standalone-kafka-values.yaml"
    docs = render(CHART, values)
    cm = next(d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-config"))
    rendered = yaml.safe_load(cm["data"]["config.yaml"])
    expected = yaml.safe_load(values.read_text())["config"]
    # YAML 1.1 reads the unquoted key `on:` as True; the chart writes it back as "on"
    fraud_triggers = expected["models"]["fraud"]["triggers"]
    fraud_triggers["on"] = fraud_triggers.pop(True)
    assert rendered.pop("state_dir") == "/var/lib/driftline"
    assert rendered == expected
    deploy = one(docs, "Deployment")
    assert deploy["spec"]["replicas"] == 3
    # a config change rolls the pods
    assert deploy["spec"]["template"]["metadata"]["annotations"]["checksum/config"]


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda v: v.name)
def test_rendered_config_is_a_valid_driftline_config(values, tmp_path):
    from service.config import load_settings

    docs = render(CHART, values)
    cm = next(d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-config"))
    path = tmp_path / "config.yaml"
    path.write_text(cm["data"]["config.yaml"])
    settings = load_settings(path, environ={"DRIFTLINE_STATE_DIR": "/var/lib/driftline"})
    assert str(settings.state_dir) == "/var/lib/driftline"


def test_config_as_a_string_is_rendered_verbatim(tmp_path):
    raw = "# raw driftline config\nlimits: {max_models: 7}\nmodels:\n  fraud:\n    triggers: {on: [data_drift]}\n"
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"config": raw}))
    cm = one(render(CHART, values), "ConfigMap")
    assert cm["data"]["config.yaml"] == raw


def test_secrets_reach_the_container():
    docs = render(CHART, CHART / "ci" / "standalone-kafka-values.yaml")
    c = _driftline_container(one(docs, "Deployment"))
    assert c["envFrom"] == [{"secretRef": {"name": "driftline-secrets"}}]
    env = {e["name"]: e for e in c["env"]}
    assert env["AIRFLOW_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "airflow-api", "key": "token"}
    assert env["DRIFTLINE_STATE_DIR"]["value"] == "/var/lib/driftline"
    assert env["DRIFTLINE_KAFKA__BOOTSTRAP_SERVERS"]["value"] == "kafka-bootstrap.kafka.svc:9092"
    assert not by_kind(docs, "Secret")  # existingSecret: the chart creates none

    docs = render(CHART, CHART / "ci" / "standalone-persistence-values.yaml")
    secret = one(docs, "Secret")
    assert set(secret["stringData"]) == {"DRIFTLINE_TOKEN", "DRIFTLINE_INGEST_TOKEN",
                                         "DRIFTLINE_WEBHOOK_SECRET"}
    c = _driftline_container(one(docs, "Deployment"))
    assert c["envFrom"] == [{"secretRef": {"name": secret["metadata"]["name"]}}]


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def test_an_admin_token_is_generated_when_no_secret_provides_one():
    docs = render()
    secret = one(docs, "Secret")
    assert secret["metadata"]["name"] == "rel-driftline-token"
    token = base64.b64decode(secret["data"]["DRIFTLINE_TOKEN"]).decode()
    assert len(token) == 48 and token.isalnum()
    env = _env(_driftline_container(one(docs, "Deployment")))
    assert env["DRIFTLINE_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "rel-driftline-token",
                                                                    "key": "DRIFTLINE_TOKEN"}


@pytest.mark.parametrize("sets", [
    {"existingSecret": "mine"},
    {"secretEnv.DRIFTLINE_TOKEN.name": "mine", "secretEnv.DRIFTLINE_TOKEN.key": "token"},
    {"secret.create": "true", "secret.stringData.DRIFTLINE_TOKEN": "given"},
    {"adminToken.generate": "false"},
], ids=["existingSecret", "secretEnv", "secret-stringData", "generate-false"])
def test_no_token_is_generated_when_one_is_given_or_generation_is_off(sets):
    docs = render(sets=sets)
    assert not [d for d in by_kind(docs, "Secret") if d["metadata"]["name"].endswith("-token")]
    env = _env(_driftline_container(one(docs, "Deployment")))
    if "secretEnv.DRIFTLINE_TOKEN.name" in sets:
        assert env["DRIFTLINE_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "mine", "key": "token"}
    else:
        assert "DRIFTLINE_TOKEN" not in env


def test_the_kserve_sidecar_gets_the_generated_token():
    docs = _render_example("kserve-sidecar", **{"driftline.existingSecret": ""})
    secret = next(d for d in by_kind(docs, "Secret") if d["metadata"]["name"].endswith("-token"))
    sidecar = one(docs, "InferenceService")["spec"]["predictor"]["containers"][1]
    assert _env(sidecar)["DRIFTLINE_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]


def test_persistence_uses_a_claim_and_recreate():
    docs = render(CHART, CHART / "ci" / "standalone-persistence-values.yaml")
    pvc = one(docs, "PersistentVolumeClaim")
    assert pvc["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert pvc["spec"]["storageClassName"] == "standard"
    deploy = one(docs, "Deployment")
    assert deploy["spec"]["strategy"]["type"] == "Recreate"
    state = next(v for v in deploy["spec"]["template"]["spec"]["volumes"] if v["name"] == "driftline-state")
    assert state["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert not by_kind(docs, "PodDisruptionBudget")


def test_service_monitor_scrapes_the_service_port():
    docs = render(CHART, CHART / "ci" / "standalone-kafka-values.yaml")
    sm = one(docs, "ServiceMonitor")
    svc = one(docs, "Service")
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    ep = sm["spec"]["endpoints"][0]
    assert ep["port"] in {p["name"] for p in svc["spec"]["ports"]}
    assert ep["interval"] == "15s"
    assert {"action": "replace", "targetLabel": "job", "replacement": "driftline"} in ep["relabelings"]
    assert sm["spec"]["namespaceSelector"]["matchNames"] == ["monitoring"]


def test_scraped_job_label_is_the_one_the_alert_rules_use():
    """The rules select up{job="driftline"}: both monitors must produce that job label."""
    import re

    jobs = set()
    for f in alert_rule_files():
        jobs |= set(re.findall(r'job\s*=~?\s*"([^"]+)"', f.read_text()))
    docs = render(CHART, CHART / "ci" / "standalone-kafka-values.yaml") + \
        render(CHART, CHART / "ci" / "sidecar-values.yaml")
    for mon in [*by_kind(docs, "ServiceMonitor"), *by_kind(docs, "PodMonitor")]:
        ep = (mon["spec"].get("endpoints") or mon["spec"]["podMetricsEndpoints"])[0]
        job = next(r["replacement"] for r in ep["relabelings"] if r["targetLabel"] == "job")
        assert jobs <= {job}, f"alert rules select job in {jobs}, {mon['kind']} sets {job!r}"


# ----------------------------------------------- alerts/ and dashboards/, not copies


def test_chart_reads_alerts_and_dashboards_through_symlinks():
    for name, target in (("alerts", ALERTS), ("dashboards", DASHBOARDS)):
        link = CHART / "files" / name
        assert link.is_symlink(), f"{link} must be a symlink to {target}, not a copy"
        assert link.resolve() == target.resolve()


@pytest.mark.parametrize("values", ["standalone-kafka-values.yaml", "sidecar-values.yaml"])
def test_prometheus_rules_are_exactly_alerts_dir(values):
    files = alert_rule_files()
    assert files, "alerts/ holds no Prometheus rule file"
    rules = by_kind(render(CHART, CHART / "ci" / values), "PrometheusRule")
    assert len(rules) == len(files)
    by_source = {r["metadata"]["annotations"]["driftline.io/source"]: r for r in rules}
    for f in files:
        rule = by_source[f"alerts/{f.name}"]
        assert rule["spec"] == yaml.safe_load(f.read_text())
        assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


@pytest.mark.parametrize("values", ["standalone-kafka-values.yaml", "sidecar-values.yaml"])
def test_dashboard_config_maps_are_exactly_dashboards_dir(values):
    files = dashboard_files()
    assert files, "dashboards/ holds no dashboard"
    cms = [d for d in by_kind(render(CHART, CHART / "ci" / values), "ConfigMap")
           if d["metadata"]["labels"].get("grafana_dashboard") == "1"]
    assert len(cms) == len(files)
    by_source = {c["metadata"]["annotations"]["driftline.io/source"]: c for c in cms}
    for f in files:
        cm = by_source[f"dashboards/{f.name}"]
        assert list(cm["data"]) == [f.name]
        assert cm["data"][f.name] == f.read_text()  # byte for byte
        assert json.loads(cm["data"][f.name]) == json.loads(f.read_text())
        assert cm["metadata"]["annotations"]["grafana_folder"]
        k8s_validate(cm)


def test_dashboard_label_and_folder_are_configurable():
    docs = render(sets={"dashboards.enabled": "true", "dashboards.label": "grafana_dashboard_v2",
                        "dashboards.labelValue": "yes", "dashboards.folderAnnotation": "k8s-sidecar-target-directory",
                        "dashboards.folder": "/tmp/dashboards/ml", "dashboards.namespace": "grafana"})
    cms = [d for d in by_kind(docs, "ConfigMap") if "grafana_dashboard_v2" in d["metadata"]["labels"]]
    assert len(cms) == len(dashboard_files())
    for cm in cms:
        assert cm["metadata"]["labels"]["grafana_dashboard_v2"] == "yes"
        assert cm["metadata"]["annotations"]["k8s-sidecar-target-directory"] == "/tmp/dashboards/ml"
        assert cm["metadata"]["namespace"] == "grafana"


def test_packaged_chart_carries_alerts_and_dashboards(tmp_path):
    helm("package", str(CHART), "--destination", str(tmp_path))
    (tgz,) = tmp_path.glob("driftline-*.tgz")
    with tarfile.open(tgz) as tar:
        names = set(tar.getnames())
        for f in alert_rule_files():
            member = f"driftline/files/alerts/{f.name}"
            assert member in names
            assert tar.extractfile(member).read() == f.read_bytes()
        for f in dashboard_files():
            assert f"driftline/files/dashboards/{f.name}" in names
    docs = render(tgz, sets={"prometheusRule.enabled": "true", "dashboards.enabled": "true"})
    assert len(by_kind(docs, "PrometheusRule")) == len(alert_rule_files())
    assert len([d for d in by_kind(docs, "ConfigMap") if "grafana_dashboard" in d["metadata"]["labels"]]) \
        == len(dashboard_files())


# ------------------------------------------------------------------ sidecar mode


def test_sidecar_mode_renders_pod_monitor_for_sidecar_pods():
    docs = render(CHART, CHART / "ci" / "sidecar-values.yaml")
    pm = one(docs, "PodMonitor")
    assert pm["spec"]["selector"]["matchLabels"] == {"driftline.io/sidecar": "true"}
    assert pm["spec"]["namespaceSelector"]["matchNames"] == ["models-a", "models-b"]
    assert pm["spec"]["podMetricsEndpoints"][0]["port"] == "driftline"
    assert pm["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def _render_example(name: str, **sets) -> list[dict]:
    return render(EXAMPLES / name, sets=sets, release="ex", namespace="models")


def test_example_native_sidecar_deployment():
    docs = _render_example("model-server-sidecar")
    deploy = one(docs, "Deployment")
    k8s_validate(deploy)
    pod = deploy["spec"]["template"]["spec"]
    (sidecar,) = pod["initContainers"]
    assert sidecar["name"] == "driftline" and sidecar["restartPolicy"] == "Always"
    assert [c["name"] for c in pod["containers"]] == ["model-server"]
    assert_hardened(sidecar, pod)
    assert sidecar["ports"][0]["name"] == "driftline"
    assert sidecar["envFrom"] == [{"secretRef": {"name": "driftline-secrets"}}]
    # the PodMonitor rendered by the dependency selects this pod, on the sidecar's port
    pm = one(docs, "PodMonitor")
    labels = deploy["spec"]["template"]["metadata"]["labels"]
    assert pm["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pm["spec"]["podMetricsEndpoints"][0]["port"] == sidecar["ports"][0]["name"]
    # and the config volume is the dependency's ConfigMap
    cm = one(docs, "ConfigMap")
    k8s_validate(cm)
    vol = next(v for v in pod["volumes"] if v["name"] == "driftline-config")
    assert vol["configMap"]["name"] == cm["metadata"]["name"]
    assert deploy["spec"]["template"]["metadata"]["annotations"]["checksum/driftline-config"]


def test_example_plain_sidecar_container():
    docs = _render_example("model-server-sidecar", **{"driftline.sidecar.native": "false",
                                                       "driftline.port": "8090"})
    deploy = one(docs, "Deployment")
    k8s_validate(deploy)
    pod = deploy["spec"]["template"]["spec"]
    assert not pod.get("initContainers")
    sidecar = next(c for c in pod["containers"] if c["name"] == "driftline")
    assert "restartPolicy" not in sidecar
    assert sidecar["ports"][0]["containerPort"] == 8090
    assert sidecar["args"][sidecar["args"].index("--port") + 1] == "8090"


def test_example_kserve_inference_service_logs_to_sidecar():
    docs = _render_example("kserve-sidecar")
    isvc = one(docs, "InferenceService")
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    predictor = isvc["spec"]["predictor"]
    assert predictor["logger"] == {"mode": "all", "url": "http://localhost:8000/v1/cloudevents"}
    names = [c["name"] for c in predictor["containers"]]
    assert names == ["kserve-container", "driftline"]
    sidecar = predictor["containers"][1]
    assert sidecar["ports"][0]["containerPort"] == 8000
    assert "restartPolicy" not in sidecar
    # the predictor's pod fields are a PodSpec: check them against the Kubernetes schema
    pod_spec = {k: v for k, v in predictor.items() if k in {"containers", "volumes", "initContainers"}}
    k8s_validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "predictor"}, "spec": pod_spec})
    kinds = {d["kind"] for d in docs}
    assert {"PodMonitor", "PrometheusRule", "ConfigMap"} <= kinds and "Deployment" not in kinds


# ------------------------------------------------------------------ bad values


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ('replicaCount: "three"\n', "at '/replicaCount': got string, want integer"),
        ("mode: daemonset\n", "at '/mode': value must be one of 'standalone', 'sidecar'"),
        ("serviceMonitor:\n  enable: true\n", "at '/serviceMonitor': additional properties 'enable' not allowed"),
        ("sidecar:\n  native: \"yes\"\n", "at '/sidecar/native': got string, want boolean"),
        ("persistence:\n  size: lots\n", "/persistence/size"),
        ("image:\n  pullPolicy: Sometimes\n", "at '/image/pullPolicy'"),
        ("adminToken:\n  generate: \"no\"\n", "at '/adminToken/generate': got string, want boolean"),
    ],
    ids=["replicaCount-string", "mode-enum", "typo-key", "native-string", "size-quantity", "pullPolicy",
         "adminToken-string"],
)
def test_schema_rejects_bad_values(tmp_path, values, message):
    bad = tmp_path / "bad-values.yaml"
    bad.write_text(values)
    proc = helm("template", "rel", str(CHART), "-f", str(bad), check=False)
    assert proc.returncode != 0
    assert "values don't meet the specifications of the schema" in proc.stderr
    assert message in proc.stderr, proc.stderr


def test_persistence_refuses_shared_state_between_replicas():
    proc = helm("template", "rel", str(CHART), "--set", "persistence.enabled=true",
                "--set", "replicaCount=2", check=False)
    assert proc.returncode != 0
    assert "persistence.enabled needs replicaCount: 1" in proc.stderr
