"""The retraining payload of CONTRACT §4, sent as is by the ``generic`` preset and carried
inside the request of every other preset."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["EVENT_TYPE", "now_payload", "rfc3339"]

EVENT_TYPE = "driftline.retrain.requested"


def rfc3339(seconds: float | None, precise: bool = False) -> str | None:
    if seconds is None:
        return None
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    if precise:
        return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def now_payload(model: str, model_version: str | None, reason: str, trigger_id: str, now: float,
                window: dict | None, evidence: dict, reference_source: str | None) -> dict:
    """The CONTRACT §4 payload."""
    return {
        "id": trigger_id, "type": EVENT_TYPE, "model": model, "model_version": model_version or "unknown",
        "reason": reason, "triggered_at": rfc3339(now),
        "window": window or {"start": None, "end": None, "samples": 0},
        "evidence": evidence, "reference": {"source": reference_source},
    }

