"""``driftline demo``: the service, synthetic traffic that drifts, and a webhook receiver.

Two models are simulated: ``fraud`` (binary classification: amount, country, age, channel)
and ``eta`` (regression: distance, hour, weather). Labels arrive a few seconds after their
predictions. After ``--drift-after`` seconds the inputs shift and the fraud model's accuracy
drops; the terminal shows drift and performance moving, a retraining trigger per model (eta
on data drift, fraud on its accuracy drop), and the signed webhooks arriving at a local
receiver that verifies their signature.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import socket
import sys
import tempfile
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import uvicorn

from service.config import Settings
from service.retrain.signing import secret_bytes, verify
from service.server import build_app

COUNTRIES = np.array(["DE", "FR", "US", "GB", "ES"])
WEATHER = np.array(["clear", "rain", "snow"])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=None, help="stop after N seconds (default: run until Ctrl-C)")
    parser.add_argument("--port", type=int, default=8000, help="port of the demo service (0: any free port)")
    parser.add_argument("--rate", type=int, default=400, help="predictions per second per model")
    parser.add_argument("--drift-after", type=float, default=20.0, help="seconds of normal traffic before the drift")
    parser.add_argument("--quiet", action="store_true", help="print only the retraining requests, no live table")


class Receiver:
    """A local retraining endpoint that checks the Standard Webhooks signature and prints."""

    def __init__(self, secret: str, out):
        self.secret = secret_bytes(secret)
        self.out = out
        self.received: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                ok = verify(receiver.secret, dict(self.headers), body)
                self.send_response(200 if ok else 401)
                self.end_headers()
                if ok:
                    receiver.accept(json.loads(body))

            def log_message(self, *args):  # keep the terminal for the demo's own output
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/retrain"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def accept(self, payload: dict) -> None:
        self.received.append(payload)
        evidence = payload.get("evidence", {})
        print(f"\n>>> retraining request received (signature verified): model={payload.get('model')} "
              f"reason={payload.get('reason')} id={payload.get('id')}\n    drifted features: "
              f"{evidence.get('drifted_features')} drift_share={evidence.get('drift_share')} "
              f"performance={evidence.get('performance')}\n", file=self.out, flush=True)

    def stop(self) -> None:
        self.server.shutdown()


class Traffic:
    """Synthetic predictions and delayed labels for two models, posted as NDJSON batches."""

    def __init__(self, client: httpx.Client, rate: int, drift_after: float, seed: int = 7):
        self.client = client
        self.rate = rate
        self.drift_after = drift_after
        self.rng = np.random.default_rng(seed)
        self.labels: deque[tuple[float, bytes]] = deque()
        self.started = time.monotonic()
        self.sent = 0
        self.stop = threading.Event()

    @property
    def drifting(self) -> bool:
        return time.monotonic() - self.started >= self.drift_after

    def fraud(self, n: int, start: int) -> tuple[list[dict], list[dict]]:
        rng, drift = self.rng, self.drifting
        amount = rng.lognormal(4.0 + (0.6 if drift else 0.0), 0.5, n)
        country = rng.choice(COUNTRIES, n, p=[0.1, 0.1, 0.5, 0.2, 0.1] if drift else [0.3, 0.25, 0.2, 0.15, 0.1])
        age = rng.integers(18, 80, n)
        channel = rng.choice(["web", "app"], n)
        truth = rng.random(n) < 1 / (1 + np.exp(-(amount - 90) / 20))
        # Before the drift the model is right 92% of the time; after, 65%.
        correct = rng.random(n) < (0.65 if drift else 0.92)
        predicted = np.where(correct, truth, ~truth)
        score = np.clip(np.where(predicted, 0.7, 0.3) + rng.normal(0, 0.15, n), 0, 1)
        latency = rng.gamma(2.0, 6.0 if not drift else 9.0, n)
        events, labels = [], []
        for i in range(n):
            ident = f"fraud-{start + i}"
            events.append({"kind": "prediction", "model": "fraud", "model_version": "7", "id": ident,
                           "latency_ms": round(float(latency[i]), 2),
                           "status": "error" if rng.random() < 0.01 else "ok",
                           "features": {"amount": round(float(amount[i]), 2), "country": str(country[i]),
                                        "age": int(age[i]), "channel": str(channel[i])},
                           "prediction": int(predicted[i]), "score": round(float(score[i]), 3)})
            labels.append({"kind": "label", "model": "fraud", "id": ident, "label": int(truth[i])})
        return events, labels

    def eta(self, n: int, start: int) -> tuple[list[dict], list[dict]]:
        rng, drift = self.rng, self.drifting
        distance = rng.gamma(3.0, 2.0 + (1.5 if drift else 0.0), n)
        hour = rng.integers(0, 24, n)
        weather = rng.choice(WEATHER, n, p=[0.3, 0.5, 0.2] if drift else [0.7, 0.25, 0.05])
        truth = 4 + 3.1 * distance + rng.normal(0, 2, n) + (weather == "snow") * 6
        predicted = 4 + 3.0 * distance + rng.normal(0, 1.5, n)
        events, labels = [], []
        for i in range(n):
            ident = f"eta-{start + i}"
            events.append({"kind": "prediction", "model": "eta", "model_version": "3", "id": ident,
                           "latency_ms": round(float(rng.gamma(2.0, 3.0)), 2),
                           "features": {"distance_km": round(float(distance[i]), 3), "hour": int(hour[i]),
                                        "weather": str(weather[i])},
                           "prediction": round(float(predicted[i]), 3)})
            labels.append({"kind": "label", "model": "eta", "id": ident, "label": round(float(truth[i]), 3)})
        return events, labels

    def run(self) -> None:
        tick = 0.25
        per_tick = max(1, int(self.rate * tick))
        counter = 0
        while not self.stop.is_set():
            began = time.monotonic()
            events: list[dict] = []
            for generate in (self.fraud, self.eta):
                predictions, labels = generate(per_tick, counter)
                events += predictions
                # Ground truth shows up three seconds later, as it would from a delayed join.
                self.labels.append((began + 3.0, b"\n".join(orjson.dumps(x) for x in labels)))
            counter += per_tick
            body = b"\n".join(orjson.dumps(x) for x in events)
            while self.labels and self.labels[0][0] <= began:
                body += b"\n" + self.labels.popleft()[1]
            try:
                self.client.post("/v1/events", content=body, headers={"content-type": "application/x-ndjson"})
                self.sent += len(events)
            except httpx.HTTPError as exc:
                print(f"demo traffic: {exc}", file=sys.stderr)
            self.stop.wait(max(0.0, tick - (time.monotonic() - began)))


# One signal per model: a trigger starts the model's cooldown (10 minutes here), during which
# its other signal could not start a second one, so the demo would never show it.
TRIGGER_ON = {"fraud": "performance_drop", "eta": "data_drift"}

LEGEND = """columns: window = predictions in the current window (evaluated every 250, up to 1000);
  drift share = share of features whose drift test fires against the reference (the first 1000 predictions);
  dataset drift = YES when that share reaches 0.5; prediction drift = the predictions' own test and its score
  (a p-value for ks/chisquare/z, a distance otherwise); performance = over the last 1000 labels joined to their
  predictions (labels arrive 3 s late); - = not computed yet (reference still collecting, no labels yet).
