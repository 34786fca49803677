"""Segments in the service: drift confined to one segment, bounded label values, performance
and its gap per segment, GET /v1/models/{model}/segments, segment-scoped triggers, checkpoints."""

from __future__ import annotations

import types

import numpy as np
import orjson
import pandas as pd
import pytest

from service.config import Settings
from service.core.engine import Engine
from tests.test_triggers import count, post, triggers_of

COUNTRIES = "ABCDE"


def events(n: int, start: int, seed: int, drifting: str | None = None, wrong_in: str | None = None) -> list[dict]:
    """country A..E in turn, tier 0..2; x, y, z standard normal except x and y in the
    ``drifting`` country (shifted by 3); the prediction wrong (0) in country ``wrong_in``."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        country = COUNTRIES[i % 5]
        shift = 3.0 if country == drifting else 0.0
        out.append({"kind": "prediction", "model": "m", "id": f"m-{start + i}",
                    "prediction": 0 if country == wrong_in else 1,
                    "features": {"country": country, "tier": (i // 5) % 3, "x": float(rng.normal(shift)),
                                 "y": float(rng.normal(shift)), "z": float(rng.normal())}})
    return out


def engine(**model) -> Engine:
    config = {"reference": {"first_n": 1000}, "window": {"size": 1000, "step": 1000},
              "segments": ["country", "tier"], **model}
    return Engine(Settings.model_validate({"models": {"m": config}}))


def feed(target: Engine, batch: list[dict]) -> None:
    decoded = target.validator.decode_body(orjson.dumps(batch), received_at=0.0)
    assert not decoded.rejected
    target.process(decoded)


def test_drift_in_one_segment_shows_there_alone_not_in_the_others_nor_the_aggregate():
    target = engine()
    feed(target, events(1000, 0, seed=0))
    feed(target, events(1000, 1000, seed=1, drifting="C"))
    state = target.models["m"]
    country = state.segments.drift["country"]
    assert set(country) == set(COUNTRIES)  # every value seen in the reference: no __other__
    assert {name for name, result in country.items() if result.report.dataset_drift} == {"C"}
    drifted_c = sorted(n for n, f in country["C"].report.features.items() if f.drift)
    assert drifted_c == ["x", "y"] and country["C"].report.features_total == 4  # tier, x, y, z
    assert all(result.samples == 200 for result in country.values())
    # The aggregate: x and y may drift, but 2 of 5 features is below drift_share 0.5.
    assert state.report.drift_share <= 2 / 5 and not state.report.dataset_drift
    # Tiers are numbers, named without ".0"; each mixes every country.
    tier = state.segments.drift["tier"]
    assert {name: result.samples for name, result in tier.items()} == {"0": 335, "1": 335, "2": 330}


def test_ten_thousand_distinct_values_keep_at_most_max_segments_plus_one_series(live_server):
    server = live_server({"limits": {"max_segments": 20}, "models": {"m": {
        "reference": {"first_n": 1000}, "window": {"size": 1000, "step": 1000}, "segments": ["user"]}}})
    rng = np.random.default_rng(0)
    # The reference: 15 frequent users and 500 once; then 9,485 users never seen: 10,000 in all.
    reference = [f"u{i % 15}" if i < 500 else f"r{i}" for i in range(1000)]
    window = [f"n{i}" for i in range(9485)]
    for users in (reference, window):
        for offset in range(0, len(users), 1000):
            post(server, [{"kind": "prediction", "model": "m", "prediction": 1,
                           "features": {"user": user, "x": float(rng.normal())}}
                          for user in users[offset:offset + 1000]])
    samples = {dict(labels)["segment"]: value for (name, labels), value in server.metrics().items()
               if name == "driftline_segment_window_samples"}
    # The 15 frequent users, 5 of those seen once (ties: the first seen), and __other__.
    assert len(samples) == 21 and {f"u{i}" for i in range(15)} < set(samples) and samples["__other__"] == 1000
    for name in ("driftline_segment_drift_share", "driftline_segment_dataset_drift_detected"):
        assert len({labels for (sample, labels) in server.metrics() if sample == name}) <= 21
    # Every prediction after the reference pooled as __other__ counts.
    assert server.metric("driftline_label_values_overflow_total", label="segment") == 9485


def test_the_segment_overflow_counter_never_goes_down_when_the_reference_changes():
    target = engine(segments=["country"])
    feed(target, events(1000, 0, seed=0))  # the first-N reference: countries A..E
    unseen = [{**event, "features": {**event["features"], "country": "Z"}} for event in events(300, 1000, seed=1)]
    feed(target, unseen[:150])
    feed(target, unseen[150:])  # counted batch by batch: each adds what it pooled
    assert target.overflow["segment"] == 300
    # A new reference starts the model's segments afresh; the counter keeps what it counted.
    target.set_reference("m", pd.DataFrame([event["features"] for event in events(1000, 0, seed=2)]), "upload")
    assert target.overflow["segment"] == 300
    feed(target, unseen[:100])
    assert target.overflow["segment"] == 400


def test_performance_per_segment_and_its_gap():
    target = engine(triggers={"performance": {"min_labels": 50}})
    feed(target, events(1000, 0, seed=0))
    feed(target, events(1000, 1000, seed=1, wrong_in="B"))
    feed(target, [{"kind": "label", "model": "m", "id": f"m-{i}", "label": 1} for i in range(1000, 2000)])
    segments = target.models["m"].segments
    country = segments.performance["country"]
    assert country["B"] == ({"accuracy": 0.0, "recall": 0.0}, 200)
    assert all(country[c][0]["accuracy"] == 1.0 and country[c][1] == 200 for c in "ACDE")
    # Precision and F1 are undefined in B (no positive prediction): their gap is over A, C, D, E.
    assert segments.gap(50) == {"country": {"accuracy": 1.0, "recall": 1.0, "precision": 0.0, "f1": 0.0},
                                "tier": {"accuracy": 0.0, "recall": 0.0, "precision": 0.0, "f1": 0.0}}
    assert segments.gap(201) == {"country": {}, "tier": {"accuracy": 0.0, "recall": 0.0, "precision": 0.0,
                                                         "f1": 0.0}}


def test_a_label_batch_is_evidence_only_for_the_segments_it_labels():
    """What a segment's performance_drop streak counts: the label evaluation carries the
    segments the batch added labels to, not the others, whose figures did not change."""
    target = engine(triggers={"performance": {"min_labels": 50}})
    feed(target, events(1000, 0, seed=0))
    feed(target, events(1000, 1000, seed=1, wrong_in="A"))
    seen: list = []
    target.listeners.append(seen.append)
    feed(target, [{"kind": "label", "model": "m", "id": f"m-{i}", "label": 1} for i in range(1000, 1500)])
    assert set(seen[-1].segment_performance["country"]) == set("ABCDE")
    b_only = [i for i in range(1500, 2000) if COUNTRIES[(i - 1000) % 5] == "B"]
    feed(target, [{"kind": "label", "model": "m", "id": f"m-{i}", "label": 1} for i in b_only])
    assert set(seen[-1].segment_performance["country"]) == {"B"}
    assert set(target.models["m"].segments.performance["country"]) == set("ABCDE")  # the figures stay


def test_a_window_without_a_segment_s_rows_breaks_its_drift_run():
    from service.config import TriggersConfig
    from service.core.segments import SegmentDrift
    from service.retrain.triggers import segment_signals

    evaluation = types.SimpleNamespace(segment_drift={"country": {"A": SegmentDrift(0, None)}},
                                       segment_performance=None)
    policy = TriggersConfig(on=["data_drift"])
    assert segment_signals(policy, evaluation)[("data_drift", "country", "A")] == (False, {"samples": 0})


def test_segments_configured_after_a_checkpoint_are_built_from_the_reference_read_again(live_server, tmp_path):
    path = tmp_path / "reference.csv"
    pd.DataFrame([event["features"] for event in events(1000, 0, seed=0)]).to_csv(path, index=False)
    config = {"models": {"m": {"reference": {"path": str(path)}, "window": {"size": 1000, "step": 1000}}}}
    first = live_server(config, state_dir=tmp_path / "state")
    post(first, events(1000, 1000, seed=1))
    assert first.client.get("/v1/models/m/segments").status_code == 409  # none configured
    first.stop()
    config["models"]["m"]["segments"] = ["country"]
    again = live_server(config, state_dir=tmp_path / "state")
    assert again.client.get("/readyz").status_code == 200
    post(again, events(1000, 2000, seed=2))
    answer = again.client.get("/v1/models/m/segments")
    assert answer.status_code == 200, answer.text
    assert set(answer.json()["segment_by"]["country"]["segments"]) == set("ABCDE")


def test_segments_an_uploaded_reference_cannot_give_are_named_at_restore(caplog):
    before = engine(segments=[])
    feed(before, events(1000, 0, seed=0))  # a first-N reference, its rows not kept
    after = engine()
    with caplog.at_level("WARNING", logger="driftline.model_state"):
        after.restore("m", before.snapshot("m"))
    assert "segments by country, tier not built" in caplog.text and "PUT /v1/models/m/reference" in caplog.text


def test_segments_survive_a_checkpoint():
    target = engine()
    feed(target, events(1000, 0, seed=0))
    feed(target, events(1000, 1000, seed=1, drifting="C"))
    feed(target, [{"kind": "label", "model": "m", "id": f"m-{i}", "label": 1} for i in range(1000, 1500)])
    pending_label = [{"kind": "label", "model": "m", "id": "m-1999", "label": 0}]
    restored = engine()
    restored.restore("m", target.snapshot("m"))
    before, after = target.models["m"].segments, restored.models["m"].segments
    assert after.to_dict(100) == before.to_dict(100)
    feed(target, pending_label)
    feed(restored, pending_label)  # the prediction waiting for it kept its segments
    assert after.performance == before.performance and after.performance["country"]["E"][1] == 101


def test_route_metrics_and_a_segment_scoped_trigger(live_server):
    config = {"models": {"m": {"reference": {"first_n": 1000}, "window": {"size": 1000, "step": 1000},
                               "segments": ["country"],
                               "triggers": {"on": ["data_drift"], "consecutive_windows": 2}},
                         "plain": {}}}
    server = live_server(config)
    assert server.client.get("/v1/models/nobody/segments").status_code == 404
    post(server, events(1000, 0, seed=0))
    post(server, events(1000, 1000, seed=1, drifting="C"))
    body = server.client.get("/v1/models/m/segments").json()
    country = body["segment_by"]["country"]["segments"]
    assert country["C"]["dataset_drift"] is True and country["C"]["samples"] == 200
    assert country["C"]["features"]["x"]["drift"] is True and country["C"]["reference_rows"] == 200
    assert [c for c, figures in country.items() if figures["dataset_drift"]] == ["C"]
    assert server.metric("driftline_segment_dataset_drift_detected", model="m", segment_by="country",
                         segment="C") == 1.0
    assert server.metric("driftline_segment_drift_share", model="m", segment_by="country", segment="C") == 0.5
    assert server.metric("driftline_segment_window_samples", model="m", segment_by="country", segment="A") == 200
    assert triggers_of(server) == []  # one window in a row so far
    post(server, events(1000, 2000, seed=2, drifting="C"))
    [trigger] = triggers_of(server)
    payload = trigger["payload"]
    assert trigger["reason"] == "data_drift" and payload["segment"] == {"segment_by": "country", "segment": "C"}
    assert payload["evidence"]["segment"]["drifted_features"] == ["x", "y"]
    assert payload["evidence"]["dataset_drift"] is False  # the aggregate did not drift
    assert count(server, "m", "data_drift") == 1
    post(server, [{**event, "model": "plain"} for event in events(1000, 0, seed=0)])
    assert server.client.get("/v1/models/plain/segments").status_code == 409


def test_a_segment_s_figures_follow_its_labels_out_of_the_label_window():
    target = engine(labels={"window": 10})
    feed(target, events(1000, 0, seed=0))
    feed(target, events(1000, 1000, seed=1))
    ids = {country: [f"m-{1000 + i}" for i in range(1000) if COUNTRIES[i % 5] == country] for country in "AB"}

    def labels(country, start, n):
        feed(target, [{"kind": "label", "model": "m", "id": i, "label": 1} for i in ids[country][start:start + n]])
        return {name: count for name, (_, count) in target.models["m"].segments.performance["country"].items()}

    assert labels("A", 0, 10) == {"A": 10}
    assert labels("B", 0, 4) == {"A": 6, "B": 4}  # four of A's left the window with B's arrival
    assert labels("B", 4, 1) == {"A": 5, "B": 5}  # one label, one segment's rows gone: both recomputed
    assert labels("B", 5, 5) == {"B": 10}


def test_with_window_max_age_a_segment_counts_only_its_recent_rows():
    target = engine(window={"size": 1000, "step": 500, "max_age": "100s"})
    feed(target, events(1000, 0, seed=0))
    # The ring wraps: the recent rows are stored where the oldest were, before the others.
    old, recent = events(1000, 1000, seed=1), events(500, 2000, seed=2, drifting="C")
    for offset, event in enumerate(old):
        event["timestamp"] = 1_000.0 + offset / 1000
    for offset, event in enumerate(recent):
        event["timestamp"] = 5_000.0 + offset / 1000
    feed(target, old)
    feed(target, recent)  # the window's ring holds 1,000 rows, 500 of them past max_age
    state = target.models["m"]
    country = state.segments.drift["country"]
    assert {name: result.samples for name, result in country.items()} == {c: 100 for c in COUNTRIES}
    assert [name for name, result in country.items() if result.report.dataset_drift] == ["C"]
    assert state.report.features["x"].missing == 0 and state.window.count == 1000


def tiered(n: int, start: int, seed: int, drifting: str | None = None) -> list[dict]:
    """Events whose own ``segment`` field alternates gold and silver (and a ``segment`` feature
    saying otherwise, which the field overrides); x and y shift in the ``drifting`` one."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        segment = ("gold", "silver")[i % 2]
        shift = 3.0 if segment == drifting else 0.0
        out.append({"kind": "prediction", "model": "m", "id": f"m-{start + i}", "prediction": 1,
                    "segment": segment,
                    "features": {"segment": "ignored", "x": float(rng.normal(shift)), "y": float(rng.normal(shift)),
                                 "z": float(rng.normal())}})
    return out


