"""Model-server payloads -> rows: feature rows of a request, (prediction, score) rows of a response.

Bodies understood:

- V1 (TensorFlow-style): ``{"instances": [...]}`` / ``{"predictions": [...]}``; rows that
  are lists give features ``f0..fn``, rows that are objects give their keys.
- V2 / open inference protocol: ``{"inputs": [{"name", "shape", "datatype", "data"}]}`` /
  ``{"model_name", "model_version", "outputs": [...]}``. One 2-D input tensor gives
  ``f0..fn`` (as V1 arrays); several inputs of one value per row are named after the inputs.
- Seldon: ``{"data": {"names": [...], "ndarray": [[...]]}}`` (or ``tensor``).

A response row that is a list of class probabilities gives ``prediction`` = the arg-max
and, for two classes, ``score`` = the probability of class 1.

Payloads are read best effort (the shapes are model-specific): one this reader cannot use at
all is a :class:`~service.ingest.cloudevents.CloudEventError`, a rejection with a reason.
"""

from __future__ import annotations

from typing import Any

import orjson

from service.ingest.cloudevents import CloudEventError

__all__ = ["check_shape", "request_rows", "response_rows"]

_SCALAR = (int, float, str, bool, type(None))


def request_rows(payload: dict) -> list[dict]:
    if "instances" in payload:
        return _rows_from_instances(payload["instances"])
    inputs = payload.get("inputs")
    if isinstance(inputs, list) and inputs and all(isinstance(t, dict) and "data" in t for t in inputs):
        return _rows_from_tensors(inputs)
    if inputs is not None:  # V1 columnar "inputs"
        if isinstance(inputs, dict):
            return _rows_from_columns(inputs)
        return _rows_from_instances(inputs)
    data = payload.get("data")
    if isinstance(data, dict):
        return _rows_from_seldon(data)
    raise CloudEventError("missing_field", "request body has none of instances, inputs, data")


def check_shape(kind: str, payload: dict) -> None:
    """Reject now a body that :func:`request_rows` / :func:`response_rows` could not read at all."""
    if kind == "request":
        if "instances" in payload or payload.get("inputs") is not None or isinstance(payload.get("data"), dict):
            return
        raise CloudEventError("missing_field", "request body has none of instances, inputs, data")
    outputs = payload.get("outputs")
    if ("predictions" in payload or isinstance(payload.get("data"), dict)
            or (isinstance(outputs, list) and outputs and all(isinstance(t, dict) and "data" in t for t in outputs))):
        return
    raise CloudEventError("missing_field", "response body has none of predictions, outputs, data")


def response_rows(payload: dict) -> list[tuple[Any, float | None]]:
    if "predictions" in payload:
        rows = payload["predictions"]
        if not isinstance(rows, list):
            rows = [rows]
        return [_output(row) for row in rows]
    outputs = payload.get("outputs")
    if isinstance(outputs, list) and outputs and all(isinstance(t, dict) and "data" in t for t in outputs):
        chosen = outputs[0]
        tensor_rows = _tensor_rows(chosen)
        result = [_output(row) for row in tensor_rows]
        # A separate probability output gives the score of a label output.
        for other in outputs[1:]:
            if "proba" in str(other.get("name", "")).lower():
                probabilities = _tensor_rows(other)
                if len(probabilities) == len(result):
                    result = [(p, _output(q)[1]) for (p, _), q in zip(result, probabilities, strict=True)]
        return result
    data = payload.get("data")
    if isinstance(data, dict):
        return [_output(row) for row in _seldon_matrix(data)]
    raise CloudEventError("missing_field", "response body has none of predictions, outputs, data")


def _output(row: Any) -> tuple[Any, float | None]:
    """A response row -> (prediction, score). A loop, not recursion: bodies may nest 1,000 deep."""
    while True:
        if isinstance(row, dict):
            key = next((k for k in ("prediction", "predictions", "label", "class", "output") if k in row), None)
            if key is not None:
                row = row[key]
                continue
            scalars = [v for v in row.values() if isinstance(v, _SCALAR)]
            return (scalars[0] if scalars else None), None
        if isinstance(row, list):
            flat = _flatten(row)
            if len(flat) == 1:
                row = flat[0]
                continue
            if flat and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat):
                best = max(range(len(flat)), key=flat.__getitem__)
                return best, (float(flat[1]) if len(flat) == 2 else None)
            return None, None
        return (row, None) if isinstance(row, _SCALAR) else (None, None)


