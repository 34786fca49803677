"""Retraining policies on a real server: consecutive windows, cooldown, performance with a
label minimum, concept drift, manual and Alertmanager triggers, sinks, restarts."""

from __future__ import annotations

import numpy as np
import orjson

from tests.test_webhooks import wait_until


def ndjson(events):
    return b"\n".join(orjson.dumps(e) for e in events)


def predictions(model, n, start=0, shift=0.0, seed=0, prediction=1):
    rng = np.random.default_rng(seed)
    return [{"kind": "prediction", "model": model, "id": f"{model}-{start + i}", "model_version": "3",
             "features": {"a": float(rng.normal(shift)), "b": float(rng.normal())},
             "prediction": prediction, "score": float(rng.random())} for i in range(n)]


def labels(model, ids, label):
    return [{"kind": "label", "model": model, "id": i, "label": label} for i in ids]


def model_config(**triggers):
    return {"reference": {"first_n": 50}, "window": {"size": 20, "step": 20}, "triggers": triggers}


def triggers_of(server, model=None):
    params = {"model": model} if model else {}
    return server.client.get("/v1/triggers", params=params, headers=server.admin_headers).json()["triggers"]


def count(server, model, reason):
    return server.metric("driftline_retrain_triggers_total", model=model, reason=reason) or 0


def post(server, events):
    response = server.client.post("/v1/events", content=ndjson(events))
    assert response.status_code == 202, response.text


def test_data_drift_needs_consecutive_windows_then_cools_down(live_server):
    server = live_server({"models": {"m": model_config(on=["data_drift"], consecutive_windows=2, cooldown="1h")}})
    post(server, predictions("m", 50))  # the reference
    post(server, predictions("m", 20, start=50, shift=5, seed=1))  # drift, 1st window
    post(server, predictions("m", 20, start=70, seed=2))  # no drift: the streak resets
    post(server, predictions("m", 20, start=90, shift=5, seed=3))  # drift, 1st again
    assert triggers_of(server) == [] and count(server, "m", "data_drift") == 0
    post(server, predictions("m", 20, start=110, shift=5, seed=4))  # drift, 2nd in a row: trigger
    [trigger] = triggers_of(server)
    assert trigger["reason"] == "data_drift" and trigger["model"] == "m" and trigger["state"] == "not_sent"
    payload = trigger["payload"]
    assert payload["model_version"] == "3" and payload["window"]["samples"] == 20
    assert payload["window"]["start"].endswith("Z") and payload["evidence"]["drifted_features"] == ["a"]
    assert payload["evidence"]["drift_share"] == 0.5 and payload["evidence"]["consecutive_windows"] == 2
    assert payload["reference"] == {"source": "first_n:50"}
    for seed in (5, 6, 7):  # still drifting, but within the cooldown
        post(server, predictions("m", 20, start=130 + seed * 20, shift=5, seed=seed))
    assert len(triggers_of(server)) == 1 and count(server, "m", "data_drift") == 1


def test_prediction_drift_triggers_when_the_predicted_classes_shift_and_not_before(live_server):
    server = live_server({"models": {"m": model_config(on=["prediction_drift"], consecutive_windows=1)}})

    def classes(start, n, predicted):  # the features never drift: only the predicted class may
        events = predictions("m", n, start=start, seed=start)
        return [{**event, "prediction": predicted(i)} for i, event in enumerate(events)]

    post(server, classes(0, 50, lambda i: i % 2))  # the reference: half 0, half 1
    post(server, classes(50, 20, lambda i: i % 2))  # the same mix: no trigger
    assert triggers_of(server) == [] and count(server, "m", "prediction_drift") == 0
    post(server, classes(70, 20, lambda i: 1))  # only 1s: the predictions drifted
    [trigger] = triggers_of(server)
    assert trigger["reason"] == "prediction_drift" and count(server, "m", "prediction_drift") == 1
    evidence = trigger["payload"]["evidence"]
    assert evidence["prediction_drift"]["method"] == "z" and evidence["prediction_drift"]["drift"] is True
    assert evidence["prediction_drift"]["score"] < 0.05 and evidence["dataset_drift"] is False


