"""JSON read leniently, to say why strict decoding refused it.

msgspec refuses ``NaN``, ``Infinity`` and out-of-range numbers, which the standard library
reads (as nan and inf); a document only the latter can read is rejected as ``non_finite``,
naming where the number is.

>>> non_finite_path(lenient_document(b'{"features": {"a": [1, Infinity]}}'))
'features.a[1]'
"""

from __future__ import annotations

import json
import math
from typing import Any

import msgspec

# What msgspec raises on bad input: DecodeError (ValidationError is one), and
# UnicodeDecodeError where a string is not UTF-8.
DECODE_ERRORS = (msgspec.DecodeError, UnicodeDecodeError)


def lenient_document(body: bytes) -> Any | None:
    """The body as one JSON document read by :mod:`json` (accepts NaN), or None."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def non_finite_path(obj: Any, path: str = "") -> str | None:
    """Where the first NaN or infinity in ``obj`` is (``a.b[2]``, below ``path``), or None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return path or "value"
    if isinstance(obj, dict):
        for key, value in obj.items():
            found = non_finite_path(value, f"{path}.{key}" if path else str(key))
            if found:
                return found
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            found = non_finite_path(value, f"{path}[{i}]")
            if found:
                return found
    return None
