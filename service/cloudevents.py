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

Bodies understood:

- V1 (TensorFlow-style): ``{"instances": [...]}`` / ``{"predictions": [...]}``; rows that
  are lists give features ``f0..fn``, rows that are objects give their keys.
- V2 / open inference protocol: ``{"inputs": [{"name", "shape", "datatype", "data"}]}`` /
  ``{"model_name", "model_version", "outputs": [...]}``. One 2-D input tensor gives
  ``f0..fn`` (as V1 arrays); several inputs of one value per row are named after the inputs.
- Seldon: ``{"data": {"names": [...], "ndarray": [[...]]}}`` (or ``tensor``).

A response row that is a list of class probabilities gives ``prediction`` = the arg-max
and, for two classes, ``score`` = the probability of class 1.

The :class:`CloudEventJoiner` keeps each half until the other arrives (a bounded cache,
``max_pending`` entries, each at most ``ttl`` seconds). A half whose partner never comes is
still emitted when it expires: a request alone gives features without a prediction
(feature drift still works with ``logger.mode: request``), a response alone a prediction
without features. A request of n rows gives n prediction events, ids ``<ce-id>`` for one
row and ``<ce-id>:<i>`` for several; labels join on those ids.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Mapping

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from service.events import Decoded, Rejection, Validator

REQUEST_SUFFIX = ".inference.request"
RESPONSE_SUFFIX = ".inference.response"
_SCALAR = (int, float, str, bool, type(None))


class CloudEventError(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def attributes(headers: Iterable[tuple[str, Any]]) -> dict[str, str]:
    """CloudEvents attributes from HTTP headers (``ce-id``) or Kafka record headers (``ce_id``),
    lower-cased without the prefix; ``content-type`` is kept as ``datacontenttype``."""
    out: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value).decode("utf-8", "replace")
        if key.startswith("ce-") or key.startswith("ce_"):
            out[key[3:]] = str(value)
        elif key == "content-type":
            out.setdefault("datacontenttype", str(value))
    return out


def is_cloudevent(headers: Iterable[tuple[str, Any]] | None) -> bool:
    """True when the headers carry a CloudEvent type (KServe's ``ce_type`` or Seldon's ``Ce-Type``)."""
    if not headers:
        return False
    return any(name.lower() in ("ce_type", "ce-type") for name, _ in headers)


@dataclass(slots=True)
class _Half:
    kind: str  # "request" | "response"
    model: str
    rows: list  # feature dicts (request) or (prediction, score) tuples (response)
    version: str | None
    time: float  # event time (ce-time, else arrival)
    arrived: float


