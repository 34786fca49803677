"""Model-server inference loggers -> driftline prediction events (CONTRACT §1, adapters).

KServe's inference logger sends each request and each response as a binary-mode
CloudEvent: the body is the model server's payload, the attributes are headers
(``ce-id``, ``ce-type``, ``ce-source``, ``ce-time`` and the extensions
``ce-inferenceservicename``, ``ce-namespace``, ``ce-component``, ``ce-endpoint``) over HTTP,
or record headers ``ce_id``, ``ce_type``, ... when Knative's KafkaSink writes them to Kafka.
``ce-type`` is ``org.kubeflow.serving.inference.request`` or ``...response``; the request
and its response share ``ce-id``. Seldon Core's request logger sends the same kind of
headers (``Ce-Type: io.seldon.serving.inference.request|response``, ``Ce-Modelid``,
``Ce-Requestid``, ``Ce-Inferenceservicename``).

Events are read as the CloudEvents 1.0 spec and its official SDKs write them: HTTP header
values are percent-decoded (HTTP binding §3.1.3.2; Kafka header values are plain UTF-8),
``id``, ``source``, ``type`` and ``specversion`` are required, and structured mode
(``Content-Type: application/cloudevents+json``, over HTTP or as a Kafka record) carries the
payload in ``data`` or, base64-encoded, in ``data_base64``.

Bodies understood:

- V1 (TensorFlow-style): ``{"instances": [...]}`` / ``{"predictions": [...]}``; rows that
  are lists give features ``f0..fn``, rows that are objects give their keys.
- V2 / open inference protocol: ``{"inputs": [{"name", "shape", "datatype", "data"}]}`` /
  ``{"model_name", "model_version", "outputs": [...]}``. One 2-D input tensor gives
  ``f0..fn`` (as V1 arrays); several inputs of one value per row are named after the inputs.
- Seldon: ``{"data": {"names": [...], "ndarray": [[...]]}}`` (or ``tensor``).

A response row that is a list of class probabilities gives ``prediction`` = the arg-max
and, for two classes, ``score`` = the probability of class 1.

The :class:`CloudEventJoiner` keeps each half, as the bytes received, until the other
arrives; it is bounded by count (``max_pending``), bytes (``max_pending_bytes``) and age
(``ttl``). A half whose partner never comes is still emitted when it is evicted: a request
alone gives features without a prediction (feature drift still works with
``logger.mode: request``), a response alone a prediction without features. A request of n
rows gives n prediction events, ids ``<ce-id>`` for one row and ``<ce-id>:<i>`` for several;
labels join on those ids. Pending halves survive a restart: the HTTP sink journals them in
``state_dir`` (:class:`PendingJournal`), the Kafka source writes them to its changelog.
"""

from __future__ import annotations

import base64
import binascii
import logging
import sqlite3
import struct
import threading
import time
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import unquote

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from service.events import Decoded, Rejection, Validator
from service.state_files import is_sqlite_corruption, move_aside

log = logging.getLogger("driftline.cloudevents")

REQUEST_SUFFIX = ".inference.request"
RESPONSE_SUFFIX = ".inference.response"
REQUIRED = ("id", "source", "specversion", "type")
SPECVERSIONS = ("1.0", "0.3")
STRUCTURED = "application/cloudevents+json"
EVICTION_REASONS = ("expired", "count", "bytes")
_SCALAR = (int, float, str, bool, type(None))
_HALF_OVERHEAD = 256  # bytes a pending half costs beyond its body (object, key, index)


