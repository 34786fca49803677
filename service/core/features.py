"""The ``features`` of predictions, decoded a model's batch at a time into rows typed per model.

:mod:`service.core.events` keeps each prediction's ``features`` object as raw JSON and hands a
model's raw objects here. Building a dict per event and then looking every feature up by
name took about half of the engine's time. Instead, once a model has sent a batch of
features, a :class:`FeatureRow` struct is made for it: one field per feature name seen,
numbers-only features typed as numbers, so msgspec decodes and type-checks a whole batch
in C and the engine reads a column by attribute. (One struct of every model's features,
decoded in the first pass, was tried: it saved 1.2 µs per event of decoding but cost 0.8
back in the engine, whose reads of one model's rows then stride across all models' rows.)

A batch that does not fit its model's struct (a new feature name, a string where only
numbers were seen) is decoded as dicts instead, which is always correct, and the struct is
learned again from it; names and types only widen, so this settles. Both shapes mean the
same: a feature absent from an event and one sent as ``null`` are both missing.

>>> decoder = FeatureDecoder(max_features=10, learn_from=2)
>>> rows, rejected = decoder.decode("m", [b'{"x": 1.5, "c": "DE"}', b'{"x": 2, "c": "FR"}'])
>>> rows, rejected
([{'x': 1.5, 'c': 'DE'}, {'x': 2, 'c': 'FR'}], [])
>>> rows, _ = decoder.decode("m", [b'{"c": "DE", "x": -1.0}', b'{"x": null}'])
>>> [row.as_dict() for row in rows], type(rows[0]).numeric
([{'x': -1.0, 'c': 'DE'}, {'x': None, 'c': None}], frozenset({'x'}))
>>> decoder.decode("m", [b'{"x": [1]}'])[1]
[(0, 'invalid_type', 'Expected `bool | int | float | str | null`, got `array` - at `$.features[...]`')]
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import chain
from operator import attrgetter, itemgetter
from types import GenericAlias
from typing import Annotated, Any, ClassVar, Protocol, cast

import msgspec
import numpy as np

from service.core.json_values import DECODE_ERRORS, lenient_document, non_finite_path

# Longest strings taken, in characters; a longer one rejects its event (oversize_string).
# Each string is kept: in vocabularies, the first-N reference, the label store, checkpoints.
MAX_VALUE_CHARS = 1024  # a feature's string value, a class predicted or labelled
MAX_NAME_CHARS = 256  # a feature's name (a Prometheus label value)
BoundedStr = Annotated[str, msgspec.Meta(max_length=MAX_VALUE_CHARS)]
FeatureName = Annotated[str, msgspec.Meta(max_length=MAX_NAME_CHARS)]
Scalar = int | float | BoundedStr | bool | None
Number = int | float | None

_NUMBERS = list[float | None]  # what RowFeatures.numbers checks values to be, in C
_DICTS = msgspec.json.Decoder(list[dict[FeatureName, Scalar]])
_DICT = msgspec.json.Decoder(dict[FeatureName, Scalar])
_MAX_MODELS = 1024  # models with a learned struct; beyond it, all are forgotten and relearned
_MAX_RELEARN = 16  # structs learned per model before it stays with dicts (features keep changing)


class FeatureRow(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """Base of the per-model structs: fields ``f0, f1, ...`` are the feature ``names``.

    Fields are positional names because feature names need not be Python identifiers.
    """

    names: ClassVar[tuple[str, ...]] = ()
    numeric: ClassVar[frozenset[str]] = frozenset()  # features typed int | float | None

    def as_dict(self) -> dict[str, Any]:
        return dict(zip(self.names, msgspec.structs.astuple(self), strict=True))

    @classmethod
    def getter(cls, names: list[str]) -> Callable[[Any], Any] | None:
        """``operator.attrgetter`` of these features (a tuple per row, or the value for one
        name), or None when the struct lacks one of them."""
        position = {name: i for i, name in enumerate(cls.names)}
        if not names or any(name not in position for name in names):
            return None
        return attrgetter(*(f"f{position[name]}" for name in names))


class _Learned:
    __slots__ = ("row", "decoder")

    def __init__(self, row: type[FeatureRow]):
        self.row = row
        # list[row] of a type made at run time: a GenericAlias to mypy, the same alias to msgspec.
        self.decoder = msgspec.json.Decoder(GenericAlias(list, (row,)))


def make_row_type(types: dict[str, Any]) -> type[FeatureRow]:
    """A :class:`FeatureRow` struct for features ``name -> type`` (Number or Scalar)."""
    names = tuple(types)
    # defstruct's stub returns type[Struct]; bases=(FeatureRow,) makes it a FeatureRow.
    return cast(type[FeatureRow], msgspec.defstruct(
        "Features", [(f"f{i}", types[name], None) for i, name in enumerate(names)],
        bases=(FeatureRow,), rename={f"f{i}": name for i, name in enumerate(names)},
        namespace={"names": names, "numeric": frozenset(n for n, t in types.items() if t is Number)},
        forbid_unknown_fields=True, gc=False))


class FeatureDecoder:
    """Decodes the raw ``features`` objects of one model's predictions; learns a struct per model."""

    def __init__(self, max_features: int, learn_from: int = 32):
        self.max_features = max_features
        self.learn_from = learn_from  # smallest batch a struct is learned from
        # An object of k members has at least 5k + 1 bytes ({"":0,...}): below this length
        # it cannot have too many features, so they need not be counted.
        self._short = 5 * (max_features + 1) + 1
        self._learned: dict[str, _Learned] = {}
        self._relearned: dict[str, int] = {}

    def decode(self, model: str, raws: list) -> tuple[list, list[tuple[int, str, str]]]:
        """Rows (structs or dicts, ``None`` where rejected) and rejections (position, reason, detail)."""
        short = all(len(raw) < self._short for raw in raws)
        learned = self._learned.get(model)
        if learned is not None and short:
            try:
                return learned.decoder.decode(_joined(raws)), []
            except DECODE_ERRORS:
                pass
        rows, rejected = self._dicts(raws, short)
        if len(raws) - len(rejected) >= self.learn_from:
            self._learn(model, learned, rows)
        return rows, rejected

    def _dicts(self, raws: list, short: bool) -> tuple[list, list[tuple[int, str, str]]]:
        try:
            rows: list = _DICTS.decode(_joined(raws))
            rejected: list[tuple[int, str, str]] = []
        except DECODE_ERRORS:
            rows, rejected = [], []
            for position, raw in enumerate(raws):
                try:
                    rows.append(_DICT.decode(raw))
                except DECODE_ERRORS as exc:
                    rows.append(None)
                    rejected.append((position, *_reason(raw, exc)))
        if not short:
            for position, row in enumerate(rows):
                if row is not None and len(row) > self.max_features:
                    rows[position] = None
                    rejected.append((position, "too_many_features",
                                     f"{len(row)} features exceed limits.max_features={self.max_features}"))
            rejected.sort()
        return rows, rejected

    def _learn(self, model: str, learned: _Learned | None, rows: list) -> None:
        relearned = self._relearned.get(model, 0)
        if relearned >= _MAX_RELEARN:
            self._learned.pop(model, None)  # straight to dicts: no failing struct decode first
            return
        types: dict[str, Any] = {}
        if learned is not None:
            types = {name: Number if name in learned.row.numeric else Scalar for name in learned.row.names}
        for row in rows:
            if row is None:
                continue
            for name, value in row.items():
                if types.get(name, Number) is Number and (value is None or type(value) in (int, float)):
                    types[name] = Number
                else:
                    types[name] = Scalar
        if len(types) > self.max_features:
            return
        if len(self._learned) >= _MAX_MODELS and model not in self._learned:
            self._learned.clear()
            self._relearned.clear()
        self._learned[model] = _Learned(make_row_type(types))
        self._relearned[model] = relearned + 1


