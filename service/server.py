"""Assembling the service from its configuration: runtime, components, routers, uvicorn."""

from __future__ import annotations

import logging

import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from service.api import create_app
from service.config import Settings
from service.runtime import Runtime


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


def serve(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = build_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                access_log=settings.log_level == "debug")
