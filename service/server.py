"""Assembling the service from its configuration: runtime, components, routers, uvicorn."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from service import __version__, events, logs
from service.api import create_app
from service.config import Settings
from service.runtime import Runtime

log = logging.getLogger("driftline")


def build_app(settings: Settings, registry: CollectorRegistry | None = None,
              environ: dict[str, str] | None = None) -> FastAPI:
    """The FastAPI app with every edge the configuration asks for."""
    runtime = Runtime(settings, registry=registry, environ=environ)
    routers = []
    # KServe/Seldon CloudEvents sink and the Kafka source (issue 4).
    from service.cloudevents import http_router as cloudevents_router  # noqa: PLC0415

    routers.append(cloudevents_router())
    kafka = None
    if settings.kafka is not None:
        from service.kafka_source import KafkaSource  # noqa: PLC0415

        kafka = KafkaSource(runtime)
        runtime.add(kafka)
    # Retraining: policies, webhook outbox/dispatcher, MLflow evidence (issue 5).
    from service.api_triggers import create_router as triggers_router  # noqa: PLC0415
    from service.triggers import TriggerManager  # noqa: PLC0415

    runtime.triggers = TriggerManager(runtime)
    runtime.add(runtime.triggers)
    runtime.engine.listeners.append(runtime.triggers.on_evaluation)
    routers.append(triggers_router(runtime.triggers))
    if kafka is not None and settings.kafka.trigger_topic:
        runtime.triggers.sinks.append(kafka.publish_trigger)
    return create_app(runtime, routers)


class ListenError(Exception):
    """The service's address cannot be bound (in use, not an address of this host, ...)."""


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port."""
    sock = None
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        if sock is not None:
            sock.close()
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def serve(settings: Settings, config_path: str | Path | None = None) -> None:
    """Run the service until stopped. The port is bound first, so a second instance on a taken
    port stops (ListenError) before it opens the state directory or connects to Kafka."""
    logs.configure(settings.log_level)
    sock = listen(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    kafka = (f"kafka {settings.kafka.bootstrap_servers} topics {','.join(settings.kafka.topics)}"
             if settings.kafka is not None else "no kafka (HTTP ingest only)")
    native = ("native decoder active" if events.native_decoder_available()
              else "native decoder absent (Python decoder)")
    log.info("driftline %s: config %s, state_dir %s, listening on http://%s, %s, %s", __version__,
             config_path or "(built-in defaults)", settings.state_dir.resolve(), address, kafka, native)
    app = build_app(settings)
    config = uvicorn.Config(app, log_level=settings.log_level, access_log=settings.log_level == "debug")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it shut down on; as uvicorn.run, exit 0
        pass
