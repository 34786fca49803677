"""Files in ``state_dir``: written whole or not at all, and moved aside when unreadable.

A full disk or an I/O error must never leave a half-written file where a good one was, and
an unreadable file must be reported once and kept for inspection, not overwritten or
silently reset on every start.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

TEMPORARY = ".tmp"
# SQLite's primary result codes that mean the file is not a readable database.
SQLITE_CORRUPT, SQLITE_NOTADB = 11, 26


def is_sqlite_corruption(exc: sqlite3.DatabaseError) -> bool:
    """A damaged or foreign file, as opposed to a full disk or a lock (which pass)."""
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in (SQLITE_CORRUPT, SQLITE_NOTADB)


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk and rename it over
    ``path``. On any error the temporary file is removed and ``path`` is left as it was."""
    temporary = path.with_name(path.name + TEMPORARY)
    try:
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            # Some file systems (NFS, ext4 with delayed allocation) report a full disk only here.
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise


def sync_directory(directory: Path) -> None:
    """Make renames in ``directory`` durable (a rename is an update of the directory)."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def aside_name(path: Path, now: datetime | None = None) -> Path:
    """``<name>.corrupt-<UTC time>``, beside ``path``, not yet taken."""
    moment = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    candidate = path.with_name(f"{path.name}.corrupt-{moment}")
    serial = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.corrupt-{moment}-{serial}")
        serial += 1
    return candidate


def move_aside(path: Path, companions: tuple[str, ...] = ()) -> Path:
    """Rename an unreadable file to :func:`aside_name`; files named ``path`` + a companion
    suffix (SQLite's ``-wal`` and ``-shm``) follow it, keeping the suffix, so the moved
    database opens with its journal. Returns the new path of ``path``."""
    target = aside_name(path)
    os.replace(path, target)
    for suffix in companions:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            os.replace(companion, target.with_name(target.name + suffix))
    return target