def test_performance_drop_waits_for_min_labels(live_server):
    policy = model_config(on=["performance_drop"], consecutive_windows=1,
                          performance={"metric": "accuracy", "threshold": 0.8, "min_labels": 30})
    server = live_server({"models": {"m": policy}})
    events = predictions("m", 90, prediction=1)
    post(server, events)
    post(server, labels("m", [e["id"] for e in events[:20]], 0))  # accuracy 0 on 20 labels: no verdict yet
    assert triggers_of(server) == []
    post(server, labels("m", [e["id"] for e in events[20:40]], 0))  # 40 labels >= 30: drop
    [trigger] = triggers_of(server)
    assert trigger["reason"] == "performance_drop"
    evidence = trigger["payload"]["evidence"]
    assert evidence["performance"]["accuracy"] == 0.0 and evidence["labels_in_window"] == 40
    assert evidence["performance_rule"] == {"metric": "accuracy", "threshold": 0.8, "min_labels": 30, "value": 0.0}
    assert count(server, "m", "performance_drop") == 1


def test_an_error_metric_drops_when_it_rises_above_its_threshold_from_exactly_min_labels(live_server):
    rule = {"metric": "mae", "threshold": 1.0, "min_labels": 20}
    policy = {**model_config(on=["performance_drop"], consecutive_windows=1, performance=rule), "task": "regression"}
    server = live_server({"models": {"worse": policy, "fine": policy}})
    for model, error in (("worse", 5.0), ("fine", 0.5)):
        events = [{**event, "prediction": 10.5} for event in predictions(model, 20)]
        post(server, events)
        truth = [{"kind": "label", "model": model, "id": e["id"], "label": 10.5 + error} for e in events]
        post(server, truth[:19])  # 19 labels: below min_labels, no verdict whatever the error
        assert triggers_of(server, model) == []
        post(server, truth[19:])  # the 20th: a verdict on exactly min_labels labels
    [trigger] = triggers_of(server)  # mae 5 > 1 is a drop; mae 0.5 is not
    assert trigger["model"] == "worse" and trigger["reason"] == "performance_drop"
    assert trigger["payload"]["evidence"]["performance_rule"] == {**rule, "value": 5.0}


def test_concept_drift_fires_on_detection(live_server):
    server = live_server({"models": {"m": model_config(on=["concept_drift"], consecutive_windows=5)}})
    events = predictions("m", 1200, prediction=1)
    post(server, events)
    post(server, labels("m", [e["id"] for e in events[:600]], 1))  # all correct
    assert triggers_of(server) == []
    for chunk in range(600, 1200, 100):  # then all wrong: the error stream shifts
        post(server, labels("m", [e["id"] for e in events[chunk:chunk + 100]], 0))
    [trigger] = triggers_of(server)
    assert trigger["reason"] == "concept_drift" and trigger["payload"]["evidence"]["concept_detectors"]
    assert count(server, "m", "concept_drift") == 1


def test_manual_trigger_bypasses_the_cooldown_and_starts_one(live_server):
    server = live_server({"models": {"m": model_config(on=["data_drift"], consecutive_windows=1)}},
                         environ={"DRIFTLINE_TOKEN": "t"})
    auth = {"Authorization": "Bearer t"}
    assert server.client.post("/v1/models/m/retrain").status_code == 401
    assert server.client.post("/v1/models/m/retrain", headers=auth, content=b"{bad").status_code == 422
    for _ in range(2):
        response = server.client.post("/v1/models/m/retrain", headers=auth, json={"note": "new data",
                                                                                 "model_version": "9"})
        assert response.status_code == 202 and response.json()["target"] is None
    assert count(server, "m", "manual") == 2
    post(server, predictions("m", 50))
    post(server, predictions("m", 20, start=50, shift=5, seed=1))  # drift, but the manual trigger started a cooldown
    assert [t["reason"] for t in triggers_of(server)] == ["manual", "manual"]
    assert triggers_of(server)[0]["payload"]["model_version"] == "9"
    assert triggers_of(server)[0]["payload"]["evidence"]["note"] == "new data"


