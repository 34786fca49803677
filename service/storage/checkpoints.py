"""Per-model state checkpointed to files in ``state_dir/models`` and restored at start-up.

Each model is one file, written to a temporary name, flushed and renamed, so a crash or a
full disk mid-write leaves the previous checkpoint intact and no partial file behind. Only
models that changed since their last successful checkpoint are written. A model whose write
fails (disk full, I/O error, a state that cannot be encoded) stays due: the others are still
written, and it is tried again every round and at shutdown. While any is failing,
``/readyz`` says so; ``driftline_state_write_failures_total{store="checkpoint"}`` counts the
failed writes and ``driftline_state_checkpoint_last_success_timestamp_seconds`` is the time
of the last round that wrote every changed model.

A checkpoint that cannot be read (damaged, or of a format this version does not know) is
moved aside as ``<model>.state.corrupt-<UTC time>``, logged as an error and counted in
``driftline_state_corrupt_files_total{store="checkpoint"}``; the model starts afresh.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from pathlib import Path

from service.core import model_checkpoint
from service.core.engine import Engine
from service.storage.state_files import TEMPORARY, move_aside, sync_directory, write_atomically

log = logging.getLogger("driftline.checkpoints")
SUFFIX = ".state"


class FileCheckpoints:
    def __init__(self, engine: Engine, directory: Path, interval: float, metrics=None):
        self.engine = engine
        self.directory = directory / "models"
        self.location = str(self.directory)
        self.interval = interval
        self.metrics = metrics  # service.observability.metrics.Metrics, or None
        # model -> why its last write failed; empty when every changed model is on disk.
        self.failing: dict[str, str] = {}
        self.last_success: float | None = None
        self._stop = threading.Event()
        # One round at a time: stop() saves even when the timer thread's round outlived the
        # join's timeout (a slow disk), and two rounds would share each model's .tmp file.
        self._saving = threading.Lock()
        self._thread: threading.Thread | None = None

    def restore(self) -> int:
        """Load every model found; an unreadable file is moved aside and counted, never fatal."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for partial in self.directory.glob(f"*{SUFFIX}{TEMPORARY}"):  # a crash mid-write
            with contextlib.suppress(OSError):
                partial.unlink()
        restored = 0
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            model = path.name[: -len(SUFFIX)]
            try:
                self.engine.restore(model, path.read_bytes())
                restored += 1
            except Exception as exc:
                self._set_aside(path, model, exc)
        self.engine.take_dirty()  # what was just read from the files is stored already
        return restored

    def _set_aside(self, path: Path, model: str, exc: Exception) -> None:
        if self.metrics is not None:
            self.metrics.state_corrupt_files.labels(store="checkpoint").inc()
        try:
            aside = move_aside(path)
        except OSError as move_error:
            log.error("checkpoint %s is unreadable (%s: %s) and could not be moved aside (%s); model %s starts "
                      "afresh", path, type(exc).__name__, exc, move_error, model)
            return
        log.error("checkpoint %s is unreadable (%s: %s); moved aside to %s, model %s starts afresh",
                  path, type(exc).__name__, exc, aside.name, model)

    def save(self) -> int:
        """Write every changed model; returns how many were written. Never raises for one model."""
        with self._saving:
            return self._save_round()

    def _save_round(self) -> int:
        # Taking the marks and snapshotting each model later is safe: a change after the take
        # marks the model again (and the snapshot may already hold it: one write too many, never
        # one too few); a failed write below puts the mark back.
        due = sorted(self.engine.take_dirty())
        saved, failed = 0, {}
        for model in due:
            try:
                data = self.engine.view(model, model_checkpoint.to_bytes)
            except Exception as exc:
                self.engine.mark_dirty([model])
                failed[model] = f"encoding: {type(exc).__name__}: {exc}"
                log.exception("checkpoint of model %s could not be encoded", model)
                continue
            if data is None:  # dropped meanwhile
                continue
            try:
                write_atomically(self.directory / f"{model}{SUFFIX}", data)
            except OSError as exc:
                self.engine.mark_dirty([model])
                failed[model] = str(exc)
                continue
            saved += 1
        if saved:
            try:
                sync_directory(self.directory)
            except OSError as exc:
                log.warning("syncing %s failed: %s", self.directory, exc)
        self._account(due, saved, failed)
        return saved

    def _account(self, due: list[str], saved: int, failed: dict[str, str]) -> None:
        was_failing = bool(self.failing)
        # Every model due this round was written, dropped or failed again: replaced whole, not
        # mutated, as /readyz reads it from another thread.
        self.failing = {model: error for model, error in self.failing.items() if model not in due} | failed
        if self.metrics is not None and failed:
            self.metrics.state_write_failures.labels(store="checkpoint").inc(len(failed))
        if failed:
            first = next(iter(failed))
            log.error("checkpoint of %d model(s) failed (%s: %s)%s; %d written; they stay due and are retried "
                      "in %gs and at shutdown", len(failed), first, failed[first],
                      f" and {len(failed) - 1} more" if len(failed) > 1 else "", saved, self.interval)
        elif not self.failing:
            self.last_success = time.time()
            if self.metrics is not None:
                self.metrics.state_checkpoint_last_success.set(self.last_success)
            if was_failing:
                log.warning("checkpoints written again (%d model(s))", saved)

    def ready(self) -> tuple[bool, str]:
        if not self.failing:
            return True, ""
        model, error = next(iter(self.failing.items()))
        more = f" and {len(self.failing) - 1} more" if len(self.failing) > 1 else ""
        return False, f"checkpoints of {len(self.failing)} model(s) cannot be written ({model}{more}: {error})"

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="driftline-checkpoints", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.save()
            except Exception:
                log.exception("checkpoint round failed; retrying in %.0fs", self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.save()
