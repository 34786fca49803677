"""The whole configuration, :class:`Settings`: the top-level keys and every section, with the
merge of ``models.default`` into each named model."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from service.config.fields import Duration, Strict
from service.config.inputs import CloudEventsConfig, KafkaConfig
from service.config.integrations import AlertmanagerConfig, MlflowConfig, WebhookConfig
from service.config.model import ModelConfig
from service.config.server import AuthConfig, LimitsConfig, ServerConfig

__all__ = ["Settings"]

log = logging.getLogger("driftline.config")

_RENAMED_CLOUDEVENTS_KEYS = ("ttl", "max_pending")


class Settings(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    state_dir: Path = Path("./driftline-state")
    checkpoint_interval: Duration = 30.0
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    auth: AuthConfig = Field(default_factory=AuthConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    kafka: KafkaConfig | None = None
    cloudevents: CloudEventsConfig = Field(default_factory=CloudEventsConfig)
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    webhooks: dict[str, WebhookConfig] = Field(default_factory=dict)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    alertmanager: AlertmanagerConfig = Field(default_factory=AlertmanagerConfig)

    @model_validator(mode="before")
    @classmethod
    def _renamed_cloudevents_keys(cls, data: Any) -> Any:
        """``kafka.cloudevents_ttl`` and ``kafka.cloudevents_max_pending`` (the keys before the
        ``cloudevents`` section served HTTP too) still work, with a warning, where the new key
        is not set."""
        kafka = data.get("kafka") if isinstance(data, dict) else None
        if not isinstance(kafka, dict) or not any(f"cloudevents_{key}" in kafka for key in _RENAMED_CLOUDEVENTS_KEYS):
            return data
        kafka, cloudevents = dict(kafka), data.get("cloudevents") or {}
        cloudevents = dict(cloudevents) if isinstance(cloudevents, dict) else cloudevents
        for key in _RENAMED_CLOUDEVENTS_KEYS:
            if f"cloudevents_{key}" in kafka:
                value = kafka.pop(f"cloudevents_{key}")
                log.warning("kafka.cloudevents_%s is deprecated: use cloudevents.%s", key, key)
                if isinstance(cloudevents, dict):
                    cloudevents.setdefault(key, value)
        return {**data, "kafka": kafka, "cloudevents": cloudevents}

    @model_validator(mode="before")
    @classmethod
    def _merge_model_defaults(cls, data: Any) -> Any:
        """Named models inherit every key of ``models.default`` they do not set."""
        if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
            return data
        models = data["models"]
        default = models.get("default") or {}
        if not isinstance(default, dict):
            return data
        merged = {"default": default}
        for name, section in models.items():
            if name != "default":
                merged[name] = _deep_merge(default, section) if isinstance(section, dict) else section
        return {**data, "models": merged}

    @model_validator(mode="after")
    def _webhooks_exist(self) -> Settings:
        for name, model in self.models.items():
            hook = model.triggers.webhook
            if hook is not None and hook not in self.webhooks:
                raise ValueError(f"models.{name}.triggers.webhook: no webhook named {hook!r} under webhooks")
        return self

    def model(self, name: str) -> ModelConfig:
        """The effective configuration of model ``name``."""
        return self.models.get(name) or self.models.get("default") or _DEFAULT_MODEL


_DEFAULT_MODEL = ModelConfig()


def _deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            # A reference names exactly one source: an override replaces it whole.
            out[key] = value if key == "reference" else _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


