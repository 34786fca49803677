"""The columns a model's state holds, and how event values become them.

The window (and the first-N collection) holds a model's features and its own columns
(prediction, score, timestamp) in two namespaces, so that a feature may be called "score",
"prediction" or anything else. Feature values are float64: numbers as themselves, categories
as codes into a per-feature vocabulary (:class:`Feature`; NaN = missing), which is what the
detectors expect.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from service.config import LimitsConfig
from service.core.features import as_numbers

__all__ = [
    "FEATURE", "NON_FEATURE_COLUMNS", "OTHER", "OWN", "PREDICTION", "SCORE", "TIMESTAMP_COLUMN", "UNVERSIONED",
    "Feature", "decode_codes", "infer_kind", "infer_task", "json_scalars", "string_bytes",
]

OTHER = "__other__"
PREDICTION, SCORE = "prediction", "score"
FEATURE, OWN = "f:", "m:"
TIMESTAMP_COLUMN = OWN + "timestamp"
UNVERSIONED = "unknown"  # the model_version of an event that names none (CONTRACT §1)
# Columns of a reference file that are not features.
NON_FEATURE_COLUMNS = {"prediction", "score", "label", "id", "timestamp", "model", "model_version", "kind"}


class Feature:
    """A feature's type and, for categories, its vocabulary value -> code: at most
    ``limits.max_categories`` values of ``limits.max_vocabulary_bytes`` together; values
    beyond either share the code of ``__other__``."""

    __slots__ = ("kind", "vocab", "overflow_code", "vocab_bytes", "_sized")

    def __init__(self, kind: str, vocab: dict[Any, int] | None = None):
        self.kind = kind
        self.vocab: dict[Any, int] = vocab if vocab is not None else {}
        self.overflow_code: int | None = None
        self.vocab_bytes = string_bytes(self.vocab)
        self._sized = len(self.vocab)  # values vocab_bytes counts

    def encode(self, values: list[Any] | np.ndarray, limits: LimitsConfig) -> np.ndarray:
        """Raw JSON values (or a float64 array of numbers) -> float64 (numbers) or codes
        (categories), NaN = missing/mismatch."""
        if self.kind == "numerical":
            return values if isinstance(values, np.ndarray) else as_numbers(values)
        get = self.vocab.get
        codes = list(map(get, values))
        if None in codes:
            for i, value in enumerate(values):
                if codes[i] is None and value is not None:
                    code = get(value)
                    codes[i] = code if code is not None else self._new_code(value, limits)
        return np.array(codes, dtype=np.float64)

    def _new_code(self, value: Any, limits: LimitsConfig) -> int:
        vocab = self.vocab
        if len(vocab) != self._sized:  # the classes' dict, which labels and predictions share, grew elsewhere
            self.vocab_bytes, self._sized = string_bytes(vocab), len(vocab)
        size = len(value.encode()) if type(value) is str else 0
        if len(vocab) < limits.max_categories and self.vocab_bytes + size <= limits.max_vocabulary_bytes:
            code = vocab[value] = len(vocab)
            self.vocab_bytes += size
            self._sized += 1
            return code
        if self.overflow_code is None:
            self.overflow_code = vocab.setdefault(OTHER, len(vocab))
        return self.overflow_code


def string_bytes(values: Iterable[Any]) -> int:
    """UTF-8 bytes of the strings among ``values``."""
    return sum(len(value.encode()) for value in values if type(value) is str)


def infer_kind(values: list[Any]) -> str:
    """Numbers only -> numerical; strings or booleans -> categorical (Evidently's rule for dtypes)."""
    kinds = set(map(type, values)) - {type(None)}
    return "numerical" if kinds <= {int, float} else "categorical"


def infer_task(predictions: list[Any]) -> str:
    kinds = set(map(type, predictions)) - {type(None)}
    if float in kinds and any(type(p) is float and not p.is_integer() for p in predictions):
        return "regression"
    return "classification"


_JSON_SCALARS = {str, int, float, bool, type(None)}
_NESTED = (dict, list, tuple, set, np.ndarray)


def json_scalars(column: Any, values: list[Any]) -> list[Any]:
    """A reference column's values as JSON scalars, as events carry them: nested values
    (objects, arrays) are refused; other types (dates, decimals, bytes) become strings."""
    if set(map(type, values)) <= _JSON_SCALARS:
        return values
    if any(isinstance(value, _NESTED) for value in values):
        raise ValueError(f"reference column {str(column)!r} holds nested values (objects or arrays); "
                         "a column holds numbers, strings, booleans or nulls")
    return [value if type(value) in _JSON_SCALARS else str(value) for value in values]


def decode_codes(feature: Feature, codes: np.ndarray) -> np.ndarray:
    """A column of the window as values: numbers as they are, category codes as their values."""
    if feature.kind == "numerical":
        return codes
    values = np.array([None, *feature.vocab], dtype=object)
    index = np.where(np.isnan(codes), 0, codes + 1).astype(np.int64)
    return values[index]
