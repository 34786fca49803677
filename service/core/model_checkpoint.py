"""A :class:`~service.core.model_state.ModelState` as checkpoint bytes, and back.

The checkpoint is an ``.npz`` archive of byte blobs, no pickle. Entries are keyed by position
(``labels/0``, ``sample/0``) and the names they stand for (model versions, feature names: any
string an event sent) are kept in the JSON ``meta`` entry, as an archive entry's name is
bounded (64 KiB) and cut at a NUL.
"""

from __future__ import annotations

import io
import json
import logging

import numpy as np

from detectors import ReferenceProfile
from service.config import LimitsConfig, ModelConfig
from service.core.columns import FEATURE, OWN, PREDICTION, SCORE, TIMESTAMP_COLUMN, Feature
from service.core.estimation import WindowEstimator, fitted_for
from service.core.model_state import ModelState
from service.core.segments import Segments
from service.core.window import RingColumns

log = logging.getLogger("driftline.model_state")

__all__ = ["CHECKPOINT_FORMAT", "READABLE_FORMATS", "UnknownCheckpointFormat", "from_bytes", "to_bytes"]

# Version of the checkpoint layout written by to_bytes. 1 keyed archive entries by model
# version and feature name; 2 keys them by position, with the names in "meta"; 3 keys the
# window's and the first-N collection's columns by namespace (FEATURE, OWN); 4 adds the
# segments (a "segments" entry; pending predictions carry their segment names).
CHECKPOINT_FORMAT = 4
READABLE_FORMATS = (1, 2, 3, 4)
# Formats 1 and 2: the model's own columns of the window and of the first-N collection, which
# held features under their bare names.
UNSPACED_WINDOW = {PREDICTION: OWN + PREDICTION, SCORE: OWN + SCORE, "__timestamp__": TIMESTAMP_COLUMN}
UNSPACED_COLLECTED = {f"__{PREDICTION}__": OWN + PREDICTION, f"__{SCORE}__": OWN + SCORE}


class UnknownCheckpointFormat(ValueError):
    """A checkpoint written by a driftline whose layout this one cannot read."""


def to_bytes(state: ModelState) -> bytes:
    """The checkpoint of ``state``, in format ``CHECKPOINT_FORMAT``."""
    outcomes = state.outcomes
    label_versions, sample_features = list(outcomes.label_windows), list(state.reference_sample)
    meta = {
        "format": CHECKPOINT_FORMAT,
        "name": state.name, "task": state.task, "reference_source": state.reference_source,
        "reference_rows": state.reference_rows, "since_evaluation": state.since_evaluation,
        "evaluations": state.evaluations, "last_version": state.last_version,
        "features": {n: [f.kind, list(f.vocab)] for n, f in state.features.items()},
        "classes": list(state.classes), "collected": state.collection.collected,
        "collected_rows": state.collection.rows,
        "performance": outcomes.performance,
        "concept": {n: d.to_state() for n, d in outcomes.concept.items()}, "concept_counts": outcomes.concept_counts,
        "label_versions": label_versions, "sample_features": sample_features,
        "reference_names": sorted(state.reference_names), "new_feature_rows": state.new_feature_rows,
    }
    blobs = {"meta": json.dumps(meta).encode(), "pending": outcomes.pending.to_bytes()}
    if state.reference is not None:
        blobs["reference"] = state.reference.to_bytes()
    if state.prediction_reference is not None:
        blobs["prediction_reference"] = state.prediction_reference.to_bytes()
    if state.window is not None:
        blobs["window"] = state.window.to_bytes()
    if state.estimator is not None:
        blobs["estimator"] = state.estimator.to_bytes()
    if state.segments is not None:
        blobs["segments"] = state.segments.to_bytes()
    for index, version in enumerate(label_versions):
        blobs[f"labels/{index}"] = outcomes.label_windows[version].to_bytes()
    for index, name in enumerate(sample_features):
        blobs[f"sample/{index}"] = state.reference_sample[name].tobytes()
    sink = io.BytesIO()
    arrays = {key: np.frombuffer(blob, dtype=np.uint8) for key, blob in blobs.items()}
    # numpy's stub lets a **dict of arrays fill savez's allow_pickle: bool, and so refuses it.
    np.savez(sink, **arrays)  # type: ignore[arg-type]
    return sink.getvalue()


