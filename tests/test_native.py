"""The native decoder gives, event for event, what the Python decoder gives (tests/decoding.py
compares them), takes the common batches itself, and gives back every batch it is unsure of."""

import random
import struct

import orjson
import pytest

from service.core.events import Validator, _native
from tests.conftest import needs_tool
from tests.decoding import NATIVE_REQUIRED, canonical, decode_both

NOW = 1_800_000_000.0

pytestmark = needs_tool("the native event decoder service._native", _native is not None,
                        "pip builds it where Rust's cargo is on the PATH", required=NATIVE_REQUIRED)

TRICKY_FLOATS = [0.1, -0.0, 1e-7, 5e-324, 1.7976931348623157e308, 2.2250738585072014e-308, 0.30000000000000004,
                 9007199254740993.0, 123456.789e3, 1 / 3]
TRICKY_TEXTS = ["DE", "", "naïve", "日本", "emoji 😀", 'quote " and \\ backslash', "tab\there", "line\nbreak", "\u2028"]


def random_value(rng: random.Random):
    kind = rng.randrange(7)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice([0, -1, 7, 2**53 + 1, -(2**63), 2**63 - 1])
    if kind == 3:
        return rng.choice(TRICKY_FLOATS)
    if kind == 4:
        return struct.unpack("d", struct.pack("Q", rng.getrandbits(62)))[0]  # any finite double
    if kind == 5:
        return round(rng.gauss(0, 1000), rng.randrange(8))
    return rng.choice(TRICKY_TEXTS)


def random_timestamp(rng: random.Random):
    return rng.choice([
        None, NOW + rng.random(), int(NOW), "2026-11-28T08:00:00Z", "2026-11-28T08:00:00.123456Z",
        "2026-11-28T08:00:00.5+05:30", "2026-11-28T08:00:00-08:00", "2024-02-29T23:59:59.999999",
        "1970-01-01T00:00:00Z", "2026-11-28T08:00:00.1234567Z", "2026-11-28 08:00:00Z",
    ])


def random_event(rng: random.Random, names: list[str]) -> dict:
    kind = rng.choices(["prediction", "label", "infra"], [8, 2, 1])[0]
    model = rng.choice(["fraud", "churn", "m.v2:eu-west_1"])
    if kind == "label":
        return {"kind": "label", "model": model, "id": rng.choice([f"r{rng.randrange(50)}", rng.randrange(50)]),
                "label": rng.choice([0, 1, "yes", 2.5, True]), "timestamp": random_timestamp(rng)}
    if kind == "infra":
        return {"kind": "infra", "model": model, "instance": "pod-1", "cpu_utilization": rng.random(),
                "event": rng.choice([None, "restart"])}
    event = {"kind": "prediction", "model": model}
    optional = {
        "timestamp": lambda: random_timestamp(rng),
        "model_version": lambda: rng.choice(["7", 3, "v1.2"]),
        "id": lambda: rng.choice([f"req-{rng.randrange(10**6)}", rng.randrange(10**6), None, "é" * 256]),
        "latency_ms": lambda: rng.choice([None, 0, 12.5, 3]),
        "status": lambda: rng.choice(["ok", "error"]),
        "prediction": lambda: random_value(rng),
        "score": lambda: rng.choice([None, 0.25, 1]),
        "features": lambda: {name: random_value(rng) for name in rng.sample(names, rng.randrange(len(names) + 1))},
        "extra": lambda: rng.choice([{"nested": [1, {"a": None}]}, "x", 1e300]),
    }
    for field in rng.sample(list(optional), rng.randrange(len(optional) + 1)):
        event[field] = optional[field]()
    return event


def random_lines(rng: random.Random, count: int) -> list[bytes]:
    names = ["amount", "country", "age", "flag", "f\u00fc\u00dfe", 'a"b']
    lines = [orjson.dumps(random_event(rng, names)) for _ in range(count)]
    if rng.random() < 0.3:  # the escapes orjson never writes
        lines = [line.replace(b'"DE"', b'"\\u0044\\u0045"').replace(b'"country"', b'"c\\u006fun\\/try"')
                 for line in lines]
    return lines


