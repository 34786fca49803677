"""Assembling the service from its configuration: runtime, components, routers, uvicorn."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from service import __version__
from service.config import ConfigError, Settings
from service.core import events
from service.http.api import create_app
from service.http.cloudevents_routes import http_router as cloudevents_router
from service.http.estimation_routes import router as estimation_router
from service.http.retrain_routes import create_router as retrain_router
from service.http.segments_routes import router as segments_router
from service.ingest.sink import CloudEventsSink
from service.kafka.source import KafkaSource
from service.observability import logs
from service.retrain.triggers import TriggerManager
from service.runtime import Runtime

# uvicorn's HTTP protocol as its "auto" picks: httptools when installed, else h11.
_UVICORN_HTTP: type[asyncio.Protocol]
try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _UVICORN_HTTP
except ImportError:
    from uvicorn.protocols.http.h11_impl import H11Protocol as _UVICORN_HTTP

log = logging.getLogger("driftline")


def build_app(settings: Settings, registry: CollectorRegistry | None = None,
              environ: dict[str, str] | None = None) -> FastAPI:
    """The FastAPI app with every edge the configuration asks for."""
    runtime = Runtime(settings, registry=registry, environ=environ)
    # Retraining: policies, the webhook outbox and dispatcher, MLflow evidence. The first
    # component: its outbox is open before any source evaluates a window, and it stops last.
    triggers = TriggerManager(settings, runtime.engine, runtime.metrics, runtime.environ)
    runtime.add(triggers)
    runtime.engine.listeners.append(triggers.on_evaluation)
    routers = [estimation_router, segments_router]
    # KServe/Seldon CloudEvents sink (its joiner journals pending halves in state_dir) and the Kafka source.
    sink = CloudEventsSink(runtime.engine, settings.cloudevents, settings.state_dir / "cloudevents-pending.sqlite")
    runtime.add(sink)
    runtime.metrics.watch_cloudevents("http", lambda: sink.joiner)
    routers.append(cloudevents_router(sink))
    if settings.kafka is not None:
        source = KafkaSource(runtime.engine, settings.kafka, settings.cloudevents, runtime.metrics.consumer_lag,
                             settings.state_dir, changelog=runtime.changelog)
        runtime.add(source)
        runtime.metrics.watch_cloudevents("kafka", lambda: source.joiner)
        if settings.kafka.trigger_topic:
            triggers.sinks.append(source.publish_trigger)
    routers.append(retrain_router(triggers))
    return create_app(runtime, routers)


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings, environ: Mapping[str, str]) -> None:
    """Refuse to serve a non-loopback address with no admin token (anyone who reaches it could
    replace references and start retraining runs), unless ``auth.allow_unauthenticated``; warn
    about route classes that a partial set of tokens leaves disabled."""
    auth = settings.auth
    token, ingest_token, read_token = (environ.get(name) or None for name in
                                       (auth.token_env, auth.ingest_token_env, auth.read_token_env))
    if token is None and not is_loopback(settings.host):
        if not auth.allow_unauthenticated:
            raise ConfigError(
                f"refusing to serve {settings.host}:{settings.port} without an admin token: set the environment "
                f"variable {auth.token_env}, bind a loopback address (--host 127.0.0.1), or set "
                f"auth.allow_unauthenticated: true if an authenticating proxy guards this address")
        log.warning("serving %s without an admin token (auth.allow_unauthenticated): every route is open "
                    "to whoever reaches this address", settings.host)
    if token is None and (ingest_token is not None or read_token is not None):
        log.warning("no admin token (%s) is set: references, retraining and the Alertmanager receiver answer 403",
                    auth.token_env)
    if token is None and read_token is None and ingest_token is not None:
        log.warning("neither %s nor %s is set: reports and the trigger list answer 403", auth.read_token_env,
                    auth.token_env)


if TYPE_CHECKING:
    # What the mixin below extends: either of uvicorn's HTTP protocols (same attributes).
    from uvicorn.protocols.http.h11_impl import H11Protocol as _HTTPProtocol
else:
    _HTTPProtocol = object


class _RequestHeadDeadline(_HTTPProtocol):
    """Closes a connection whose request head has not arrived ``header_timeout`` seconds after the
    connection opened or its previous response ended, or has grown past ``max_header_bytes``.
    uvicorn's keep-alive timer stops at the first byte of a request, so a client dribbling
    header bytes would otherwise hold its connection, and a slot under ``limit_concurrency``,
    for ever; and httptools' parser keeps every header line it is sent."""

    header_timeout = 10.0
    max_header_bytes = 16 * 1024
    _head_deadline: asyncio.TimerHandle | None = None
    _cycle_when_armed: object = None
    _head_bytes = 0

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm_head_deadline()

    def data_received(self, data: bytes) -> None:
        pending = self._head_deadline is not None
        if pending:
            self._head_bytes += len(data)
        super().data_received(data)
        if not pending:
            return
        if self.cycle is not self._cycle_when_armed:
            self._cancel_head_deadline()
        elif self._head_bytes > self.max_header_bytes and not self.transport.is_closing():
            self._cancel_head_deadline()
            self.transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_deadline()
        super().connection_lost(exc)

    def _arm_head_deadline(self) -> None:
        self._cancel_head_deadline()
        self._cycle_when_armed = self.cycle
        self._head_bytes = 0
        self._head_deadline = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _cancel_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        # A pipelined request may have started without another data_received call.
        if self.cycle is self._cycle_when_armed and not self.transport.is_closing():
            self.transport.close()


def http_protocol(header_timeout: float, max_header_bytes: int) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (httptools when installed, as uvicorn's "auto" picks, else h11)
    with the request-head deadline and size bound."""
    return type("DriftlineHTTPProtocol", (_RequestHeadDeadline, _UVICORN_HTTP),
                {"header_timeout": header_timeout, "max_header_bytes": max_header_bytes})


def uvicorn_config(app: FastAPI, settings: Settings, **overrides: Any) -> uvicorn.Config:
    """uvicorn's configuration with the bounds of ``settings.server``."""
    server = settings.server
    options: dict[str, Any] = dict(
        host=settings.host, port=settings.port, log_level=settings.log_level, access_log=settings.log_level == "debug",
        http=http_protocol(server.header_timeout, server.max_header_bytes),
        limit_concurrency=server.limit_concurrency, timeout_keep_alive=server.timeout_keep_alive,
        h11_max_incomplete_event_size=server.max_header_bytes)
    options.update(overrides)
    return uvicorn.Config(app, **options)


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
    port stops (ListenError) before it opens the state directory or connects to Kafka, and an
    open non-loopback address (ConfigError, see :func:`check_exposure`) before it binds."""
    logs.configure(settings.log_level)
    check_exposure(settings, os.environ)
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
    try:
        uvicorn.Server(uvicorn_config(app, settings)).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it shut down on; as uvicorn.run, exit 0
        pass
