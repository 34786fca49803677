"""CloudEvents of model-server inference loggers: attributes, HTTP and Kafka bindings (CONTRACT §1, adapters).

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

The bodies (:mod:`service.ingest.bodies`) become prediction events once the request and its
response are joined (:mod:`service.ingest.joiner`).
"""

from __future__ import annotations

import base64
import binascii
import operator
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote

import orjson

__all__ = ["REQUEST_SUFFIX", "RESPONSE_SUFFIX", "REQUIRED", "SPECVERSIONS", "STRUCTURED", "CloudEvent",
           "CloudEventError", "attributes", "event_time", "from_http", "from_kafka", "is_cloudevent",
           "model_name", "model_of", "parse_object"]

REQUEST_SUFFIX = ".inference.request"
RESPONSE_SUFFIX = ".inference.response"
REQUIRED = ("id", "source", "specversion", "type")
SPECVERSIONS = ("1.0", "0.3")
STRUCTURED = "application/cloudevents+json"


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
    document = parse_object(body, "structured CloudEvent")
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
    data: bytes | None = None
    if document.get("data_base64") is not None:
        data = _base64(document["data_base64"], "data_base64")
    else:
        value = document.get("data")
        if attrs.get("specversion") == "0.3" and attrs.get("datacontentencoding", "").lower() == "base64":
            data = _base64(value, "data")
        elif isinstance(value, str):
            data = value.encode()
        elif value is not None:
            try:
                data = orjson.dumps(value)
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


def parse_object(body: bytes, what: str) -> dict:
    try:
        payload = orjson.loads(body) if body.strip() else None
    except orjson.JSONDecodeError as exc:
        raise CloudEventError("invalid_json", f"{what}: {exc}") from None
    if not isinstance(payload, dict):
        raise CloudEventError("not_an_object", f"the {what} is not a JSON object")
    return payload


def model_name(attrs: dict[str, str], payload: dict) -> str | None:
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
        return named or model_name(event.attributes, parse_object(event.data, "body"))
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


def event_time(value: str | None, default: float) -> float:
    if not value:
        return default
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return default


_VALUE = operator.attrgetter("value")
_HEADERS = operator.attrgetter("headers")


def split_kafka_batch(batch: list) -> tuple[list, list, list]:
    """(values of the driftline events, their records, the CloudEvents records) of a batch.

    Records without headers (the common case) are never CloudEvents: a batch with none is
    split in C (``map``), without a Python step per record."""
    if not any(map(_HEADERS, batch)):
        return list(map(_VALUE, batch)), batch, []
    plain, plain_records, cloud = [], [], []
    for record in batch:
        if record.headers and is_cloudevent(record.headers):
            cloud.append(record)
        else:
            plain.append(record.value)
            plain_records.append(record)
    return plain, plain_records, cloud
