"""driftline's configuration: one typed model, loaded from YAML and ``DRIFTLINE_*`` variables.

Every key may be overridden by an environment variable named ``DRIFTLINE_`` plus the key
path joined by ``__`` (``DRIFTLINE_KAFKA__BOOTSTRAP_SERVERS=broker:9092``); values are
read as YAML scalars, so ``DRIFTLINE_LIMITS__MAX_MODELS=50`` is an int. A wrong key or
value raises :class:`ConfigError` naming the key, and start-up stops.

``models.default`` applies to every model; a named model's section is merged over it key
by key, so ``fraud: {window: {size: 5000}}`` keeps the default ``step``.
"""

from service.config.fields import ConfigError, Duration, Strict, parse_duration
from service.config.inputs import CloudEventsConfig, KafkaConfig
from service.config.integrations import AlertmanagerConfig, MlflowConfig, WebhookAuth, WebhookConfig
from service.config.loading import TOOLING_VARIABLES, load_settings, named_variables
from service.config.model import (
    AUTOMATIC_REASONS,
    DriftConfig,
    EstimatedMetric,
    EstimationConfig,
    LabelsConfig,
    ModelConfig,
    PerformanceRule,
    QualityConfig,
    ReferenceConfig,
    StattestName,
    TriggerReason,
    TriggersConfig,
    WindowConfig,
)
from service.config.server import AuthConfig, LimitsConfig, ServerConfig
from service.config.settings import Settings

__all__ = [
    "AUTOMATIC_REASONS", "TOOLING_VARIABLES", "AlertmanagerConfig", "AuthConfig", "CloudEventsConfig", "ConfigError",
    "DriftConfig", "Duration", "EstimatedMetric", "EstimationConfig", "KafkaConfig", "LabelsConfig", "LimitsConfig",
    "MlflowConfig", "ModelConfig", "PerformanceRule", "QualityConfig", "ReferenceConfig", "ServerConfig", "Settings",
    "StattestName", "Strict", "TriggerReason", "TriggersConfig", "WebhookAuth", "WebhookConfig", "WindowConfig",
    "load_settings", "named_variables", "parse_duration",
]