def test_cooldown_survives_a_restart(live_server, tmp_path):
    config = {"models": {"m": model_config(on=["data_drift"], consecutive_windows=1, cooldown="1h")}}
    state = tmp_path / "kept-state"
    first = live_server(config, state_dir=state)
    assert first.client.post("/v1/models/m/retrain").status_code == 202
    first.stop()
    second = live_server(config, state_dir=state)
    post(second, predictions("m", 50))
    post(second, predictions("m", 20, start=50, shift=5, seed=1))
    assert [t["reason"] for t in triggers_of(second)] == ["manual"]  # the outbox remembers both


def alert(fingerprint, status="firing", model="m", starts="2026-11-28T08:00:00Z", **labels):
    return {"status": status, "labels": {"alertname": "DriftlineDatasetDriftPersisting", "model": model,
                                         "driftline_action": "retrain", **labels},
            "annotations": {"summary": "drift"}, "startsAt": starts, "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus/graph", "fingerprint": fingerprint}


def webhook(*alerts, status="firing"):
    return {"version": "4", "groupKey": "{}:{alertname=\"x\"}", "truncatedAlerts": 0, "status": status,
            "receiver": "driftline-retrain", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093", "alerts": list(alerts)}


def test_alertmanager_payloads(live_server):
    server = live_server({"models": {"default": {"triggers": {"cooldown": "1h"}}}}, environ={"DRIFTLINE_TOKEN": "t"})
    auth = {"Authorization": "Bearer t"}
    assert server.client.post("/v1/alertmanager", json=webhook(alert("f1"))).status_code == 401
    body = server.client.post("/v1/alertmanager", headers=auth, json=webhook(
        alert("f1"), alert("f2", model="other", model_version="4"), alert("f3", status="resolved", model="x"),
        {**alert("f4", model="y"), "labels": {"alertname": "Unrelated", "model": "y"}},
        {**alert("f5"), "labels": {"alertname": "NoModel", "driftline_action": "retrain"}})).json()
    assert [t["model"] for t in body["triggered"]] == ["m", "other"]
    assert [i["why"] for i in body["ignored"]] == ["resolved", "no driftline_action=retrain label", "no model label"]
    # the same alert again (Alertmanager repeats, or a second replica): ignored
    again = server.client.post("/v1/alertmanager", headers=auth, json=webhook(alert("f1"), alert("f2", model="other")))
    assert again.json()["triggered"] == [] and {i["why"] for i in again.json()["ignored"]} == {"duplicate"}
    # a new alert on the same model within the cooldown: suppressed; resolved ones never trigger
    later = server.client.post("/v1/alertmanager", headers=auth, json=webhook(
        alert("f1", starts="2026-11-28T09:00:00Z"), alert("f9", status="resolved"), status="resolved")).json()
    assert later["triggered"] == [] and later["ignored"][0]["why"].startswith("cooldown")
    assert count(server, "m", "alert") == 1 and count(server, "other", "alert") == 1
    listed = {t["model"]: t for t in triggers_of(server)}
    assert listed["other"]["payload"]["model_version"] == "4"
    assert listed["m"]["payload"]["evidence"]["alert"]["fingerprint"] == "f1"
    assert server.client.post("/v1/alertmanager", headers=auth, json={**webhook(), "version": "3"}).status_code == 422
    assert server.client.post("/v1/alertmanager", headers=auth, content=b"nope").status_code == 400


def test_alert_dedup_memory_is_bounded(live_server):
    server = live_server({"alertmanager": {"dedup_size": 10}, "models": {"default": {"triggers": {"cooldown": 0}}}})
    manager = server.runtime.component("triggers")
    for i in range(25):
        server.client.post("/v1/alertmanager", json=webhook(alert(f"f{i}", model=f"m{i}")))
    assert len(manager._alerts_seen) == 10 and count(server, "m24", "alert") == 1


def test_sinks_get_every_trigger_off_the_ingest_thread(live_server):
    server = live_server({"models": {"m": model_config(on=["data_drift"], consecutive_windows=1)}})
    import threading

    seen = []
    triggers = server.runtime.component("triggers")
    triggers.sinks.append(lambda payload: seen.append((payload, threading.current_thread().name)))
    post(server, predictions("m", 50))
    post(server, predictions("m", 20, start=50, shift=5, seed=1))
    trigger_id = triggers_of(server)[0]["id"]
    # Marked published only after every sink took it: no later call for this trigger can follow.
    wait_until("the trigger published", lambda: not server.runtime.component("triggers").outbox.unpublished())
    [(payload, thread)] = seen
    assert payload["id"] == trigger_id and payload["reason"] == "data_drift" and thread == "trigger-aftercare"


def test_no_webhook_configured_records_the_trigger(live_server):
    server = live_server()
    post(server, predictions("m", 1200))
    response = server.client.post("/v1/models/m/retrain")
    assert response.status_code == 202 and response.json()["state"] == "not_sent"
    [item] = triggers_of(server)
    assert item["delivery"]["state"] == "not_sent" and item["target"] is None
    assert server.client.get("/v1/triggers", params={"limit": 0}).status_code == 422


def test_a_failing_sink_gets_the_trigger_again(live_server):
    server = live_server({"models": {"m": {}}})
    calls = []

    def flaky(payload):
        calls.append(payload["id"])
        if len(calls) == 1:
            raise RuntimeError("broker down")

    server.runtime.component("triggers").sinks.append(flaky)
    trigger_id = server.client.post("/v1/models/m/retrain").json()["id"]
    # Marked published only after every sink took it: no later call for this trigger can follow.
    outbox = server.runtime.component("triggers").outbox
    wait_until("the trigger published", lambda: not outbox.unpublished(), timeout=10)
    assert calls == [trigger_id, trigger_id]


def test_a_trigger_suppressed_by_the_cooldown_is_logged_once_per_cooldown(live_server, caplog):
    server = live_server({"models": {"m": model_config(on=["data_drift"], consecutive_windows=1, cooldown="1h")}})
    post(server, predictions("m", 50))
    post(server, predictions("m", 20, start=50, shift=5, seed=1))  # trigger, the cooldown starts
    caplog.set_level("INFO", logger="driftline")
    for seed in range(2, 7):  # five drifting windows within the cooldown
        post(server, predictions("m", 20, start=50 + seed * 20, shift=5, seed=seed))
    suppressed = [r for r in caplog.records if "suppressed" in r.getMessage()]
    assert len(suppressed) == 1, [r.getMessage() for r in suppressed]
    assert "m: data_drift trigger suppressed by the cooldown" in suppressed[0].getMessage()
    assert len(triggers_of(server)) == 1


def test_drifted_features_names_in_the_trigger_what_drift_counts(live_server):
    server = live_server({"models": {"m": model_config(on=["data_drift"], consecutive_windows=1, cooldown="1h")}})
    post(server, predictions("m", 50))
    post(server, predictions("m", 20, start=50, shift=5, seed=1))
    [trigger] = triggers_of(server)
    drift = server.client.get("/v1/models/m/drift").json()
    names = trigger["payload"]["evidence"]["drifted_features"]
    assert names == sorted(name for name, feature in drift["features"].items() if feature["drift"])
    assert len(names) == drift["drifted_features"]


def test_an_unknown_reason_is_a_value_error_and_no_trigger(live_server):
    import pytest

    server = live_server({})
    with pytest.raises(ValueError, match="'exploded' is not a trigger reason"):
        server.runtime.component("triggers").raise_trigger("m", "exploded")
    assert triggers_of(server) == []


def test_evidence_runs_retry_then_fail_log_with_the_kept_frames_or_skip(tmp_path):
    import threading

    import pandas as pd

    from service.retrain import evidence
    from service.retrain.outbox import Outbox

    outbox = Outbox(tmp_path / "triggers.sqlite")
    for trigger_id in ("down", "up", "unlogged"):
        outbox.add({"id": trigger_id, "model": "m", "reason": "manual"}, None, {"drift": None}, 0.0)

    class Logger:
        def __init__(self):
            self.calls = []

        def log(self, payload, drift, frames):
            self.calls.append((payload["id"], frames))
            if payload["id"] == "down":
                raise ConnectionError("mlflow is down")
            return "run-1"

    logger, no_wait = Logger(), threading.Event()
    no_wait.wait = lambda timeout=None: False  # the pause between attempts, skipped here
    runs = evidence.EvidenceRuns(logger)
    frames = (pd.DataFrame({"a": [1.0]}), pd.DataFrame({"a": [2.0]}))
    runs.keep_frames("up", frames)
    for _ in range(evidence.EVIDENCE_ATTEMPTS):
        runs.log_due(outbox, no_wait)
    states = {t["id"]: t["mlflow"] for t in outbox.recent()}
    assert states["down"] == {"state": "failed", "run_id": None}
    assert states["up"] == {"state": "logged", "run_id": "run-1"} and states["unlogged"]["state"] == "logged"
    assert [call for call in logger.calls if call[0] == "down"] == [("down", None)] * evidence.EVIDENCE_ATTEMPTS
    assert [frames_ for trigger_id, frames_ in logger.calls if trigger_id == "up"] == [frames]
    outbox.add({"id": "later", "model": "m", "reason": "manual"}, None, {"drift": None}, 0.0)
    evidence.EvidenceRuns(None).log_due(outbox, no_wait)
    assert outbox.get("later")["mlflow"]["state"] == "skipped"
    outbox.close()


def test_a_trigger_manager_takes_what_it_needs_in_its_constructor(tmp_path):
    """No runtime to reach into: settings, engine, metrics and environment are its arguments."""
    from prometheus_client import CollectorRegistry

    from service.config import Settings
    from service.core.engine import Engine
    from service.observability.metrics import Metrics
    from service.retrain.triggers import TriggerManager

    settings = Settings(state_dir=tmp_path, webhooks={"ci": {"url": "http://127.0.0.1:9/hook", "secret_env": "S"}})
    engine = Engine(settings)
    manager = TriggerManager(settings, engine, Metrics(engine, CollectorRegistry()), {"S": "whsec_c2VjcmV0"},
                             clock=lambda: 1795766400.0)
    assert manager.dispatcher is None and manager.manual("m").suppressed == "driftline is not started"
    manager.start()
    try:
        outcome = manager.manual("m", note="by hand")
        assert outcome.target == "ci" and outcome.trigger["triggered_at"] == "2026-11-27T08:00:00Z"
        assert manager.dispatcher.credentials["ci"].secret == b"secret"
        assert [t["id"] for t in manager.recent()] == [outcome.trigger["id"]]
    finally:
        manager.stop()


def test_the_triggers_component_is_started_first_and_stopped_last(tmp_path):
    from prometheus_client import CollectorRegistry

    from service.config import Settings
    from service.server import build_app

    runtime = build_app(Settings(state_dir=tmp_path), CollectorRegistry(), environ={}).state.runtime
    triggers = runtime.component("triggers")
    assert runtime.components[0] is triggers and runtime.engine.listeners == [triggers.on_evaluation]
    runtime.start()
    try:
        assert triggers.manual("m").trigger is not None and runtime.ready()[0]
    finally:
        runtime.stop()
    assert triggers.outbox is None