@pytest.mark.parametrize("path", ["ndjson", "array", "records"])
def test_the_event_field_segment_slices_like_a_feature_on_every_decoding_path(path):
    target = Engine(Settings.model_validate({"models": {"m": {
        "reference": {"first_n": 1000}, "window": {"size": 1000, "step": 1000}, "segments": ["segment"]}}}))

    def send(batch):
        lines = [orjson.dumps(event) for event in batch]
        decoded = target.validator.decode_body(b"\n".join(lines), received_at=0.0) if path == "ndjson" else \
            target.validator.decode_body(orjson.dumps(batch), received_at=0.0) if path == "array" else \
            target.validator.decode_records(lines, received_at=0.0)
        assert not decoded.rejected
        target.process(decoded)

    send(tiered(1000, 0, seed=0))
    send(tiered(1000, 1000, seed=1, drifting="gold"))
    segments = target.models["m"].segments.drift["segment"]
    assert {name: result.samples for name, result in segments.items()} == {"gold": 500, "silver": 500}
    assert [name for name, result in segments.items() if result.report.dataset_drift] == ["gold"]
    assert target.models["m"].features["segment"].kind == "categorical"


def test_a_reference_file_s_segment_column_meets_the_event_field():
    import pandas as pd

    target = Engine(Settings.model_validate({"models": {"m": {
        "reference": {"path": "unused.csv"}, "window": {"size": 1000, "step": 1000}, "segments": ["segment"]}}}))
    reference = pd.DataFrame([{"segment": event["segment"], **{k: v for k, v in event["features"].items()
                                                               if k != "segment"}} for event in tiered(1000, 0, 0)])
    target.set_reference("m", reference, "upload")
    feed(target, tiered(1000, 1000, seed=1, drifting="silver"))
    segments = target.models["m"].segments.drift["segment"]
    assert [name for name, result in segments.items() if result.report.dataset_drift] == ["silver"]


def test_a_record_with_a_segment_is_read_with_it_though_python_no_longer_searches_each_record():
    # The native decoder declines an event with a segment itself (GIVES_BACK_SEGMENTS), so the
    # Kafka path does not search every record value for the key before calling it.
    native = pytest.importorskip("service._native")
    segmented = orjson.dumps({"kind": "prediction", "model": "m", "segment": "eu", "features": {"x": 1.0}})
    named = orjson.dumps({"kind": "prediction", "model": "m", "features": {"segment": "eu", "x": 1.0}})
    assert native.decode_records([segmented], 0.0, 1 << 20, 500) is None
    assert native.decode_records([named], 0.0, 1 << 20, 500) is not None
    decoded = Engine(Settings()).validator.decode_records([named, segmented], 0.0)
    assert [batch.segments for batch in decoded.prediction_batches()] == [[None, "eu"]]