def from_bytes(data: bytes, config: ModelConfig, limits: LimitsConfig) -> ModelState:
    """Restore a checkpoint of a format in ``READABLE_FORMATS``; raises
    :class:`UnknownCheckpointFormat` for any other, before reading anything else."""
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        blobs = {key: archive[key].tobytes() for key in archive.files}
    meta = json.loads(blobs["meta"])
    version = meta.get("format", 1)
    if version not in READABLE_FORMATS:
        raise UnknownCheckpointFormat(f"checkpoint format {version!r} is unknown to this driftline, "
                                      f"which reads formats {', '.join(map(str, READABLE_FORMATS))}")
    if version == 1:  # entries keyed by the names themselves
        label_blobs = {k[len("labels/"):]: b for k, b in blobs.items() if k.startswith("labels/")}
        sample_blobs = {k[len("sample/"):]: b for k, b in blobs.items() if k.startswith("sample/")}
    else:
        label_blobs = {v: blobs[f"labels/{i}"] for i, v in enumerate(meta["label_versions"])}
        sample_blobs = {n: blobs[f"sample/{i}"] for i, n in enumerate(meta["sample_features"])}
    state = ModelState(meta["name"], config, limits)
    state.task = meta["task"]
    state.reference_source, state.reference_rows = meta["reference_source"], meta["reference_rows"]
    state.since_evaluation, state.evaluations = meta["since_evaluation"], meta["evaluations"]
    state.last_version = meta["last_version"]
    state.classes = {value: code for code, value in enumerate(meta["classes"])}
    state.features = {name: Feature(kind, {value: code for code, value in enumerate(vocab)})
                      for name, (kind, vocab) in meta["features"].items()}
    state.reindex_features()
    state.reference_names = set(meta.get("reference_names", state.features))
    state.new_feature_rows = dict(meta.get("new_feature_rows", {}))
    state.prediction_feature = Feature("categorical" if state.task != "regression" else "numerical", state.classes)
    collected = meta["collected"]
    if version < 3:
        collected = {UNSPACED_COLLECTED.get(key, FEATURE + key): values for key, values in collected.items()}
    state.collection.restore(collected, meta["collected_rows"])
    outcomes = state.outcomes
    outcomes.pending.load_bytes(blobs["pending"])
    outcomes.performance = meta["performance"]
    for name, detector_state in meta["concept"].items():
        if name in outcomes.concept:
            outcomes.concept[name] = type(outcomes.concept[name]).from_state(detector_state)
    outcomes.concept_counts.update(meta["concept_counts"])
    if "reference" in blobs:
        state.reference = ReferenceProfile.from_bytes(blobs["reference"])
    if "prediction_reference" in blobs:
        state.prediction_reference = ReferenceProfile.from_bytes(blobs["prediction_reference"])
    if "estimator" in blobs and config.estimation is not None:
        estimator = WindowEstimator.from_bytes(blobs["estimator"])
        if estimator.fitted_for == fitted_for(config.estimation, config.window.size, config.labels.positive_class):
            state.estimator = estimator
    if "window" in blobs:
        state.window = RingColumns.from_bytes(blobs["window"], config.window.size)
        if version < 3:
            state.window.rename({name: UNSPACED_WINDOW.get(name, FEATURE + name) for name in state.window.columns})
    for version_name, blob in label_blobs.items():
        outcomes.label_windows[version_name] = RingColumns.from_bytes(blob, config.labels.window)
    for name, blob in sample_blobs.items():
        state.reference_sample[name] = np.frombuffer(blob, dtype=np.float64).copy()
    if "segments" in blobs and config.segments:
        state.segments = Segments.from_bytes(blobs["segments"], config.segments, config.labels.window)
    if state.reference is not None:
        _say_what_the_configuration_lacks(state, config)
    if state.reference is not None and state.window is not None and state.window.count:
        state.evaluate_silently()
    return state


def _say_what_the_configuration_lacks(state: ModelState, config: ModelConfig) -> None:
    """Segments and an estimator are built from the reference's rows, which a checkpoint does
    not keep: configured after the reference was taken, they wait for it to be read again."""
    missing = [name for name in config.segments if state.segments is None or name not in state.segments.by]
    lacks = ([f"segments by {', '.join(missing)}"] if missing else []) + \
        (["the performance estimator"] if config.estimation is not None and state.estimator is None else [])
    if lacks:
        log.warning("model %s: %s not built from the reference %s, taken under another configuration; a file or "
                    "MLflow reference is read again at start-up, an uploaded or first-N one must be uploaded again "
                    "(PUT /v1/models/%s/reference)", state.name, " and ".join(lacks), state.reference_source or "",
                    state.name)
