"""Hostile or malformed input at every edge: a 4xx or a counted rejection with a reason, never
a 500, and memory bounded by bytes as well as by counts."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import httpx
import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from service.config import Settings
from service.core.engine import Engine
from service.core.events import REASONS, Validator
from service.ingest.tables import TooLarge, read_table
from tests.decoding import decode_both
from tests.test_triggers import alert, webhook

TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


# -- references -------------------------------------------------------------------------


def test_a_reference_with_nested_values_is_a_422_naming_the_column(live_server):
    server = live_server()
    body = b'{"a": {"x": 1}, "b": 1.5}\n{"a": {"x": 2}, "b": 2.5}\n'
    response = server.client.put("/v1/models/m/reference", content=body)
    assert response.status_code == 422, response.text
    assert "'a'" in response.json()["detail"] and "nested" in response.json()["detail"]
    lists = server.client.put("/v1/models/m/reference", content=b'{"a": [1, 2]}\n{"a": [3]}\n')
    assert lists.status_code == 422 and "'a'" in lists.json()["detail"]


def constant_parquet(rows: int, columns: int = 2) -> bytes:
    """A Parquet file of ``rows`` repeated rows: a few hundred KB for tens of millions."""
    chunk = min(rows, 1_000_000)
    table = pa.table({f"c{i}": pa.array(np.full(chunk, float(i))) for i in range(columns)})
    sink = io.BytesIO()
    with pq.ParquetWriter(sink, table.schema, compression="zstd") as writer:
        for _ in range(rows // chunk):
            writer.write_table(table, row_group_size=chunk)
    return sink.getvalue()


def peak_rss_mb_during(action) -> tuple[float, object]:
    """(growth of this process's peak RSS in MB while ``action`` runs, its result)."""
    def status(key: str) -> float:
        with open("/proc/self/status") as lines:
            return next(int(line.split()[1]) for line in lines if line.startswith(key)) / 1024

    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # resets VmHWM to the current RSS
    before = status("VmRSS")
    result = action()
    return status("VmHWM") - before, result


def test_a_parquet_of_millions_of_rows_is_refused_from_its_metadata(live_server):
    server = live_server()
    body = constant_parquet(8_000_000)
    assert len(body) < 200_000
    started = time.perf_counter()
    grown, response = peak_rss_mb_during(lambda: server.client.put("/v1/models/m/reference", content=body))
    assert response.status_code == 413, response.text
    assert "more than 1,000,000 rows" in response.json()["detail"]
    assert "limits.max_reference_rows=1000000" in response.json()["detail"]
    # Read whole, it took over 600 MB and several seconds.
    assert grown < 60 and time.perf_counter() - started < 2, (grown, time.perf_counter() - started)
    assert server.client.get("/v1/models/m/drift").status_code == 404


def test_reference_rows_and_values_are_bounded_in_every_format(live_server):
    server = live_server({"limits": {"max_reference_rows": 100, "max_reference_cells": 1000}})
    frame = pd.DataFrame({"a": np.arange(101.0), "b": ["x"] * 101})
    for body in (frame.to_csv(index=False).encode(), frame.to_json(orient="records", lines=True).encode(),
                 frame.to_json(orient="records").encode(), frame.to_parquet()):
        response = server.client.put("/v1/models/m/reference", content=body)
        assert response.status_code == 413 and "more than 100 rows" in response.json()["detail"], response.text
    wide = pd.DataFrame({f"f{i}": np.arange(90.0) for i in range(12)})
    response = server.client.put("/v1/models/m/reference", content=wide.to_parquet())
    assert response.status_code == 413 and "more than 1,000 values" in response.json()["detail"]
    assert server.client.put("/v1/models/m/reference", content=wide.iloc[:, :11].to_csv(index=False).encode()
                             ).status_code == 200


def test_read_table_bounds_files_too(tmp_path):
    path = tmp_path / "big.parquet"
    path.write_bytes(constant_parquet(2_000_000))
    with pytest.raises(TooLarge, match="more than 1,000,000 rows"):
        read_table(path, max_rows=1_000_000)
    (tmp_path / "ok.csv").write_text("a\n1\n2\n")
    assert len(read_table(tmp_path / "ok.csv", max_rows=2, max_cells=2)) == 2


# -- authentication ---------------------------------------------------------------------


def test_a_non_ascii_bearer_token_is_a_401(live_server):
    server = live_server(environ={"DRIFTLINE_TOKEN": TOKEN, "DRIFTLINE_INGEST_TOKEN": "ingest"})
    for token in ("tökén".encode(), "日本".encode(), b"\xff\xfe"):
        headers = [(b"authorization", b"Bearer " + token)]
        assert server.client.put("/v1/models/m/reference", content=b"a\n1\n", headers=headers).status_code == 401
        assert server.client.post("/v1/events", content=b"{}", headers=headers).status_code == 401


def test_a_non_ascii_configured_token_matches_its_utf8_bytes(live_server):
    server = live_server(environ={"DRIFTLINE_TOKEN": "gehéim"})
    headers = [(b"authorization", "Bearer gehéim".encode())]
    assert server.client.put("/v1/models/m/reference", content=b"a\n1\n2\n", headers=headers).status_code == 200
    latin1 = [(b"authorization", "Bearer gehéim".encode("latin-1"))]
    assert server.client.put("/v1/models/m/reference", content=b"a\n1\n2\n", headers=latin1).status_code == 401


# -- Alertmanager -----------------------------------------------------------------------


@pytest.mark.parametrize("broken", [
    {"labels": "oops"},
    {"labels": {"alertname": "A", "driftline_action": "retrain", "model": {"x": 1}}},
    {"labels": {"alertname": "A", "driftline_action": "retrain", "model": ["m"]}},
    {"labels": {"alertname": "A", "driftline_action": "retrain", "model": 7}},
    {"annotations": ["a"]},
    {"status": {"firing": True}},
    {"fingerprint": ["f"]},
])
def test_malformed_alertmanager_bodies_are_422(live_server, broken):
    server = live_server()
    response = server.client.post("/v1/alertmanager", json=webhook({**alert("f1"), **broken}))
    assert response.status_code == 422, response.text
    assert response.json()["detail"]
    assert server.client.post("/v1/alertmanager", json=webhook("not an alert")).status_code == 422
    assert server.client.post("/v1/alertmanager", json={"alerts": "nope"}).status_code == 422
    assert server.client.get("/v1/triggers").json()["triggers"] == []


def test_alertmanager_bodies_nested_too_deep_or_with_lone_surrogates_are_400(live_server):
    server = live_server()
    deep_labels = b'{"alerts": [{"labels": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5001 + b"]}"
    for body in (b"[" * 100_000 + b"]" * 100_000, deep_labels,
                 b'{"alerts": [{"status": "firing", "labels": {"driftline_action": "retrain", "model": "m", '
                 b'"note": "\\ud800"}}]}'):
        response = server.client.post("/v1/alertmanager", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 400 and response.json()["detail"].startswith("body is not JSON"), response.text
    assert server.client.get("/healthz").status_code == 200


def test_alertmanager_model_label_must_be_a_model_name(live_server):
    server = live_server()
    body = server.client.post("/v1/alertmanager", json=webhook(
        alert("f1", model="bad name"), alert("f2", model="x" * 129), alert("f3", model="ok"),
        alert("f4", model="ok2", model_version="7" * 129))).json()
    assert [t["model"] for t in body["triggered"]] == ["ok"]
    assert [i["why"] for i in body["ignored"]] == ["model label is not a model name ([A-Za-z0-9_.:-]{1,128})"] * 2 + [
        "model_version label is longer than 128 characters"]
    assert all(t["model"] == "ok" for t in server.client.get("/v1/triggers").json()["triggers"])


def test_alertmanager_honours_max_models_and_bounds_alerts_per_request(live_server):
    server = live_server({"limits": {"max_models": 3}, "alertmanager": {"max_alerts": 10},
                          "models": {"default": {"triggers": {"cooldown": 0}}}})
    body = server.client.post("/v1/alertmanager", json=webhook(*(alert(f"f{i}", model=f"m{i}") for i in range(5))))
    assert body.status_code == 200
    assert [t["model"] for t in body.json()["triggered"]] == ["m0", "m1", "m2"]
    assert [i["why"] for i in body.json()["ignored"]] == ["limits.max_models=3 models are tracked already"] * 2
    # The models already tracked still take alerts.
    again = server.client.post("/v1/alertmanager", json=webhook(alert("g0", model="m0"))).json()
    assert [t["model"] for t in again["triggered"]] == ["m0"]
    series = [line for line in server.client.get("/metrics").text.splitlines()
              if line.startswith("driftline_retrain_triggers_total{")]
    assert len(series) == 3
    too_many = server.client.post("/v1/alertmanager", json=webhook(*(alert(f"h{i}", model="m0") for i in range(11))))
    assert too_many.status_code == 413 and "alertmanager.max_alerts=10" in too_many.json()["detail"]


def test_alertmanager_alerts_count_against_max_models_shared_with_events(live_server):
    server = live_server({"limits": {"max_models": 1}})
    assert server.client.post("/v1/events", json={"kind": "prediction", "model": "seen",
                                                  "features": {"a": 1}}).status_code == 202
    body = server.client.post("/v1/alertmanager", json=webhook(alert("f1", model="new"),
                                                               alert("f2", model="seen"))).json()
    assert [t["model"] for t in body["triggered"]] == ["seen"]
    assert server.client.get("/v1/models/new/drift").status_code == 404
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_a_reference_column_name_is_bounded_as_a_feature_name_in_events(live_server):
    server = live_server()
    response = server.client.put("/v1/models/m/reference", content=("n" * 257 + ",b\n1,2\n3,4\n").encode())
    assert response.status_code == 422 and "longer than 256 characters" in response.json()["detail"]
    response = server.client.put("/v1/models/m/reference", content=("n" * 256 + ",b\n1,2\n3,4\n").encode())
    assert response.status_code == 200


def test_a_reference_with_nested_predictions_or_text_scores_is_a_422(live_server):
    server = live_server()
    nested = server.client.put("/v1/models/m/reference", content=b'{"a": 1, "prediction": {"x": 1}}\n{"a": 2}\n')
    assert nested.status_code == 422 and "'prediction'" in nested.json()["detail"]
    text = server.client.put("/v1/models/m/reference", content=b"a,score\n1,high\n2,low\n")
    assert text.status_code == 422 and "'score'" in text.json()["detail"]


# -- feature names that are also the model's own columns --------------------------------


RESERVED_LOOKING = ("score", "prediction", "__timestamp__", "__prediction__", "__score__", "m:score", "f:x")


def reserved_events(n: int, seed: int, start: int = 0, prediction_shift: float = 0.0) -> list[bytes]:
    """Features named like the model's own columns, the same values in every batch; the
    model's score, prediction and timestamps are quite different numbers."""
    same, rng = np.random.default_rng(0), np.random.default_rng(seed)
    return [orjson.dumps({
        "kind": "prediction", "model": "m", "id": f"e{start + i}", "timestamp": 1_800_000_000 + start + i,
        "features": {name: float(same.normal(100.0 + k, 1.0)) for k, name in enumerate(RESERVED_LOOKING)},
        "prediction": int(rng.random() < 0.2 + prediction_shift), "score": float(rng.random())})
        for i in range(n)]


@pytest.mark.parametrize("native", [True, False])
def test_features_named_like_the_models_own_columns_give_no_false_drift(native):
    engine = Engine(Settings.model_validate({"models": {"default": {"reference": {"first_n": 300},
                                                                    "window": {"size": 300, "step": 300}}}}))
    engine.validator.native = engine.validator.native if native else None
    engine.process(engine.validator.decode_records(reserved_events(300, seed=0), received_at=0.0))
    state = engine.models["m"]
    assert set(state.features) == set(RESERVED_LOOKING)
    assert state.prediction_reference is not None and set(state.prediction_reference.columns) == {"prediction",
                                                                                                  "score"}
    engine.process(engine.validator.decode_records(reserved_events(300, seed=1, start=300, prediction_shift=0.6),
                                                   received_at=0.0))
    report = state.report.to_dict()
    assert report["drifted_features"] == 0, {n: f["score"] for n, f in report["features"].items()}
    # The model's own prediction did drift (20% ones, then 80%), and is seen as such.
    assert state.prediction_drift.drift is True
    frame = state.current_frame()
    assert frame["score"].between(90, 110).all() and frame["__timestamp__"].between(90, 110).all()
    restored = Engine(engine.settings)
    restored.restore("m", engine.snapshot("m"))
    assert restored.models["m"].report.to_dict() == report


def test_a_reference_file_with_reserved_looking_features_keeps_them_apart(live_server):
    server = live_server({"models": {"default": {"window": {"size": 300, "step": 300}}}})
    rows = [orjson.loads(line) for line in reserved_events(300, seed=3)]
    frame = pd.DataFrame([{name: value for name, value in row["features"].items()
                           if name not in ("score", "prediction")} | {"prediction": row["prediction"]} for row in rows])
    assert server.client.put("/v1/models/m/reference", content=frame.to_parquet()).status_code == 200
    server.client.post("/v1/events", content=b"\n".join(reserved_events(300, seed=4)))
    drift = server.client.get("/v1/models/m/drift").json()
    assert drift["drifted_features"] == 0 and set(drift["features"]) == set(RESERVED_LOOKING) - {"score", "prediction"}


# -- string lengths ---------------------------------------------------------------------


def prediction(**fields) -> dict:
    return {"kind": "prediction", "model": "m", "id": "a", "features": {"x": 1.5, "c": "DE"}, "prediction": 1,
            **fields}


LONG_STRINGS = [  # (event, field the detail names)
    (prediction(features={"x": 1.5, "c": "é" * 1025}), "features"),
    (prediction(features={"x": 1.5, "n" * 257: 1}), "features"),
    (prediction(prediction="y" * 1025), "prediction"),
    (prediction(model_version="7" * 129), "model_version"),
    (prediction(id="i" * 257), "id"),
    ({"kind": "label", "model": "m", "id": "a", "label": "z" * 1025}, "label"),
    ({"kind": "label", "model": "m", "id": "i" * 257, "label": 1}, "id"),
]


@pytest.mark.parametrize("event, field", LONG_STRINGS)
def test_a_string_above_its_bound_is_oversize_string_on_both_decoders(event, field):
    at_bound = {**event, "features": {"x": 1.5, "c": "é" * 1024, "n" * 256: 1}, "prediction": "y" * 1024,
                "model_version": "7" * 128, "id": "i" * 256} if event["kind"] == "prediction" else \
        {**event, "id": "i" * 256, "label": "z" * 1024}
    body = b"\n".join(orjson.dumps(e) for e in (prediction(), event, at_bound))
    for method, argument in (("decode_body", body), ("decode_records", body.split(b"\n"))):
        decoded = decode_both(method, argument, 1_800_000_000.0)
        assert [(r.index, r.reason) for r in decoded.rejected] == [(1, "oversize_string")], decoded.rejected
        assert field in decoded.rejected[0].detail and decoded.accepted == 2
    python = Validator(native=False).validate([event])
    assert [r.reason for r in python.rejected] == ["oversize_string"]


def test_a_prediction_with_long_strings_is_given_back_by_the_native_decoder():
    for event, _ in LONG_STRINGS[:5]:
        body = b"\n".join([orjson.dumps(prediction()), orjson.dumps(event)])
        assert Validator().native.decode_ndjson(body, 0.0, 1 << 20, 500) is None


def test_megabyte_strings_are_rejected_counted_and_not_kept(live_server):
    """180 events with 1 MB string values grew RSS by 177 MB and the checkpoint to 181 MB."""
    server = live_server({"models": {"default": {"reference": {"first_n": 100}}}})
    value = "v" * 1_000_000
    events = [prediction(id=f"e{i}", features={"x": float(i), "c": value}) for i in range(60)]
    events += [prediction(id=f"p{i}", prediction=value) for i in range(60)]
    events += [prediction(id=f"v{i}", model_version=value) for i in range(60)]
    bodies = [orjson.dumps(event) for event in events]
    grown, responses = peak_rss_mb_during(lambda: [server.client.post("/v1/events", content=body)
                                                   for body in bodies])
    assert {r.status_code for r in responses} == {400}
    assert server.metric("driftline_events_rejected_total", reason="oversize_string") == 180
    assert "m" not in server.runtime.engine.models
    assert grown < 40, grown


def test_the_readme_lists_every_rejection_reason_and_no_other():
    text = (Path(__file__).parent.parent / "README.md").read_text()
    listed = re.search(r"Every rejected event has a reason\s*\(([^)]*)\)", text).group(1)
    assert re.findall(r"`(\w+)`", listed) == list(REASONS)


def test_instance_and_event_words_above_their_bounds_are_oversize_string():
    for event in ({"kind": "infra", "model": "m", "instance": "i" * 257},
                  {"kind": "infra", "model": "m", "event": "e" * 65}):
        decoded = decode_both("decode_body", orjson.dumps(event), 1_800_000_000.0)
        assert [r.reason for r in decoded.rejected] == ["oversize_string"]


# -- vocabularies and the first-N reference bounded by bytes -----------------------------


def categorical_events(n: int, start: int, width: int, model: str = "m") -> list[bytes]:
    """Predictions whose category "c" is a new string of ``width`` characters every time."""
    return [orjson.dumps({"kind": "prediction", "model": model, "id": f"e{i}", "prediction": f"{i:0{width}d}",
                          "features": {"x": float(i), "c": f"{i:0{width}d}"}}) for i in range(start, start + n)]


def test_a_vocabulary_is_bounded_by_bytes_as_well_as_by_count():
    limits = {"max_categories": 1000, "max_vocabulary_bytes": 10_000}
    engine = Engine(Settings.model_validate({"limits": limits, "models": {"default": {
        "reference": {"first_n": 20}, "window": {"size": 100, "step": 100}}}}))
    engine.process(engine.validator.decode_records(categorical_events(600, 0, 1000), received_at=0.0))
    state = engine.models["m"]
    for vocabulary in (state.features["c"].vocab, state.classes):
        strings = [value for value in vocabulary if value != "__other__"]
        assert sum(len(value) for value in strings) <= 10_000 and len(strings) == 10
        assert "__other__" in vocabulary
    # Labels add classes through the same dict: its bound holds for both.
    labels = [orjson.dumps({"kind": "label", "model": "m", "id": f"e{i}", "label": "L" * 900 + str(i)})
              for i in range(580, 600)]
    engine.process(engine.validator.decode_records(labels, received_at=0.0))
    assert sum(len(value) for value in state.classes if value != "__other__") <= 10_000
    restored = Engine(engine.settings)
    restored.restore("m", engine.snapshot("m"))
    assert restored.models["m"].features["c"].vocab == state.features["c"].vocab


def test_a_first_n_reference_of_long_strings_closes_at_its_byte_budget():
    engine = Engine(Settings.model_validate({"limits": {"max_first_n_bytes": 100_000}, "models": {"default": {
        "reference": {"first_n": 1000}, "window": {"size": 100, "step": 100}}}}))
    for start in range(0, 400, 20):
        engine.process(engine.validator.decode_records(categorical_events(20, start, 1000), received_at=0.0))
    state = engine.models["m"]
    # 2,000 bytes a row (the feature and the predicted class): the budget holds 50 rows.
    assert state.reference is not None and state.reference_rows == 60
    assert state.window.total == 340
    engine.process(engine.validator.decode_records(categorical_events(5, 400, 4, model="n"), received_at=0.0))
    assert engine.models["n"].reference is None and engine.models["n"].reference_rows_collected == 5