class CloudEventError(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


@dataclass(slots=True)
class CloudEvent:
    attributes: dict[str, str]  # lower-case names without prefix; content-type as datacontenttype
    data: bytes


def attributes(headers: Iterable[tuple[Any, Any]], percent_encoded: bool = False) -> dict[str, str]:
    """CloudEvents attributes from HTTP headers (``ce-id``) or Kafka record headers (``ce_id``),
    lower-cased without the prefix; ``content-type`` is kept as ``datacontenttype``. HTTP header
    values are percent-encoded UTF-8 (``percent_encoded``); Kafka header values are plain UTF-8."""
    out: dict[str, str] = {}
    for name, value in headers:
        key = _text(name).lower()
        value = _text(value)
        if key.startswith("ce-") or key.startswith("ce_"):
            out[key[3:]] = unquote(value, errors="replace") if percent_encoded else value
        elif key == "content-type":
            out.setdefault("datacontenttype", value)
    return out


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def is_cloudevent(headers: Iterable[tuple[Any, Any]] | None) -> bool:
    """True when Kafka record headers carry a binary-mode CloudEvent (a ``ce_`` / ``ce-``
    attribute) or announce a structured-mode one (``content-type: application/cloudevents+json``)."""
    for name, value in headers or ():
        key = _text(name).lower()
        if key[3:] in REQUIRED and key[:3] in ("ce_", "ce-"):
            return True
        if key == "content-type" and _text(value).lower().startswith(STRUCTURED):
            return True
    return False


def from_http(headers: Iterable[tuple[Any, Any]], body: bytes) -> CloudEvent:
    """An HTTP request (binary or structured mode) -> a :class:`CloudEvent`; raises CloudEventError."""
    headers = list(headers)
    content_type = next((_text(v) for k, v in headers if _text(k).lower() == "content-type"), "")
    if content_type.lower().startswith(STRUCTURED):
        return _structured(body)
    return _checked(CloudEvent(attributes(headers, percent_encoded=True), body))


def from_kafka(headers: Iterable[tuple[Any, Any]] | None, value: bytes | None) -> CloudEvent:
    """A Kafka record (binary or structured mode) -> a :class:`CloudEvent`; raises CloudEventError."""
    headers = list(headers or ())
    if any(_text(k).lower() == "content-type" and _text(v).lower().startswith(STRUCTURED) for k, v in headers):
        return _structured(value or b"")
    return _checked(CloudEvent(attributes(headers), value or b""))


def _structured(body: bytes) -> CloudEvent:
    """Structured mode: attributes and ``data`` (or ``data_base64``) in one JSON document."""
    document = _parse(body, "structured CloudEvent")
    attrs: dict[str, str] = {}
    for name, value in document.items():
        if name in ("data", "data_base64") or value is None:
            continue
        if isinstance(value, bool):
            attrs[name.lower()] = "true" if value else "false"
        elif isinstance(value, (str, int)):
            attrs[name.lower()] = str(value)
        else:
            raise CloudEventError("invalid_type", f"CloudEvent attribute {name!r} is not a string, integer or boolean")
    if document.get("data_base64") is not None:
        data = _base64(document["data_base64"], "data_base64")
    else:
        data = document.get("data")
        if attrs.get("specversion") == "0.3" and attrs.get("datacontentencoding", "").lower() == "base64":
            data = _base64(data, "data")
        elif isinstance(data, str):
            data = data.encode()
        elif data is not None:
            try:
                data = orjson.dumps(data)
            except orjson.JSONEncodeError:  # nested deeper than orjson writes (254 levels)
                raise CloudEventError("invalid_value", "the CloudEvent data is nested too deeply") from None
    return _checked(CloudEvent(attrs, data or b""))


def _base64(value: Any, name: str) -> bytes:
    if not isinstance(value, str):
        raise CloudEventError("invalid_type", f"{name} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise CloudEventError("invalid_value", f"{name} is not valid base64") from None


def _checked(event: CloudEvent) -> CloudEvent:
    for name in REQUIRED:
        if not event.attributes.get(name):
            raise CloudEventError("missing_field", f"the CloudEvent has no {name} attribute")
    if event.attributes["specversion"] not in SPECVERSIONS:
        raise CloudEventError("invalid_value",
                              f"CloudEvents specversion {event.attributes['specversion'][:20]!r} is not 1.0 or 0.3")
    return event


def _parse(body: bytes, what: str) -> dict:
    try:
        payload = orjson.loads(body) if body.strip() else None
    except orjson.JSONDecodeError as exc:
        raise CloudEventError("invalid_json", f"{what}: {exc}") from None
    if not isinstance(payload, dict):
        raise CloudEventError("not_an_object", f"the {what} is not a JSON object")
    return payload


@dataclass(slots=True)
class _Half:
    kind: str  # "request" | "response"
    model: str
    event_id: str
    version: str | None
    time: float  # event time (ce-time, else arrival)
    arrived: float
    body: bytes  # the payload as received: far smaller than its parsed rows
    origin: int | None = None  # the Kafka partition it came from

    @property
    def size(self) -> int:
        return len(self.body) + _HALF_OVERHEAD

    def rows(self) -> list:
        payload = _parse(self.body, f"{self.kind} body")
        try:
            return _request_rows(payload) if self.kind == "request" else _response_rows(payload)
        except (TypeError, ValueError, IndexError, KeyError) as exc:
            # Payloads are model-specific JSON read best effort: a shape this reader does not
            # follow is the sender's problem, reported, not a server error.
            raise CloudEventError("invalid_type", f"unusable {self.kind} body: {exc}") from None


class CloudEventJoiner:
    """Joins request and response CloudEvents into driftline prediction events; thread-safe.

    Bounded by ``max_pending`` halves, ``max_pending_bytes`` and ``ttl`` seconds; evictions are
    counted per reason in ``evicted``. With a ``journal`` every pending half is also on disk."""

    def __init__(self, validator: Validator, ttl: float = 30.0, max_pending: int = 10_000,
                 max_pending_bytes: int = 32 * 1024 * 1024, clock=time.time, journal: PendingJournal | None = None):
        self.validator = validator
        self.ttl = ttl
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        self.clock = clock
        self._pending: OrderedDict[tuple[str, str], _Half] = OrderedDict()
        self._lock = threading.Lock()
        self.pending_bytes = 0
        self.joined = 0
        self.evicted = dict.fromkeys(EVICTION_REASONS, 0)
        # origin -> a number that changes whenever that origin's pending halves change
        self.generation: dict[int | None, int] = defaultdict(int)
        # Halves restored over the bounds (a journal from a larger configuration, partitions
        # moved together): emitted alone by the next expire().
        self._overflow: list[_Half] = []
        self.journal = None
        if journal is not None:
            self.attach(journal)

    def attach(self, journal: PendingJournal) -> None:
        """Journal pending halves from now on: those already in ``journal`` are restored, those
        waiting in memory (a journal that could not be opened before) are written to it."""
        with self._lock:
            for half in self._pending.values():
                journal.put(half)
            self.journal = journal
            for half in journal.halves():
                if (half.model, half.event_id) not in self._pending:
                    self._overflow += self._add(half, journal=False)

    def __len__(self) -> int:
        return len(self._pending) + len(self._overflow)

    def handle(self, event: CloudEvent, received_at: float | None = None, origin: int | None = None) -> Decoded:
        """One CloudEvent -> the prediction events it completes (maybe none yet), validated.
        Raises :class:`CloudEventError` for an event that is not a usable inference log."""
        now = self.clock() if received_at is None else received_at
        attrs = event.attributes
        ce_type = attrs.get("type", "")
        if ce_type.endswith(REQUEST_SUFFIX):
            kind = "request"
        elif ce_type.endswith(RESPONSE_SUFFIX):
            kind = "response"
        else:
            raise CloudEventError("unknown_kind", f"unsupported CloudEvent type {ce_type[:200]!r}")
        event_id = attrs.get("requestid") or attrs["id"]
        payload = _parse(event.data, f"{kind} body")
        model = _model(attrs, payload)
        if not model:
            raise CloudEventError("invalid_model", "no model name: set ce-inferenceservicename or ce-modelid")
        version = payload.get("model_version") or attrs.get("modelversion")
        if not isinstance(version, (str, int)) or isinstance(version, bool):
            version = None
        half = _Half(kind, model, event_id, None if version is None else str(version),
                     _event_time(attrs.get("time"), now), now, bytes(event.data), origin)
        _check_shape(kind, payload)  # rows are read when the pair completes (or the half expires)
        del payload  # kept as the body: parsed rows take ten to fifty times its size
        evicted: list[_Half] = []
        with self._lock:
            evicted += self._expire(now)
            other = self._remove((half.model, event_id))
            if other is None or other.kind == kind:
                # First half (or the same half again, redelivered: the newer one is kept).
                evicted += self._add(half)
                pair = None
            else:
                self.joined += 1
                pair = (half, other) if kind == "request" else (other, half)
        events: list[dict] = []
        rejected: list[Rejection] = []
        for old in evicted:
            events += _alone(old, rejected)
        if pair is not None:
            request, response = pair
            features, outputs = _rows(request, rejected), _rows(response, rejected)
            if features is not None or outputs is not None:
                events += _events(request if features is not None else None, features,
                                  response if outputs is not None else None, outputs)
        decoded = self.validator.validate(events, now) if events else Decoded()
        decoded.rejected += rejected
        return decoded

    def expire(self, now: float | None = None) -> dict[int | None, Decoded]:
        """Emit the halves older than ``ttl`` alone (called on a timer), by origin."""
        now = self.clock() if now is None else now
        with self._lock:
            expired, self._overflow = self._overflow + self._expire(now), []
        by_origin: dict[int | None, list[_Half]] = defaultdict(list)
        for half in expired:
            by_origin[half.origin].append(half)
        out = {}
        for origin, halves in by_origin.items():
            events: list[dict] = []
            rejected: list[Rejection] = []
            for half in halves:
                events += _alone(half, rejected)
            decoded = self.validator.validate(events, now) if events else Decoded()
            decoded.rejected += rejected
            out[origin] = decoded
        return out

    def export(self, origin: int | None) -> bytes | None:
        """The pending halves of ``origin`` as bytes (for the Kafka changelog); None when none."""
        with self._lock:
            halves = [h for h in self._pending.values() if h.origin == origin]
        return encode_halves(halves) if halves else None

    def restore(self, data: bytes, origin: int | None) -> int:
        """Add halves exported by :meth:`export` (possibly by another replica); returns how many."""
        halves = decode_halves(data)
        with self._lock:
            for half in halves:
                half.origin = origin
                self._remove((half.model, half.event_id))
                self._overflow += self._add(half)
        return len(halves)

    def drop(self, origin: int | None) -> None:
        """Forget the halves of ``origin`` (its Kafka partition moved to another replica)."""
        with self._lock:
            for key in [k for k, h in self._pending.items() if h.origin == origin]:
                self._remove(key)

    # -- under the lock -----------------------------------------------------------------

    def _add(self, half: _Half, journal: bool = True) -> list[_Half]:
        """Keep ``half``; returns the halves evicted to stay within the bounds (``half`` itself
        when it alone is over ``max_pending_bytes``)."""
        if half.size > self.max_pending_bytes:
            self.evicted["bytes"] += 1
            # A restored half may be stored already (journal, changelog): forget it there too,
            # or it would be emitted again after every restart.
            self.generation[half.origin] += 1
            if self.journal is not None:
                self.journal.delete((half.model, half.event_id))
            return [half]
        self._pending[(half.model, half.event_id)] = half
        self.pending_bytes += half.size
        self.generation[half.origin] += 1
        if journal and self.journal is not None:
            self.journal.put(half)
        evicted = []
        while len(self._pending) > self.max_pending or self.pending_bytes > self.max_pending_bytes:
            reason = "count" if len(self._pending) > self.max_pending else "bytes"
            oldest = self._remove(next(iter(self._pending)))
            self.evicted[reason] += 1
            evicted.append(oldest)
        return evicted

    def _remove(self, key: tuple[str, str]) -> _Half | None:
        half = self._pending.pop(key, None)
        if half is not None:
            self.pending_bytes -= half.size
            self.generation[half.origin] += 1
            if self.journal is not None:
                self.journal.delete(key)
        return half

    def _expire(self, now: float) -> list[_Half]:
        expired = []
        while self._pending:
            oldest = next(iter(self._pending.values()))
            if now - oldest.arrived < self.ttl:
                break
            self._remove((oldest.model, oldest.event_id))
            self.evicted["expired"] += 1
            expired.append(oldest)
        return expired


def _rows(half: _Half, rejected: list[Rejection]) -> list | None:
    """The rows of a pending half; a body that no longer reads (restored from a changelog
    another version wrote) is a rejection."""
    try:
        return half.rows()
    except CloudEventError as exc:
        rejected.append(Rejection(0, exc.reason, exc.detail))
        return None


def _alone(half: _Half, rejected: list[Rejection]) -> list[dict]:
    """The events of a half emitted without its partner."""
    rows = _rows(half, rejected)
    if rows is None:
        return []
    return _events(half, rows, None, None) if half.kind == "request" else _events(None, None, half, rows)


# -- pending halves on disk -------------------------------------------------------------------

_LENGTH = struct.Struct(">I")


def encode_halves(halves: list[_Half]) -> bytes:
    """4-byte length + JSON list of [kind, model, id, version, time, arrived, body length] +
    the bodies, concatenated."""
    meta = orjson.dumps([[h.kind, h.model, h.event_id, h.version, h.time, h.arrived, len(h.body)] for h in halves])
    return _LENGTH.pack(len(meta)) + meta + b"".join(h.body for h in halves)


def decode_halves(data: bytes) -> list[_Half]:
    (size,) = _LENGTH.unpack_from(data, 0)
    start = _LENGTH.size + size
    halves = []
    for kind, model, event_id, version, event_time, arrived, length in orjson.loads(data[_LENGTH.size:start]):
        halves.append(_Half(kind, model, event_id, version, event_time, arrived, data[start:start + length]))
        start += length
    return halves


class PendingJournal:
    """Pending halves in SQLite, so a restart (even after SIGKILL) still joins a request whose
    response arrives later. WAL with synchronous=NORMAL: a killed process loses nothing; a
    power cut may lose the last halves, which are re-sent by no one (they were answered 202)."""

    SCHEMA = ("CREATE TABLE IF NOT EXISTS halves (model TEXT NOT NULL, id TEXT NOT NULL, kind TEXT NOT NULL, "
              "version TEXT, time REAL NOT NULL, arrived REAL NOT NULL, body BLOB NOT NULL, PRIMARY KEY (model, id))")

    def __init__(self, path: Path):
        self.path = path
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(self.SCHEMA)
        except BaseException:
            self._db.close()  # or the file stays open until garbage collection
            raise

    def halves(self) -> list[_Half]:
        rows = self._db.execute("SELECT kind, model, id, version, time, arrived, body FROM halves ORDER BY arrived")
        return [_Half(kind, model, event_id, version, event_time, arrived, bytes(body))
                for kind, model, event_id, version, event_time, arrived, body in rows]

    def put(self, half: _Half) -> None:
        try:
            self._db.execute("INSERT OR REPLACE INTO halves VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (half.model, half.event_id, half.kind, half.version, half.time, half.arrived, half.body))
        except sqlite3.Error as exc:  # a full disk: the half still waits in memory, only a crash loses it
            log.warning("cloudevents: pending half not journaled in %s: %s", self.path, exc)

    def delete(self, key: tuple[str, str]) -> None:
        try:
            self._db.execute("DELETE FROM halves WHERE model = ? AND id = ?", key)
        except sqlite3.Error as exc:  # left behind: joined or expired again after a restart
            log.warning("cloudevents: pending half not removed from %s: %s", self.path, exc)

    def close(self) -> None:
        self._db.close()


def open_journal(path: Path) -> tuple[PendingJournal | None, str | None]:
    """The journal at ``path``, or ``(None, why)`` while it cannot be opened (a full disk); a
    damaged file is moved aside first, loudly, and a new one started."""
    try:
        try:
            return PendingJournal(path), None
        except sqlite3.DatabaseError as exc:
            if not is_sqlite_corruption(exc):
                raise
            aside = move_aside(path, companions=("-wal", "-shm", "-journal"))
            log.error("cloudevents: journal %s is unreadable (%s); moved aside to %s, pending halves in it are lost",
                      path, exc, aside.name)
            return PendingJournal(path), None
    except (sqlite3.Error, OSError) as exc:
        return None, str(exc)


def _events(request: _Half | None, features: list | None, response: _Half | None,
            outputs: list | None) -> list[dict]:
    """Prediction events of a joined pair, or of one half alone (the other's rows None)."""
    base = request or response
    assert base is not None
    event_id = base.event_id
    count = len(features) if features is not None else len(outputs or [])
    if features is not None and outputs is not None and len(outputs) != count:
        outputs = None  # rows do not line up: keep the features, drop the unusable predictions
    latency_ms = None
    if request is not None and response is not None:
        latency_ms = max(0.0, (response.time - request.time) * 1000.0)
    version = (response.version if response is not None else None) or base.version
    events = []
    for i in range(count):
        event: dict[str, Any] = {"kind": "prediction", "model": base.model,
                                 "id": event_id if count == 1 else f"{event_id}:{i}",
                                 "timestamp": request.time if request is not None else response.time}
        if version is not None:
            event["model_version"] = version
        if features is not None:
            event["features"] = features[i]
        if outputs is not None:
            prediction, score = outputs[i]
            event["prediction"] = prediction
            if score is not None:
                event["score"] = score
        if latency_ms is not None:
            event["latency_ms"] = latency_ms
        events.append(event)
    return events


# -- bodies ---------------------------------------------------------------------------------

def _request_rows(payload: dict) -> list[dict]:
    if "instances" in payload:
        return _rows_from_instances(payload["instances"])
    inputs = payload.get("inputs")
    if isinstance(inputs, list) and inputs and all(isinstance(t, dict) and "data" in t for t in inputs):
        return _rows_from_tensors(inputs)
    if inputs is not None:  # V1 columnar "inputs"
        if isinstance(inputs, dict):
            return _rows_from_columns(inputs)
        return _rows_from_instances(inputs)
    data = payload.get("data")
    if isinstance(data, dict):
        return _rows_from_seldon(data)
    raise CloudEventError("missing_field", "request body has none of instances, inputs, data")


def _check_shape(kind: str, payload: dict) -> None:
    """Reject now a body that :func:`_request_rows` / :func:`_response_rows` could not read at all."""
    if kind == "request":
        if "instances" in payload or payload.get("inputs") is not None or isinstance(payload.get("data"), dict):
            return
        raise CloudEventError("missing_field", "request body has none of instances, inputs, data")
    outputs = payload.get("outputs")
    if ("predictions" in payload or isinstance(payload.get("data"), dict)
            or (isinstance(outputs, list) and outputs and all(isinstance(t, dict) and "data" in t for t in outputs))):
        return
    raise CloudEventError("missing_field", "response body has none of predictions, outputs, data")


def _response_rows(payload: dict) -> list[tuple[Any, float | None]]:
    if "predictions" in payload:
        rows = payload["predictions"]
        if not isinstance(rows, list):
            rows = [rows]
        return [_output(row) for row in rows]
    outputs = payload.get("outputs")
    if isinstance(outputs, list) and outputs and all(isinstance(t, dict) and "data" in t for t in outputs):
        chosen = outputs[0]
        tensor_rows = _tensor_rows(chosen)
        result = [_output(row) for row in tensor_rows]
        # A separate probability output gives the score of a label output.
        for other in outputs[1:]:
            if "proba" in str(other.get("name", "")).lower():
                probabilities = _tensor_rows(other)
                if len(probabilities) == len(result):
                    result = [(p, _output(q)[1]) for (p, _), q in zip(result, probabilities)]
        return result
    data = payload.get("data")
    if isinstance(data, dict):
        return [_output(row) for row in _seldon_matrix(data)]
    raise CloudEventError("missing_field", "response body has none of predictions, outputs, data")


def _output(row: Any) -> tuple[Any, float | None]:
    """A response row -> (prediction, score). A loop, not recursion: bodies may nest 1,000 deep."""
    while True:
        if isinstance(row, dict):
            key = next((k for k in ("prediction", "predictions", "label", "class", "output") if k in row), None)
            if key is not None:
                row = row[key]
                continue
            scalars = [v for v in row.values() if isinstance(v, _SCALAR)]
            return (scalars[0] if scalars else None), None
        if isinstance(row, list):
            flat = _flatten(row)
            if len(flat) == 1:
                row = flat[0]
                continue
            if flat and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat):
                best = max(range(len(flat)), key=flat.__getitem__)
                return best, (float(flat[1]) if len(flat) == 2 else None)
            return None, None
        return (row, None) if isinstance(row, _SCALAR) else (None, None)


def _scalar(value: Any) -> Any:
    return value if isinstance(value, _SCALAR) else orjson.dumps(value).decode()


def _rows_from_instances(instances: Any) -> list[dict]:
    if not isinstance(instances, list):
        raise CloudEventError("invalid_type", "instances must be a list")
    rows = []
    for row in instances:
        if isinstance(row, dict):
            rows.append({str(k): _scalar(v) for k, v in row.items()})
        elif isinstance(row, list):
            rows.append({f"f{j}": _scalar(v) for j, v in enumerate(_flatten(row))})
        else:
            rows.append({"f0": _scalar(row)})
    return rows


def _rows_from_columns(columns: dict) -> list[dict]:
    names = list(columns)
    values = [v if isinstance(v, list) else [v] for v in columns.values()]
    count = min((len(v) for v in values), default=0)
    return [{name: _scalar(values[j][i]) for j, name in enumerate(names)} for i in range(count)]


def _tensor_rows(tensor: dict) -> list:
    """The rows (first dimension) of a V2 tensor, whether its data is nested or flat."""
    data = tensor.get("data")
    shape = tensor.get("shape")
    if not isinstance(data, list):
        data = [data]
    if data and isinstance(data[0], list):
        return data  # nested: already rows
    if isinstance(shape, list) and len(shape) >= 2 and isinstance(shape[0], int) and shape[0] > 0:
        count = min(shape[0], len(data))  # a shape is a claim: never more rows than values
        width = max(1, len(data) // max(1, count))
        return [data[i * width:(i + 1) * width] for i in range(count)]
    return data  # one value per row


def _rows_from_tensors(tensors: list[dict]) -> list[dict]:
    if len(tensors) == 1:
        rows = [_flatten(row) if isinstance(row, list) else [row] for row in _tensor_rows(tensors[0])]
        if rows and len(rows[0]) > 1:
            return [{f"f{j}": _scalar(v) for j, v in enumerate(row)} for row in rows]
        name = str(tensors[0].get("name") or "f0")
        return [{name: _scalar(row[0] if row else None)} for row in rows]
    columns: dict[str, list] = {}
    count = None
    for tensor in tensors:
        name = str(tensor.get("name") or f"input{len(columns)}")
        rows = [_flatten(row) if isinstance(row, list) else [row] for row in _tensor_rows(tensor)]
        count = len(rows) if count is None else min(count, len(rows))
        width = max((len(row) for row in rows), default=1)
        if width <= 1:
            columns[name] = [row[0] if row else None for row in rows]
        else:
            for j in range(width):
                columns[f"{name}_{j}"] = [row[j] if j < len(row) else None for row in rows]
    return [{name: _scalar(values[i]) for name, values in columns.items()} for i in range(count or 0)]


def _seldon_matrix(data: dict) -> list:
    if "ndarray" in data:
        rows = data["ndarray"]
        return rows if isinstance(rows, list) else [rows]
    tensor = data.get("tensor")
    if isinstance(tensor, dict):
        return _tensor_rows({"data": tensor.get("values", []), "shape": tensor.get("shape", [])})
    raise CloudEventError("missing_field", "Seldon data has neither ndarray nor tensor")


def _rows_from_seldon(data: dict) -> list[dict]:
    names = data.get("names")
    names = names if isinstance(names, list) else []
    rows = []
    for row in _seldon_matrix(data):
        values = _flatten(row) if isinstance(row, list) else [row]
        rows.append({(str(names[j]) if j < len(names) else f"f{j}"): _scalar(v) for j, v in enumerate(values)})
    return rows


def _flatten(value: list) -> list:
    """Nested lists -> their scalars in order (with a stack: bodies may nest 1,000 deep)."""
    out: list = []
    stack = [iter(value)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


def _model(attrs: dict[str, str], payload: dict) -> str | None:
    """KServe's ``inferenceservicename``, Seldon's ``modelid``, a V2 body's ``model_name``, or
    the model in the ``source`` URL."""
    named = payload.get("model_name")
    return (attrs.get("inferenceservicename") or attrs.get("modelid") or (named if isinstance(named, str) else None)
            or _model_from_source(attrs.get("source", "")))


def model_of(headers: Iterable[tuple[Any, Any]] | None, value: bytes | None) -> str | None:
    """The model of a CloudEvent Kafka record as the joiner names it; None when unusable."""
    try:
        event = from_kafka(headers, value)
        named = event.attributes.get("inferenceservicename") or event.attributes.get("modelid")
        return named or _model(event.attributes, _parse(event.data, "body"))
    except CloudEventError:
        return None


def _model_from_source(source: str) -> str | None:
    """KServe's agent sets ce-source to the component URL; a path ``/v1/models/<name>:predict``
    or ``/v2/models/<name>/infer`` names the model."""
    parts = [p for p in source.split("/") if p]
    if "models" in parts:
        index = parts.index("models")
        if index + 1 < len(parts):
            return parts[index + 1].split(":")[0]
    return None


def _event_time(value: str | None, default: float) -> float:
    if not value:
        return default
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return default


def decode_http(joiner: CloudEventJoiner, headers: Iterable[tuple[Any, Any]], body: bytes,
                received_at: float | None = None) -> Decoded:
    """One CloudEvent received over HTTP -> a Decoded batch; an unusable event is a rejection."""
    try:
        return joiner.handle(from_http(headers, body), received_at)
    except CloudEventError as exc:
        return Decoded(rejected=[Rejection(0, exc.reason, exc.detail)])


def decode_kafka(joiner: CloudEventJoiner, headers: Iterable[tuple[Any, Any]] | None, value: bytes | None,
                 received_at: float | None = None, origin: int | None = None) -> Decoded:
    """One CloudEvent read from a Kafka record of partition ``origin`` -> a Decoded batch."""
    try:
        return joiner.handle(from_kafka(headers, value), received_at, origin)
    except CloudEventError as exc:
        return Decoded(rejected=[Rejection(0, exc.reason, exc.detail)])


# -- HTTP sink --------------------------------------------------------------------------------

class CloudEventsSink:
    """The owner of the HTTP sink's joiner: a runtime component that journals pending halves
    in ``state_dir`` and emits the expired ones on a timer. On stop the pending halves stay
    in the journal; after a restart they still join, or expire on the first tick."""

    name = "cloudevents"

    def __init__(self, engine, config, journal_path: Path):
        self.engine = engine
        self.config = config
        self.journal_path = journal_path
        self.joiner: CloudEventJoiner | None = None
        self.journal_error: str | None = None  # why the journal could not be opened (a full disk)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.joiner = CloudEventJoiner(self.engine.validator, ttl=self.config.ttl, max_pending=self.config.max_pending,
                                       max_pending_bytes=self.config.max_pending_bytes, clock=self.engine.clock,
                                       journal=self._open_journal())
        if len(self.joiner):
            log.info("cloudevents: %d pending half(s) restored from %s", len(self.joiner), self.journal_path)
        self._stop.clear()
        self._thread = threading.Thread(target=self._expire_loop, name="driftline-cloudevents", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self.joiner is not None and self.joiner.journal is not None:
            self.joiner.journal.close()

    def ready(self) -> tuple[bool, str]:
        if self.joiner is None:
            return False, "starting"
        if self.journal_error is not None:
            return False, f"pending halves cannot be journaled in {self.journal_path}: {self.journal_error}"
        return True, "ok"

    def _open_journal(self) -> PendingJournal | None:
        """The journal, or None while it cannot be opened (a full disk: halves then wait in
        memory only, and the timer tries again)."""
        journal, error = open_journal(self.journal_path)
        if journal is None:
            if self.journal_error is None:
                log.error("cloudevents: journal %s cannot be opened (%s); pending halves are kept in memory only "
                          "until it can", self.journal_path, error)
            self.journal_error = error
            return None
        if self.journal_error is not None:
            log.warning("cloudevents: journal %s opened again", self.journal_path)
        self.journal_error = None
        return journal

    def receive(self, headers: list[tuple[bytes, bytes]], body: bytes) -> Decoded:
        """One HTTP request -> its events, processed by the engine (call off the event loop)."""
        if self.joiner is None:
            raise RuntimeError("the CloudEvents sink is not started")
        decoded = decode_http(self.joiner, headers, body)
        if decoded.accepted or decoded.rejected:
            self.engine.process(decoded)
        return decoded

    def _expire_loop(self) -> None:
        interval = min(1.0, self.config.ttl / 4)
        while not self._stop.wait(interval):
            if self.joiner.journal is None:
                journal = self._open_journal()
                if journal is not None:
                    self.joiner.attach(journal)
            try:
                for decoded in self.joiner.expire().values():
                    self.engine.process(decoded)
            except Exception:  # the timer never dies; the next tick retries
                log.exception("cloudevents: expiring pending halves failed")


def http_router(sink: CloudEventsSink) -> APIRouter:
    """``POST /v1/cloudevents``: the sink URL to give KServe's or Seldon's ``logger.url``.
    Binary mode (attributes in ``ce-*`` headers) and structured mode (``application/cloudevents+json``)."""
    from service.api import body_types, errors, read_limited_body, require_ingest, runtime_of  # noqa: PLC0415

    router = APIRouter()

    @router.post("/v1/cloudevents", status_code=202, tags=["ingest"],
                 dependencies=[Depends(require_ingest),
                               Depends(body_types("application/json", "application/cloudevents+json"))],
                 responses={400: {"description": "the event was rejected (reasons in errors)"},
                            **errors(401, 403, 408, 413, 415)},
                 openapi_extra={"requestBody": {"required": True, "content": {
                     "application/json": {"schema": {"type": "object"}},
                     STRUCTURED: {"schema": {"type": "object"}}}}})
    async def post_cloudevent(request: Request) -> JSONResponse:
        """One inference-logger CloudEvent (KServe or Seldon). 202 with the prediction events it
        completed (``accepted``; 0 while it waits for its other half), 400 when it is rejected."""
        body = await read_limited_body(request, runtime_of(request).settings.limits.max_body_bytes)
        decoded = await run_in_threadpool(sink.receive, request.headers.raw, body)  # off the event loop
        listed = [r.to_dict() for r in decoded.rejected[:100]]
        status = 400 if decoded.rejected and not decoded.accepted else 202
        return JSONResponse({"accepted": decoded.accepted, "rejected": len(decoded.rejected),
                             "errors": listed, "pending": len(sink.joiner)}, status_code=status)

    return router
