"""Retraining webhooks (CONTRACT §4): payload, Standard Webhooks signing, presets, outbox, dispatcher.

* :func:`sign` / :func:`signature_headers` implement the Standard Webhooks scheme:
  ``webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``. A secret
  written ``whsec_<base64>`` is base64-decoded (the spec's format); any other string is
  used as its UTF-8 bytes.
* :func:`build_request` shapes the request of each preset for the real API it targets
  (Airflow, GitHub, GitLab, Jenkins, Kubeflow, Argo, or the payload as is); every preset
  carries the signature headers and its own auth.
* :class:`Outbox` is a SQLite table in the state directory: a trigger is committed there
  before any attempt, so a crash or restart never drops it, and its ``id`` is the same on
  every attempt (receivers deduplicate on ``webhook-id``).
* :class:`Dispatcher` runs one thread per target that delivers due rows, retrying with
  exponential backoff and jitter on timeouts, connection errors, 408, 429 (honouring
  ``Retry-After``) and 5xx, never on other 4xx.

Secrets (signing secrets, tokens, passwords) are read from the environment at start and
never logged, stored in the outbox or exported as metrics.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import json
import logging
import random
import re
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import quote, quote_plus, urlencode

import httpx

from service import __version__
from service.config import WebhookConfig
from service.state_files import is_sqlite_corruption, move_aside

log = logging.getLogger("driftline.webhooks")

EVENT_TYPE = "driftline.retrain.requested"
RETRYABLE_STATUS = {408, 429}
OUTBOX_RETRY_SECONDS = 5.0  # pause of a delivery thread after the outbox failed to record an outcome
KEEP_FINISHED = 2000  # delivered/failed/unsent rows kept for GET /v1/triggers
USER_AGENT = f"driftline/{__version__}"
# Inputs/parameters the presets pass besides the full payload (see docs/triggers.md).
PARAMETERS = ("driftline_id", "model", "model_version", "reason", "payload")


# -- payload and signing ------------------------------------------------------------------


def rfc3339(seconds: float | None, precise: bool = False) -> str | None:
    if seconds is None:
        return None
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    if precise:
        return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def secret_bytes(secret: str) -> bytes:
    """``whsec_<base64>`` -> the decoded key (Standard Webhooks); anything else -> its UTF-8 bytes."""
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[len("whsec_"):], validate=True)
        except ValueError:
            raise ValueError("a whsec_ secret must be base64 after the prefix") from None
    return secret.encode()


def sign(secret: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``."""
    mac = hmac.new(secret, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify(secret: bytes, headers: dict[str, str], body: bytes, tolerance: float = 300.0) -> bool:
    """Check a signed request as a receiver would (used by tests and the demo receiver)."""
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id, stamp, signatures = lower.get("webhook-id"), lower.get("webhook-timestamp"), lower.get("webhook-signature")
    if not (msg_id and stamp and signatures and stamp.isdigit()):
        return False
    if abs(time.time() - int(stamp)) > tolerance:
        return False
    expected = sign(secret, msg_id, int(stamp), body)
    return any(hmac.compare_digest(expected, candidate) for candidate in signatures.split())


def signature_headers(secret: bytes | None, msg_id: str, body: bytes, now: float | None = None) -> dict[str, str]:
    timestamp = int(time.time() if now is None else now)
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp)}
    if secret is not None:
        headers["webhook-signature"] = sign(secret, msg_id, timestamp, body)
    return headers


# -- presets ----------------------------------------------------------------------------


@dataclass
class Prepared:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    # Statuses that mean "already done" on a retry (Airflow: 409 for the dag_run_id of our earlier attempt).
    also_delivered_on_retry: frozenset[int] = frozenset()