retraining: fraud on a performance drop (accuracy < 0.8 on >= 200 labels, 2 evaluations in a row),
  eta on dataset drift (2 windows in a row); each model then waits out a 10-minute cooldown."""


def demo_settings(receiver_url: str, state_dir: Path, port: int) -> Settings:
    model: dict[str, Any] = {"reference": {"first_n": 1000}, "window": {"size": 1000, "step": 250},
             "triggers": {"on": ["data_drift"], "consecutive_windows": 2, "cooldown": "10m",
                          "webhook": "demo-receiver", "performance": {"metric": "accuracy", "threshold": 0.8,
                                                                      "min_labels": 200}}}
    return Settings.model_validate({
        "port": port, "state_dir": str(state_dir), "log_level": "warning",
        "models": {"default": model,
                   **{name: {**model, "triggers": {**model["triggers"], "on": [signal]}}
                      for name, signal in TRIGGER_ON.items()}},
        "webhooks": {"demo-receiver": {"preset": "generic", "url": receiver_url, "secret_env": "DEMO_WEBHOOK_SECRET",
                                       "backoff_initial": 0.5}},
    })


def table(client: httpx.Client, traffic: Traffic, elapsed: float) -> str:
    models = client.get("/v1/models").json()
    rows = [f"driftline demo  t={elapsed:5.0f}s  events sent={traffic.sent}  "
            f"{'DRIFT INJECTED' if traffic.drifting else f'drift in {traffic.drift_after - elapsed:.0f}s'}",
            f"{'model':<7} {'window':>7} {'drift share':>11} {'dataset drift':>13} {'prediction drift':>16} "
            "performance"]
    for m in models:
        perf: dict[str, float] = next(iter(m["performance"].values()), {})
        shown = ", ".join(f"{k}={v:.3f}" for k, v in perf.items() if k in ("accuracy", "f1", "mae", "rmse"))
        share = "-" if m["drift_share"] is None else f"{m['drift_share']:.2f}"
        dataset = "-" if m["dataset_drift"] is None else ("YES" if m["dataset_drift"] else "no")
        pred = m["prediction_drift"]
        prediction = "-" if pred is None else f"{pred['method']} {pred['score']:.3g}"
        rows.append(f"{m['model']:<7} {m['window']['samples']:>7} {share:>11} {dataset:>13} {prediction:>16} {shown}")
    triggers = client.get("/v1/triggers")
    if triggers.status_code == 200:
        recent = triggers.json()
        items = recent.get("triggers", recent) if isinstance(recent, dict) else recent
        rows.append(f"retraining triggers: {len(items)}")
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    receiver = Receiver(secret, sys.stdout)
    port = args.port if args.port else _free_port()
    state_dir = Path(tempfile.mkdtemp(prefix="driftline-demo-"))
    settings = demo_settings(receiver.url, state_dir, port)
    app = build_app(settings, environ={"DEMO_WEBHOOK_SECRET": secret})
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            print("driftline demo: the service did not start (is the port in use? try --port 0)", file=sys.stderr)
            return 1
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    print(f"driftline demo: service on {url} (metrics: {url}/metrics), webhook receiver on {receiver.url}")
    if not args.quiet:
        print(LEGEND, flush=True)
    client = httpx.Client(base_url=url, timeout=30)
    traffic = Traffic(client, args.rate, args.drift_after)
    sender = threading.Thread(target=traffic.run, daemon=True)
    sender.start()
    started = time.monotonic()
    try:
        while args.seconds is None or time.monotonic() - started < args.seconds:
            time.sleep(2.0)
            if not args.quiet:
                print(table(client, traffic, time.monotonic() - started), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        traffic.stop.set()
        sender.join(timeout=5)
        client.close()
        server.should_exit = True
        receiver.stop()
    print(f"driftline demo: done; {traffic.sent} predictions sent, {len(receiver.received)} retraining request(s) "
          f"received")
    return 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
