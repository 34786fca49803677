"""Decoding and validation of driftline events (CONTRACT §1), a batch at a time.

Input is bytes: an HTTP body (one event, a JSON array, or NDJSON) or a list of Kafka record
values (one event each). Output is a :class:`Decoded` batch: valid events by kind, as typed
:class:`Prediction`, :class:`Label` and :class:`Infra` structs with a normalised
``timestamp`` (UNIX seconds), and a :class:`Rejection` with a reason for every event that is
not valid. Nothing raises on bad input.

NDJSON bodies and Kafka records go first to the native decoder (``service._native``, Rust,
built from ``native/``) when it is installed. It parses predictions straight into columns per
model (:class:`PredictionBatch`), leaves label and infra events to the code below, and gives
the whole batch back to it whenever it is not sure an event is valid, so that every
rejection still gets its reason here (and every batch with a multiclass ``scores`` mapping,
which only this module reads). The engine reads predictions as
:class:`PredictionBatch` either way (:meth:`Decoded.prediction_batches`).

msgspec decodes *and* type-checks a whole batch in C, faster than orjson alone plus Python
checks. A prediction's ``features`` object is kept as raw JSON in that pass and decoded
afterwards a model at a time by :class:`~service.core.features.FeatureDecoder`, into a dict or
a struct typed for the model. Only when a batch fails is it decoded again event by event,
to reject just the bad ones with a reason. msgspec refuses ``NaN``, ``Infinity`` and
out-of-range numbers, which the standard library accepts; an event only the latter can read
is rejected as ``non_finite`` rather than ``invalid_json``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import ModuleType
from typing import Annotated, Any, Literal, cast

import msgspec
import numpy as np

from service.core.features import BoundedStr, FeatureColumns, FeatureDecoder, RowFeatures, Scalar
from service.core.json_values import DECODE_ERRORS, lenient_document, non_finite_path
from service.core.rejections import KINDS, REASONS, Rejection, classify

# KINDS, REASONS and Rejection are read from here too, where they met events first.
__all__ = [
    "INFRA_GAUGES", "KINDS", "MAX_CLASS_SCORES", "MAX_VERSION_CHARS", "MODEL_NAME", "REASONS", "Decoded", "Event",
    "Infra", "Label", "Prediction", "PredictionBatch", "Rejection", "Validator", "group_by_model",
    "native_decoder_available",
]

_native: ModuleType | None
try:
    from service import _native
except ImportError:  # installed without a Rust toolchain: the Python decoder does it all
    _native = None


# The native decoder gives a batch with a multiclass ``scores`` mapping back to this module; a
# build from before it did reads the mapping as an unknown field and drops it, so a batch that
# may hold one (the key's bytes anywhere) does not go to such a build.
_SCORES_KEY = b'"scores"'
# A native build without GIVES_BACK_SEGMENTS skips the ``segment`` field: with it, a body
# that may carry one is decoded here. Builds with it decline such events themselves, which
# spares searching every value (a quarter of a microsecond per Kafka record).
_SEGMENT_KEY = b'"segment"'
_NATIVE_GIVES_BACK_SCORES = bool(getattr(_native, "GIVES_BACK_SCORES", False))
_NATIVE_GIVES_BACK_SEGMENTS = bool(getattr(_native, "GIVES_BACK_SEGMENTS", False))


def native_decoder_available() -> bool:
    return _native is not None


INFRA_GAUGES = ("cpu_utilization", "memory_bytes", "gpu_utilization", "gpu_memory_bytes", "requests_in_flight")
MODEL_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,128}")  # fullmatch; also checks names in URLs

# Model names are checked against MODEL_NAME in Validator._finish, once per distinct name:
# a msgspec pattern would run the regex on every event (a quarter of the decoding time).
Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=256)] | int
MAX_VERSION_CHARS = 128
Version = Annotated[str, msgspec.Meta(max_length=MAX_VERSION_CHARS)] | int
Timestamp = datetime | float | None
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
# A multiclass classifier's scores: class (as a string, JSON's keys) -> probability, at most
# as many classes as a vocabulary keeps (limits.max_categories' default).
MAX_CLASS_SCORES = 1000
ClassScores = Annotated[dict[BoundedStr, float], msgspec.Meta(max_length=MAX_CLASS_SCORES)]


class Prediction(msgspec.Struct, tag_field="kind", tag="prediction"):
    model: str
    timestamp: Timestamp = None
    model_version: Version = "unknown"
    id: Identifier | None = None
    latency_ms: NonNegative | None = None
    status: Literal["ok", "error"] = "ok"
    # Raw JSON when decoded; the validator replaces it by the decoded features: a dict, or a
    # FeatureRow struct typed for the model (service.core.features).
    features: msgspec.Raw = msgspec.Raw(b"{}")
    prediction: Scalar = None
    score: float | None = None
    scores: ClassScores | None = None
    # The prediction's segment, read as the feature "segment" (service.core.segments.SEGMENT_FIELD).
    segment: BoundedStr | None = None


class Label(msgspec.Struct, tag_field="kind", tag="label"):
    model: str
    id: Identifier
    label: int | float | BoundedStr | bool
    timestamp: Timestamp = None


class Infra(msgspec.Struct, tag_field="kind", tag="infra"):
    model: str
    timestamp: Timestamp = None
    instance: Annotated[str, msgspec.Meta(min_length=1, max_length=256)] = "unknown"
    cpu_utilization: NonNegative | None = None
    memory_bytes: NonNegative | None = None
    gpu_utilization: NonNegative | None = None
    gpu_memory_bytes: NonNegative | None = None
    requests_in_flight: NonNegative | None = None
    event: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None


Event = Prediction | Label | Infra
_VALID_NAMES_MAX = 1024  # names remembered as valid; beyond it, cleared and relearned
_BATCH = msgspec.json.Decoder(list[Event])
_ONE = msgspec.json.Decoder(Event)
_ELEMENTS = msgspec.json.Decoder(list[msgspec.Raw])


@dataclass(slots=True)
class PredictionBatch:
    """One model's valid predictions of a batch, in input order, as columns."""

    model: str
    timestamps: np.ndarray  # float64 UNIX seconds
    versions: list[str]
    ids: list[str | None]
    latency_ms: np.ndarray  # float64, NaN where not sent
    errors: np.ndarray  # bool: status "error"
    predictions: list  # JSON scalars, None where not sent
    scores: np.ndarray  # float64, NaN where not sent
    features: FeatureColumns
    # Multiclass scores per event (a dict, None where not sent); None when no event sent any.
    class_scores: list[dict[str, float] | None] | None = None
    # The events' ``segment`` field (None where not sent); None when no event sent one.
    segments: list[str | None] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_events(cls, model: str, events: list[Prediction]) -> PredictionBatch:
        class_scores = [e.scores for e in events]
        segments = [e.segment for e in events]
        # Validator._finish has made every integer version and id a string.
        versions = cast(list[str], [e.model_version for e in events])
        ids = cast(list[str | None], [e.id for e in events])
        return cls(model, np.array([e.timestamp for e in events], dtype=np.float64), versions, ids,
                   np.array([e.latency_ms for e in events], dtype=np.float64),
                   np.array([e.status == "error" for e in events]), [e.prediction for e in events],
                   np.array([e.score for e in events], dtype=np.float64), RowFeatures([e.features for e in events]),
                   class_scores if any(scores is not None for scores in class_scores) else None,
                   segments if any(segment is not None for segment in segments) else None)

    @classmethod
    def from_native(cls, model: str, timestamps: bytes, versions: list[str], ids: list, latency_ms: bytes,
                    errors: bytes, predictions: list, scores: bytes, features: FeatureColumns) -> PredictionBatch:
        return cls(model, np.frombuffer(timestamps), versions, ids, np.frombuffer(latency_ms),
                   np.frombuffer(errors, dtype=np.bool_), predictions, np.frombuffer(scores), features)


