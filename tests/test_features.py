"""Features decoded into per-model structs, or by the native decoder, mean exactly what the
same features as dicts mean."""

import json

import numpy as np
import orjson

from service.config import Settings
from service.core.engine import Engine
from service.core.events import Validator
from service.core.features import FeatureDecoder, FeatureRow
from tests.decoding import native_available

NOW = 1_800_000_000.0


def line(model="m", **features):
    return orjson.dumps({"kind": "prediction", "model": model, "features": features})


def test_a_learned_struct_gives_the_same_windows_and_verdicts_as_dicts():
    settings = Settings.model_validate({"models": {"default": {"reference": {"first_n": 300},
                                                               "window": {"size": 500, "step": 100}}}})
    rng = np.random.default_rng(3)
    lines = []
    for i in range(1500):
        features = {"x": float(rng.normal(i > 900)), "n": int(rng.integers(0, 5)),
                    "c": str(rng.choice(["a", "b", "new" if i > 1300 else "a"])),
                    "flag": bool(rng.random() < 0.3)}
        if i % 7 == 0:
            features["x"] = None
        if i % 11 == 0:
            del features["n"]
        if i == 1200:
            features["late"] = "new feature"
        lines.append(orjson.dumps({"kind": "prediction", "model": "m", "id": str(i), "timestamp": NOW + i,
                                   "features": features, "prediction": int(rng.random() < 0.5)}))
    results = []
    for decoder in ("dicts", "structs", "native"):
        if decoder == "native" and not native_available():
            continue
        engine = Engine(settings)
        if decoder != "native":
            engine.validator.native = None
        engine.validator.features.learn_from = 32 if decoder == "structs" else 10**9
        shapes = set()
        for start in range(0, len(lines), 100):
            decoded = engine.validator.decode_lines(lines[start:start + 100], received_at=NOW)
            shapes.add("native" if decoded.batches else "struct" if isinstance(decoded.predictions[0].features,
                                                                               FeatureRow) else "dict")
            engine.process(decoded)
        state = engine.models["m"]
        results.append(({name: state.window.column(name).tolist() for name in state.window.columns},
                        state.report.to_dict(), state.prediction_report.to_dict(),
                        {n: f.vocab for n, f in state.features.items()}, state.pending.items()))
        assert shapes == {"dicts": {"dict"}, "structs": {"dict", "struct"}, "native": {"native"}}[decoder]
    for other in results[1:]:
        np.testing.assert_equal(other, results[0])


def test_bad_features_after_a_struct_is_learned_reject_only_their_events():
    validator = Validator(max_features=5)
    validator.decode_lines([line(x=float(i), c="a") for i in range(40)], NOW)  # learns a struct for m
    lines = [line(x=1.0, c="a") for _ in range(40)]
    lines[7] = line(x={"nested": 1}, c="a")
    lines[9] = b'{"kind": "prediction", "model": "m", "features": {"x": 1e999}}'
    lines[12] = b'{"kind": "prediction", "model": "m", "features": [1, 2]}'
    lines[20] = line(x=1.0, a=1, b=2, c=3, d=4, e=5)
    decoded = validator.decode_lines(lines, NOW)
    assert [(r.index, r.reason) for r in decoded.rejected] == [
        (7, "invalid_type"), (9, "non_finite"), (12, "invalid_type"), (20, "too_many_features")]
    assert "features" in decoded.rejected[0].detail and decoded.rejected[1].detail == "features.x is NaN or infinite"
    assert len(decoded.predictions) == 36


def test_a_new_feature_or_a_string_among_numbers_widens_the_struct():
    decoder = FeatureDecoder(max_features=10, learn_from=2)
    decoder.decode("m", [b'{"x": 1}', b'{"x": 2.5}'])
    rows, _ = decoder.decode("m", [b'{"x": 1}', b'{"x": null}'])
    assert type(rows[0]).numeric == {"x"}
    rows, _ = decoder.decode("m", [b'{"x": "high", "y": true}', b'{"x": 3}'])
    assert rows == [{"x": "high", "y": True}, {"x": 3}]  # decoded as dicts, then learned again
    rows, _ = decoder.decode("m", [b'{"x": "low"}', b'{"y": false}'])
    assert [row.as_dict() for row in rows] == [{"x": "low", "y": None}, {"x": None, "y": False}]
    assert type(rows[0]).numeric == frozenset()


def test_features_that_keep_changing_stay_dicts_and_learned_structs_are_bounded():
    decoder = FeatureDecoder(max_features=1000, learn_from=1)
    for i in range(40):
        rows, _ = decoder.decode("m", [f'{{"f{i}": 1}}'.encode()])
    assert type(rows[0]) is dict and decoder._relearned["m"] == 16  # learned 16 times, then no more
    assert "m" not in decoder._learned  # its batches go straight to dicts
    for i in range(3000):
        decoder.decode(f"model-{i}", [b'{"x": 1}'])
    assert len(decoder._learned) <= 1024


def test_long_feature_names_are_counted_exactly_against_the_limit():
    validator = Validator(max_features=3)
    many = {f"a_rather_long_feature_name_{i}": i for i in range(3)}
    decoded = validator.decode_lines([line(**many), line(**many, one_more=1)], NOW)
    assert len(decoded.predictions) == 1
    assert [(r.index, r.reason) for r in decoded.rejected] == [(1, "too_many_features")]


def test_a_pretty_printed_event_and_blank_lines_are_read():
    event = {"kind": "prediction", "model": "m", "features": {"x": 1}}
    assert Validator().decode_body(json.dumps(event, indent=2).encode(), NOW).accepted == 1
    assert Validator().decode_body(b"\n\n" + line() + b"\n\n\r\n" + line() + b"\n", NOW).accepted == 2


def test_corrupted_batches_never_raise_and_every_line_is_counted():
    """Random byte edits of a batch whose model has a learned struct: each line ends up
    accepted or rejected with a reason. (NDJSON is read leniently: msgspec would take two
    objects on one line as two events, which these edits, seeded, never make.)"""
    rng = np.random.default_rng(11)
    validator = Validator(max_features=8)
    good = [line(x=float(i), n=i, c="a", flag=True) for i in range(40)]
    validator.decode_lines(good, NOW)  # learns a struct for m
    alphabet = b'{}[]":,0123456789.eE-+ aflnrstux\\'
    for _ in range(300):
        lines = [bytearray(text) for text in good]
        for _ in range(int(rng.integers(1, 6))):
            target = lines[int(rng.integers(len(lines)))]
            position = int(rng.integers(len(target)))
            target[position:position + 1] = bytes([alphabet[int(rng.integers(len(alphabet)))]])
        body = b"\n".join(bytes(text) for text in lines)
        decoded = validator.decode_body(body, NOW)
        assert decoded.accepted + len(decoded.rejected) == len(lines)
        assert all(r.reason and r.detail for r in decoded.rejected)
        assert sorted(r.index for r in decoded.rejected) == [r.index for r in decoded.rejected]
