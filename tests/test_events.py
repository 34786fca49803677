import orjson
import pytest

from service.core.events import REASONS, Validator
from tests.decoding import decode_both

NOW = 1_800_000_000.0


def prediction(**extra):
    event = {"kind": "prediction", "model": "fraud", "features": {"amount": 1.5, "country": "DE", "age": None},
             "prediction": 1, "score": 0.8, "latency_ms": 12.5}
    event.update(extra)
    return event


def decode(body: bytes):
    return decode_both("decode_body", body, NOW, max_features=5, max_event_bytes=4096)


def test_single_object_array_and_ndjson_are_accepted():
    one = orjson.dumps(prediction())
    assert decode(one).accepted == 1
    assert decode(orjson.dumps([prediction(), prediction()])).accepted == 2
    ndjson = b"\n".join([one, b"", orjson.dumps({"kind": "label", "model": "fraud", "id": "r1", "label": 0})])
    decoded = decode(ndjson)
    assert (len(decoded.predictions), len(decoded.labels), decoded.rejected) == (1, 1, [])


def test_defaults_are_filled_and_timestamps_normalised():
    decoded = decode(orjson.dumps([prediction(), prediction(timestamp="2026-11-28T08:00:00.5Z", id=7),
                                   prediction(timestamp=1795766400.5, model_version=3)]))
    first, second, third = decoded.predictions
    assert first.timestamp == NOW and first.model_version == "unknown"
    assert second.timestamp == 1795852800.5 and second.id == "7"
    assert third.model_version == "3"


@pytest.mark.parametrize("line, reason", [
    (b'{"kind": "prediction", "model": ', "invalid_json"),
    (b'[1, 2]', "not_an_object"),
    (b'"text"', "not_an_object"),
    (b'{"kind": "click", "model": "m"}', "unknown_kind"),
    (b'{"model": "m"}', "unknown_kind"),
    (b'{"kind": "prediction"}', "invalid_model"),
    (b'{"kind": "prediction", "model": "bad name!"}', "invalid_model"),
    (b'{"kind": "prediction", "model": "m", "features": [1, 2]}', "invalid_type"),
    (b'{"kind": "prediction", "model": "m", "features": {"a": {"nested": 1}}}', "invalid_type"),
    (b'{"kind": "prediction", "model": "m", "latency_ms": "fast"}', "invalid_type"),
    (b'{"kind": "prediction", "model": "m", "latency_ms": -1}', "invalid_value"),
    (b'{"kind": "prediction", "model": "m", "status": "meh"}', "invalid_value"),
    (b'{"kind": "prediction", "model": "m", "score": "high"}', "invalid_type"),
    (b'{"kind": "prediction", "model": "m", "timestamp": "yesterday"}', "invalid_timestamp"),
    (b'{"kind": "prediction", "model": "m", "timestamp": true}', "invalid_timestamp"),
    (b'{"kind": "prediction", "model": "m", "features": {"a": NaN}}', "non_finite"),
    (b'{"kind": "prediction", "model": "m", "latency_ms": Infinity}', "non_finite"),
    (b'{"kind": "prediction", "model": "m", "score": 1e999}', "non_finite"),
    (b'{"kind": "prediction", "model": "m", "features": {"a": 1e999}}', "non_finite"),
    (b'{"kind": "prediction", "model": "m", "features": [1e999]}', "non_finite"),
    (b'{"kind": "prediction", "model": "m", "features": {"a":1,"b":2,"c":3,"d":4,"e":5,"f":6}}', "too_many_features"),
    (b'{"kind": "label", "model": "m", "label": 1}', "missing_field"),
    (b'{"kind": "label", "model": "m", "id": "x"}', "missing_field"),
    (b'{"kind": "label", "model": "m", "id": "x", "label": [1]}', "invalid_type"),
    (b'{"kind": "infra", "model": "m", "cpu_utilization": "high"}', "invalid_type"),
    (b'{"kind": "infra", "model": "m", "memory_bytes": -5}', "invalid_value"),
    (b'{"kind": "infra", "model": "m", "event": 3}', "invalid_type"),
    (b'{"kind": "prediction", "model": "m", "pad": "' + b"x" * 5000 + b'"}', "oversize"),
])
def test_each_bad_event_is_rejected_with_its_reason_and_the_rest_survive(line, reason):
    assert reason in REASONS
    good = orjson.dumps(prediction())
    decoded = decode(b"\n".join([good, line, good]))
    assert decoded.accepted == 2, decoded.rejected
    assert [(r.index, r.reason) for r in decoded.rejected] == [(1, reason)]
    assert decoded.rejected[0].detail


def test_non_finite_inside_a_json_array_rejects_only_that_element():
    body = b'[{"kind": "prediction", "model": "m"}, {"kind": "prediction", "model": "m", "score": NaN}, 5]'
    decoded = decode(body)
    assert decoded.accepted == 1
    assert [(r.index, r.reason) for r in decoded.rejected] == [(1, "non_finite"), (2, "not_an_object")]


def test_a_json_array_with_bad_elements_rejects_only_those():
    body = orjson.dumps([prediction(), {"kind": "click", "model": "m"}, 5, prediction(features={"a": [1]})])
    decoded = decode(body)
    assert decoded.accepted == 1
    assert [(r.index, r.reason) for r in decoded.rejected] == [(1, "unknown_kind"), (2, "not_an_object"),
                                                                (3, "invalid_type")]


def test_kafka_records_keep_their_indices():
    values = [orjson.dumps(prediction()), None, b"{oops", orjson.dumps(prediction(model=""))]
    decoded = decode_both("decode_records", values, NOW)
    assert decoded.accepted == 1
    assert [(r.index, r.reason) for r in decoded.rejected] == [(1, "invalid_json"), (2, "invalid_json"),
                                                                (3, "invalid_model")]


def test_adapters_can_validate_parsed_dicts():
    decoded = Validator().validate([prediction(timestamp="2026-11-28T08:00:00Z"), {"kind": "label", "model": "m"},
                                    {"kind": "infra", "model": "m", "gpu_utilization": float("nan")}], NOW)
    assert decoded.predictions[0].timestamp == 1795852800.0
    assert [(r.index, r.reason) for r in decoded.rejected] == [(1, "missing_field"), (2, "non_finite")]


@pytest.mark.parametrize("bad", [b'{"kind": "label", "model": "m\xc3", "id": "x", "label": 1}',
                                 b'{"kind": "prediction", "model": "m", "features": {"c": "\xff"}}'])
def test_invalid_utf8_in_a_string_is_rejected_as_invalid_json(bad):
    good = orjson.dumps(prediction())
    for body in (b"\n".join([good, bad, good]), b"[" + b",".join([good, bad, good]) + b"]"):
        decoded = decode(body)
        assert decoded.accepted == 2
        assert [(r.index, r.reason) for r in decoded.rejected] == [(1, "invalid_json")]
    decoded = decode_both("decode_records", [good, bad], NOW)
    assert [(r.index, r.reason) for r in decoded.rejected] == [(1, "invalid_json")]
    assert decode(b"[" + bad + b", {oops]").accepted == 0


def test_empty_body_is_rejected():
    assert [r.reason for r in decode(b"  \n").rejected] == ["invalid_json"]