@dataclass(slots=True)
class Decoded:
    predictions: list[Prediction] = field(default_factory=list)  # decoded here, one struct each
    labels: list[Label] = field(default_factory=list)
    infra: list[Infra] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    batches: list[PredictionBatch] = field(default_factory=list)  # decoded natively, as columns

    @property
    def accepted(self) -> int:
        return len(self.predictions) + sum(map(len, self.batches)) + len(self.labels) + len(self.infra)

    @property
    def models(self) -> set[str]:
        """Models of the valid events."""
        return {batch.model for batch in self.batches} | {
            event.model for events in (self.predictions, self.labels, self.infra) for event in events}

    def prediction_batches(self) -> list[PredictionBatch]:
        """All valid predictions, one batch per model and source, in input order per model."""
        return self.batches + [PredictionBatch.from_events(model, events)
                               for model, events in group_by_model(self.predictions).items()]


def _array_elements(body: bytes) -> list[bytes] | None:
    """The raw elements of a JSON array, or None where ``body`` is not one (a syntax error)."""
    try:
        return [bytes(raw) for raw in _ELEMENTS.decode(body)]
    except DECODE_ERRORS:
        return None


class Validator:
    """Decodes and checks batches of events; holds its limits and the model names seen valid."""

    def __init__(self, max_features: int = 500, max_event_bytes: int = 1024 * 1024, native: bool = True):
        self.max_features = max_features
        self.max_event_bytes = max_event_bytes
        self._valid_names: set[str] = set()  # model names that matched MODEL_NAME
        self.features = FeatureDecoder(max_features)
        self.native = _native if native else None  # the native decoder, when installed

    # -- entry points -------------------------------------------------------------------

    def decode_body(self, body: bytes, received_at: float | None = None) -> Decoded:
        """One event, a JSON array of events, or NDJSON (one event per line)."""
        received_at = time.time() if received_at is None else received_at
        stripped = body.strip()
        if not stripped:
            return Decoded(rejected=[Rejection(0, "invalid_json", "empty body")])
        if stripped[:1] == b"[":
            try:
                return self._finish(_BATCH.decode(stripped), received_at)
            except DECODE_ERRORS:
                # Whatever failed (a bad element, or a string that is not UTF-8: msgspec raises
                # UnicodeDecodeError before 0.19 and DecodeError since), an array whose
                # elements can be delimited is checked element by element.
                elements = _array_elements(stripped)
                if elements is not None:
                    return self._one_by_one(elements, received_at)
                document = lenient_document(stripped)
                if isinstance(document, list):  # an array only json reads: NaN/Infinity inside
                    return self.validate(document, received_at)
        if self.native is not None and type(stripped) is bytes and (  # it reads bytes, not bytearrays
                _NATIVE_GIVES_BACK_SCORES or _SCORES_KEY not in stripped) and (
                _NATIVE_GIVES_BACK_SEGMENTS or _SEGMENT_KEY not in stripped):
            columns = self.native.decode_ndjson(stripped, received_at, self.max_event_bytes, self.max_features)
            if columns is not None:
                return self._from_native(columns, lambda _, start, end: stripped[start:end], received_at)
        if len(stripped) <= self.max_event_bytes or _longest_line(stripped) <= self.max_event_bytes:
            try:
                # NDJSON in one call, ~2x faster than splitting lines and joining them into an
                # array. msgspec is laxer than one value per line (it also reads two values on
                # a line, or one across lines), but reads only well-formed events.
                return self._finish(_ONE.decode_lines(stripped), received_at)
            except DECODE_ERRORS:
                pass  # read again line by line, to reject just the bad lines
        return self.decode_lines(stripped.split(b"\n"), received_at)

    def decode_lines(self, lines: Iterable[bytes], received_at: float | None = None) -> Decoded:
        """NDJSON lines: one event each; blank lines are skipped."""
        values: list[bytes | None] = [line for line in lines if line.strip()]
        return self.decode_records(values, received_at)

    def decode_records(self, values: list[bytes | None], received_at: float | None = None) -> Decoded:
        """Kafka record values (or NDJSON lines), one event each; indices are preserved."""
        received_at = time.time() if received_at is None else received_at
        if self.native is not None and values and (
                _NATIVE_GIVES_BACK_SCORES or not any(value and _SCORES_KEY in value for value in values)) \
                and (_NATIVE_GIVES_BACK_SEGMENTS or not any(value and _SEGMENT_KEY in value for value in values)):
            columns = self.native.decode_records(values, received_at, self.max_event_bytes, self.max_features)
            if columns is not None:
                return self._from_native(columns, lambda index, _, __: values[index], received_at)
        return self._records(values, received_at)

    def validate(self, objects: list[Any], received_at: float | None = None) -> Decoded:
        """Already-parsed JSON values (dicts), e.g. built by an adapter, checked and converted."""
        received_at = time.time() if received_at is None else received_at
        out = Decoded()
        values, positions = [], []
        for index, obj in enumerate(objects):
            # Checked here: JSON encoding would turn NaN into null.
            where = non_finite_path(obj)
            if where is not None:
                out.rejected.append(Rejection(index, "non_finite", f"{where} is NaN or infinite"))
                continue
            try:
                values.append(msgspec.json.encode(obj))
                positions.append(index)
            except TypeError as exc:
                out.rejected.append(Rejection(index, "invalid_type", str(exc)))
        return self._one_by_one(values, received_at, out, positions)

    # -- internals ----------------------------------------------------------------------

    def _from_native(self, columns: tuple[list, list], event_bytes: Callable[[int, int, int], bytes | None],
                     received_at: float) -> Decoded:
        """The native decoder's predictions; the label and infra events it left, decoded here."""
        batches, left = columns
        out = Decoded(batches=[PredictionBatch.from_native(*batch) for batch in batches])
        if left:
            self._records([event_bytes(*where) for where in left], received_at, out, [index for index, _, _ in left])
        return out

    def _records(self, values: Sequence[bytes | None], received_at: float, out: Decoded | None = None,
                 at: list[int] | None = None) -> Decoded:
        """Values of one event each, by msgspec: in one call for the joined batch (~2x faster
        than one call per value), or one at a time when that fails, to reject just the bad
        ones. ``at`` as for :meth:`_one_by_one`."""
        if values and all(v and len(v) <= self.max_event_bytes for v in values):
            try:
                present = cast(Sequence[bytes], values)  # every value checked present just above
                events = _BATCH.decode(b"[" + b",".join(present) + b"]")
                if len(events) == len(values):
                    return self._finish(events, received_at, out, at)
            except DECODE_ERRORS:
                pass
        return self._one_by_one(values, received_at, out, at)

    def _one_by_one(self, values: Sequence[bytes | None], received_at: float, out: Decoded | None = None,
                    at: list[int] | None = None) -> Decoded:
        """Values decoded one at a time, each rejected on its own; ``at`` maps a value's
        position to its index in the input (default: the same)."""
        out = out or Decoded()
        events, positions = [], []
        for index, value in enumerate(values):
            if at is not None:
                index = at[index]
            if not value or not value.strip():
                out.rejected.append(Rejection(index, "invalid_json", "empty record"))
                continue
            if len(value) > self.max_event_bytes:
                out.rejected.append(Rejection(index, "oversize",
                                              f"event of {len(value)} bytes exceeds {self.max_event_bytes}"))
                continue
            try:
                events.append(_ONE.decode(value))
                positions.append(index)
            except DECODE_ERRORS as exc:
                # Out-of-range numbers fail validation, NaN fails decoding: both are non_finite.
                document = lenient_document(value)
                where = None if document is None else non_finite_path(document)
                if where is not None:
                    out.rejected.append(Rejection(index, "non_finite", f"{where} is NaN or infinite"))
                elif isinstance(exc, msgspec.ValidationError):
                    out.rejected.append(classify(str(exc), document))
                    out.rejected[-1].index = index
                else:
                    out.rejected.append(Rejection(index, "invalid_json", str(exc)))
        return self._finish(events, received_at, out, positions)

    def _finish(self, events: list, received_at: float, out: Decoded | None = None,
                positions: list[int] | None = None) -> Decoded:
        """Normalise timestamps and identifiers, apply the checks msgspec cannot express,
        decode the features of predictions."""
        out = out or Decoded()
        predictions, labels, infra, rejected = out.predictions, out.labels, out.infra, out.rejected
        valid_names = self._valid_names
        for position, event in enumerate(events):
            if event.model not in valid_names:
                if MODEL_NAME.fullmatch(event.model) is None:
                    rejected.append(Rejection(positions[position] if positions else position, "invalid_model",
                                              f"model must match {MODEL_NAME.pattern}, got {event.model[:140]!r}"))
                    continue
                if len(valid_names) >= _VALID_NAMES_MAX:
                    valid_names.clear()
                valid_names.add(event.model)
            ts = event.timestamp
            if ts is None:
                event.timestamp = received_at
            elif type(ts) is float:
                if not 0 <= ts < 1e11:
                    rejected.append(Rejection(positions[position] if positions else position, "invalid_timestamp",
                                              "UNIX seconds out of range"))
                    continue
            else:
                event.timestamp = (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp()
            kind = type(event)
            if kind is Prediction:
                if type(event.model_version) is int:
                    event.model_version = str(event.model_version)
                if type(event.id) is int:
                    event.id = str(event.id)
                predictions.append(event)
            elif kind is Label:
                if type(event.id) is int:
                    event.id = str(event.id)
                labels.append(event)
            else:
                infra.append(event)
        if predictions:
            self._decode_features(out, events, positions)
        if rejected:
            rejected.sort(key=lambda r: r.index)
        return out

    def _decode_features(self, out: Decoded, events: list, positions: list[int] | None) -> None:
        """Each model's ``features`` objects, raw JSON so far, decoded together."""
        dropped: set[int] = set()
        where: dict[int, int] = {}
        for model, group in group_by_model(out.predictions).items():
            rows, rejections = self.features.decode(model, [event.features for event in group])
            for event, row in zip(group, rows, strict=True):
                event.features = row
            if rejections:
                where = where or {id(event): position for position, event in enumerate(events)}
                for k, reason, detail in rejections:
                    dropped.add(id(group[k]))
                    position = where[id(group[k])]
                    out.rejected.append(Rejection(positions[position] if positions else position, reason, detail))
        if dropped:
            out.predictions = [event for event in out.predictions if id(event) not in dropped]


def group_by_model(events: list) -> dict[str, list]:
    """Events by model name, in order."""
    groups: dict[str, list] = {}
    for event in events:
        group = groups.get(event.model)
        if group is None:
            groups[event.model] = [event]
        else:
            group.append(event)
    return groups


def _longest_line(body: bytes) -> int:
    breaks = np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == ord("\n"))
    return int(np.diff(breaks, prepend=-1, append=len(body)).max()) - 1
