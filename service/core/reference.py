"""Where a model's reference comes from, as columns of raw values: a table (a file, an
upload, an MLflow artifact: :func:`columns_from_frame`) or the model's first N predictions
(:class:`FirstNCollection`). :class:`~service.core.model_state.ModelState` summarises them
into the profiles its windows are compared with."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from service.config import LimitsConfig, ModelConfig
from service.core.columns import (
    FEATURE,
    NON_FEATURE_COLUMNS,
    OWN,
    PREDICTION,
    SCORE,
    Feature,
    infer_kind,
    infer_task,
    json_scalars,
    string_bytes,
)
from service.core.estimation import WindowEstimator
from service.core.features import MAX_NAME_CHARS, FeatureColumns

if TYPE_CHECKING:  # pandas arrives with the frames; it is imported where one is read (below, service/ingest/tables.py)
    import pandas as pd

__all__ = ["FirstNCollection", "ReferenceColumns", "columns_from_frame"]

log = logging.getLogger("driftline.model_state")  # the model state's log: its reference is collected here


@dataclass(slots=True)
class ReferenceColumns:
    """A reference's raw columns, before they are encoded and summarised."""

    features: dict[str, Feature]
    columns: dict[str, list[Any] | np.ndarray]  # feature -> its values (numbers as float64 arrays)
    predictions: list[Any]
    scores: list[Any]
    rows: int
    source: str
    # Every feature name of the source, beyond the features kept (those drift.features leaves
    # out, those past limits.max_features): none of them is "new" to the window.
    names: set[str]
    task: str | None
    estimator: WindowEstimator | None = None  # fitted on a labelled table, with models.<m>.estimation
    own_columns: list[str] = field(default_factory=list)  # the estimator's columns of the window


def columns_from_frame(frame: pd.DataFrame, source: str, config: ModelConfig, limits: LimitsConfig,
                       task: str | None) -> ReferenceColumns:
    """A table's columns as a reference; ``task`` is the model's, None while unknown (then
    inferred from the table's predictions). Raises ValueError for a table that cannot be one."""
    import pandas as pd  # noqa: PLC0415 - ~80 MB at import: not at start-up, where no table is read

    predictions = json_scalars(PREDICTION, _with_none(frame[PREDICTION])) if PREDICTION in frame.columns else []
    if predictions and task is None:
        task = infer_task(predictions)
    estimator = None
    if config.estimation is not None:
        if task == "regression":
            raise ValueError("estimation is for classifiers; this model's predictions are numbers (regression)")
        estimator = WindowEstimator.fit(config.estimation, config.window.size, frame, config.labels.positive_class)
    # A multiclass estimator's score_<class> columns are the model's, not features.
    own = NON_FEATURE_COLUMNS | set(estimator.reference_columns if estimator is not None else ())
    wanted = config.drift.features
    every_name = [str(c) for c in frame.columns if str(c) not in own]
    names = [c for c in frame.columns if str(c) not in own and (wanted is None or c in wanted)]
    names = names[: limits.max_features]
    if not names:
        raise ValueError("the reference has no feature columns")
    long = next((str(name) for name in names if len(str(name)) > MAX_NAME_CHARS), None)
    if long is not None:
        raise ValueError(f"reference column name {long[:40]!r}... is longer than {MAX_NAME_CHARS} characters")
    features: dict[str, Feature] = {}
    columns: dict[str, list[Any] | np.ndarray] = {}
    for name in names:
        series = frame[name]
        numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
        if numeric:  # as an array: a list of Python floats costs 4x the memory and time
            columns[str(name)] = series.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            columns[str(name)] = json_scalars(name, _with_none(series))
        features[str(name)] = Feature("numerical" if numeric else "categorical")
    scores = []
    if SCORE in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[SCORE]) and frame[SCORE].notna().any():
            raise ValueError(f"reference column {SCORE!r} must hold numbers")
        scores = frame[SCORE].tolist()
    return ReferenceColumns(features, columns, predictions, scores, len(frame), source, set(every_name), task,
                            estimator, estimator.window_columns if estimator is not None else [])


def _with_none(series: pd.Series) -> list[Any]:
    """A column's values as Python objects, None where missing (NaN, None, NaT, NA)."""
    values = series.astype(object).tolist()
    present = series.notna().tolist()
    return [value if ok else None for value, ok in zip(values, present, strict=True)]


class FirstNCollection:
    """Raw values of a model's first predictions, gathered until ``reference.first_n`` rows
    (or ``limits.max_first_n_bytes`` of strings) make its reference. Features and the model's
    own columns are kept in their namespaces (``FEATURE``, ``OWN``)."""

    def __init__(self, model: str, first_n: int | None, config: ModelConfig, limits: LimitsConfig):
        self.model = model
        self.first_n = first_n
        self.wanted = config.drift.features
        self.limits = limits
        self.collected: dict[str, list[Any]] = {}
        self.rows = 0
        self.string_bytes: int | None = 0  # of the strings collected; None: not counted yet

    def restore(self, collected: dict[str, list[Any]], rows: int) -> None:
        self.collected, self.rows, self.string_bytes = collected, rows, None

    def take(self, features: FeatureColumns, predictions: list[Any], scores: np.ndarray) -> int:
        """Take rows of a batch (from its first); returns how many were taken."""
        if self.first_n is None:
            raise ValueError(f"model {self.model}: its reference is not its first predictions")
        take = min(len(features), self.first_n - self.rows)
        collected = self.collected
        if self.string_bytes is None:  # restored from a checkpoint
            self.string_bytes = sum(map(string_bytes, collected.values()))
        for name in features.names(take):
            if FEATURE + name not in collected:
                if len(collected) >= self.limits.max_features + 2:  # the features, predictions and scores
                    continue
                collected[FEATURE + name] = [None] * self.rows
        for key, values in collected.items():
            if key.startswith(FEATURE):
                added = features.values(key[len(FEATURE):], 0, take)
                self.string_bytes += string_bytes(added)
                values += added
        collected.setdefault(OWN + PREDICTION, [None] * self.rows).extend(predictions[:take])
        self.string_bytes += string_bytes(predictions[:take])
        collected.setdefault(OWN + SCORE, [None] * self.rows).extend(
            score if score == score else None for score in scores[:take].tolist())  # NaN: not sent
        self.rows += take
        return take

    def reference(self, task: str | None) -> ReferenceColumns | None:
        """The collected rows as a reference once there are enough, else None."""
        if self.first_n is None:
            return None
        full = self.string_bytes is not None and self.string_bytes >= self.limits.max_first_n_bytes
        if full and self.rows < self.first_n:
            log.warning("model %s: first-N reference closed at %d rows: their strings reached "
                        "limits.max_first_n_bytes=%d", self.model, self.rows, self.limits.max_first_n_bytes)
        if not full and self.rows < self.first_n:
            return None
        collected = dict(self.collected)
        predictions, scores = collected.pop(OWN + PREDICTION), collected.pop(OWN + SCORE)
        kept = {key[len(FEATURE):]: values for key, values in collected.items()
                if self.wanted is None or key[len(FEATURE):] in self.wanted}
        features = {name: Feature(infer_kind(values)) for name, values in kept.items()}
        every_name = {key[len(FEATURE):] for key in collected}
        return ReferenceColumns(features, dict(kept), predictions, scores, self.rows, f"first_n:{self.first_n}",
                                every_name, task)
