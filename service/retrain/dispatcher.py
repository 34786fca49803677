"""Delivery of triggers: one thread per webhook target, reading due rows from the outbox.

Each attempt sends the request of the target's preset (:mod:`service.retrain.presets`) with
its credentials and Standard Webhooks signature, and retries with exponential backoff and
jitter on timeouts, connection errors, 408, 429 (honouring ``Retry-After``) and 5xx, never
on other 4xx.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Protocol

import httpx

from service import __version__
from service.config import WebhookConfig
from service.retrain.credentials import Credentials, one_line, redacted_excerpt, sent_secrets
from service.retrain.outbox import Outbox
from service.retrain.presets import PRESETS, Prepared
from service.retrain.signing import signature_headers

__all__ = ["Attempt", "Dispatcher", "attempt_delivery", "backoff_delay", "build_request", "retry_after_seconds"]

log = logging.getLogger("driftline.webhooks")

RETRYABLE_STATUS = {408, 429}
OUTBOX_RETRY_SECONDS = 5.0  # pause of a delivery thread after the outbox failed to record an outcome
USER_AGENT = f"driftline/{__version__}"


def build_request(config: WebhookConfig, payload: dict, creds: Credentials, created: float | None = None) -> Prepared:
    """The HTTP request of ``config.preset`` for this trigger, with its credentials, without signature headers.

    ``created`` is the trigger's commit time (Airflow 3's ``logical_date``, to the microsecond)."""
    prepared = PRESETS[config.preset].shape(config, payload, creds.trigger_token, created)
    prepared.headers.update(creds.authorization())
    prepared.headers["User-Agent"] = USER_AGENT
    return prepared


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After``: delta-seconds or an HTTP date -> seconds from now (None if absent/invalid)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


class Uniform(Protocol):
    """Where the jitter comes from: the random module, or a seeded random.Random."""

    def uniform(self, a: float, b: float) -> float: ...


def backoff_delay(config: WebhookConfig, attempt: int, rng: Uniform = random) -> float:
    """Exponential backoff with "equal jitter": half the step fixed, half random."""
    step = min(config.backoff_max, config.backoff_initial * (2 ** max(0, attempt - 1)))
    return step / 2 + rng.uniform(0, step / 2)


@dataclass
class Attempt:
    outcome: str  # delivered | retry | failed
    status: int | None
    error: str | None
    retry_after: float | None = None


def attempt_delivery(client: httpx.Client, config: WebhookConfig, creds: Credentials, payload: dict,
                     attempt: int = 1, created: float | None = None) -> Attempt:
    """One attempt; never raises for network trouble. With ``creds.login`` (Airflow 3) it logs
    in first when it has no token, and once more, resending, when the API answers 401 (the
    token expired)."""
    renewed = False
    if creds.login is not None and creds.token is None:
        failed = _log_in(client, config, creds, creds.login)
        if failed is not None:
            return failed
        renewed = True
    while True:
        prepared = build_request(config, payload, creds, created)
        headers = dict(prepared.headers)
        headers.update(signature_headers(creds.secret, payload["id"], prepared.body))
        try:
            response = client.request(prepared.method, prepared.url, headers=headers, content=prepared.body,
                                      timeout=config.timeout)
        except httpx.TimeoutException as exc:
            return Attempt("retry", None, f"timeout after {config.timeout:g}s ({type(exc).__name__})")
        except httpx.TransportError as exc:
            return Attempt("retry", None, f"connection error: {type(exc).__name__}: "
                                          f"{redacted_excerpt(str(exc), sent_secrets(creds, headers))}")
        if response.status_code == 401 and creds.login is not None and not renewed:
            creds.token = None
            failed = _log_in(client, config, creds, creds.login)
            if failed is not None:
                return failed
            renewed = True
            continue
        break
    status = response.status_code
    if 200 <= status < 300 or (attempt > 1 and status in prepared.also_delivered_on_retry):
        return Attempt("delivered", status, None)
    # Kept in the outbox, shown by GET /v1/triggers and logged: a receiver that echoes the
    # request must not leak its credentials there.
    excerpt = redacted_excerpt(response.text, sent_secrets(creds, headers))
    detail = f"HTTP {status}: {excerpt}{_hint(config, creds, status)}"
    if status in RETRYABLE_STATUS or status >= 500:
        return Attempt("retry", status, detail, retry_after_seconds(response.headers.get("retry-after")))
    return Attempt("failed", status, detail)


def _log_in(client: httpx.Client, config: WebhookConfig, creds: Credentials, login: tuple[str, str]) -> Attempt | None:
    """Airflow 3: ``POST <url>/auth/token`` with the username and password; sets ``creds.token``
    from the answer's ``access_token``. None on success, else the failed or retried attempt."""
    url = f"{config.url.rstrip('/')}/auth/token"
    username, password = login
    try:
        response = client.post(url, json={"username": username, "password": password},
                               headers={"Accept": "application/json", "User-Agent": USER_AGENT},
                               timeout=config.timeout)
    except httpx.TimeoutException as exc:
        return Attempt("retry", None, f"logging in at {url}: timeout after {config.timeout:g}s ({type(exc).__name__})")
    except httpx.TransportError as exc:
        return Attempt("retry", None, f"logging in at {url}: connection error: {type(exc).__name__}: {one_line(exc)}")
    status = response.status_code
    if 200 <= status < 300:
        try:
            token = response.json().get("access_token")
        except (ValueError, AttributeError):
            token = None
        if isinstance(token, str) and token:
            creds.token = token
            return None
        return Attempt("failed", status, f"logging in at {url}: HTTP {status} without an access_token")
    detail = f"logging in at {url}: HTTP {status}: {redacted_excerpt(response.text, sent_secrets(creds, {}))}"
    if status in (401, 403):
        detail += f" (check the credentials in {config.auth.username_env}/{config.auth.password_env})"
    if status in RETRYABLE_STATUS or status >= 500:
        return Attempt("retry", status, detail, retry_after_seconds(response.headers.get("retry-after")))
    return Attempt("failed", status, detail)


def _hint(config: WebhookConfig, creds: Credentials, status: int) -> str:
    """What to change when an Airflow answer says the configuration does not fit the server."""
    if config.preset != "airflow":
        return ""
    if status == 405 and config.airflow_api == "v1":
        return (" (Airflow 3 serves its API under /api/v2 and answers 405 on /api/v1: set airflow_api: v2, "
                "and auth: {username_env, password_env} to log in)")
    if status == 401 and creds.login is None and config.airflow_api == "v2":
        return (" (Airflow 3's tokens expire, after 24 h by default: set auth: {username_env, password_env} "
                "and driftline logs in at /auth/token and renews the token)")
    return ""


class Dispatcher:
    """One delivery thread per target, reading due rows from the outbox."""

    def __init__(self, outbox: Outbox, webhooks: dict[str, WebhookConfig], environ: Mapping[str, str],
                 deliveries=None, pending=None, transport: httpx.BaseTransport | None = None):
        self.outbox = outbox
        self.webhooks = webhooks
        self.credentials = {name: Credentials.from_env(config, environ) for name, config in webhooks.items()}
        self.deliveries = deliveries  # prometheus Counter(target, outcome)
        self.pending = pending  # prometheus Gauge(target)
        self.transport = transport
        self._stop = threading.Event()
        self._wake = {name: threading.Event() for name in webhooks}
        self._threads: list[threading.Thread] = []
        self.last_errors: dict[str, str] = {}
        for name, creds in self.credentials.items():
            for variable in creds.missing:
                log.warning("webhook %s: environment variable %s is not set%s", name, variable,
                            " (requests go unsigned)" if variable == webhooks[name].secret_env else "")
            if creds.plain_secret:
                log.warning("webhook %s: the secret in %s is not of the form whsec_<base64>; receivers that verify "
                            "with the Standard Webhooks libraries base64-decode the secret and will reject these "
                            "signatures (make one with: echo whsec_$(openssl rand -base64 32))",
                            name, webhooks[name].secret_env)
        for name in webhooks:
            if self.deliveries is not None:
                for outcome in ("delivered", "retried", "failed"):
                    self.deliveries.labels(target=name, outcome=outcome)
        self.refresh_pending()

    def start(self) -> None:
        self._stop.clear()
        for name in self.webhooks:
            thread = threading.Thread(target=self._run, args=(name,), name=f"webhook-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for event in self._wake.values():
            event.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    def wake(self, target: str) -> None:
        event = self._wake.get(target)
        if event is not None:
            event.set()
        self.refresh_pending()

    def refresh_pending(self) -> None:
        if self.pending is None:
            return
        counts = self.outbox.pending_counts()
        for name in self.webhooks:
            self.pending.labels(target=name).set(counts.get(name, 0))

    def _count(self, target: str, outcome: str) -> None:
        if self.deliveries is not None:
            self.deliveries.labels(target=target, outcome=outcome).inc()

    def _run(self, target: str) -> None:
        config = self.webhooks[target]
        wake = self._wake[target]
        with httpx.Client(transport=self.transport, follow_redirects=False, timeout=config.timeout) as client:
            while not self._stop.is_set():
                try:
                    row, due = self.outbox.next_due(target)
                except sqlite3.Error:
                    log.exception("webhook %s: outbox read failed", target)
                    row, due = None, time.time() + 1
                if row is None:
                    wait = 1.0 if due is None else min(1.0, max(0.0, due - time.time()))
                    wake.wait(wait)
                    wake.clear()
                    continue
                try:
                    try:
                        self._deliver(client, target, config, row)
                    except sqlite3.Error:
                        raise
                    except Exception as exc:  # a bug must not kill the thread and strand the outbox
                        log.exception("webhook %s: delivering %s failed unexpectedly", target, row["id"])
                        self.outbox.record(row["id"], "failed", row["attempts"] + 1, None,
                                           f"internal error: {type(exc).__name__}", None)
                        self._count(target, "failed")
                        self.refresh_pending()
                except sqlite3.Error as exc:
                    # The outbox cannot record the outcome (disk full): the row stays as it was and
                    # is attempted again (same id, receivers deduplicate) once the outbox writes.
                    log.error("webhook %s: recording trigger %s failed (%s); retrying in %.0fs", target, row["id"],
                              exc, OUTBOX_RETRY_SECONDS)
                    self._stop.wait(OUTBOX_RETRY_SECONDS)

    def _deliver(self, client: httpx.Client, target: str, config: WebhookConfig, row: sqlite3.Row) -> None:
        payload = json.loads(row["payload"])
        attempts = row["attempts"] + 1
        result = attempt_delivery(client, config, self.credentials[target], payload, attempts, row["created"])
        if result.outcome == "delivered":
            self.outbox.record(row["id"], "delivered", attempts, result.status, None, None)
            self._count(target, "delivered")
            self.last_errors.pop(target, None)
            log.info("webhook %s: trigger %s (%s, %s) delivered, HTTP %s, attempt %d", target, row["id"],
                     row["model"], row["reason"], result.status, attempts)
        elif result.outcome == "retry" and attempts < config.max_attempts:
            delay = result.retry_after if result.retry_after is not None else backoff_delay(config, attempts)
            self.outbox.record(row["id"], "pending", attempts, result.status, result.error, time.time() + delay)
            self._count(target, "retried")
            self.last_errors[target] = result.error or ""
            log.warning("webhook %s: trigger %s attempt %d failed (%s); retrying in %.1fs", target, row["id"],
                        attempts, result.error, delay)
        else:
            self.outbox.record(row["id"], "failed", attempts, result.status, result.error, None)
            self._count(target, "failed")
            self.last_errors[target] = result.error or ""
            log.error("webhook %s: trigger %s not delivered after %d attempt(s): %s", target, row["id"], attempts,
                      result.error)
        self.refresh_pending()
