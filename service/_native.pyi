"""The native event decoder (native/, Rust); optional: see service/core/events.py."""

# True in every build that gives a multiclass ``scores`` mapping back (a build without it
# drops the mapping, so events.py does not send such a batch to it).
GIVES_BACK_SCORES: bool

class NativeFeatures:
    """The feature columns of one model's predictions (a ``service.core.features.FeatureColumns``)."""

    def __len__(self) -> int: ...
    def names(self, stop: int) -> list[str]: ...
    def numbers(self, names: list[str], start: int) -> bytes: ...
    def codes(self, name: str, vocabulary: dict, start: int) -> bytes | None: ...
    def values(self, name: str, start: int, stop: int) -> list: ...

# One model's predictions, the arguments of ``PredictionBatch.from_native``: model, timestamps
# (float64 bytes), versions, ids, latency_ms (float64 bytes), errors (bool bytes),
# predictions, scores (float64 bytes), features.
NativeBatch = tuple[str, bytes, list[str], list[str | None], bytes, bytes, list, bytes, NativeFeatures]
# The events left to Python (labels, infra, and what the native decoder does not read):
# (index, start, end), byte offsets into an NDJSON body, or (index, 0, length) of a record.
Left = tuple[int, int, int]

def decode_ndjson(
    body: bytes, received_at: float, max_event_bytes: int, max_features: int
) -> tuple[list[NativeBatch], list[Left]] | None:
    """An NDJSON body's predictions as columns per model, or None where Python decodes it all."""

def decode_records(
    values: list[bytes | None], received_at: float, max_event_bytes: int, max_features: int
) -> tuple[list[NativeBatch], list[Left]] | None:
    """Kafka record values, one event each; None (Python decodes them) where one is missing or blank."""