@dataclass
class Credentials:
    """Secrets of one target, read from the environment once."""

    secret: bytes | None = None
    bearer: str | None = None
    basic: tuple[str, str] | None = None
    header: tuple[str, str] | None = None
    trigger_token: str | None = None
    missing: list[str] = field(default_factory=list)
    plain_secret: bool = False  # a secret not in the whsec_<base64> form
    login: tuple[str, str] | None = None  # Airflow 3: username, password for <url>/auth/token
    token: str | None = None  # the token that login got; renewed when the API answers 401

    @classmethod
    def from_env(cls, config: WebhookConfig, environ: dict[str, str]) -> "Credentials":
        creds = cls()

        def read(name: str | None) -> str | None:
            if name is None:
                return None
            value = environ.get(name)
            if not value:
                creds.missing.append(name)
            return value or None

        raw_secret = read(config.secret_env)
        creds.secret = secret_bytes(raw_secret) if raw_secret else None
        creds.plain_secret = bool(raw_secret) and not raw_secret.startswith("whsec_")
        auth = config.auth
        creds.bearer = read(auth.bearer_env)
        user, password = read(auth.basic_user_env), read(auth.basic_password_env)
        creds.basic = (user, password) if user is not None and password is not None else None
        value = read(auth.header_env)
        creds.header = (auth.header, value) if auth.header and value is not None else None
        creds.trigger_token = read(config.trigger_token_env)
        username, password = read(auth.username_env), read(auth.password_env)
        creds.login = (username, password) if username is not None and password is not None else None
        return creds


def _parameters(payload: dict) -> dict[str, str]:
    """The trigger as string parameters (GitHub inputs, Kubeflow/Argo parameters, form fields)."""
    return {
        "driftline_id": payload["id"], "model": payload["model"],
        "model_version": str(payload.get("model_version") or "unknown"), "reason": payload["reason"],
        "payload": json.dumps(payload, separators=(",", ":"), sort_keys=True),
    }


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _base(url: str) -> str:
    return url.rstrip("/")


