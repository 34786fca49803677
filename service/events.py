"""Decoding and validation of driftline events (CONTRACT §1), a batch at a time.

Input is bytes: an HTTP body (one event, a JSON array, or NDJSON) or a list of Kafka record
values (one event each). Output is a :class:`Decoded` batch: valid events by kind, as plain
dicts with a normalised ``timestamp`` (UNIX seconds), and a :class:`Rejection` with a reason
for every event that is not valid. Nothing raises on bad input.

orjson parses the common case; it refuses ``NaN`` and ``Infinity``, which the standard
library accepts, so a line orjson cannot read is re-read with :mod:`json` only to tell a
non-finite number (reason ``non_finite``) from broken JSON (reason ``invalid_json``).
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable

import orjson

# Every rejection reason; ``driftline_events_rejected_total{reason}`` takes only these.
REASONS = (
    "invalid_json",       # not parseable as JSON
    "not_an_object",      # a JSON value that is not an object
    "unknown_kind",       # kind missing or not prediction/label/infra
    "invalid_model",      # model missing or not [A-Za-z0-9_.:-]{1,128}
    "missing_field",      # a required field is absent (label without id or label, ...)
    "invalid_type",       # a field has the wrong JSON type
    "invalid_value",      # right type, impossible value (negative latency, unknown status, ...)
    "invalid_timestamp",  # neither RFC 3339 nor UNIX seconds
    "non_finite",         # NaN or +-Infinity
    "oversize",           # one event or a whole body above the configured limit
    "too_many_features",  # more features than limits.max_features
)

KINDS = ("prediction", "label", "infra")
INFRA_GAUGES = ("cpu_utilization", "memory_bytes", "gpu_utilization", "gpu_memory_bytes", "requests_in_flight")

MODEL_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_SCALARS = frozenset((int, float, str, bool, type(None)))
_NUMBERS = (int, float)
_CLASS_TYPES = (int, str, bool, float)


@dataclass(slots=True)
class Rejection:
    index: int  # position of the event in its input (line, array element or record)
    reason: str
    detail: str

    def to_dict(self) -> dict:
        return {"index": self.index, "reason": self.reason, "detail": self.detail}


@dataclass(slots=True)
class Decoded:
    predictions: list[dict] = field(default_factory=list)
    labels: list[dict] = field(default_factory=list)
    infra: list[dict] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return len(self.predictions) + len(self.labels) + len(self.infra)

    def extend(self, other: "Decoded", index_offset: int = 0) -> None:
        self.predictions += other.predictions
        self.labels += other.labels
        self.infra += other.infra
        self.rejected += [Rejection(r.index + index_offset, r.reason, r.detail) for r in other.rejected]


class _Invalid(Exception):
    def __init__(self, reason: str, detail: str):
        self.reason, self.detail = reason, detail


class Validator:
    """Checks and normalises parsed events. Holds only a bounded cache of valid model names."""

    def __init__(self, max_features: int = 500, max_event_bytes: int = 1024 * 1024):
        self.max_features = max_features
        self.max_event_bytes = max_event_bytes
        self._known_models: set[str] = set()

    # -- entry points -------------------------------------------------------------------

    def decode_body(self, body: bytes, received_at: float | None = None) -> Decoded:
        """One event, a JSON array of events, or NDJSON (one event per line)."""
        received_at = time.time() if received_at is None else received_at
        stripped = body.strip()
        if not stripped:
            return Decoded(rejected=[Rejection(0, "invalid_json", "empty body")])
        try:
            parsed = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            parsed = _lenient_document(stripped)
            if parsed is None:  # NDJSON, or broken JSON
                return self.decode_lines(stripped.split(b"\n"), received_at)
            # One document that only the lenient parser reads: NaN/Infinity somewhere.
            events = parsed if isinstance(parsed, list) else [parsed]
            out = Decoded()
            good, positions = [], []
            for index, event in enumerate(events):
                where = _find_non_finite(event)
                if where is None:
                    good.append(event)
                    positions.append(index)
                else:
                    out.rejected.append(Rejection(index, "non_finite", f"{where} is NaN or infinite"))
            out.extend(self.validate(good, received_at))
            out.rejected = [r if r.reason == "non_finite" else Rejection(positions[r.index], r.reason, r.detail)
                            for r in out.rejected]
            out.rejected.sort(key=lambda r: r.index)
            return out
        if isinstance(parsed, list):
            return self.validate(parsed, received_at)
        return self.validate([parsed], received_at)

    def decode_lines(self, lines: Iterable[bytes], received_at: float | None = None) -> Decoded:
        """NDJSON lines or Kafka record values: one event each; blank lines are skipped."""
        received_at = time.time() if received_at is None else received_at
        values = [line for line in lines if line is not None and line.strip()]
        if any(len(v) > self.max_event_bytes for v in values):
            return self._decode_one_by_one(values, received_at)
        try:
            # One orjson call for the whole batch is ~2x faster than one per line.
            parsed = orjson.loads(b"[" + b",".join(values) + b"]")
            if len(parsed) == len(values):
                return self.validate(parsed, received_at)
        except orjson.JSONDecodeError:
            pass
        return self._decode_one_by_one(values, received_at)

    def decode_records(self, values: list[bytes | None], received_at: float | None = None) -> Decoded:
        """Kafka record values, indices preserved (a ``None`` value is rejected)."""
        received_at = time.time() if received_at is None else received_at
        if all(v is not None and len(v) <= self.max_event_bytes for v in values):
            try:
                parsed = orjson.loads(b"[" + b",".join(values) + b"]")
                if len(parsed) == len(values):
                    return self.validate(parsed, received_at)
            except orjson.JSONDecodeError:
                pass
        return self._decode_one_by_one(values, received_at)

    # -- internals ----------------------------------------------------------------------

    def _decode_one_by_one(self, values: list[bytes | None], received_at: float) -> Decoded:
        out = Decoded()
        good: list[Any] = []
        positions: list[int] = []
        for index, value in enumerate(values):
            if value is None or not value.strip():
                out.rejected.append(Rejection(index, "invalid_json", "empty record"))
                continue
            if len(value) > self.max_event_bytes:
                out.rejected.append(Rejection(index, "oversize", f"event of {len(value)} bytes exceeds {self.max_event_bytes}"))
                continue
            try:
                good.append(orjson.loads(value))
                positions.append(index)
                continue
            except orjson.JSONDecodeError as exc:
                orjson_error = str(exc)
            try:
                obj = json.loads(value)
            except (ValueError, RecursionError):
                out.rejected.append(Rejection(index, "invalid_json", orjson_error))
                continue
            where = _find_non_finite(obj)
            if where is not None:
                out.rejected.append(Rejection(index, "non_finite", f"{where} is NaN or infinite"))
            else:
                good.append(obj)
                positions.append(index)
        checked = self.validate(good, received_at)
        out.predictions, out.labels, out.infra = checked.predictions, checked.labels, checked.infra
        out.rejected += [Rejection(positions[r.index], r.reason, r.detail) for r in checked.rejected]
        out.rejected.sort(key=lambda r: r.index)
        return out

    def validate(self, events: list[Any], received_at: float) -> Decoded:
        out = Decoded()
        predictions, labels, infra, rejected = out.predictions, out.labels, out.infra, out.rejected
        for index, event in enumerate(events):
            if type(event) is not dict:
                rejected.append(Rejection(index, "not_an_object", f"expected a JSON object, got {_json_type(event)}"))
                continue
            try:
                kind = event.get("kind")
                self._check_model(event.get("model"))
                event["timestamp"] = _timestamp(event.get("timestamp"), received_at)
                if kind == "prediction":
                    self._check_prediction(event)
                    predictions.append(event)
                elif kind == "label":
                    _check_label(event)
                    labels.append(event)
                elif kind == "infra":
                    _check_infra(event)
                    infra.append(event)
                else:
                    raise _Invalid("unknown_kind", f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
            except _Invalid as bad:
                rejected.append(Rejection(index, bad.reason, bad.detail))
        return out

    def _check_model(self, model: Any) -> None:
        if model in self._known_models:
            return
        if type(model) is not str or not MODEL_NAME.fullmatch(model):
            if model is None:
                raise _Invalid("invalid_model", "model is required")
            raise _Invalid("invalid_model", "model must be a string matching [A-Za-z0-9_.:-]{1,128}")
        # The cache only spares a regex match; bounded so that a stream of new names cannot grow it.
        if len(self._known_models) < 10_000:
            self._known_models.add(model)

    def _check_prediction(self, event: dict) -> None:
        features = event.get("features")
        if features is None:
            event["features"] = {}
        elif type(features) is not dict:
            raise _Invalid("invalid_type", "features must be an object")
        elif not _SCALARS.issuperset(map(type, features.values())):
            bad = next(k for k, v in features.items() if type(v) not in _SCALARS)
            raise _Invalid("invalid_type", f"features.{bad} must be a number, string, boolean or null")
        elif len(features) > self.max_features:
            raise _Invalid("too_many_features", f"{len(features)} features exceed limits.max_features={self.max_features}")
        latency = event.get("latency_ms")
        if latency is not None:
            if type(latency) not in _NUMBERS:
                raise _Invalid("invalid_type", "latency_ms must be a number")
            if latency < 0:
                raise _Invalid("invalid_value", "latency_ms cannot be negative")
        status = event.get("status")
        if status is not None and status != "ok" and status != "error":
            raise _Invalid("invalid_value", "status must be 'ok' or 'error'")
        prediction = event.get("prediction")
        if prediction is not None and type(prediction) not in _SCALARS:
            raise _Invalid("invalid_type", "prediction must be a number, string or boolean")
        score = event.get("score")
        if score is not None and type(score) not in _NUMBERS:
            raise _Invalid("invalid_type", "score must be a number")
        _normalise_id(event, required=False)
        version = event.get("model_version")
        if version is None:
            event["model_version"] = "unknown"
        elif type(version) is not str:
            if type(version) is int:
                event["model_version"] = str(version)
            else:
                raise _Invalid("invalid_type", "model_version must be a string")


def _check_label(event: dict) -> None:
    _normalise_id(event, required=True)
    if "label" not in event or event["label"] is None:
        raise _Invalid("missing_field", "label is required")
    if type(event["label"]) not in _CLASS_TYPES:
        raise _Invalid("invalid_type", "label must be a number, string or boolean")


def _check_infra(event: dict) -> None:
    instance = event.get("instance")
    if instance is None:
        event["instance"] = "unknown"
    elif type(instance) is not str or not instance:
        raise _Invalid("invalid_type", "instance must be a non-empty string")
    for name in INFRA_GAUGES:
        value = event.get(name)
        if value is not None:
            if type(value) not in _NUMBERS:
                raise _Invalid("invalid_type", f"{name} must be a number")
            if value < 0:
                raise _Invalid("invalid_value", f"{name} cannot be negative")
    word = event.get("event")
    if word is not None and (type(word) is not str or not word or len(word) > 64):
        raise _Invalid("invalid_type", "event must be a word of at most 64 characters")


def _normalise_id(event: dict, required: bool) -> None:
    ident = event.get("id")
    if ident is None:
        if required:
            raise _Invalid("missing_field", "id is required to join a label to its prediction")
        return
    if type(ident) is int:
        event["id"] = str(ident)
    elif type(ident) is not str or not ident or len(ident) > 256:
        raise _Invalid("invalid_type", "id must be a non-empty string of at most 256 characters")


def _timestamp(value: Any, received_at: float) -> float:
    if value is None:
        return received_at
    if type(value) is float or type(value) is int:
        if value < 0 or value > 1e11:
            raise _Invalid("invalid_timestamp", "UNIX seconds out of range")
        return float(value)
    if type(value) is str:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise _Invalid("invalid_timestamp", f"{value[:40]!r} is not an RFC 3339 timestamp") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return parsed.timestamp()
    raise _Invalid("invalid_timestamp", "timestamp must be an RFC 3339 string or UNIX seconds")


def _lenient_document(body: bytes) -> Any | None:
    """The body as one JSON document read by :mod:`json` (accepts NaN), or None."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def _find_non_finite(obj: Any, path: str = "") -> str | None:
    if isinstance(obj, float) and not math.isfinite(obj):
        return path or "value"
    if isinstance(obj, dict):
        for key, value in obj.items():
            found = _find_non_finite(value, f"{path}.{key}" if path else str(key))
            if found:
                return found
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            found = _find_non_finite(value, f"{path}[{i}]")
            if found:
                return found
    return None


def _json_type(value: Any) -> str:
    return {list: "array", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )
