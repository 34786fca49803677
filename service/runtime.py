"""The running service: engine, metrics and the edges around them, started and stopped together.

An edge that runs in the background (the Kafka consumer, the webhook dispatcher) is a
*component*: an object with ``start()``, ``stop()`` and ``ready() -> (bool, reason)``.
``/readyz`` is true when every component is ready, every configured reference loaded and
the state store ready (with files: the checkpoints of every changed model written).
"""

from __future__ import annotations

import gc
import logging
import os
from typing import Protocol

from prometheus_client import CollectorRegistry

from service import extras
from service.config import Settings
from service.core.engine import Engine, TooManyModels
from service.ingest.tables import TableError, read_table
from service.kafka.changelog import Changelog
from service.observability.metrics import Metrics
from service.storage.checkpoints import FileCheckpoints

log = logging.getLogger("driftline")

# The cycle collector's young-generation threshold while the service runs (Python's is 700
# allocations). Ingestion keeps a batch's objects alive while it works on it (a Kafka poll's
# records: up to kafka.max_poll_records, ~2 each); at 700 they outlive young collections and
# are promoted, and each full collection then walks the whole heap (modules, references,
# windows: ~100,000 objects, 70-120 ms), ~2 us an event in all. Above a batch's objects, they
# die before a collection; cyclic garbage still goes within 50,000 allocations.
YOUNG_COLLECTION_THRESHOLD = 50_000


class Component(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def ready(self) -> tuple[bool, str]: ...


class StateStore(Protocol):
    """Where per-model state survives a restart: files in ``state_dir``
    (:class:`~service.storage.checkpoints.FileCheckpoints`) or the Kafka changelog topic
    (:class:`~service.kafka.changelog.Changelog`), chosen once when the runtime is built."""

    location: str  # for the log: where the state is

    def restore(self) -> int: ...  # at start-up, before references load; how many models

    def start(self) -> None: ...

    def stop(self) -> None: ...  # after the components stop: the last state is written

    def ready(self) -> tuple[bool, str]: ...


class Runtime:
    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None,
                 environ: dict[str, str] | None = None):
        environ = dict(os.environ if environ is None else environ)
        for model, config in settings.models.items():
            if config.reference.mlflow is not None:
                extras.require("mlflow", f"models.{model}.reference.mlflow")
        if settings.kafka is not None and settings.kafka.client == "confluent":
            extras.require("kafka-confluent", "kafka.client: confluent")
        self.settings = settings
        self.engine = Engine(settings)
        self.metrics = Metrics(self.engine, registry)
        # Tokens are read once; they are never logged or exported.
        self.token = environ.get(settings.auth.token_env) or None
        self.ingest_token = environ.get(settings.auth.ingest_token_env) or None
        self.read_token = environ.get(settings.auth.read_token_env) or None
        self.environ = environ
        self.components: list[Component] = []
        self.reference_errors: dict[str, str] = {}
        # With kafka.state_topic, state is in the changelog topic, which the Kafka source writes
        # with the input offsets it includes; files would fight over it with other replicas.
        kafka = settings.kafka
        self.changelog = Changelog(self.engine, kafka) if kafka is not None and kafka.state_topic else None
        self.state_store: StateStore = (
            self.changelog if self.changelog is not None
            else FileCheckpoints(self.engine, settings.state_dir, settings.checkpoint_interval, self.metrics))
        self.started = False
        self._gc_thresholds: tuple[int, ...] | None = None  # the process's own, while raised

    def add(self, component: Component) -> None:
        self.components.append(component)

    def component(self, name: str) -> Component:
        """The component of that name (``triggers``, ``cloudevents``, ``kafka``)."""
        for component in self.components:
            if component.name == name:
                return component
        raise KeyError(name)

    def start(self) -> None:
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        restored = self.state_store.restore()
        if restored:
            log.info("restored %d model(s) from %s", restored, self.state_store.location)
        self.load_references()
        self.state_store.start()
        thresholds = gc.get_threshold()
        if thresholds[0] < YOUNG_COLLECTION_THRESHOLD:
            self._gc_thresholds = thresholds
            gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *thresholds[1:])
        for component in self.components:
            component.start()
        self.started = True

    def stop(self) -> None:
        for component in reversed(self.components):
            try:
                component.stop()
            except Exception:
                log.exception("stopping %s failed", component.name)
        self.state_store.stop()
        if self._gc_thresholds is not None:
            gc.set_threshold(*self._gc_thresholds)
            self._gc_thresholds = None
        self.started = False

    def load_references(self) -> None:
        """Load every reference named in the config that a checkpoint did not already bring."""
        limits = self.settings.limits
        for model, config in self.settings.models.items():
            if model == "default":
                continue
            reference = config.reference
            if reference.path is not None:
                source = f"file:{reference.path}"
                loader = lambda path=reference.path: read_table(  # noqa: E731
                    path, max_rows=limits.max_reference_rows, max_cells=limits.max_reference_cells)
            elif reference.mlflow is not None:
                source = f"mlflow:{reference.mlflow}"
                loader = self._mlflow_loader(reference.mlflow)
            else:
                continue
            # A checkpoint's estimator fitted under another estimation config, or segments of other
            # features, were not restored: the reference is read again to build them.
            loaded = self.engine.view(model, lambda state: (state.reference_source, state.estimator is not None,
                                                            set(state.segments.by) if state.segments else set()))
            if (loaded is not None and loaded[0] == source and (config.estimation is None or loaded[1])
                    and loaded[2] == set(config.segments)):
                continue
            try:
                self.engine.set_reference(model, loader(), source)
                self.reference_errors.pop(model, None)
                log.info("model %s: reference loaded from %s", model, source)
            except (TableError, ValueError, OSError, TooManyModels, extras.MissingExtra) as exc:
                self.reference_errors[model] = f"{source}: {exc}"
                log.error("model %s: reference not loaded: %s", model, exc)

    def _mlflow_loader(self, uri: str):
        def load():
            from service.integrations.mlflow import download_reference  # noqa: PLC0415 - mlflow is slow to import

            limits = self.settings.limits
            return download_reference(uri, self.settings.mlflow, limits.max_reference_rows, limits.max_reference_cells)
        return load

    def ready(self) -> tuple[bool, list[str]]:
        reasons = [f"reference of {model} not loaded: {error}" for model, error in self.reference_errors.items()]
        ok, reason = self.state_store.ready()
        if not ok:
            reasons.append(f"state store: {reason}")
        for component in self.components:
            ok, reason = component.ready()
            if not ok:
                reasons.append(f"{component.name}: {reason}")
        if not self.started:
            reasons.append("starting")
        return not reasons, reasons
