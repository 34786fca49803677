"""Retraining policies: when drift or a performance drop persists, start the pipeline once.

:class:`TriggerManager` is the runtime component that

* listens to every :class:`~service.core.model_state.Evaluation` of the engine (on the ingest
  thread: it only updates counters in memory and commits a row to the SQLite outbox; no
  network I/O happens there),
* applies each model's ``triggers`` policy: the signals that count (``data_drift``,
  ``prediction_drift``, ``performance_drop`` with at least ``min_labels`` labels,
  ``concept_drift``, ``data_quality`` past a ``quality`` threshold, ``estimated_performance_drop``
  with a metric estimated below its lower threshold), how many evaluations in
  a row they must be on, and the cooldown,
* raises manual (``POST /v1/models/{model}/retrain``) and Alertmanager (``alert``) triggers,
* hands every trigger to the webhook :class:`~service.retrain.dispatcher.Dispatcher`, to the
  ``sinks`` (the Kafka trigger topic), and to MLflow for the evidence run.

Reasons are those of CONTRACT §2: the signals of ``service.config.AUTOMATIC_REASONS``, alert
and manual; each raised trigger counts once in
``driftline_retrain_triggers_total{model,reason}``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from service import extras
from service.config import AUTOMATIC_REASONS, PerformanceRule, QualityConfig, Settings, TriggersConfig
from service.core.engine import Engine
from service.core.model_state import Evaluation
from service.observability.metrics import Metrics
from service.retrain.alerts import Ignored, SeenAlerts, read_alerts
from service.retrain.dispatcher import Dispatcher
from service.retrain.evidence import EvidenceRuns, Frames, trigger_payload
from service.retrain.outbox import Outbox

log = logging.getLogger("driftline.triggers")

REASONS = (*AUTOMATIC_REASONS, "alert", "manual")
ERROR_METRICS = {"mae", "rmse"}  # higher is worse
OUTBOX_REOPEN_SECONDS = 5.0
MAX_QUALITY_EVIDENCE = 20  # data-quality breaches a payload lists, the largest first


@dataclass
class Outcome:
    """What happened to a request for a trigger."""

    trigger: dict | None  # the payload, when raised
    target: str | None = None
    suppressed: str | None = None  # why not raised
    unavailable: bool = False  # not raised because the state store cannot write: worth a retry

    def to_dict(self) -> dict:
        if self.trigger is None:
            return {"triggered": False, "reason_suppressed": self.suppressed}
        return {"triggered": True, "id": self.trigger["id"], "model": self.trigger["model"],
                "reason": self.trigger["reason"], "target": self.target,
                "state": "pending" if self.target else "not_sent"}


def performance_signal(rule: PerformanceRule, performance: dict[str, float], labels: int) -> tuple[bool, float | None]:
    """(drop?, value) for a performance rule; no verdict below ``min_labels`` labels."""
    value = performance.get(rule.metric)
    if value is None or labels < rule.min_labels or value != value:  # NaN: no verdict
        return False, value
    return (value > rule.threshold if rule.metric in ERROR_METRICS else value < rule.threshold), value


def segment_signals(policy: TriggersConfig, evaluation: Evaluation) -> dict[tuple[str, str, str], tuple[bool, dict]]:
    """``data_drift`` and ``performance_drop`` within each segment (models.<m>.segments):
    (reason, segment_by, segment) -> (on?, evidence of the segment)."""
    signals: dict[tuple[str, str, str], tuple[bool, dict]] = {}
    if evaluation.segment_drift and "data_drift" in policy.on:
        for segment_by, results in evaluation.segment_drift.items():
            for segment, result in results.items():
                report = result.report
                if report is None:  # no rows of the segment in this window: its run of windows breaks
                    signals[("data_drift", segment_by, segment)] = (False, {"samples": result.samples})
                else:
                    signals[("data_drift", segment_by, segment)] = (report.dataset_drift, {
                        "drift_share": report.drift_share, "samples": result.samples,
                        "drifted_features": sorted(n for n, f in report.features.items() if f.drift)})
    if evaluation.segment_performance and "performance_drop" in policy.on:
        rule = policy.performance
        for segment_by, found in evaluation.segment_performance.items():
            for segment, (figures, labels) in found.items():
                on, value = performance_signal(rule, figures, labels)
                signals[("performance_drop", segment_by, segment)] = (on, {
                    "performance": figures, "labels": labels,
                    "performance_rule": {"metric": rule.metric, "threshold": rule.threshold,
                                         "min_labels": rule.min_labels, "value": value}})
    return signals


def quality_breaches(rule: QualityConfig, evaluation: Evaluation) -> list[tuple[str, str, float]]:
    """The window's data-quality figures above the model's ``quality`` thresholds."""
    if evaluation.quality is None:
        return []
    return evaluation.quality.breaches(**rule.thresholds())


class TriggerManager:
    """The ``triggers`` component: policies, outbox, dispatcher, sinks, MLflow evidence."""

    name = "triggers"

    def __init__(self, settings: Settings, engine: Engine, metrics: Metrics, environ: Mapping[str, str],
                 clock: Callable[[], float] = time.time):
        self.settings = settings
        self.engine = engine
        self.metrics = metrics
        self.environ = environ  # webhook secrets, MLFLOW_TRACKING_URI
        self.clock = clock
        # Extra consumers of every trigger payload (the Kafka trigger topic); called on a background thread.
        self.sinks: list[Callable[[dict], None]] = []
        self.outbox: Outbox | None = None
        self.outbox_error: str | None = None  # why the outbox could not be opened
        self.dispatcher: Dispatcher | None = None
        self._lock = threading.Lock()
        self._raising = threading.Lock()
        # model -> reason (or, within a segment, (reason, segment_by, segment)) -> evaluations in a row
        self._streaks: dict[str, dict[str | tuple[str, str, str], int]] = defaultdict(dict)
        self._last_trigger: dict[str, float] = {}
        self._suppression_logged: dict[str, float] = {}  # model -> the trigger whose cooldown was logged
        self._alerts_seen = SeenAlerts(self.settings.alertmanager.dedup_size)
        self._added = 0
        self._after = threading.Event()
        self._stop = threading.Event()
        self._after_thread: threading.Thread | None = None
        self.mlflow = None
        tracking_uri = self.settings.mlflow.tracking_uri or self.environ.get("MLFLOW_TRACKING_URI")
        if tracking_uri and self.settings.mlflow.log_evidence:
            extras.require("mlflow", "MLflow evidence logging (mlflow.tracking_uri, mlflow.log_evidence)")
            from service.integrations.mlflow import EvidenceLogger  # noqa: PLC0415 - mlflow is imported lazily

            self.mlflow = EvidenceLogger(tracking_uri, self.settings.mlflow)
        self.evidence = EvidenceRuns(self.mlflow)

    # -- component ----------------------------------------------------------------------

    def start(self) -> None:
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        self._stop.clear()
        self._open_outbox()
        self._after_thread = threading.Thread(target=self._aftercare, name="trigger-aftercare", daemon=True)
        self._after_thread.start()

    def _open_outbox(self) -> bool:
        """Open the outbox and start delivering; False (retried by the aftercare thread) when it
        cannot be opened, as on a full disk, where SQLite cannot even create its shared memory."""
        path = self.settings.state_dir / "triggers.sqlite"
        outbox = None
        try:
            outbox = Outbox(path, self.metrics)
            try:
                outbox.prune()
                orphaned = outbox.orphans(self.settings.webhooks)
                if orphaned:
                    log.warning("%d pending trigger(s) of webhooks no longer configured marked failed", orphaned)
            except sqlite3.Error as exc:  # a full disk: start anyway, /readyz tells
                log.error("tidying the trigger outbox at start failed: %s", exc)
            self._last_trigger.update(outbox.last_trigger_times())
            dispatcher = Dispatcher(outbox, self.settings.webhooks, self.environ,
                                    self.metrics.webhook_deliveries, self.metrics.webhook_pending)
        except sqlite3.Error as exc:
            if outbox is not None:
                outbox.close()
            self.metrics.state_write_failures.labels(store="outbox").inc()
            if self.outbox_error is None:
                log.error("the trigger outbox %s cannot be opened (%s); triggers are refused until it can, "
                          "tried again every %gs", path, exc, OUTBOX_REOPEN_SECONDS)
            self.outbox_error = str(exc)
            return False
        self.dispatcher = dispatcher
        dispatcher.start()
        if self.outbox_error is not None:
            log.warning("the trigger outbox %s is open", path)
        self.outbox, self.outbox_error = outbox, None
        return True

    def stop(self) -> None:
        self._stop.set()
        self._after.set()
        if self._after_thread is not None:  # first: it may be opening the outbox and its dispatcher
            self._after_thread.join(10)
        if self.dispatcher is not None:
            self.dispatcher.stop()
        if self.outbox is not None:
            self.outbox.close()
            self.outbox = None

    def ready(self) -> tuple[bool, str]:
        outbox = self.outbox
        if outbox is None:
            return False, "outbox not open" if self.outbox_error is None \
                else f"the trigger outbox cannot be opened: {self.outbox_error}"
        return outbox.writable()

    # -- policies -----------------------------------------------------------------------

    def policy(self, model: str) -> TriggersConfig:
        return self.settings.model(model).triggers

    def target(self, model: str) -> str | None:
        hook = self.policy(model).webhook
        if hook is None and len(self.settings.webhooks) == 1:
            return next(iter(self.settings.webhooks))
        return hook

    def on_evaluation(self, evaluation: Evaluation) -> None:
        """Engine listener: update the streaks, raise at most one trigger."""
        policy = self.policy(evaluation.model)
        if not policy.on:
            return
        signals: dict[str, bool] = {}
        if evaluation.kind == "window":
            if "data_drift" in policy.on:
                signals["data_drift"] = bool(evaluation.drift is not None and evaluation.drift.dataset_drift)
            if "prediction_drift" in policy.on:
                drifted = evaluation.prediction_drift
                signals["prediction_drift"] = bool(drifted is not None and drifted.drift)
            if "data_quality" in policy.on:
                signals["data_quality"] = bool(quality_breaches(self.settings.model(evaluation.model).quality,
                                                                evaluation))
            if "estimated_performance_drop" in policy.on:
                signals["estimated_performance_drop"] = bool(evaluation.estimated is not None
                                                             and evaluation.estimated.drops())
        elif evaluation.kind == "labels":
            if "performance_drop" in policy.on:
                signals["performance_drop"], _ = performance_signal(
                    policy.performance, evaluation.performance, evaluation.labels_in_window)
        scoped = segment_signals(policy, evaluation)
        fire: str | None = None
        segment: tuple[str, str, str] | None = None
        with self._lock:
            streaks = self._streaks[evaluation.model]
            for reason, on in signals.items():
                streaks[reason] = streaks.get(reason, 0) + 1 if on else 0
            for key, (on, _) in scoped.items():
                streaks[key] = streaks.get(key, 0) + 1 if on else 0
            if "concept_drift" in policy.on and evaluation.concept_drifts:
                fire = "concept_drift"
            else:
                for reason in policy.on:
                    if streaks.get(reason, 0) >= policy.consecutive_windows:
                        fire = reason
                        break
                else:  # the whole model's signals first; then one segment's, the longest run
                    held = [key for key in scoped if streaks.get(key, 0) >= policy.consecutive_windows]
                    if held:
                        segment = max(held, key=lambda key: streaks[key])
                        fire = segment[0]
            streak = streaks.get(segment or fire, 1) if fire else 0
        if fire is not None:
            extra: dict[str, Any] = {"consecutive_windows": streak}
            if segment is not None:
                extra["segment"] = scoped[segment][1]
                if fire == "performance_drop":
                    extra["performance_rule"] = extra["segment"].pop("performance_rule")
                self.raise_trigger(evaluation.model, fire, extra=extra, model_version=evaluation.model_version,
                                   evaluation=evaluation, segment={"segment_by": segment[1], "segment": segment[2]})
                return
            if fire == "concept_drift":
                extra["concept_detectors"] = list(evaluation.concept_drifts)
            if fire == "data_quality":
                breaches = quality_breaches(self.settings.model(evaluation.model).quality, evaluation)
                worst = sorted(breaches, key=lambda breach: -breach[2])[:MAX_QUALITY_EVIDENCE]
                extra["quality_breaches"] = len(breaches)
                extra["quality"] = [{"feature": feature, "check": check, "value": value}
                                    for feature, check, value in worst]
            # The signal is on only for an evaluation with an estimate that dropped.
            if fire == "estimated_performance_drop" and evaluation.estimated is not None:
                extra["estimated_performance"] = evaluation.estimated.to_dict()
                extra["estimated_drops"] = sorted(evaluation.estimated.drops())
            self.raise_trigger(evaluation.model, fire, extra=extra, model_version=evaluation.model_version,
                               evaluation=evaluation)

    def raise_trigger(self, model: str, reason: str, *, extra: dict | None = None, model_version: str | None = None,
                      evaluation: Evaluation | None = None, bypass_cooldown: bool = False,
                      segment: dict[str, str] | None = None) -> Outcome:
        """Build the payload, honour the cooldown, commit to the outbox, count, wake the dispatcher.

        The cooldown starts, and the streaks restart, only once the outbox holds the trigger: a
        trigger the outbox could not take (disk full) is not raised, and the next evaluation
        that calls for it raises it again."""
        if reason not in REASONS:
            raise ValueError(f"{reason!r} is not a trigger reason ({', '.join(REASONS)})")
        outbox = self.outbox
        if outbox is None:
            if self.outbox_error is not None:
                return Outcome(None, suppressed=f"the trigger outbox cannot be opened: {self.outbox_error}",
                               unavailable=True)
            return Outcome(None, suppressed="driftline is not started")
        policy = self.policy(model)
        # One trigger at a time from the cooldown check to the commit, so two evaluations of a
        # model cannot both pass the check.
        with self._raising:
            now = self.clock()
            with self._lock:
                last = self._last_trigger.get(model)
            if not bypass_cooldown and last is not None and now - last < policy.cooldown:
                remaining = policy.cooldown - (now - last)
                # Once per cooldown: a signal that stays on would otherwise log every window.
                if self._suppression_logged.get(model) != last:
                    self._suppression_logged[model] = last
                    log.info("model %s: %s trigger suppressed by the cooldown for %.0fs more (logged once "
                             "per cooldown)", model, reason, remaining)
                return Outcome(None, suppressed=f"cooldown: {remaining:.0f}s left of {policy.cooldown:g}s")
            payload, evidence, frames = self._build(model, reason, now, extra or {}, model_version, evaluation)
            if segment is not None:  # a signal that held within one segment (CONTRACT §4, optional key)
                payload["segment"] = segment
            target = self.target(model)
            try:
                outbox.add(payload, target, evidence if self.mlflow is not None else None, now)
            except sqlite3.Error as exc:
                log.error("model %s: %s trigger not raised, the outbox cannot write: %s", model, reason, exc)
                return Outcome(None, suppressed=f"the trigger outbox cannot write: {exc}", unavailable=True)
            with self._lock:
                self._last_trigger[model] = now
                self._streaks[model] = {}
            if frames is not None:
                self.evidence.keep_frames(payload["id"], frames)
        self._added += 1
        if self._added % 100 == 0:
            try:
                outbox.prune()
            except sqlite3.Error as exc:
                log.warning("pruning the trigger outbox failed: %s", exc)
        self.metrics.retrain_triggers.labels(model=model, reason=reason).inc()
        log.info("model %s: retraining trigger %s (%s) -> %s", model, payload["id"], reason, target or "no webhook")
        if target is not None and self.dispatcher is not None:
            self.dispatcher.wake(target)
        self._after.set()
        return Outcome(payload, target)

    def _build(self, model: str, reason: str, now: float, extra: dict, model_version: str | None,
               evaluation: Evaluation | None) -> tuple[dict, dict, Frames | None]:
        """The §4 payload, the evidence for MLflow, and the frames for the Evidently report."""
        return trigger_payload(self.engine, self.policy(model), model, reason, now, extra, model_version, evaluation,
                               with_frames=self.mlflow is not None)

    # -- manual and alerts --------------------------------------------------------------

    def manual(self, model: str, note: str | None = None, model_version: str | None = None) -> Outcome:
        extra = {"note": note} if note else {}
        return self.raise_trigger(model, "manual", extra=extra, model_version=model_version, bypass_cooldown=True)

    def alertmanager(self, body: dict) -> dict:
        """An Alertmanager webhook (payload version 4, its shape checked by the route) -> triggers
        for firing, labelled alerts of valid model names within ``limits.max_models``;
        ``unavailable`` is true when the outbox could not take one (it is then no duplicate
        when Alertmanager sends it again)."""
        triggered, ignored, unavailable = [], [], False
        for alert in read_alerts(body, self.settings.alertmanager, self.engine.admit, self.settings.limits.max_models):
            if isinstance(alert, Ignored):
                ignored.append(alert.to_dict())
                continue
            if alert.key is not None and not self._alerts_seen.add(alert.key):
                ignored.append(alert.ignored("duplicate").to_dict())
                continue
            outcome = self.raise_trigger(alert.model, "alert", extra={"alert": alert.evidence},
                                         model_version=alert.model_version)
            if outcome.unavailable:
                unavailable = True
                if alert.key is not None:  # not a duplicate when Alertmanager sends it again
                    self._alerts_seen.forget(alert.key)
            if outcome.trigger is None:
                ignored.append(alert.ignored(outcome.suppressed).to_dict())
            else:
                triggered.append(outcome.to_dict())
        return {"triggered": triggered, "ignored": ignored, "unavailable": unavailable}

    # -- views --------------------------------------------------------------------------

    def recent(self, limit: int = 50, model: str | None = None) -> list[dict]:
        return [] if self.outbox is None else self.outbox.recent(limit, model)

    # -- aftercare: sinks and MLflow, off the ingest thread -----------------------------

    def _aftercare(self) -> None:
        sink_failures, sink_retry_at = 0, 0.0
        reopen_at = time.monotonic() + OUTBOX_REOPEN_SECONDS
        while not self._stop.is_set():
            self._after.wait(1.0)
            self._after.clear()
            outbox = self.outbox
            if outbox is None:
                if self.outbox_error is not None and time.monotonic() >= reopen_at and not self._stop.is_set():
                    reopen_at = time.monotonic() + OUTBOX_REOPEN_SECONDS
                    self._open_outbox()
                continue
            try:
                if time.monotonic() >= sink_retry_at:
                    for row in outbox.unpublished():
                        payload = _loads(row["payload"])
                        try:
                            for sink in list(self.sinks):
                                sink(payload)
                        except Exception:
                            # At-least-once: the row stays unpublished and every sink sees it again later.
                            sink_failures += 1
                            delay = min(60.0, 2.0 ** sink_failures)
                            sink_retry_at = time.monotonic() + delay
                            log.exception("trigger sink failed on %s; retrying in %.0fs", row["id"], delay)
                            break
                        sink_failures = 0
                        outbox.mark_published(row["id"])
                self.evidence.log_due(outbox, self._stop)
            except Exception:  # the loop must survive anything (closed outbox at shutdown, ...)
                if not self._stop.is_set():
                    log.exception("trigger aftercare failed")


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)
