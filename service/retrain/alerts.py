"""Alertmanager's webhook (payload version 4) read as requests for ``alert`` triggers.

:func:`read_alerts` goes through a notification's alerts in order and says of each whether
it asks for a retraining trigger (:class:`AlertRequest`) or why not (:class:`Ignored`);
:class:`SeenAlerts` remembers the alerts already taken, so that each alert (fingerprint and
``startsAt``) starts one trigger however often Alertmanager repeats it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from service.config import AlertmanagerConfig
from service.core.events import MAX_VERSION_CHARS, MODEL_NAME

__all__ = ["AlertRequest", "Ignored", "SeenAlerts", "read_alerts"]


@dataclass
class Ignored:
    """An alert that starts no trigger, and why."""

    fingerprint: str
    alertname: str | None
    why: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "alertname": self.alertname, "why": self.why}


@dataclass
class AlertRequest:
    """A firing alert, labelled for retraining, of a model driftline can track."""

    model: str
    model_version: str | None
    key: str | None  # fingerprint|startsAt, what deduplication remembers; None without a fingerprint
    fingerprint: str
    alertname: str | None
    evidence: dict[str, Any]  # the payload's evidence.alert

    def ignored(self, why: str | None) -> Ignored:
        return Ignored(self.fingerprint, self.alertname, why)


def read_alerts(body: dict, config: AlertmanagerConfig, admit: Callable[[str], bool],
                max_models: int) -> Iterator[AlertRequest | Ignored]:
    """Each alert of ``body`` (its shape checked by the route), in order: a request for a trigger
    when it is firing, carries ``<action_label>=<action_value>`` and a valid model name in
    ``<model_label>`` that ``admit`` takes (within ``limits.max_models``); else why not."""
    for alert in body.get("alerts") or []:
        if not isinstance(alert, dict):
            continue
        labels = alert.get("labels") or {}
        fingerprint = str(alert.get("fingerprint") or "")
        name = labels.get("alertname")
        model = labels.get(config.model_label)
        version = labels.get("model_version")
        if alert.get("status", body.get("status")) != "firing":
            yield Ignored(fingerprint, name, "resolved")
        elif labels.get(config.action_label) != config.action_value:
            yield Ignored(fingerprint, name, f"no {config.action_label}={config.action_value} label")
        elif not model:
            yield Ignored(fingerprint, name, f"no {config.model_label} label")
        elif not MODEL_NAME.fullmatch(model):
            yield Ignored(fingerprint, name,
                          f"{config.model_label} label is not a model name ([A-Za-z0-9_.:-]{{1,128}})")
        elif version is not None and len(version) > MAX_VERSION_CHARS:
            yield Ignored(fingerprint, name, f"model_version label is longer than {MAX_VERSION_CHARS} characters")
        elif not admit(model):
            yield Ignored(fingerprint, name, f"limits.max_models={max_models} models are tracked already")
        else:
            evidence = {"alertname": name, "fingerprint": fingerprint, "startsAt": alert.get("startsAt"),
                        "labels": labels, "annotations": alert.get("annotations") or {},
                        "generatorURL": alert.get("generatorURL")}
            key = f"{fingerprint}|{alert.get('startsAt', '')}" if fingerprint else None
            yield AlertRequest(model, version, key, fingerprint, name, evidence)


class SeenAlerts:
    """The keys of the last ``size`` alerts taken, oldest forgotten first; thread-safe."""

    def __init__(self, size: int):
        self.size = size
        self._keys: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: str) -> bool:
        """Remember ``key``; False (and it counts as recent again) if it was remembered already."""
        with self._lock:
            if key in self._keys:
                self._keys.move_to_end(key)
                return False
            self._keys[key] = None
            while len(self._keys) > self.size:
                self._keys.popitem(last=False)
            return True

    def forget(self, key: str) -> None:
        with self._lock:
            self._keys.pop(key, None)
