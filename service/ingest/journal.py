"""Pending halves on disk (SQLite), so that they survive a restart of the process."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from service.ingest.halves import Half
from service.storage.state_files import is_sqlite_corruption, move_aside

__all__ = ["PendingJournal", "open_journal"]

log = logging.getLogger("driftline.cloudevents")


class PendingJournal:
    """Pending halves in SQLite, so a restart (even after SIGKILL) still joins a request whose
    response arrives later. WAL with synchronous=NORMAL: a killed process loses nothing; a
    power cut may lose the last halves, which are re-sent by no one (they were answered 202)."""

    SCHEMA = ("CREATE TABLE IF NOT EXISTS halves (model TEXT NOT NULL, id TEXT NOT NULL, kind TEXT NOT NULL, "
              "version TEXT, time REAL NOT NULL, arrived REAL NOT NULL, body BLOB NOT NULL, PRIMARY KEY (model, id))")

    def __init__(self, path: Path):
        self.path = path
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(self.SCHEMA)
        except BaseException:
            self._db.close()  # or the file stays open until garbage collection
            raise

    def halves(self) -> list[Half]:
        rows = self._db.execute("SELECT kind, model, id, version, time, arrived, body FROM halves ORDER BY arrived")
        return [Half(kind, model, event_id, version, event_time, arrived, bytes(body))
                for kind, model, event_id, version, event_time, arrived, body in rows]

    def put(self, half: Half) -> None:
        try:
            self._db.execute("INSERT OR REPLACE INTO halves VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (half.model, half.event_id, half.kind, half.version, half.time, half.arrived, half.body))
        except sqlite3.Error as exc:  # a full disk: the half still waits in memory, only a crash loses it
            log.warning("cloudevents: pending half not journaled in %s: %s", self.path, exc)

    def delete(self, key: tuple[str, str]) -> None:
        try:
            self._db.execute("DELETE FROM halves WHERE model = ? AND id = ?", key)
        except sqlite3.Error as exc:  # left behind: joined or expired again after a restart
            log.warning("cloudevents: pending half not removed from %s: %s", self.path, exc)

    def close(self) -> None:
        self._db.close()


def open_journal(path: Path) -> tuple[PendingJournal | None, str | None]:
    """The journal at ``path``, or ``(None, why)`` while it cannot be opened (a full disk); a
    damaged file is moved aside first, loudly, and a new one started."""
    try:
        try:
            return PendingJournal(path), None
        except sqlite3.DatabaseError as exc:
            if not is_sqlite_corruption(exc):
                raise
            aside = move_aside(path, companions=("-wal", "-shm", "-journal"))
            log.error("cloudevents: journal %s is unreadable (%s); moved aside to %s, pending halves in it are lost",
                      path, exc, aside.name)
            return PendingJournal(path), None
    except (sqlite3.Error, OSError) as exc:
        return None, str(exc)
