"""The trigger outbox: a SQLite table in the state directory holding every trigger and its delivery.

A trigger is committed here before any attempt, so a crash or restart never drops it, and
its ``id`` is the same on every attempt (receivers deduplicate on ``webhook-id``).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from service.retrain.payload import rfc3339
from service.storage.state_files import is_sqlite_corruption, move_aside

__all__ = ["KEEP_FINISHED", "Outbox", "OutboxCorrupt"]

log = logging.getLogger("driftline.webhooks")

KEEP_FINISHED = 2000  # delivered/failed/unsent rows kept for GET /v1/triggers

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
        self.metrics = metrics  # service.observability.metrics.Metrics, or None
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
