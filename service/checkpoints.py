"""Per-model state checkpointed to files in ``state_dir/models`` and restored at start-up.

Each model is one file, written to a temporary name and renamed, so a crash mid-write
leaves the previous checkpoint intact. Only models that changed since the last checkpoint
are written.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from service.engine import Engine

log = logging.getLogger("driftline.checkpoints")
SUFFIX = ".state"


class FileCheckpoints:
    def __init__(self, engine: Engine, directory: Path, interval: float):
        self.engine = engine
        self.directory = directory / "models"
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def restore(self) -> int:
        """Load every model found; a corrupt file is logged and skipped, never fatal."""
        self.directory.mkdir(parents=True, exist_ok=True)
        restored = 0
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            model = path.name[: -len(SUFFIX)]
            try:
                self.engine.restore(model, path.read_bytes())
                restored += 1
            except Exception as exc:
                log.error("checkpoint %s is unreadable, starting that model afresh: %s", path, exc)
        self.engine.dirty.clear()
        return restored

    def save(self) -> int:
        with self.engine.lock:
            changed = list(self.engine.dirty)
            self.engine.dirty.clear()
        saved = 0
        for model in changed:
            try:
                data = self.engine.snapshot(model)
            except KeyError:  # dropped meanwhile
                continue
            path = self.directory / f"{model}{SUFFIX}"
            temporary = path.with_name(path.name + ".tmp")
            temporary.write_bytes(data)
            os.replace(temporary, path)
            saved += 1
        return saved

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="driftline-checkpoints", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.save()
            except Exception:
                log.exception("checkpoint failed; retrying in %.0fs", self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.save()