@pytest.mark.parametrize("seed", range(40))
def test_valid_batches_decode_identically_and_natively(seed):
    rng = random.Random(seed)
    lines = random_lines(rng, 60)
    separator = rng.choice([b"\n", b"\r\n", b"\n\n  \n"])
    body = separator.join(lines)
    python = decode_both("decode_body", body, NOW, max_features=10)
    decode_both("decode_records", lines, NOW, max_features=10)
    if not python.rejected and any(line.startswith(b'{"kind":"prediction"') for line in lines):
        unusual_timestamp = (b"1234567Z", b" 08:")
        if not any(t in line for line in lines for t in unusual_timestamp):
            assert Validator(max_features=10).decode_body(body, NOW).batches, "the native decoder gave the batch back"


@pytest.mark.parametrize("seed", range(200))
def test_corrupted_batches_decode_identically(seed):
    rng = random.Random(1000 + seed)
    lines = random_lines(rng, 8)
    body = bytearray(b"\n".join(lines))
    for _ in range(rng.randrange(1, 4)):
        at = rng.randrange(len(body))
        edit = rng.randrange(3)
        if edit == 0:
            body[at] = rng.choice(b'{}[]",:0123456789.eE-+ntfu\\\n \x00\xff\xc3')
        elif edit == 1:
            del body[at]
        else:
            body[at:at] = body[rng.randrange(len(body)):][:rng.randrange(1, 12)]
    decode_both("decode_body", bytes(body), NOW, max_features=10, max_event_bytes=400)
    decode_both("decode_body", b"[" + bytes(body).replace(b"\n", b",") + b"]", NOW, max_features=10)
    decode_both("decode_records", bytes(body).split(b"\n"), NOW, max_features=10, max_event_bytes=400)


def test_labels_and_infra_left_to_python_keep_their_indices_and_reasons():
    body = b"\n".join([
        orjson.dumps({"kind": "prediction", "model": "m", "id": "a", "features": {"x": 1}}),
        b"",
        orjson.dumps({"kind": "label", "model": "bad name", "id": "a", "label": 1}),
        orjson.dumps({"kind": "infra", "model": "m", "memory_bytes": -1}),
        orjson.dumps({"kind": "label", "model": "m", "id": "a", "label": 1}),
    ])
    native = Validator().decode_body(body, NOW)
    assert len(native.batches) == 1 and len(native.labels) == 1
    assert [(r.index, r.reason) for r in native.rejected] == [(1, "invalid_model"), (2, "invalid_value")]
    assert canonical(native) == canonical(Validator(native=False).decode_body(body, NOW))


@pytest.mark.parametrize("line", [
    b'{"kind": "prediction", "model": "m", "model": "n"}',           # a key twice
    b'{"kind": "prediction", "model": "m", "features": {"x": 1, "x": 2}}',
    b'{"kind": "prediction", "model": "m", "features": {"x": 99999999999999999999}}',  # beyond 64 bits
    b'{"kind": "prediction", "model": "m", "timestamp": "2026-11-28T08:00:00.1234567Z"}',
    b'{"kind": "prediction", "model": "m", "id": ""}',
    b'{"kind": "prediction", "model": "m", "latency_ms": -0.5}',
    b'{"kind": "prediction", "model": "m", "features": {"x": [1]}}',
    b'{"kind": "prediction", "model": "m"} {"kind": "prediction", "model": "m"}',  # two on one line
    b'{"kind": "prediction",\n "model": "m"}',  # one across lines
    b'{"kind": "click", "model": "m"}',
])
def test_anything_unusual_gives_the_whole_batch_back(line):
    good = orjson.dumps({"kind": "prediction", "model": "m", "features": {"x": 1.5}})
    body = b"\n".join([good, line, good])
    assert Validator().native.decode_ndjson(body, NOW, 1 << 20, 500) is None
    decode_both("decode_body", body, NOW)


def test_a_bytearray_body_and_records_are_read_as_bytes_are():
    lines = [orjson.dumps({"kind": "prediction", "model": "m", "features": {"x": 1.5}}),
             orjson.dumps({"kind": "label", "model": "m", "id": "a", "label": 1})]
    expected = canonical(Validator(native=False).decode_body(b"\n".join(lines), NOW))
    assert canonical(Validator().decode_body(bytearray(b"\n".join(lines)), NOW)) == expected
    assert canonical(Validator().decode_records([bytearray(line) for line in lines], NOW)) == expected
