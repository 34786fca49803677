"""The two decoders side by side: the native one (``service._native``) must give what the
Python one gives, event for event, or give the batch back to it."""

from __future__ import annotations

import math
import os

import msgspec
import pytest

from service.core.events import Decoded, Validator, _native

# scripts/test.sh builds the native decoder and sets this: without it, its tests would skip.
NATIVE_REQUIRED = os.environ.get("DRIFTLINE_NATIVE_REQUIRED") == "1"


def native_available() -> bool:
    """Whether the native decoder is built; where it must be (see NATIVE_REQUIRED, or under CI)
    its absence fails the test instead of leaving the comparison out."""
    if _native is None and (NATIVE_REQUIRED or os.environ.get("CI")):
        pytest.fail("service._native is not built (DRIFTLINE_NATIVE_REQUIRED=1 or CI set)")
    return _native is not None


def _value(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    return value if value is None else (type(value).__name__, value)


def canonical(decoded: Decoded) -> dict:
    """A decoded batch in one comparable form, whichever decoder made it: predictions per model
    as rows (missing features left out, every value with its type), labels, infra, rejections."""
    predictions = {}
    for batch in decoded.prediction_batches():
        features = batch.features
        names = features.names(len(batch))
        columns = {name: features.values(name, 0, len(batch)) for name in names}
        rows = predictions.setdefault(batch.model, [])
        for i in range(len(batch)):
            rows.append({
                "timestamp": float(batch.timestamps[i]), "version": batch.versions[i], "id": batch.ids[i],
                "latency_ms": _value(float(batch.latency_ms[i])), "error": bool(batch.errors[i]),
                "prediction": _value(batch.predictions[i]), "score": _value(float(batch.scores[i])),
                "scores": batch.class_scores[i] if batch.class_scores is not None else None,
                "features": {name: _value(column[i]) for name, column in columns.items() if column[i] is not None},
            })
    return {"predictions": predictions,
            "labels": [msgspec.structs.asdict(event) for event in decoded.labels],
            "infra": [msgspec.structs.asdict(event) for event in decoded.infra],
            "rejected": [rejection.to_dict() for rejection in decoded.rejected]}


def decode_both(method: str, *args, **validator_options) -> Decoded:
    """``Validator(**validator_options).<method>(*args)`` by the Python decoder; the native
    decoder, where built, must give the same batch."""
    python = getattr(Validator(native=False, **validator_options), method)(*args)
    if native_available():
        native = getattr(Validator(**validator_options), method)(*args)
        assert canonical(native) == canonical(python)
    return python