def build_request(config: WebhookConfig, payload: dict, creds: Credentials, created: float | None = None) -> Prepared:
    """The HTTP request of ``config.preset`` for this trigger, without signature headers.

    ``created`` is the trigger's commit time (Airflow 3's ``logical_date``, to the microsecond)."""
    preset = config.preset
    json_headers = {"Content-Type": "application/json", "Accept": "application/json"}
    base = _base(config.url)
    also: frozenset[int] = frozenset()
    if preset == "generic":
        prepared = Prepared("POST", config.url, json_headers, _json(payload))
    elif preset == "airflow":
        # Airflow 2 (/api/v1) and 3 (/api/v2); dag_run_id = the trigger id makes a repeat a 409.
        body: dict[str, Any] = {"dag_run_id": f"driftline__{payload['id']}", "conf": payload}
        if config.airflow_api == "v2":
            # Required (nullable) in Airflow 3; to the microsecond, so two triggers never share one.
            body["logical_date"] = rfc3339(created, precise=True) if created is not None else payload["triggered_at"]
            body["note"] = f"driftline: {payload['reason']} on {payload['model']}"
        url = f"{base}/api/{config.airflow_api}/dags/{quote(config.dag_id, safe='')}/dagRuns"
        prepared = Prepared("POST", url, json_headers, _json(body))
        also = frozenset({409})
    elif preset == "github":
        url = f"{base}/repos/{config.repository}/actions/workflows/{quote(config.workflow, safe='')}/dispatches"
        headers = {"Content-Type": "application/json", "Accept": "application/vnd.github+json",
                   "X-GitHub-Api-Version": "2022-11-28"}
        prepared = Prepared("POST", url, headers, _json({"ref": config.ref, "inputs": _parameters(payload)}))
    elif preset == "gitlab":
        url = f"{base}/api/v4/projects/{quote(str(config.project_id), safe='')}/trigger/pipeline"
        form = [("token", creds.trigger_token or ""), ("ref", config.ref)]
        form += [(f"variables[{key.upper()}]", value) for key, value in _gitlab_variables(payload).items()]
        prepared = Prepared("POST", url, {"Content-Type": "application/x-www-form-urlencoded",
                                          "Accept": "application/json"}, urlencode(form).encode())
    elif preset == "jenkins":
        job_path = "".join(f"/job/{quote(part, safe='')}" for part in config.job.strip("/").split("/"))
        form = [(key.upper(), value) for key, value in _gitlab_variables(payload).items()]
        if creds.trigger_token:
            form.append(("token", creds.trigger_token))
        prepared = Prepared("POST", f"{base}{job_path}/buildWithParameters",
                            {"Content-Type": "application/x-www-form-urlencoded"}, urlencode(form).encode())
    elif preset == "kubeflow":
        body = {
            "display_name": f"driftline {payload['model']} {payload['reason']} {payload['id'][:8]}",
            "description": f"Retraining requested by driftline ({payload['reason']}), trigger {payload['id']}",
            "pipeline_version_reference": {"pipeline_id": config.pipeline_id,
                                           "pipeline_version_id": config.pipeline_version_id},
            "runtime_config": {"parameters": _parameters(payload)},
        }
        if config.experiment_id:
            body["experiment_id"] = config.experiment_id
        prepared = Prepared("POST", f"{base}/apis/v2beta1/runs", json_headers, _json(body))
    elif preset == "argo":
        namespace = quote(config.namespace, safe="")
        body = {
            "namespace": config.namespace, "resourceKind": "WorkflowTemplate",
            "resourceName": config.workflow_template,
            "submitOptions": {
                "generateName": f"{config.workflow_template}-",
                "parameters": [f"{key}={value}" for key, value in _parameters(payload).items()],
                "labels": f"driftline.io/trigger-id={payload['id']},driftline.io/reason={payload['reason']}",
            },
        }
        prepared = Prepared("POST", f"{base}/api/v1/workflows/{namespace}/submit", json_headers, _json(body))
    else:  # pragma: no cover - the config's Literal rules it out
        raise ValueError(f"unknown preset {preset}")
    prepared.also_delivered_on_retry = also
    _authorize(prepared, creds)
    prepared.headers["User-Agent"] = USER_AGENT
    return prepared


def _gitlab_variables(payload: dict) -> dict[str, str]:
    params = _parameters(payload)
    return {"DRIFTLINE_ID": params["driftline_id"], "DRIFTLINE_MODEL": params["model"],
            "DRIFTLINE_MODEL_VERSION": params["model_version"], "DRIFTLINE_REASON": params["reason"],
            "DRIFTLINE_PAYLOAD": params["payload"]}


def _authorize(prepared: Prepared, creds: Credentials) -> None:
    if creds.token is not None:
        prepared.headers["Authorization"] = f"Bearer {creds.token}"
    elif creds.bearer is not None:
        prepared.headers["Authorization"] = f"Bearer {creds.bearer}"
    elif creds.basic is not None:
        token = base64.b64encode(f"{creds.basic[0]}:{creds.basic[1]}".encode()).decode()
        prepared.headers["Authorization"] = f"Basic {token}"
    if creds.header is not None:
        prepared.headers[creds.header[0]] = creds.header[1]


# -- outbox -----------------------------------------------------------------------------

SCHEMA = """
CREATE TABLE IF NOT EXISTS triggers (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    model TEXT NOT NULL,
    reason TEXT NOT NULL,
    created REAL NOT NULL,
    payload TEXT NOT NULL,
    target TEXT,
    state TEXT NOT NULL,            -- pending | delivered | failed | not_sent
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL,
    last_status INTEGER,
    last_error TEXT,
    delivered_at REAL,
    updated REAL NOT NULL,
    published INTEGER NOT NULL DEFAULT 0,   -- handed to the sinks (Kafka)
    evidence TEXT,                  -- JSON kept for the MLflow run
    evidence_state TEXT NOT NULL DEFAULT 'skipped',  -- pending | logged | failed | skipped
    evidence_run TEXT
);
CREATE INDEX IF NOT EXISTS triggers_due ON triggers (state, target, next_attempt);
CREATE INDEX IF NOT EXISTS triggers_model ON triggers (model, created);
-- one row, rewritten to tell whether the outbox can write again after a failed write
CREATE TABLE IF NOT EXISTS probe (id INTEGER PRIMARY KEY, written REAL NOT NULL);
"""