def _scalar(value: Any) -> Any:
    return value if isinstance(value, _SCALAR) else orjson.dumps(value).decode()


def _rows_from_instances(instances: Any) -> list[dict]:
    if not isinstance(instances, list):
        raise CloudEventError("invalid_type", "instances must be a list")
    rows = []
    for row in instances:
        if isinstance(row, dict):
            rows.append({str(k): _scalar(v) for k, v in row.items()})
        elif isinstance(row, list):
            rows.append({f"f{j}": _scalar(v) for j, v in enumerate(_flatten(row))})
        else:
            rows.append({"f0": _scalar(row)})
    return rows


def _rows_from_columns(columns: dict) -> list[dict]:
    names = list(columns)
    values = [v if isinstance(v, list) else [v] for v in columns.values()]
    count = min((len(v) for v in values), default=0)
    return [{name: _scalar(values[j][i]) for j, name in enumerate(names)} for i in range(count)]


def _tensor_rows(tensor: dict) -> list:
    """The rows (first dimension) of a V2 tensor, whether its data is nested or flat."""
    data = tensor.get("data")
    shape = tensor.get("shape")
    if not isinstance(data, list):
        data = [data]
    if data and isinstance(data[0], list):
        return data  # nested: already rows
    if isinstance(shape, list) and len(shape) >= 2 and isinstance(shape[0], int) and shape[0] > 0:
        count = min(shape[0], len(data))  # a shape is a claim: never more rows than values
        width = max(1, len(data) // max(1, count))
        return [data[i * width:(i + 1) * width] for i in range(count)]
    return data  # one value per row


def _rows_from_tensors(tensors: list[dict]) -> list[dict]:
    if len(tensors) == 1:
        rows = [_flatten(row) if isinstance(row, list) else [row] for row in _tensor_rows(tensors[0])]
        if rows and len(rows[0]) > 1:
            return [{f"f{j}": _scalar(v) for j, v in enumerate(row)} for row in rows]
        name = str(tensors[0].get("name") or "f0")
        return [{name: _scalar(row[0] if row else None)} for row in rows]
    columns: dict[str, list] = {}
    count = None
    for tensor in tensors:
        name = str(tensor.get("name") or f"input{len(columns)}")
        rows = [_flatten(row) if isinstance(row, list) else [row] for row in _tensor_rows(tensor)]
        count = len(rows) if count is None else min(count, len(rows))
        width = max((len(row) for row in rows), default=1)
        if width <= 1:
            columns[name] = [row[0] if row else None for row in rows]
        else:
            for j in range(width):
                columns[f"{name}_{j}"] = [row[j] if j < len(row) else None for row in rows]
    return [{name: _scalar(values[i]) for name, values in columns.items()} for i in range(count or 0)]


def _seldon_matrix(data: dict) -> list:
    if "ndarray" in data:
        rows = data["ndarray"]
        return rows if isinstance(rows, list) else [rows]
    tensor = data.get("tensor")
    if isinstance(tensor, dict):
        return _tensor_rows({"data": tensor.get("values", []), "shape": tensor.get("shape", [])})
    raise CloudEventError("missing_field", "Seldon data has neither ndarray nor tensor")


def _rows_from_seldon(data: dict) -> list[dict]:
    names = data.get("names")
    names = names if isinstance(names, list) else []
    rows = []
    for row in _seldon_matrix(data):
        values = _flatten(row) if isinstance(row, list) else [row]
        rows.append({(str(names[j]) if j < len(names) else f"f{j}"): _scalar(v) for j, v in enumerate(values)})
    return rows


def _flatten(value: list) -> list:
    """Nested lists -> their scalars in order (with a stack: bodies may nest 1,000 deep)."""
    out: list = []
    stack = [iter(value)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out