def as_dicts(rows: list) -> list[dict]:
    """Rows of either shape as dicts."""
    return [row if type(row) is dict else row.as_dict() for row in rows]


class FeatureColumns(Protocol):
    """The features of one model's predictions in a batch, read a column at a time: what
    :class:`~service.core.model_state.ModelState` takes. :class:`RowFeatures` reads them from
    decoded rows; ``service._native.NativeFeatures`` holds them as the native decoder
    parsed them."""

    def __len__(self) -> int: ...

    def names(self, stop: int) -> list[str]:
        """Features present (even as null) in a row before ``stop``, in order of appearance."""

    def numbers(self, names: list[str], start: int) -> np.ndarray | bytes:
        """A float64 matrix of one row per name, of the rows from ``start`` on (or its bytes):
        numbers as floats, booleans as 1/0, strings and missing values as NaN."""

    def codes(self, name: str, vocabulary: dict, start: int) -> np.ndarray | bytes | None:
        """Each row's code in ``vocabulary`` (value -> code) as float64 (or its bytes), NaN
        where missing; or None, when a value is not in it or the codes are no quicker to get
        than by encoding :meth:`values`."""

    def values(self, name: str, start: int, stop: int) -> list:
        """The JSON values of rows ``start`` to ``stop``, None where missing."""