class CloudEventJoiner:
    """Joins request and response CloudEvents into driftline prediction events; thread-safe."""

    def __init__(self, validator: Validator, ttl: float = 30.0, max_pending: int = 10_000,
                 clock=time.time):
        self.validator = validator
        self.ttl = ttl
        self.max_pending = max_pending
        self.clock = clock
        self._pending: OrderedDict[tuple[str, str], _Half] = OrderedDict()
        self._lock = threading.Lock()
        self.joined = 0
        self.expired = 0

    def __len__(self) -> int:
        return len(self._pending)

    def handle(self, attrs: Mapping[str, str], body: bytes, received_at: float | None = None) -> Decoded:
        """One CloudEvent -> the prediction events it completes (maybe none yet), validated.
        Raises :class:`CloudEventError` for an event that is not an inference log."""
        now = self.clock() if received_at is None else received_at
        ce_type = attrs.get("type", "")
        if ce_type.endswith(REQUEST_SUFFIX):
            kind = "request"
        elif ce_type.endswith(RESPONSE_SUFFIX):
            kind = "response"
        else:
            raise CloudEventError("unknown_kind", f"unsupported CloudEvent type {ce_type!r}")
        event_id = attrs.get("requestid") or attrs.get("id")
        if not event_id:
            raise CloudEventError("missing_field", "the CloudEvent has no id")
        try:
            payload = orjson.loads(body) if body.strip() else None
        except orjson.JSONDecodeError as exc:
            raise CloudEventError("invalid_json", f"CloudEvent body: {exc}") from None
        if not isinstance(payload, dict):
            raise CloudEventError("not_an_object", "the CloudEvent body is not a JSON object")
        model = (attrs.get("inferenceservicename") or attrs.get("modelid") or payload.get("model_name")
                 or _model_from_source(attrs.get("source", "")))
        if not model:
            raise CloudEventError("invalid_model", "no model name: set ce-inferenceservicename or ce-modelid")
        version = payload.get("model_version") or attrs.get("modelversion")
        rows = _request_rows(payload) if kind == "request" else _response_rows(payload)
        half = _Half(kind, str(model), rows, None if version is None else str(version),
                     _event_time(attrs.get("time"), now), now)
        events: list[dict] = []
        with self._lock:
            events += self._expire(now)
            key = (half.model, event_id)
            other = self._pending.pop(key, None)
            if other is None or other.kind == kind:
                # First half (or the same half again, redelivered: the newer one is kept).
                self._pending[key] = half
                while len(self._pending) > self.max_pending:
                    (_, old_id), oldest = self._pending.popitem(last=False)
                    self.expired += 1
                    events += _alone(oldest, old_id)
            else:
                request, response = (half, other) if kind == "request" else (other, half)
                self.joined += 1
                events += _events(request, response, event_id)
        return self.validator.validate(events, now) if events else Decoded()

    def expire(self, now: float | None = None) -> Decoded:
        """Emit the halves older than ``ttl`` (call periodically)."""
        now = self.clock() if now is None else now
        with self._lock:
            events = self._expire(now)
        return self.validator.validate(events, now) if events else Decoded()

    def _expire(self, now: float) -> list[dict]:
        events: list[dict] = []
        while self._pending:
            (model, event_id), oldest = next(iter(self._pending.items()))
            if now - oldest.arrived < self.ttl:
                break
            self._pending.popitem(last=False)
            self.expired += 1
            events += _alone(oldest, event_id)
        return events


def _alone(half: _Half, event_id: str) -> list[dict]:
    return _events(half, None, event_id) if half.kind == "request" else _events(None, half, event_id)