class OutboxCorrupt(sqlite3.DatabaseError):
    """PRAGMA quick_check found the outbox damaged."""


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    if isinstance(exc, OutboxCorrupt):
        return True
    return is_sqlite_corruption(exc)


class Outbox:
    """The durable record of every trigger and its delivery; thread-safe.

    A file SQLite cannot read (damaged, or not a database) is moved aside at opening as
    ``triggers.sqlite.corrupt-<UTC time>`` (with its ``-wal`` and ``-shm``), logged as an
    error and counted in ``driftline_state_corrupt_files_total{store="outbox"}``; a fresh
    outbox is started, so the service starts. A failed write raises :class:`sqlite3.Error`
    to the caller, is counted in ``driftline_state_write_failures_total{store="outbox"}``, and
    :meth:`writable` is false until a write succeeds again."""

    def __init__(self, path: Path, metrics=None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.metrics = metrics  # service.metrics.Metrics, or None
        self._lock = threading.Lock()
        # Why the last write failed; None when it succeeded.
        self.write_error: str | None = None
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            if not _is_corruption(exc):
                raise
            self._set_aside(exc)
            self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            problems = [row[0] for row in db.execute("PRAGMA quick_check(5)")]
            if problems != ["ok"]:
                raise OutboxCorrupt("; ".join(problems))
            db.executescript(SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    def _set_aside(self, exc: sqlite3.DatabaseError) -> None:
        if self.metrics is not None:
            self.metrics.state_corrupt_files.labels(store="outbox").inc()
        aside = move_aside(self.path, companions=("-wal", "-shm", "-journal"))
        log.error("trigger outbox %s is unreadable (%s); moved aside to %s and started empty: triggers still "
                  "pending in it are not delivered (sqlite3 %s .recover lists them)", self.path, exc, aside.name,
                  aside.name)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _exec(self, sql: str, args: Iterable = ()) -> int:
        """A write; returns the number of rows changed."""
        with self._lock:
            try:
                changed = self._db.execute(sql, tuple(args)).rowcount
            except sqlite3.Error as exc:
                self.write_error = str(exc)
                if self.metrics is not None:
                    self.metrics.state_write_failures.labels(store="outbox").inc()
                raise
            self.write_error = None
            return changed

    def writable(self) -> tuple[bool, str]:
        """(True, "") unless the last write failed; then a probe write tells whether it works again."""
        if self.write_error is None:
            return True, ""
        with self._lock:
            try:
                self._db.execute("INSERT OR REPLACE INTO probe (id, written) VALUES (1, ?)", (time.time(),))
            except sqlite3.Error as exc:
                return False, f"the trigger outbox cannot write: {exc}"
            self.write_error = None
        return True, ""

    def _query(self, sql: str, args: Iterable = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    def add(self, payload: dict, target: str | None, evidence: dict | None, now: float) -> bool:
        """Commit a trigger; False if its id is there already (a repeat)."""
        changed = self._exec(
            "INSERT OR IGNORE INTO triggers (id, model, reason, created, payload, target, state, next_attempt, "
            "updated, evidence, evidence_state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (payload["id"], payload["model"], payload["reason"], now, json.dumps(payload), target,
             "pending" if target else "not_sent", now if target else None, now,
             None if evidence is None else json.dumps(evidence, default=str),
             "pending" if evidence is not None else "skipped"))
        return changed == 1

    def next_due(self, target: str) -> tuple[sqlite3.Row | None, float | None]:
        """(the oldest due row of ``target``, None) or (None, when the next one is due)."""
        rows = self._query("SELECT * FROM triggers WHERE state='pending' AND target=? ORDER BY next_attempt, seq "
                           "LIMIT 1", (target,))
        if not rows:
            return None, None
        row = rows[0]
        if row["next_attempt"] <= time.time():
            return row, None
        return None, row["next_attempt"]

    def record(self, trigger_id: str, state: str, attempts: int, status: int | None, error: str | None,
               next_attempt: float | None) -> None:
        now = time.time()
        self._exec("UPDATE triggers SET state=?, attempts=?, last_status=?, last_error=?, next_attempt=?, "
                   "delivered_at=CASE WHEN ?='delivered' THEN ? ELSE delivered_at END, updated=? WHERE id=?",
                   (state, attempts, status, error, next_attempt, state, now, now, trigger_id))

    def pending_counts(self) -> dict[str, int]:
        rows = self._query("SELECT target, COUNT(*) FROM triggers WHERE state='pending' GROUP BY target")
        return {row[0]: row[1] for row in rows}

    def unpublished(self, limit: int = 100) -> list[sqlite3.Row]:
        return self._query("SELECT id, payload FROM triggers WHERE published=0 ORDER BY seq LIMIT ?", (limit,))

    def mark_published(self, trigger_id: str) -> None:
        self._exec("UPDATE triggers SET published=1 WHERE id=?", (trigger_id,))

    def evidence_due(self, limit: int = 20) -> list[sqlite3.Row]:
        return self._query("SELECT id, payload, evidence FROM triggers WHERE evidence_state='pending' ORDER BY seq "
                           "LIMIT ?", (limit,))

    def mark_evidence(self, trigger_id: str, state: str, run_id: str | None) -> None:
        self._exec("UPDATE triggers SET evidence_state=?, evidence_run=? WHERE id=?", (state, run_id, trigger_id))

    def last_trigger_times(self) -> dict[str, float]:
        rows = self._query("SELECT model, MAX(created) FROM triggers GROUP BY model")
        return {row[0]: row[1] for row in rows}

    def recent(self, limit: int = 50, model: str | None = None) -> list[dict]:
        sql = "SELECT * FROM triggers"
        args: list[Any] = []
        if model is not None:
            sql += " WHERE model=?"
            args.append(model)
        rows = self._query(sql + " ORDER BY seq DESC LIMIT ?", (*args, limit))
        return [_public(row) for row in rows]

    def get(self, trigger_id: str) -> dict | None:
        rows = self._query("SELECT * FROM triggers WHERE id=?", (trigger_id,))
        return _public(rows[0]) if rows else None

    def orphans(self, targets: Iterable[str]) -> int:
        """Pending rows of webhooks no longer configured become failed (they would wait forever)."""
        known = list(targets)
        marks = ",".join("?" * len(known))
        now = time.time()
        return self._exec("UPDATE triggers SET state='failed', last_error='webhook no longer configured', "
                          "next_attempt=NULL, updated=? WHERE state='pending'"
                          + (f" AND target NOT IN ({marks})" if known else ""), (now, *known))

    def prune(self, keep: int = KEEP_FINISHED) -> None:
        """Forget the oldest finished rows beyond ``keep``; pending ones always stay."""
        self._exec("DELETE FROM triggers WHERE state!='pending' AND evidence_state!='pending' AND published=1 "
                   "AND seq <= (SELECT seq FROM triggers ORDER BY seq DESC LIMIT 1 OFFSET ?)", (keep,))


def _public(row: sqlite3.Row) -> dict:
    payload = json.loads(row["payload"])
    return {
        "id": row["id"], "model": row["model"], "model_version": payload.get("model_version"),
        "reason": row["reason"], "triggered_at": payload.get("triggered_at"), "target": row["target"],
        "delivery": {
            "state": row["state"], "attempts": row["attempts"], "last_status": row["last_status"],
            "last_error": row["last_error"], "delivered_at": rfc3339(row["delivered_at"]),
            "next_attempt_at": rfc3339(row["next_attempt"]) if row["state"] == "pending" else None,
        },
        "state": row["state"],
        "mlflow": {"state": row["evidence_state"], "run_id": row["evidence_run"]},
        "payload": payload,
    }


# -- dispatcher -------------------------------------------------------------------------


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
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def backoff_delay(config: WebhookConfig, attempt: int, rng: random.Random = random) -> float:
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
        failed = _log_in(client, config, creds)
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
            failed = _log_in(client, config, creds)
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


def _log_in(client: httpx.Client, config: WebhookConfig, creds: Credentials) -> Attempt | None:
    """Airflow 3: ``POST <url>/auth/token`` with the username and password; sets ``creds.token``
    from the answer's ``access_token``. None on success, else the failed or retried attempt."""
    url = f"{_base(config.url)}/auth/token"
    username, password = creds.login
    try:
        response = client.post(url, json={"username": username, "password": password},
                               headers={"Accept": "application/json", "User-Agent": USER_AGENT},
                               timeout=config.timeout)
    except httpx.TimeoutException as exc:
        return Attempt("retry", None, f"logging in at {url}: timeout after {config.timeout:g}s ({type(exc).__name__})")
    except httpx.TransportError as exc:
        return Attempt("retry", None, f"logging in at {url}: connection error: {type(exc).__name__}: {_short(exc)}")
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


# A credential-looking name with its separator ("token=", "Authorization: "), or an auth scheme
# word, and the value after it.
_CREDENTIAL_AFTER = re.compile(
    r"(?i)(authorization|password|passwd|secret|api[-_]?key|token|signature|cookie)"
    r"([\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic|token)\s+)?)[^\s\"';&}]+"
    r"|\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]+")
REDACTED = "[redacted]"


def sent_secrets(creds: Credentials, headers: dict[str, str]) -> list[str]:
    """Every credential an attempt may send (as sent, and URL-encoded), longest first."""
    values = [creds.bearer, creds.trigger_token, creds.header[1] if creds.header else None,
              creds.basic[1] if creds.basic else None, creds.login[1] if creds.login else None, creds.token,
              headers.get("webhook-signature")]
    authorization = headers.get("Authorization")
    if authorization:
        values += [authorization, authorization.partition(" ")[2]]
    found = set()
    for value in values:
        if value and len(value) >= 4:
            found.update((value, quote_plus(value), quote(value, safe="")))
    return sorted(found, key=len, reverse=True)


def redacted_excerpt(text: str, secrets: Iterable[str] = (), limit: int = 200) -> str:
    """``text`` with the given secrets and anything after a credential-looking name replaced,
    on one line, at most ``limit`` characters."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    text = _CREDENTIAL_AFTER.sub(lambda m: f"{m.group(1) or m.group(3)}{m.group(2) or m.group(4)}{REDACTED}", text)
    return _short(text, limit)


def _short(value: Any, limit: int = 300) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Dispatcher:
    """One delivery thread per target, reading due rows from the outbox."""

    def __init__(self, outbox: Outbox, webhooks: dict[str, WebhookConfig], environ: dict[str, str],
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


def now_payload(model: str, model_version: str | None, reason: str, trigger_id: str, now: float,
                window: dict | None, evidence: dict, reference_source: str | None) -> dict:
    """The CONTRACT §4 payload."""
    return {
        "id": trigger_id, "type": EVENT_TYPE, "model": model, "model_version": model_version or "unknown",
        "reason": reason, "triggered_at": rfc3339(now),
        "window": window or {"start": None, "end": None, "samples": 0},
        "evidence": evidence, "reference": {"source": reference_source},
    }


Sink = Callable[[dict], None]
