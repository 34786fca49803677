"""What a trigger carries: the CONTRACT §4 payload and its evidence, read off the engine, and
the MLflow run the evidence is logged to.

:func:`trigger_payload` is the one place where retraining reads a model's state: its drift
report, performance, label window and window span, under the engine's lock.
:class:`EvidenceRuns` logs each trigger's evidence to MLflow off the ingest thread, with the
window frames for the Evidently report kept in memory until then.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from typing import TYPE_CHECKING, Any, Protocol

from service.config import TriggersConfig
from service.core.engine import Engine
from service.core.model_state import TIMESTAMP_COLUMN, Evaluation, ModelState
from service.retrain.outbox import Outbox
from service.retrain.payload import now_payload, rfc3339

if TYPE_CHECKING:  # pandas arrives with the frames, read off the model state; not imported at start-up
    import pandas as pd

__all__ = ["EvidenceRuns", "Frames", "trigger_payload"]

log = logging.getLogger("driftline.triggers")

Frames = tuple["pd.DataFrame", "pd.DataFrame"]  # (reference, current window) for the Evidently report
MAX_FRAMES = 20  # window snapshots kept for Evidently reports not yet logged to MLflow
EVIDENCE_ATTEMPTS = 5


class RunLogger(Protocol):
    """:class:`service.integrations.mlflow.EvidenceLogger`, imported only when MLflow is configured."""

    def log(self, payload: dict, drift: dict | None, frames: Frames | None) -> str: ...


def trigger_payload(engine: Engine, policy: TriggersConfig, model: str, reason: str, now: float, extra: dict,
                    model_version: str | None, evaluation: Evaluation | None,
                    with_frames: bool = False) -> tuple[dict, dict, Frames | None]:
    """The §4 payload, the evidence kept for MLflow (payload and full drift report), and with
    ``with_frames`` the reference and window for the Evidently report (None when the model has
    no reference or window yet, or they cannot be read). ``evaluation``: the window evaluation
    that fired, else (manual and alert triggers) the model's latest state."""
    def read(state: ModelState | None) -> tuple:
        """What the payload needs of the model, read under the engine's lock (``Engine.view``)."""
        frames = None
        report = evaluation.drift if evaluation is not None else (state.report if state else None)
        drifted = evaluation.prediction_drift if evaluation is not None else (state.prediction_drift if state else None)
        version = model_version or (state.last_version if state else None)
        if evaluation is not None:
            performance = dict(evaluation.performance)
            labels = evaluation.labels_in_window
            window = {"start": rfc3339(evaluation.window_start), "end": rfc3339(evaluation.window_end),
                      "samples": evaluation.samples}
        else:
            performance = dict(state.performance.get(version, {})) if state and version is not None else {}
            ring = state.label_windows.get(version) if state and version is not None else None
            labels = ring.count if ring else 0
            window = {"start": None, "end": None, "samples": state.window_samples if state else 0}
        if state is not None and window["start"] is None and state.window is not None and state.window.count:
            stamps = state.window.column(TIMESTAMP_COLUMN)
            window["start"], window["end"] = rfc3339(float(stamps.min())), rfc3339(float(stamps.max()))
        source = state.reference_source if state else None
        if (with_frames and state is not None and state.reference is not None
                and state.window_samples > 0):
            try:
                frames = (state.reference_frame(), state.current_frame())
            except Exception:  # the report is a bonus; the trigger must not fail for it
                log.exception("model %s: could not snapshot frames for the report", model)
        return report, drifted, version, performance, labels, window, source, frames

    found = engine.view(model, read)
    report, drifted, version, performance, labels, window, source, frames = \
        found if found is not None else read(None)
    evidence: dict[str, Any] = {
        "drift_share": None if report is None else report.drift_share,
        "dataset_drift": None if report is None else report.dataset_drift,
        "drifted_features": [] if report is None else sorted(n for n, f in report.features.items() if f.drift),
        "performance": performance, "labels_in_window": labels,
    }
    if drifted is not None:
        evidence["prediction_drift"] = {"method": drifted.method, "score": drifted.score, "drift": drifted.drift}
    if reason == "performance_drop":
        rule = policy.performance
        evidence["performance_rule"] = {"metric": rule.metric, "threshold": rule.threshold,
                                        "min_labels": rule.min_labels, "value": performance.get(rule.metric)}
    evidence.update(extra)
    payload = now_payload(model, version, reason, str(uuid.uuid4()), now, window, evidence, source)
    full = {"payload": payload, "drift": report.to_dict() if report is not None else None}
    return payload, full, frames


class EvidenceRuns:
    """Each trigger's evidence as an MLflow run, attempted up to ``EVIDENCE_ATTEMPTS`` times;
    with no ``logger`` (MLflow not configured) every trigger's evidence is marked skipped."""

    def __init__(self, logger: RunLogger | None):
        self.logger = logger
        self._frames: dict[str, Frames] = {}  # trigger id -> frames for its report
        self._failures: dict[str, int] = {}
        self._lock = threading.Lock()

    def keep_frames(self, trigger_id: str, frames: Frames) -> None:
        with self._lock:
            self._frames[trigger_id] = frames
            while len(self._frames) > MAX_FRAMES:  # MLflow down for long: older runs go without the report
                self._frames.pop(next(iter(self._frames)))

    def log_due(self, outbox: Outbox, stop: threading.Event) -> None:
        """Log the evidence the outbox has pending; a failed attempt waits (on ``stop``) before the next."""
        for row in outbox.evidence_due():
            if stop.is_set():
                break
            self._log(outbox, row, stop)

    def _log(self, outbox: Outbox, row, stop: threading.Event) -> None:
        trigger_id = row["id"]
        if self.logger is None:
            outbox.mark_evidence(trigger_id, "skipped", None)
            return
        evidence = _loads(row["evidence"]) or {}
        with self._lock:
            frames = self._frames.get(trigger_id)
        try:
            run_id = self.logger.log(evidence.get("payload") or _loads(row["payload"]), evidence.get("drift"), frames)
        except Exception as exc:
            failures = self._failures[trigger_id] = self._failures.get(trigger_id, 0) + 1
            if failures >= EVIDENCE_ATTEMPTS:
                log.error("MLflow: evidence of trigger %s not logged: %s", trigger_id, exc)
                outbox.mark_evidence(trigger_id, "failed", None)
                self._forget(trigger_id)
            else:
                log.warning("MLflow: logging evidence of trigger %s failed (%s); will retry", trigger_id, exc)
                stop.wait(2.0 * failures)
            return
        outbox.mark_evidence(trigger_id, "logged", run_id)
        self._forget(trigger_id)

    def _forget(self, trigger_id: str) -> None:
        with self._lock:
            self._frames.pop(trigger_id, None)
        self._failures.pop(trigger_id, None)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)
