"""A pending half of an inference log (a request or a response waiting for its partner), and
the bytes that carry a list of them to the Kafka changelog."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import orjson

from service.ingest.bodies import request_rows, response_rows
from service.ingest.cloudevents import CloudEventError, parse_object

__all__ = ["Half", "decode_halves", "encode_halves"]

_HALF_OVERHEAD = 256  # bytes a pending half costs beyond its body (object, key, index)


@dataclass(slots=True)
class Half:
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
        payload = parse_object(self.body, f"{self.kind} body")
        try:
            return request_rows(payload) if self.kind == "request" else response_rows(payload)
        except (TypeError, ValueError, IndexError, KeyError) as exc:
            # Payloads are model-specific JSON read best effort: a shape this reader does not
            # follow is the sender's problem, reported, not a server error.
            raise CloudEventError("invalid_type", f"unusable {self.kind} body: {exc}") from None


_LENGTH = struct.Struct(">I")


def encode_halves(halves: list[Half]) -> bytes:
    """4-byte length + JSON list of [kind, model, id, version, time, arrived, body length] +
    the bodies, concatenated."""
    meta = orjson.dumps([[h.kind, h.model, h.event_id, h.version, h.time, h.arrived, len(h.body)] for h in halves])
    return _LENGTH.pack(len(meta)) + meta + b"".join(h.body for h in halves)


def decode_halves(data: bytes) -> list[Half]:
    (size,) = _LENGTH.unpack_from(data, 0)
    start = _LENGTH.size + size
    halves = []
    for kind, model, event_id, version, event_time, arrived, length in orjson.loads(data[_LENGTH.size:start]):
        halves.append(Half(kind, model, event_id, version, event_time, arrived, data[start:start + length]))
        start += length
    return halves
