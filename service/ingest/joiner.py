"""Request and response CloudEvents joined into driftline prediction events.

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

import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from service.core.events import Decoded, Rejection, Validator
from service.ingest.bodies import check_shape
from service.ingest.cloudevents import (
    REQUEST_SUFFIX,
    RESPONSE_SUFFIX,
    CloudEvent,
    CloudEventError,
    event_time,
    from_http,
    from_kafka,
    model_name,
    parse_object,
)
from service.ingest.halves import Half, decode_halves, encode_halves
from service.ingest.journal import PendingJournal

__all__ = ["EVICTION_REASONS", "CloudEventJoiner", "decode_http", "decode_kafka"]

EVICTION_REASONS = ("expired", "count", "bytes")


class CloudEventJoiner:
    """Joins request and response CloudEvents into driftline prediction events; thread-safe.

    Bounded by ``max_pending`` halves, ``max_pending_bytes`` and ``ttl`` seconds; evictions are
    counted per reason in ``evicted``. With a ``journal`` every pending half is also on disk."""

    def __init__(self, validator: Validator, ttl: float = 30.0, max_pending: int = 10_000,
                 max_pending_bytes: int = 32 * 1024 * 1024, clock: Callable[[], float] = time.time,
                 journal: PendingJournal | None = None):
        self.validator = validator
        self.ttl = ttl
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        self.clock = clock
        self._pending: OrderedDict[tuple[str, str], Half] = OrderedDict()
        self._lock = threading.Lock()
        self.pending_bytes = 0
        self.joined = 0
        self.evicted = dict.fromkeys(EVICTION_REASONS, 0)
        # origin -> a number that changes whenever that origin's pending halves change
        self.generation: dict[int | None, int] = defaultdict(int)
        # Halves restored over the bounds (a journal from a larger configuration, partitions
        # moved together): emitted alone by the next expire().
        self._overflow: list[Half] = []
        self.journal: PendingJournal | None = None
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
        payload = parse_object(event.data, f"{kind} body")
        model = model_name(attrs, payload)
        if not model:
            raise CloudEventError("invalid_model", "no model name: set ce-inferenceservicename or ce-modelid")
        version = payload.get("model_version") or attrs.get("modelversion")
        if not isinstance(version, (str, int)) or isinstance(version, bool):
            version = None
        half = Half(kind, model, event_id, None if version is None else str(version),
                     event_time(attrs.get("time"), now), now, bytes(event.data), origin)
        check_shape(kind, payload)  # rows are read when the pair completes (or the half expires)
        del payload  # kept as the body: parsed rows take ten to fifty times its size
        evicted: list[Half] = []
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
        by_origin: dict[int | None, list[Half]] = defaultdict(list)
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

    def _add(self, half: Half, journal: bool = True) -> list[Half]:
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
            oldest = self._take(next(iter(self._pending)))
            self.evicted[reason] += 1
            evicted.append(oldest)
        return evicted

    def _remove(self, key: tuple[str, str]) -> Half | None:
        """The pending half of ``key``, no longer pending; None when there is none."""
        return self._take(key) if key in self._pending else None

    def _take(self, key: tuple[str, str]) -> Half:
        """The pending half of ``key``, which must be pending, no longer pending."""
        half = self._pending.pop(key)
        self.pending_bytes -= half.size
        self.generation[half.origin] += 1
        if self.journal is not None:
            self.journal.delete(key)
        return half

    def _expire(self, now: float) -> list[Half]:
        expired = []
        while self._pending:
            oldest = next(iter(self._pending.values()))
            if now - oldest.arrived < self.ttl:
                break
            self._take((oldest.model, oldest.event_id))
            self.evicted["expired"] += 1
            expired.append(oldest)
        return expired


def _rows(half: Half, rejected: list[Rejection]) -> list | None:
    """The rows of a pending half; a body that no longer reads (restored from a changelog
    another version wrote) is a rejection."""
    try:
        return half.rows()
    except CloudEventError as exc:
        rejected.append(Rejection(0, exc.reason, exc.detail))
        return None


def _alone(half: Half, rejected: list[Rejection]) -> list[dict]:
    """The events of a half emitted without its partner."""
    rows = _rows(half, rejected)
    if rows is None:
        return []
    return _events(half, rows, None, None) if half.kind == "request" else _events(None, None, half, rows)


def _events(request: Half | None, features: list | None, response: Half | None,
            outputs: list | None) -> list[dict]:
    """Prediction events of a joined pair, or of one half alone (the other's rows None)."""
    base = request or response
    if base is None:
        raise ValueError("a prediction event needs the request half, the response half or both")
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
                                 "timestamp": base.time}
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