def _events(request: _Half | None, response: _Half | None, event_id: str) -> list[dict]:
    """Prediction events of a joined pair, or of one half alone."""
    base = request or response
    assert base is not None
    features = request.rows if request is not None else None
    outputs = response.rows if response is not None else None
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
    """A response row -> (prediction, score)."""
    if isinstance(row, dict):
        for key in ("prediction", "predictions", "label", "class", "output"):
            if key in row:
                return _output(row[key])
        scalars = [v for v in row.values() if isinstance(v, _SCALAR)]
        return (scalars[0] if scalars else None), None
    if isinstance(row, list):
        flat = _flatten(row)
        if len(flat) == 1:
            return _output(flat[0])
        if flat and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat):
            best = max(range(len(flat)), key=flat.__getitem__)
            return best, (float(flat[1]) if len(flat) == 2 else None)
        return None, None
    if isinstance(row, _SCALAR):
        return row, None
    return None, None


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
    shape = tensor.get("shape") or []
    if not isinstance(data, list):
        data = [data]
    if data and isinstance(data[0], list):
        return data  # nested: already rows
    if len(shape) >= 2 and isinstance(shape[0], int) and shape[0] > 0:
        width = max(1, len(data) // shape[0])
        return [data[i * width:(i + 1) * width] for i in range(shape[0])]
    return data  # one value per row


def _rows_from_tensors(tensors: list[dict]) -> list[dict]:
    if len(tensors) == 1:
        rows = _tensor_rows(tensors[0])
        if rows and isinstance(rows[0], list) and len(_flatten(rows[0])) > 1:
            return [{f"f{j}": _scalar(v) for j, v in enumerate(_flatten(row))} for row in rows]
        name = str(tensors[0].get("name") or "f0")
        return [{name: _scalar(_flatten(row)[0] if isinstance(row, list) else row)} for row in rows]
    columns: dict[str, list] = {}
    count = None
    for tensor in tensors:
        name = str(tensor.get("name") or f"input{len(columns)}")
        rows = _tensor_rows(tensor)
        count = len(rows) if count is None else min(count, len(rows))
        widths = {len(_flatten(r)) if isinstance(r, list) else 1 for r in rows}
        if widths <= {1}:
            columns[name] = [(_flatten(r)[0] if isinstance(r, list) else r) for r in rows]
        else:
            for j in range(max(widths)):
                columns[f"{name}_{j}"] = [(_flatten(r)[j] if isinstance(r, list) and j < len(_flatten(r)) else None)
                                          for r in rows]
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
    names = data.get("names") or []
    rows = []
    for row in _seldon_matrix(data):
        values = _flatten(row) if isinstance(row, list) else [row]
        rows.append({(str(names[j]) if j < len(names) else f"f{j}"): _scalar(v) for j, v in enumerate(values)})
    return rows


def _flatten(value: list) -> list:
    out = []
    for item in value:
        if isinstance(item, list):
            out += _flatten(item)
        else:
            out.append(item)
    return out


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


def decode(joiner: CloudEventJoiner, headers: Iterable[tuple[str, Any]], body: bytes,
           received_at: float | None = None) -> Decoded:
    """One CloudEvent (headers and body) -> a Decoded batch; an unusable event is a rejection."""
    try:
        return joiner.handle(attributes(headers), body, received_at)
    except CloudEventError as exc:
        return Decoded(rejected=[Rejection(0, exc.reason, exc.detail)])


# -- HTTP sink --------------------------------------------------------------------------------

def http_router():
    """``POST /v1/cloudevents``: the sink URL to give KServe's ``logger.url`` or Seldon's
    ``logger.url``. Binary mode (attributes in ``ce-*`` headers); structured mode
    (``application/cloudevents+json``) is read too."""
    from service.api import body_types, errors, read_limited_body, require_ingest, runtime_of  # noqa: PLC0415

    router = APIRouter()

    @router.post("/v1/cloudevents", status_code=202, tags=["ingest"],
                 dependencies=[Depends(require_ingest),
                               Depends(body_types("application/json", "application/cloudevents+json"))],
                 responses={400: {"description": "the event was rejected (reasons in errors)"},
                            **errors(401, 403, 408, 413, 415)},
                 openapi_extra={"requestBody": {"required": True, "content": {
                     "application/json": {"schema": {"type": "object"}}}}})
    async def post_cloudevent(request: Request) -> JSONResponse:
        """One inference-logger CloudEvent (KServe or Seldon). 202 with the prediction events it
        completed (``accepted``; 0 while it waits for its other half), 400 when it is rejected."""
        runtime = runtime_of(request)
        body = await read_limited_body(request, runtime.settings.limits.max_body_bytes)
        joiner = joiner_of(runtime)
        headers = list(request.headers.items())
        if request.headers.get("content-type", "").startswith("application/cloudevents+json"):
            headers, body = _structured(body)
        decoded = decode(joiner, headers, body)
        if decoded.accepted or decoded.rejected:
            await run_in_threadpool(runtime.engine.process, decoded)  # off the event loop, as /v1/events
        errors = [r.to_dict() for r in decoded.rejected[:100]]
        status = 400 if decoded.rejected and not decoded.accepted else 202
        return JSONResponse({"accepted": decoded.accepted, "rejected": len(decoded.rejected),
                             "errors": errors, "pending": len(joiner)}, status_code=status)

    return router


def joiner_of(runtime) -> CloudEventJoiner:
    """The HTTP sink's joiner, one per runtime (the Kafka source has its own)."""
    joiner = getattr(runtime, "cloudevents_joiner", None)
    if joiner is None:
        kafka = runtime.settings.kafka
        joiner = CloudEventJoiner(runtime.engine.validator,
                                  ttl=kafka.cloudevents_ttl if kafka else 30.0,
                                  max_pending=kafka.cloudevents_max_pending if kafka else 10_000,
                                  clock=runtime.engine.clock)
        runtime.cloudevents_joiner = joiner
    return joiner


def _structured(body: bytes) -> tuple[list[tuple[str, str]], bytes]:
    """Structured mode: attributes and ``data`` in one JSON document."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return [], body
    if not isinstance(document, dict):
        return [], body
    headers = [(f"ce-{k}", str(v)) for k, v in document.items() if k not in ("data", "data_base64")
               and isinstance(v, (str, int, float))]
    data = document.get("data")
    return headers, (orjson.dumps(data) if data is not None else b"")