class RowFeatures:
    """:class:`FeatureColumns` of decoded rows: dicts, or :class:`FeatureRow` structs.

    >>> features = RowFeatures([{"x": 1, "c": "DE"}, {"x": "oops", "y": True}])
    >>> features.names(2), features.numbers(["x", "y"], 0).tolist()
    (['x', 'c', 'y'], [[1.0, nan], [nan, 1.0]])
    """

    def __init__(self, rows: list):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def names(self, stop: int) -> list[str]:
        return list(dict.fromkeys(chain.from_iterable(as_dicts(self.rows[:stop]))))

    def numbers(self, names: list[str], start: int) -> np.ndarray:
        rows = self.rows[start:] if start else self.rows
        if not rows or not names:
            return np.empty((len(names), len(rows)))
        # Fast path: every row of one type holding every name, only numbers: one getter call
        # per row and one np.array. Values are checked to be numbers in C (by the struct's
        # types, or by msgspec.convert): np.array would read "1.5" as a number.
        getter, checked = _getter(rows, names)
        if getter is not None:
            try:
                values = list(map(getter, rows))
                if not checked:
                    msgspec.convert(list(chain.from_iterable(values)) if len(names) > 1 else values, _NUMBERS)
                return np.array(values, dtype=np.float64).reshape(len(rows), len(names)).T
            except (KeyError, msgspec.ValidationError):
                pass
        dicts = as_dicts(rows)
        return np.array([as_numbers([row.get(name) for row in dicts]) for name in names])

    def codes(self, name: str, vocabulary: dict, start: int) -> None:
        return None

    def unknown_names(self, known: set[str]) -> list[str]:
        """See :func:`unknown_names`; structs are checked a field at a time, not made dicts."""
        rows = self.rows
        first = rows[0] if rows else None
        if not isinstance(first, FeatureRow) or any(type(row) is not type(first) for row in rows):
            return [name for name in self.names(len(rows)) if name not in known]
        return [name for i, name in enumerate(first.names)
                if name not in known and list(map(attrgetter(f"f{i}"), rows)).count(None) < len(rows)]

    def values(self, name: str, start: int, stop: int) -> list:
        rows = self.rows[start:stop]
        getter, _ = _getter(rows, [name])
        if getter is not None:
            try:
                return list(map(getter, rows))
            except KeyError:
                pass
        return [row.get(name) for row in as_dicts(rows)]


def unknown_names(features: FeatureColumns, known: set[str]) -> list[str]:
    """Features of any row (even as null) that are not in ``known``. Struct rows hold a field
    of every name their struct was learned with, so there a feature counts where a row holds
    a value of it: without this check a feature would stay counted after events dropped it.

    >>> unknown_names(RowFeatures([{"x": 1}, {"y": None, "z": 2}]), {"x"})
    ['y', 'z']
    """
    if isinstance(features, RowFeatures):
        return features.unknown_names(known)
    return [name for name in features.names(len(features)) if name not in known]


def as_numbers(values: list) -> np.ndarray:
    """A numerical feature's JSON values as float64: booleans as 1/0, None as NaN, and a
    string, a type mismatch where the reference had numbers, counted missing (NaN) too."""
    if str in set(map(type, values)):
        values = [None if type(v) is str else v for v in values]
    return np.array(values, dtype=np.float64)


def _getter(rows: list, names: list[str]) -> tuple[Callable[[Any], Any] | None, bool]:
    """A getter of these names (a tuple per row, or the value for one name) for rows of one
    type, and whether its values are known to be numbers; (None, False) when there is none.
    A dict row lacking a name raises KeyError in the getter."""
    row_type = type(rows[0]) if rows else None
    if row_type is None or any(type(row) is not row_type for row in rows):
        return None, False
    if row_type is dict:
        return itemgetter(*names), False
    getter = row_type.getter(names)
    return getter, getter is not None and row_type.numeric.issuperset(names)


def _joined(raws: list) -> bytes:
    return b"[" + b",".join(raws) + b"]"


def _reason(raw: bytes, exc: Exception) -> tuple[str, str]:
    """Why a ``features`` value is not an object of scalars: non_finite, invalid_type,
    oversize_string, or invalid_json where a string in it is not UTF-8."""
    # Checked on the bytes: msgspec raises UnicodeDecodeError for bad UTF-8 before 0.19 and
    # a plain DecodeError since.
    try:
        bytes(raw).decode("utf-8")
    except UnicodeDecodeError as bad_utf8:
        return "invalid_json", f"features: {bad_utf8}"
    document = lenient_document(bytes(raw))
    where = None if document is None else non_finite_path(document, "features")
    if where is not None:
        return "non_finite", f"{where} is NaN or infinite"
    detail = str(exc).replace("`$", "`$.features")
    return ("oversize_string" if " of length <= " in detail else "invalid_type"), detail
