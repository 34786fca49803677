"""Why an event is rejected: the closed set of reasons (CONTRACT §1), and msgspec's
validation messages read as one of them. Bad input is data, never an exception."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["KINDS", "REASONS", "Rejection", "classify"]

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
    "oversize_string",    # a string above its bound (feature values and names, classes, ids, versions)
    "too_many_features",  # more features than limits.max_features
)

KINDS = ("prediction", "label", "infra")


@dataclass(slots=True)
class Rejection:
    index: int  # position of the event in its input (line, array element or record)
    reason: str
    detail: str

    def to_dict(self) -> dict:
        return {"index": self.index, "reason": self.reason, "detail": self.detail}


_PATH = re.compile(r" - at `\$(?:\[\d+\])?\.?([^`\[]*)")


def classify(message: str, document: Any) -> Rejection:
    """A msgspec validation message -> a contract reason."""
    at = _PATH.search(message)
    path = at.group(1) if at else ""
    top = path.split(".")[0]
    missing = re.search(r"missing required field `(\w+)`", message)
    if message.startswith("Expected `object`") and not path:
        reason = "not_an_object"
    elif top == "kind" or (missing and missing.group(1) == "kind"):
        reason = "unknown_kind"
    elif top == "model" or (missing and missing.group(1) == "model"):
        reason = "invalid_model"
    elif missing:
        reason = "missing_field"
    elif top == "timestamp":
        reason = "invalid_timestamp"
    elif " of length <= " in message:
        reason = "oversize_string"
    elif message.startswith("Invalid enum value") or ">=" in message or "length" in message:
        reason = "invalid_value"
    else:
        reason = "invalid_type"
    if reason == "unknown_kind" and isinstance(document, dict):
        message = f"kind must be one of {', '.join(KINDS)}, got {document.get('kind')!r}"
    return Rejection(0, reason, message)
