"""Ingest throughput: the decoding ceiling, the engine alone, and HTTP ``POST /v1/events``, in one run.

Events: 10 models x 20 features (15 numeric, 5 categorical), ~530 bytes each, in NDJSON
batches of 1,000; windows of 10,000 predictions, drift recomputed every 1,000 events of a
model. The reference is each model's first 5,000 predictions, so ``auto`` picks Evidently's
large-reference tests (Wasserstein, Jensen-Shannon); the engine is also run with a 1,000-row
reference, where ``auto`` picks KS and chi-square and SciPy's exact KS p-value dominates, and
with the default configuration (windows of 1,000 evaluated every 100 events against the
first 1,000 predictions: KS and chi-square ten times as often), once with the native kernels
(``detectors._kernels``: windows counted against the reference) and once without them (windows
sorted, KS statistic by numpy).

* ceiling: orjson-decode each batch and pull out its feature columns, nothing else;
* engine: ``Validator.decode_body`` + ``Engine.process`` (validation, windows, drift, labels
  store, histograms), in this process; with the native decoder (``service._native``) where it
  is built, and again with the Python decoder alone;
* http: ``driftline serve`` in a subprocess, this process posting the same batches over two
  keep-alive connections; peak RSS of the server is read from /proc.

The speed of a shared machine drifts by up to 2x within seconds, so the ceiling is timed on
the same batches interleaved with the engine (batch by batch), and right before and after
the HTTP run; each ratio compares times taken together.

    python benchmarks/http_ingest.py [--events 200000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import orjson
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detectors import stattests
from service.config import Settings
from service.core import window
from service.core.engine import Engine

MODELS, NUMERIC, CATEGORICAL, BATCH = 10, 15, 5, 1000


def config(reference_rows: int | None) -> dict:
    """Windows of 10,000 evaluated every 1,000 against the first ``reference_rows``
    predictions; None: the default configuration (windows of 1,000 evaluated every 100
    against the first 1,000)."""
    if reference_rows is None:
        return {"log_level": "warning"}
    return {"models": {"default": {"reference": {"first_n": reference_rows},
                                   "window": {"size": 10_000, "step": 1000}}}, "log_level": "warning"}


def make_batches(total: int, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    categories = np.array(["alpha", "beta", "gamma", "delta", "epsilon", "zeta"])
    batches = []
    for b in range(total // BATCH):
        numeric = rng.normal(0, 1, (BATCH, NUMERIC)).round(6)
        categorical = rng.choice(categories, (BATCH, CATEGORICAL))
        lines = []
        for i in range(BATCH):
            n = b * BATCH + i
            features = {f"num_{j}": float(numeric[i, j]) for j in range(NUMERIC)}
            features.update({f"cat_{j}": str(categorical[i, j]) for j in range(CATEGORICAL)})
            lines.append(orjson.dumps({
                "kind": "prediction", "model": f"model-{n % MODELS}", "model_version": "1", "id": f"req-{n}",
                "timestamp": 1_800_000_000 + n / 1000, "latency_ms": float(numeric[i, 0] ** 2 * 10),
                "features": features, "prediction": int(numeric[i, 1] > 0), "score": float(abs(numeric[i, 2]) / 3)}))
        batches.append(b"\n".join(lines))
    return batches


def ceiling(batches: list[bytes]) -> float:
    started = time.perf_counter()
    for body in batches:
        events = orjson.loads(b"[" + body.replace(b"\n", b",") + b"]")
        features = [e["features"] for e in events]
        for name in features[0]:
            np.array([f.get(name) for f in features], dtype=object)
    return time.perf_counter() - started


def engine_alone(batches: list[bytes], reference_rows: int | None, native: bool = True,
                 kernels: bool = True) -> tuple[float, float, int]:
    """Seconds in the engine and in the ceiling, batch by batch in turn; drift evaluations.
    ``native``: the native decoder; ``kernels``: the native drift-test kernels. Each run
    starts with no cached KS p-value, as a fresh process does."""
    engine = Engine(Settings.model_validate(config(reference_rows)))
    if not native:
        engine.validator.native = None
    stattests._KS_PVALUES.clear()
    built_kernels, built_tabulation = stattests._kernels, window.WindowTabulation
    if not kernels:  # as without a Rust toolchain: windows sorted, KS by numpy's merge
        stattests._kernels = window.WindowTabulation = None
    engine_s = ceiling_s = 0.0
    evaluations = 0
    for body in batches:
        ceiling_s += ceiling([body])
        started = time.perf_counter()
        decoded = engine.validator.decode_body(body)
        evaluations += len(engine.process(decoded))
        engine_s += time.perf_counter() - started
    stattests._kernels, window.WindowTabulation = built_kernels, built_tabulation
    return engine_s, ceiling_s, evaluations


def http(batches: list[bytes], reference_rows: int) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(yaml.safe_dump({**config(reference_rows), "state_dir": str(Path(tmp) / "state")}))
        port = _free_port()
        server = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--config", str(path),
                                   "--port", str(port)], cwd=Path(__file__).resolve().parents[1])
        try:
            url = f"http://127.0.0.1:{port}"
            _wait(url)
            clients = [httpx.Client(base_url=url, timeout=60) for _ in range(2)]

            def send(index: int) -> None:
                response = clients[index % 2].post("/v1/events", content=batches[index],
                                                   headers={"content-type": "application/x-ndjson"})
                assert response.status_code == 202 and response.json()["rejected"] == 0, response.text

            started = time.perf_counter()
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(send, range(len(batches))))
            elapsed = time.perf_counter() - started
            peak_kib = int(next(line.split()[1] for line in Path(f"/proc/{server.pid}/status").read_text().splitlines()
                                if line.startswith("VmHWM")))
            return elapsed, peak_kib
        finally:
            server.terminate()
            server.wait(timeout=30)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("driftline did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=250_000)
    args = parser.parse_args()
    batches = make_batches(args.events)
    total = len(batches) * BATCH
    size = sum(map(len, batches)) / total
    print(f"{total:,} events, {size:.0f} bytes each, {MODELS} models x {NUMERIC + CATEGORICAL} features, "
          f"window 10,000, drift every 1,000; cpu count {os.cpu_count()}")
    engine_s, ceiling_s, evaluations = engine_alone(batches, 5000)
    python_s, ceiling_python_s, _ = engine_alone(batches, 5000, native=False)
    engine_ks_s, ceiling_ks_s, evaluations_ks = engine_alone(batches, 1000)
    default_s, ceiling_default_s, evaluations_default = engine_alone(batches, None)
    default_numpy_s, ceiling_default_numpy_s, _ = engine_alone(batches, None, kernels=False)
    ceiling_before = ceiling(batches)
    http_s, peak_kib = http(batches, 5000)
    ceiling_http_s = (ceiling_before + ceiling(batches)) / 2
    decoder = "native decoder" if Engine(Settings()).validator.native is not None else "native decoder NOT BUILT"
    kernels = "native KS" if window.WindowTabulation is not None else "native kernels NOT BUILT"
    rows = [(f"engine alone, 5,000-row reference (drift x{evaluations}), {decoder}", engine_s, ceiling_s),
            ("engine alone, 5,000-row reference, Python decoder", python_s, ceiling_python_s),
            (f"engine alone, 1,000-row reference: exact KS (drift x{evaluations_ks})", engine_ks_s, ceiling_ks_s),
            (f"engine alone, default configuration (drift x{evaluations_default}), {kernels}", default_s,
             ceiling_default_s),
            ("engine alone, default configuration, no native kernels (numpy KS)", default_numpy_s,
             ceiling_default_numpy_s),
            ("HTTP POST /v1/events, NDJSON x1000, 5,000-row reference", http_s, ceiling_http_s)]
    print(f"{'':<78} events/s   ceiling events/s  ratio")
    for name, seconds, ceiling_seconds in rows:
        print(f"{name:<78} {total / seconds:>8,.0f}   {total / ceiling_seconds:>8,.0f}          "
              f"{ceiling_seconds / seconds:.2f}x")
    print("(ceiling: orjson decode + feature columns, timed with each row)")
    print(f"peak RSS of the HTTP server: {peak_kib / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
