"""End to end: driftline -> a real Prometheus -> a real Alertmanager -> driftline.

Starts ``driftline serve`` (subprocess), a webhook receiver (thread), Prometheus (each
major: Debian's 2 and the 3 of scripts/install-prometheus3.sh, see tests/prometheus_tools.py)
and Alertmanager (Debian package ``prometheus-alertmanager``), all on 127.0.0.1 and free
ports. Prometheus scrapes driftline with the default scrape settings (``honor_labels:
false``), as kube-prometheus-stack does. Drives two models with traffic that drifts and whose
accuracy drops, and infra events from three model servers, then checks that

* every template variable resolves as Grafana resolves it: its own ``label_values(...)``
  query, with the variables before it set to every value they resolved to;
* every query of every dashboard panel (and every annotation), with those values, returns
  data from Prometheus;
* each per-server Infrastructure panel, for each value of its server variable, shows
  exactly the series of that model server, and its legend names the model and the server;
* DriftlineDatasetDriftPersisting fires in Prometheus, reaches Alertmanager, and arrives at
  driftline's ``POST /v1/alertmanager`` (a trigger with reason ``alert``).

What differs from the shipped files, and why:

* the rules are ``alerts/driftline-rules.yml`` with every ``for:`` shortened to 2s (a
  30-minute ``for`` cannot elapse in a test); expressions, labels and annotations are
  unchanged, which the test asserts;
* the Alertmanager config is ``alerts/alertmanager.yml`` with the receivers' URLs pointed
  at the test's driftline and receiver, the bearer credentials file at a temporary file,
  and ``group_wait``/``group_interval`` shortened to 1s.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import yaml

from service.observability import dashboards as D
from tests.prometheus_tools import MAJORS, binary, on_path

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "alerts" / "driftline-rules.yml"
AM_CONFIG = ROOT / "alerts" / "alertmanager.yml"
TOKEN = "e2e-admin-token"
INGEST_TOKEN = "e2e-ingest-token"
SHORT_FOR = "2s"
DEADLINE = 100.0  # seconds for the whole scenario once the servers run

# Series that exist only with a Kafka source: without a broker driftline exports none,
# so their panel queries are checked to run but cannot return data here.
KAFKA_ONLY = ("driftline_consumer_lag_messages",)

# The segment feature "channel": every other prediction of each model.
CHANNELS = ("web", "app")

# The model servers that send infra events, and the model each one serves.
INFRA_SERVERS = {"fraud-7-a": "fraud", "fraud-7-b": "fraud", "price-1-a": "price"}

pytestmark = [pytest.mark.timeout(180)]


def driftline_command(port: int, config: Path) -> list[str]:
    return [sys.executable, "-m", "service.cli", "serve", "--port", str(port),
            "--config", str(config)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, check, timeout: float, interval: float = 0.5):
    """Poll ``check`` until it is truthy. A server that does not answer yet is retried; any other
    exception (a dead server's RuntimeError, a failed assertion) fails at once. The timeout
    names the outcome of the last poll, not of an earlier one."""
    end = time.monotonic() + timeout
    while True:
        try:
            last = check()
        except httpx.TransportError as exc:  # not listening yet
            last = exc
        if last and not isinstance(last, Exception):
            return last
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what} (last poll: {last!r})")
        time.sleep(interval)


class Proc:
    def __init__(self, name: str, cmd: list[str], log: Path, env: dict | None = None):
        self.name, self.log = name, log
        self.fh = open(log, "wb")
        self.p = subprocess.Popen(cmd, stdout=self.fh, stderr=subprocess.STDOUT, cwd=ROOT,
                                  env=env, start_new_session=True)

    def alive(self) -> bool:
        return self.p.poll() is None

    def tail(self, n: int = 40) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return f"--- {self.name} log ---\n" + "\n".join(lines[-n:])

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self.fh.close()


class Receiver:
    """Records every POST: the retraining webhook and Alertmanager's default receiver."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict, bytes]] = []
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                rec.posts.append((self.path, dict(self.headers), body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_rules_copy_differs_only_in_for():
    original = yaml.safe_load(RULES.read_text())
    assert strip_for(original) == strip_for(short_rules(original))


def strip_for(doc: dict) -> dict:
    doc = copy.deepcopy(doc)
    for g in doc["groups"]:
        for r in g["rules"]:
            r.pop("for", None)
    return doc


def short_rules(doc: dict) -> dict:
    doc = copy.deepcopy(doc)
    for g in doc["groups"]:
        for r in g["rules"]:
            if "for" in r:
                r["for"] = SHORT_FOR
    return doc


def test_alertmanager_config_derivation_keeps_routing():
    cfg = derive_am_config(yaml.safe_load(AM_CONFIG.read_text()), "http://d:1", "http://r:2",
                         Path("/tmp/token"))
    assert cfg["route"]["routes"][0]["matchers"] == ['driftline_action="retrain"']
    hook = {r["name"]: r for r in cfg["receivers"]}["driftline-retrain"]["webhook_configs"][0]
    assert hook["url"] == "http://d:1/v1/alertmanager"


def derive_am_config(cfg: dict, driftline_url: str, receiver_url: str, token_file: Path) -> dict:
    cfg = copy.deepcopy(cfg)
    route = cfg["route"]
    for r in [route, *route.get("routes", [])]:
        if "group_wait" in r:
            r["group_wait"] = "1s"
        if "group_interval" in r:
            r["group_interval"] = "1s"
    for receiver in cfg["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            if hook["url"].endswith("/v1/alertmanager"):
                hook["url"] = f"{driftline_url}/v1/alertmanager"
                hook["http_config"]["authorization"]["credentials_file"] = str(token_file)
            else:
                hook["url"] = f"{receiver_url}/alertmanager/{receiver['name']}"
    return cfg




# ----------------------------------------------------------------------------------------
# traffic

class Traffic:
    """Two models: ``fraud`` (classification, v7) and ``price`` (regression, v1).

    Phase 1 (reference): stable features, accurate predictions. Phase 2 (drift): shifted
    numeric features and categories, and predictions that are mostly wrong.
    """

    def __init__(self, url: str, reference_n: int):
        self.url = url
        self.reference_n = reference_n
        self.sent = {"fraud": 0, "price": 0}
        self.rng = random.Random(7)
        self.pending_labels: list[dict] = []
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.client = httpx.Client(timeout=10,
                                   headers={"Authorization": f"Bearer {INGEST_TOKEN}"})

    def drifting(self, model: str) -> bool:
        return self.sent[model] >= self.reference_n

    def batch(self, n: int) -> list[dict]:
        now = time.time()
        events: list[dict] = []
        for model in ("fraud", "price"):
            drift = self.drifting(model)
            for _ in range(n):
                i = self.sent[model]
                self.sent[model] += 1
                rid = f"{model}-{i}"
                amount = self.rng.gauss(300 if drift else 100, 20)
                age = None if self.rng.random() < 0.05 else self.rng.gauss(60 if drift else 35, 5)
                country = self.rng.choice(["US", "BR", "IN"] if drift else ["DE", "FR"])
                latency = self.rng.choice([8.0, 30.0, 120.0, 400.0]) * (2 if drift else 1)
                status = "error" if self.rng.random() < (0.1 if drift else 0.02) else "ok"
                ev = {"kind": "prediction", "model": model, "id": rid, "timestamp": now - 30,
                      "latency_ms": latency, "status": status,
                      "features": {"amount": amount, "age": age, "country": country,
                                   "channel": CHANNELS[i % 2]}}
                if model == "fraud":
                    truth = int(amount > 100)
                    ev.update(model_version="7", prediction=truth if not drift else 1 - truth,
                              score=0.9 if truth else 0.1)
                    label = truth
                else:
                    ev.update(model_version="1", prediction=amount * 2 + (200 if drift else 0))
                    label = amount * 2 + self.rng.gauss(0, 1)
                events.append(ev)
                self.pending_labels.append({"kind": "label", "model": model, "id": rid,
                                            "label": label, "timestamp": now})
        for server, m in INFRA_SERVERS.items():
            events.append({"kind": "infra", "model": m, "instance": server, "timestamp": now,
                           "cpu_utilization": self.rng.uniform(0.2, 0.9),
                           "memory_bytes": self.rng.randint(500_000_000, 900_000_000),
                           "gpu_utilization": self.rng.uniform(0.1, 1.0),
                           "gpu_memory_bytes": 2.1e10, "requests_in_flight": self.rng.randint(0, 8),
                           "event": self.rng.choice(["restart", "deploy", "oom_killed"])})
        return events

    def post(self, events: list[dict]) -> None:
        body = "\n".join(json.dumps(e) for e in events) + "\n"
        # two bad lines: counted in driftline_events_rejected_total
        body += '{"kind": "nonsense", "model": "fraud"}\nnot json\n'
        r = self.client.post(f"{self.url}/v1/events", content=body,
                             headers={"Content-Type": "application/x-ndjson"})
        if r.status_code != 202:
            self.errors.append(f"{r.status_code} {r.text[:200]}")

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                labels, self.pending_labels = self.pending_labels, []
                self.post(self.batch(25) + labels)  # labels of the previous tick arrive now
            except Exception as exc:
                self.errors.append(repr(exc))
            self.stop.wait(0.5)


def write_fraud_reference(path: Path, rows: int = 1000) -> Path:
    """fraud's reference: the traffic's first phase, with labels that agree with the
    prediction 90 % of the time, as its scores (0.9, 0.1) say."""
    rng = random.Random(11)
    lines = ["amount,age,country,channel,prediction,score,label"]
    for i in range(rows):
        amount = rng.gauss(100, 20)
        age = "" if rng.random() < 0.05 else f"{rng.gauss(35, 5):.3f}"
        truth = int(amount > 100)
        label = truth if rng.random() < 0.9 else 1 - truth
        lines.append(f"{amount:.3f},{age},{rng.choice(['DE', 'FR'])},{CHANNELS[i % 2]},{truth},"
                     f"{0.9 if truth else 0.1},{label}")
    path.write_text("\n".join(lines) + "\n")
    return path


# ----------------------------------------------------------------------------------------
# the scenario

@pytest.fixture(params=MAJORS, ids=[f"prometheus{m}" for m in MAJORS])
def stack(request, tmp_path):
    prometheus_bin = binary("prometheus", request.param)
    am_bin = on_path("prometheus-alertmanager", "alertmanager",
                     install="apt install prometheus-alertmanager")
    procs: list[Proc] = []
    receiver = Receiver()
    traffic: Traffic | None = None
    try:
        dl_port, prom_port, am_port = free_port(), free_port(), free_port()
        dl_url = f"http://127.0.0.1:{dl_port}"
        prom_url = f"http://127.0.0.1:{prom_port}"
        am_url = f"http://127.0.0.1:{am_port}"

        # driftline
        config = {
            "state_dir": str(tmp_path / "state"),
            "models": {"default": {
                "reference": {"first_n": 200},
                "window": {"size": 200, "step": 50},
                "labels": {"window": 100},
                # channel alternates, so each of its segments holds half of any 100 joined labels:
                # min_labels (50) each, and the performance gap has data
                "segments": ["country", "channel"],
                "triggers": {"on": ["data_drift", "performance_drop"], "consecutive_windows": 1,
                             "cooldown": "0s", "webhook": "pipeline",
                             "performance": {"metric": "accuracy", "threshold": 0.8,
                                             "min_labels": 50}},
            },
                # fraud's reference is a labelled file, as performance estimation needs
                "fraud": {"reference": {"path": str(write_fraud_reference(tmp_path / "fraud.csv"))},
                          "estimation": {"metrics": ["roc_auc", "accuracy", "f1"]}}},
            "webhooks": {"pipeline": {"preset": "generic", "url": f"{receiver.url}/retrain",
                                      "max_attempts": 2, "backoff_initial": "0.2s"}},
        }
        cfg = tmp_path / "driftline.yml"
        cfg.write_text(yaml.safe_dump(config))
        env = {**os.environ, "DRIFTLINE_TOKEN": TOKEN, "DRIFTLINE_INGEST_TOKEN": INGEST_TOKEN,
               "DRIFTLINE_WEBHOOK_SECRET": "whsec_" + "e2e" * 8}
        procs.append(Proc("driftline", driftline_command(dl_port, cfg),
                          tmp_path / "driftline.log", env=env))

        # Alertmanager, from alerts/alertmanager.yml
        token_file = tmp_path / "driftline-token"
        token_file.write_text(TOKEN)
        am_cfg = tmp_path / "alertmanager.yml"
        am_cfg.write_text(yaml.safe_dump(derive_am_config(
            yaml.safe_load(AM_CONFIG.read_text()), dl_url, receiver.url, token_file)))
        amtool = on_path("amtool", install="apt install prometheus-alertmanager")
        check = subprocess.run([amtool, "check-config", str(am_cfg)], capture_output=True,
                               text=True, timeout=30)
        assert check.returncode == 0, check.stdout + check.stderr
        procs.append(Proc("alertmanager", [
            am_bin, f"--config.file={am_cfg}", f"--storage.path={tmp_path / 'am'}",
            f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address=",
            "--log.level=info"], tmp_path / "alertmanager.log"))

        # Prometheus, with alerts/driftline-rules.yml (for: shortened); the scrape config
        # leaves honor_labels at its default (false), which the test checks in Prometheus.
        rules = tmp_path / "driftline-rules.yml"
        rules.write_text(yaml.safe_dump(short_rules(yaml.safe_load(RULES.read_text())),
                                        sort_keys=False))
        prom_cfg = tmp_path / "prometheus.yml"
        prom_cfg.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "scrape_configs": [{"job_name": "driftline",
                                "static_configs": [{"targets": [f"127.0.0.1:{dl_port}"]}]}],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
        }))
        procs.append(Proc("prometheus", [
            prometheus_bin, f"--config.file={prom_cfg}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}", "--rules.alert.resend-delay=1s",
            "--log.level=info"], tmp_path / "prometheus.log"))

        for proc, url in zip(procs, (f"{dl_url}/healthz", f"{am_url}/-/ready",
                                     f"{prom_url}/-/ready"), strict=True):
            wait_for(f"{proc.name} to start", lambda proc=proc, url=url: _up(proc, url), 30, 0.2)

        traffic = Traffic(dl_url, reference_n=200)
        thread = threading.Thread(target=traffic.run, daemon=True)
        thread.start()
        yield {"driftline": dl_url, "prometheus": prom_url, "alertmanager": am_url,
               "receiver": receiver, "traffic": traffic, "procs": procs}
    except BaseException:
        for p in procs:
            print(p.tail())
        raise
    finally:
        if traffic is not None:
            traffic.stop.set()
        for p in reversed(procs):
            p.stop()
        receiver.stop()


def _up(proc: Proc, url: str) -> bool:
    if not proc.alive():
        raise RuntimeError(f"{proc.name} exited with {proc.p.returncode}\n{proc.tail()}")
    return httpx.get(url, timeout=2).status_code == 200


# Grafana's built-in variables, as it sets them for a short time range.
BUILTIN_VARS = {"__rate_interval": "1m", "__interval": "15s", "__range": "5m"}
# Characters Grafana's Prometheus data source escapes in a value of a multi-value variable
# that goes into a regex matcher (prometheusSpecialRegexEscape): each gets a backslash that
# is itself escaped for the PromQL string, and a backslash becomes four.
REGEX_SPECIAL = re.compile(r"""([$^*{}\[\]'+?.()|])""")


def grafana_regex(values: list[str]) -> str:
    """A multi-value variable's selected values, formatted as Grafana formats them for a
    regex matcher: one value alone, or ``(a|b|...)``."""
    escaped = [REGEX_SPECIAL.sub(r"\\\\\1", v.replace("\\", "\\" * 4)) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def interpolate(expr: str, variables: dict[str, list[str]]) -> str:
    """``expr`` with Grafana's variables replaced: longest names first ($model_version
    before $model); a variable still unresolved fails the test."""
    values = {**BUILTIN_VARS, **{name: grafana_regex(v) for name, v in variables.items()}}
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace(f"${name}", values[name])
    assert "$" not in expr, expr
    return expr


def render_legend(legend_format: str, labels: dict[str, str]) -> str:
    """A series' name in a panel, as Grafana renders ``{{label}}`` legends (absent -> "")."""
    return re.sub(r"\{\{\s*(.+?)\s*\}\}", lambda m: labels.get(m.group(1), ""), legend_format)


def prom_query(prom: str, expr: str) -> list[dict]:
    r = httpx.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=10)
    body = r.json()
    assert r.status_code == 200 and body["status"] == "success", (expr, body)
    return body["data"]["result"]


def has_finite(result: list[dict]) -> bool:
    return any(math.isfinite(float(s["value"][1])) for s in result)


def resolve_variables(prom: str, dashboard: dict) -> dict[str, list[str]]:
    """Every query variable of ``dashboard``, in order, resolved as Grafana resolves it: its
    ``label_values(selector, label)`` runs as ``/api/v1/label/<label>/values?match[]=selector``
    over the dashboard's time range, with the variables before it set to all their values."""
    hours = int(re.fullmatch(r"now-(\d+)h", dashboard["time"]["from"]).group(1))
    variables: dict[str, list[str]] = {}
    for v in dashboard["templating"]["list"]:
        if v["type"] != "query":
            continue
        m = re.fullmatch(r"label_values\((.+), (\w+)\)", v["definition"])
        assert m, v["definition"]
        selector, label = interpolate(m.group(1), variables), m.group(2)
        now = time.time()
        r = httpx.get(f"{prom}/api/v1/label/{quote(label)}/values", timeout=5,
                      params={"match[]": selector, "start": now - 3600 * hours, "end": now})
        body = r.json()
        assert r.status_code == 200 and body["status"] == "success", (selector, body)
        assert body["data"], f"{dashboard['uid']}: ${v['name']} resolves to nothing ({selector}, {label})"
        variables[v["name"]] = sorted(body["data"])
    return variables


def test_dashboards_and_alerts_on_real_prometheus_and_alertmanager(stack):
    start = time.monotonic()

    def remaining() -> float:
        return max(1.0, DEADLINE - (time.monotonic() - start))

    check_alert_reaches_driftline(stack, remaining)
    check_dashboard_queries(stack, remaining)
    assert time.monotonic() - start < DEADLINE + 20


def check_alert_reaches_driftline(stack: dict, remaining) -> None:
    dl, prom, am = stack["driftline"], stack["prometheus"], stack["alertmanager"]
    traffic: Traffic = stack["traffic"]
    receiver: Receiver = stack["receiver"]

    # 1. the drift alert fires in Prometheus ...
    def firing(name: str):
        alerts = httpx.get(f"{prom}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == name and a["state"] == "firing"]

    drift = wait_for("DriftlineDatasetDriftPersisting to fire in Prometheus",
                     lambda: firing("DriftlineDatasetDriftPersisting"), remaining())
    assert not traffic.errors, traffic.errors[:3]
    labels = drift[0]["labels"]
    assert labels["driftline_action"] == "retrain" and labels["model"] in {"fraud", "price"}

    # ... reaches Alertmanager, routed to driftline and to the default receiver ...
    def in_alertmanager():
        alerts = httpx.get(f"{am}/api/v2/alerts", timeout=5).json()
        return [a for a in alerts if a["labels"]["alertname"] == "DriftlineDatasetDriftPersisting"]

    am_alerts = wait_for("the alert in Alertmanager", in_alertmanager, remaining())
    assert {r["name"] for r in am_alerts[0]["receivers"]} == {"driftline-retrain", "default"}

    # ... and arrives at driftline, which records a retraining trigger with reason "alert".
    def alert_triggers():
        r = httpx.get(f"{dl}/v1/triggers", params={"limit": 1000}, timeout=5,
                      headers={"Authorization": f"Bearer {TOKEN}"})
        r.raise_for_status()
        body = r.json()
        items = body if isinstance(body, list) else body.get("triggers", body.get("items", []))
        return [t for t in items if t.get("reason") == "alert"]

    triggers = wait_for("a trigger with reason 'alert' at driftline", alert_triggers, remaining())
    assert {t["model"] for t in triggers} <= {"fraud", "price"}
    wait_for("driftline_retrain_triggers_total{reason=\"alert\"} in Prometheus",
             lambda: prom_query(prom, 'driftline_retrain_triggers_total{reason="alert"} >= 1'),
             remaining())
    assert any(p.startswith("/alertmanager/default") for p, _, _ in receiver.posts)

    # the alert's trigger goes out through the model's retraining webhook, signed
    def alert_webhook():
        for path, headers, body in list(receiver.posts):
            if path == "/retrain" and json.loads(body).get("reason") == "alert":
                return headers
        return None

    headers = wait_for("the retraining webhook for the alert", alert_webhook, remaining())
    assert {k.lower() for k in headers} >= {"webhook-id", "webhook-timestamp", "webhook-signature"}

    # the whole rule file is loaded, and the alerts about driftline itself stay quiet
    groups = httpx.get(f"{prom}/api/v1/rules", timeout=5).json()["data"]["groups"]
    loaded = {r["name"] for g in groups for r in g["rules"]}
    shipped = yaml.safe_load(RULES.read_text())["groups"]
    assert loaded == {r.get("alert") or r.get("record") for g in shipped for r in g["rules"]}
    for quiet in ("DriftlineDown", "DriftlineTargetMissing", "DriftlinePredictionEventsAbsent",
                  "DriftlineNoPredictionEvents", "DriftlineWebhookDeliveriesFailing"):
        assert not firing(quiet), quiet

    # the accuracy drop fires too
    perf = wait_for("DriftlinePerformanceBelowThreshold to fire",
                    lambda: firing("DriftlinePerformanceBelowThreshold"), remaining())
    assert {a["labels"]["model"] for a in perf} >= {"fraud"}



def check_dashboard_queries(stack: dict, remaining) -> None:
    dl, prom = stack["driftline"], stack["prometheus"]
    # the default scrape settings: Prometheus owns `instance` and `job` on every series
    # (its running config leaves out honor_labels when it is false)
    config = yaml.safe_load(httpx.get(f"{prom}/api/v1/status/config", timeout=5).json()["data"]["yaml"])
    assert [c.get("honor_labels", False) for c in config["scrape_configs"]] == [False]

    dashboards = D.all_dashboards()
    queries = [(model, where, expr) for model in dashboards.values()
               for where, expr in D.iter_queries(model)]
    assert len(queries) > 40
    kafka_only = [q for q in queries if any(k in q[2] for k in KAFKA_ONLY)]
    checked = [q for q in queries if q not in kafka_only]
    variables: dict[str, dict[str, list[str]]] = {}

    def empty_queries():
        for model in dashboards.values():
            variables[model["uid"]] = resolve_variables(prom, model)
        return [(where, expr) for model, where, expr in checked
                if not has_finite(prom_query(prom, interpolate(expr, variables[model["uid"]])))]

    missing: list = []

    def all_have_data():
        missing[:] = empty_queries()
        return not missing

    try:
        wait_for("every dashboard query to return data", all_have_data, remaining(), 2.0)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nqueries without data:\n" + "\n".join(f"{w}: {e}" for w, e in missing)
                             + f"\nvariables: {variables}") from None

    # Kafka-only panels: the query is valid, and empty only because driftline has no Kafka
    # source here (it exports no such series).
    metrics_text = httpx.get(f"{dl}/metrics", timeout=5).text
    for model, where, expr in kafka_only:
        assert prom_query(prom, interpolate(expr, variables[model["uid"]])) == [], where
    for name in KAFKA_ONLY:
        assert f"\n{name}{{" not in metrics_text

    # the variables list what driftline was sent: models, versions, features, model servers
    for uid, resolved in variables.items():
        assert resolved["model"] == ["fraud", "price"], uid
    assert variables["driftline-model-overview"]["model_version"] == ["1", "7"]
    assert {"amount", "age", "country"} <= set(variables["driftline-feature-drift"]["feature"])
    assert {"amount", "age", "country"} <= set(variables["driftline-data-quality"]["feature"])
    # the segments of both segment features (country: the reference's two and the drift's pooled)
    for uid in ("driftline-model-overview", "driftline-feature-drift"):
        assert {"DE", "FR", "__other__", *CHANNELS} <= set(variables[uid]["segment"]), uid
    check_per_server_panels(prom, dashboards["driftline-infrastructure.json"],
                            variables["driftline-infrastructure"])


def check_per_server_panels(prom: str, dashboard: dict, variables: dict[str, list[str]]) -> None:
    """The Infrastructure dashboard's server variable lists the model servers that sent infra
    events (not driftline's own scrape targets), and each panel filtered by it shows, for
    each server chosen alone, that server's series, named by model and server."""
    per_server = [name for name in variables if name != "model"]
    assert len(per_server) == 1, variables
    server_var = per_server[0]
    assert variables[server_var] == sorted(INFRA_SERVERS), variables
    panels = [p for p in dashboard["panels"]
              if any(f"${server_var}" in t["expr"] for t in p.get("targets", []))]
    assert {p["title"] for p in panels} == {"CPU utilization", "Memory", "GPU utilization",
                                            "GPU memory", "Requests in flight"}
    for server, model in INFRA_SERVERS.items():
        chosen = {**variables, server_var: [server]}
        for panel in panels:
            for t in panel["targets"]:
                result = prom_query(prom, interpolate(t["expr"], chosen))
                names = [render_legend(t["legendFormat"], s["metric"]) for s in result]
                assert names == [f"{model} {server}"], (panel["title"], server, result)
